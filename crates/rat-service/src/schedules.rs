//! Cron schedules: create and update with `next_run_at` recomputed.
//!
//! `next_run_at` is the first slot strictly after `now`, evaluated in the
//! schedule's time zone, for an enabled schedule, and NULL for a disabled one
//! (it will not run). Every create and every update recomputes it, so enabling
//! a schedule that was off for a week starts from now instead of firing a slot
//! from last week.
//!
//! A schedule may be created for a pipeline that was never published: it is
//! kept, and the scheduler skips its slots until the pipeline is published
//! (a run needs a published snapshot). Only an unknown pipeline is refused.
//!
//! Create, update and delete `NOTIFY rat_schedules` (payload: the schedule
//! id) in their transaction, so sleeping schedulers wake up and recompute
//! their next wake-up at once (see `crate::scheduler`).

use rat_dao::pipelines;
pub use rat_dao::schedules::ScheduleFilter;
use rat_dao::schedules::{self, NewSchedule, ScheduleUpdate};
use rat_domain::ScheduleId;
use rat_domain::{CronExpr, Page, PageRequest, PipelineRef, Schedule, ScheduleTimezone};
use time::OffsetDateTime;

use crate::identity::Caller;
use crate::pipelines::{require_on_id, require_on_loaded};
use crate::{ServiceError, Services, sharing};
use rat_domain::Permission;

/// The `next_run_at` of a schedule with these settings, at `now`: the first
/// slot after `now` in `timezone` when enabled, `None` when disabled (or when
/// the expression never matches again).
pub fn next_run_at(
    cron: &CronExpr,
    timezone: &ScheduleTimezone,
    enabled: bool,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    if enabled { cron.next_after(now, timezone) } else { None }
}

/// What creating a schedule needs, validated.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    /// The live pipeline it starts.
    pub address: PipelineRef,
    /// When it fires.
    pub cron: CronExpr,
    /// Where `cron` is evaluated.
    pub timezone: ScheduleTimezone,
    /// Disabled schedules never fire.
    pub enabled: bool,
}

/// Creates a schedule of the live pipeline at `spec.address` with its first
/// slot computed at `now`. `NotFound` for an unknown pipeline.
#[tracing::instrument(skip(services, caller, spec), fields(pipeline = %spec.address))]
pub async fn create(
    services: &Services,
    caller: &Caller,
    spec: &ScheduleSpec,
    now: OffsetDateTime,
) -> Result<Schedule, ServiceError> {
    spec.cron.check_fires()?;
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let pipeline = pipelines::get_by_ref(&transaction, &spec.address).await?;
    require_on_loaded(&transaction, caller, &pipeline, Permission::Write, "scheduling").await?;
    // A purge between the read and the insert surfaces as the foreign key's
    // `MissingReference { pipeline }`, i.e. the same 404.
    let schedule = schedules::create(
        &transaction,
        &NewSchedule {
            pipeline_id: pipeline.id,
            cron_expr: spec.cron.clone(),
            timezone: spec.timezone,
            enabled: spec.enabled,
            next_run_at: next_run_at(&spec.cron, &spec.timezone, spec.enabled, now),
        },
    )
    .await?;
    // Schedulers sleep until the earliest slot they know of; this one may be
    // earlier. The notification is delivered on commit, with the row.
    schedules::notify_changed(&transaction, schedule.id).await?;
    transaction.commit().await?;
    Ok(schedule)
}

/// The schedule with this id; `NotFound` when there is none or `caller` may
/// not read its pipeline.
pub async fn get(services: &Services, caller: &Caller, id: ScheduleId) -> Result<Schedule, ServiceError> {
    let client = services.pool.get().await?;
    let schedule = schedules::get(&client, id).await?;
    require_on_id(
        &client,
        caller,
        schedule.pipeline_id,
        Permission::Read,
        "reading",
        "schedule",
    )
    .await?;
    Ok(schedule)
}

/// Schedules matching `filter` of pipelines `caller` may read, oldest first,
/// one page, with the total (filtered in SQL).
pub async fn list(
    services: &Services,
    caller: &Caller,
    filter: &ScheduleFilter,
    page: PageRequest,
) -> Result<Page<Schedule>, ServiceError> {
    let client = services.pool.get().await?;
    let mut filter = filter.clone();
    filter.readable_by = (!caller.admin).then(|| sharing::share_names(caller));
    Ok(schedules::list(&client, &filter, page).await?)
}

/// The schedule `id`, locked until the transaction ends, when `caller` may
/// change it (write on its pipeline); `NotFound` ("schedule") when there is
/// none or they may not read its pipeline.
async fn locked_for_change(
    transaction: &impl rat_dao::GenericClient,
    caller: &Caller,
    id: ScheduleId,
) -> Result<Schedule, ServiceError> {
    let current = schedules::get_for_update(transaction, id).await?;
    let pipeline = current.pipeline_id;
    require_on_id(
        transaction,
        caller,
        pipeline,
        Permission::Write,
        "scheduling",
        "schedule",
    )
    .await?;
    Ok(current)
}

/// Changes to a schedule, validated; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ScheduleChanges {
    /// New expression.
    pub cron: Option<CronExpr>,
    /// New time zone.
    pub timezone: Option<ScheduleTimezone>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// Applies `changes` and recomputes `next_run_at` at `now` from the resulting
/// expression, time zone and enabled flag. The row is locked while it is read
/// and rewritten, so two concurrent updates cannot leave a `next_run_at`
/// computed from an expression that is no longer the stored one.
#[tracing::instrument(skip(services, caller, changes))]
pub async fn update(
    services: &Services,
    caller: &Caller,
    id: ScheduleId,
    changes: &ScheduleChanges,
    now: OffsetDateTime,
) -> Result<Schedule, ServiceError> {
    if let Some(cron) = &changes.cron {
        cron.check_fires()?;
    }
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let current = locked_for_change(&transaction, caller, id).await?;
    let cron = changes.cron.as_ref().unwrap_or(&current.cron_expr);
    let timezone = changes.timezone.unwrap_or(current.timezone);
    let enabled = changes.enabled.unwrap_or(current.enabled);
    let updated = schedules::update(
        &transaction,
        id,
        &ScheduleUpdate {
            cron_expr: changes.cron.clone(),
            timezone: changes.timezone,
            enabled: changes.enabled,
            next_run_at: Some(next_run_at(cron, &timezone, enabled, now)),
        },
    )
    .await?;
    schedules::notify_changed(&transaction, id).await?;
    transaction.commit().await?;
    Ok(updated)
}

/// Deletes a schedule; the runs it created stay.
pub async fn delete(services: &Services, caller: &Caller, id: ScheduleId) -> Result<(), ServiceError> {
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    locked_for_change(&transaction, caller, id).await?;
    schedules::delete(&transaction, id).await?;
    // A scheduler sleeping until this schedule's slot wakes up and
    // recomputes instead of waking for nothing.
    schedules::notify_changed(&transaction, id).await?;
    transaction.commit().await?;
    Ok(())
}
