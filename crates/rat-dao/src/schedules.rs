//! `schedules`: cron schedules of pipelines. Besides create, read, update,
//! delete and list: what the scheduler's tick is made of, set-based so one
//! transaction fires a whole batch in a fixed number of statements
//! ([`claim_due`], [`fire_slots`], [`advance`], [`explain_unfired`]), the
//! earliest slot it sleeps until ([`earliest_slot`]), and the `NOTIFY`
//! channel that wakes it early ([`CHANGED_CHANNEL`], [`notify_changed`];
//! schedulers listen with [`crate::listen::Listener`]).

use crate::GenericClient;
use rat_domain::{CronExpr, Layer, NamespaceName, Page, PageRequest, PipelineName, Schedule, ScheduleTimezone};
use rat_domain::{PipelineId, RunId, ScheduleId};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::DaoError;
use crate::sql::{self, Conditions, OrderBy};

/// `NOTIFY` channel announcing that schedules or cron triggers changed
/// (payload: the schedule or trigger id): schedulers listen on it to wake up
/// early instead of sleeping to a slot that no longer exists.
pub const CHANGED_CHANNEL: &str = "rat_schedules";

/// The select list of every schedule query, as a literal so it can be part of
/// the `concat!`ed constant [`DUE_SQL`].
macro_rules! columns {
    () => {
        "id, pipeline_id, cron_expr, timezone, enabled, last_run_id, last_run_at, next_run_at, created_at, updated_at"
    };
}

const COLUMNS: &str = columns!();

/// The query of [`claim_due`] (`$1` = now, `$2` = limit), exposed for
/// plan tests. `enabled = true` repeats the predicate of the partial index
/// `idx_schedules_next_run`, so the planner can use that index. The order is
/// the index's alone (no tiebreak column), so the rows stream from the index
/// and are locked one by one until `limit`, instead of every due row being
/// sorted first.
pub const DUE_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM schedules WHERE enabled = true AND next_run_at <= $1 \
     ORDER BY next_run_at LIMIT $2 FOR UPDATE SKIP LOCKED"
);

fn from_row(row: &Row) -> Result<Schedule, DaoError> {
    let timezone: &str = row.try_get("timezone")?;
    Ok(Schedule {
        id: row.try_get("id")?,
        pipeline_id: row.try_get("pipeline_id")?,
        cron_expr: sql::parse_column(row, "cron_expr")?,
        timezone: ScheduleTimezone::parse(timezone).map_err(|e| DaoError::corrupt("timezone", e))?,
        enabled: row.try_get("enabled")?,
        last_run_id: row.try_get("last_run_id")?,
        last_run_at: row.try_get("last_run_at")?,
        next_run_at: row.try_get("next_run_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// What creating a schedule needs.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    /// The pipeline it starts.
    pub pipeline_id: PipelineId,
    /// When it fires.
    pub cron_expr: CronExpr,
    /// Time zone the expression is evaluated in.
    pub timezone: ScheduleTimezone,
    /// Disabled schedules never fire.
    pub enabled: bool,
    /// The first slot, computed by the caller.
    pub next_run_at: Option<OffsetDateTime>,
}

/// Creates a schedule; `MissingReference { pipeline }` for an unknown pipeline.
pub async fn create(client: &impl GenericClient, new: &NewSchedule) -> Result<Schedule, DaoError> {
    let row = sql::query_one(
        client,
        "schedule",
        &format!(
            "INSERT INTO schedules (pipeline_id, cron_expr, timezone, enabled, next_run_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ),
        &[
            &new.pipeline_id,
            &new.cron_expr.as_str(),
            &new.timezone.name(),
            &new.enabled,
            &new.next_run_at,
        ],
    )
    .await?;
    from_row(&row)
}

/// The schedule with this id.
pub async fn get(client: &impl GenericClient, id: ScheduleId) -> Result<Schedule, DaoError> {
    let row = sql::query_one(
        client,
        "schedule",
        &format!("SELECT {COLUMNS} FROM schedules WHERE id = $1"),
        &[&id],
    )
    .await?;
    from_row(&row)
}

/// The schedule with this id, locked (`FOR UPDATE`) until the end of the
/// caller's transaction. An update that recomputes `next_run_at` from the
/// stored expression reads the row this way, so a concurrent update (or a
/// scheduler recording a fire) cannot interleave between the read and the write.
pub async fn get_for_update(client: &impl GenericClient, id: ScheduleId) -> Result<Schedule, DaoError> {
    let row = sql::query_one(
        client,
        "schedule",
        &format!("SELECT {COLUMNS} FROM schedules WHERE id = $1 FOR UPDATE"),
        &[&id],
    )
    .await?;
    from_row(&row)
}

/// Changes to a schedule; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ScheduleUpdate {
    /// New expression.
    pub cron_expr: Option<CronExpr>,
    /// New time zone.
    pub timezone: Option<ScheduleTimezone>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New next slot; `Some(None)` clears it.
    pub next_run_at: Option<Option<OffsetDateTime>>,
}

/// Applies `changes` to the schedule with this id.
pub async fn update(
    client: &impl GenericClient,
    id: ScheduleId,
    changes: &ScheduleUpdate,
) -> Result<Schedule, DaoError> {
    let cron_expr = changes.cron_expr.as_ref().map(CronExpr::as_str);
    let timezone = changes.timezone.map(|tz| tz.name());
    // `next_run_at` can be set to NULL, so "keep" travels as its own flag
    // instead of as a NULL that COALESCE would swallow.
    let set_next = changes.next_run_at.is_some();
    let next_run_at = changes.next_run_at.flatten();
    let row = sql::query_one(
        client,
        "schedule",
        &format!(
            "UPDATE schedules SET \
                cron_expr = COALESCE($2, cron_expr), \
                timezone = COALESCE($3, timezone), \
                enabled = COALESCE($4, enabled), \
                next_run_at = CASE WHEN $5 THEN $6::timestamptz ELSE next_run_at END \
             WHERE id = $1 RETURNING {COLUMNS}"
        ),
        &[&id, &cron_expr, &timezone, &changes.enabled, &set_next, &next_run_at],
    )
    .await?;
    from_row(&row)
}

/// Deletes a schedule. The runs it created stay, with `schedule_id` NULL.
pub async fn delete(client: &impl GenericClient, id: ScheduleId) -> Result<(), DaoError> {
    let deleted = sql::execute(client, "DELETE FROM schedules WHERE id = $1", &[&id])
        .await
        .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound { entity: "schedule" });
    }
    Ok(())
}

/// Filters of `GET /schedules`.
#[derive(Debug, Clone, Default)]
pub struct ScheduleFilter {
    /// Only the schedules of this pipeline.
    pub pipeline_id: Option<PipelineId>,
    /// Only enabled (or only disabled) schedules.
    pub enabled: Option<bool>,
    /// Schedules of live pipelines in this namespace.
    pub namespace: Option<NamespaceName>,
    /// Schedules of live pipelines in this layer.
    pub layer: Option<Layer>,
    /// Schedules of live pipelines with this name.
    pub pipeline: Option<PipelineName>,
    /// Only schedules of pipelines these share principals may read (the
    /// access rule in SQL, `readable_pipeline!`); `None` = all.
    pub readable_by: Option<Vec<String>>,
}

/// Schedules matching `filter`, oldest first, one page, with the total.
pub async fn list(
    client: &impl GenericClient,
    filter: &ScheduleFilter,
    page: PageRequest,
) -> Result<Page<Schedule>, DaoError> {
    let namespace = filter.namespace.as_ref().map(NamespaceName::as_str);
    let layer = filter.layer.map(Layer::as_str);
    let pipeline = filter.pipeline.as_ref().map(PipelineName::as_str);
    let mut conditions = Conditions::new();
    conditions.push_opt("pipeline_id = $?", &filter.pipeline_id);
    conditions.push_opt("enabled = $?", &filter.enabled);
    // The same sub-selects as the run list: each name filter narrows to live
    // pipelines, and together they address one pipeline.
    sql::push_pipeline_address(&mut conditions, &namespace, &layer, &pipeline);
    conditions.push_opt(of_readable_pipeline!(), &filter.readable_by);
    let order = OrderBy {
        columns: &["created_at", "id"],
        descending: false,
    };
    sql::fetch_page(client, COLUMNS, "schedules", &conditions, order, page, from_row).await
}

/// Most schedules one [`claim_due`] may claim (the bound of one scheduler
/// transaction).
pub const MAX_CLAIM_BATCH: i64 = 5000;

/// A due schedule claimed by the scheduler, locked until the end of the
/// claiming transaction. The expression and zone are returned as stored, not
/// parsed: one that no longer parses (written behind the api's back, or
/// refused by a newer cron parser) must not stop the others from firing, so
/// the caller decides what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSchedule {
    /// The schedule.
    pub id: ScheduleId,
    /// The pipeline it starts.
    pub pipeline_id: PipelineId,
    /// The slot that is due: the schedule's `next_run_at`.
    pub slot: OffsetDateTime,
    /// The cron expression as stored.
    pub cron_expr: String,
    /// The IANA time zone name as stored.
    pub timezone: String,
}

/// Claims up to `limit` (1..=[`MAX_CLAIM_BATCH`]) enabled schedules whose
/// slot is at or before `now`, earliest slot first, with [`DUE_SQL`]: each is
/// locked until the end of the caller's transaction, and rows another
/// transaction holds are skipped, so concurrent schedulers never claim the
/// same schedule. `Invalid { claim_limit }` for a bad limit.
pub async fn claim_due(
    client: &impl GenericClient,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<DueSchedule>, DaoError> {
    if !(1..=MAX_CLAIM_BATCH).contains(&limit) {
        return Err(DaoError::Invalid {
            constraint: "claim_limit".to_owned(),
        });
    }
    let rows = sql::query(client, DUE_SQL, &[&now, &limit]).await?;
    rows.iter()
        .map(|row| {
            Ok(DueSchedule {
                id: row.try_get("id")?,
                pipeline_id: row.try_get("pipeline_id")?,
                // The query only returns rows with a slot at or before `now`.
                slot: row.try_get("next_run_at")?,
                cron_expr: row.try_get("cron_expr")?,
                timezone: row.try_get("timezone")?,
            })
        })
        .collect()
}

/// One claimed slot the scheduler asks [`fire_slots`] to fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotToFire {
    /// The schedule (claimed in the caller's transaction).
    pub schedule_id: ScheduleId,
    /// The slot: the schedule's due `next_run_at`.
    pub slot: OffsetDateTime,
    /// The run's trigger label (`schedule:{cron}`, see `rat_domain::trigger_label`).
    pub trigger: String,
}

/// A slot [`fire_slots`] fired: the run it created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiredSlot {
    /// The schedule.
    pub schedule_id: ScheduleId,
    /// The slot.
    pub slot: OffsetDateTime,
    /// The pending run created for the slot.
    pub run_id: RunId,
}

/// `active(pipeline_id, run_id)`: each pipeline of the batch (the schedules
/// of `$1`) with a pending or running run, and its oldest such run, read
/// once (`MATERIALIZED`). One probe per pipeline (`LATERAL … LIMIT 1`) with
/// the exact predicate and order of the partial index
/// `idx_runs_active_pipeline` (V25), so the cost follows the batch: not the
/// size of the run history, nor the number of active runs of other
/// pipelines (a burst of due schedules leaves thousands pending). The
/// probe's shape leaves the planner no cheaper-looking path: a filter of
/// every active run read in index order looked cheap while `runs` had no
/// statistics yet, and made a burst quadratic.
macro_rules! active_pipelines_cte {
    () => {
        concat!(
            "WITH active AS MATERIALIZED ( \
                 SELECT b.pipeline_id, a.run_id \
                 FROM (SELECT DISTINCT s.pipeline_id FROM schedules s WHERE s.id = ANY($1::uuid[])) b \
                 JOIN LATERAL ( \
                     SELECT r.id AS run_id FROM runs r \
                     WHERE r.pipeline_id = b.pipeline_id AND r.status IN ",
            active_statuses!(),
            " ORDER BY r.created_at, r.id LIMIT 1 \
                 ) a ON true \
             ) "
        )
    };
}

/// Locks (`FOR SHARE`) the live pipelines of the given schedules, in id
/// order. A publish, rollback or delete of one of them holds a stronger lock
/// for its transaction: this waits for it to commit, so the run inserted
/// next, in a new statement and therefore a new snapshot, sees its outcome
/// (the newest version, or the deletion), exactly like a manual run does.
const LOCK_PIPELINES_SQL: &str = "SELECT p.id FROM pipelines p \
     WHERE p.id IN (SELECT s.pipeline_id FROM schedules s WHERE s.id = ANY($1)) AND p.deleted_at IS NULL \
     ORDER BY p.id FOR SHARE OF p";

/// The firing rule, stated once for [`FIRE_SQL`] and [`explain_unfired`]:
/// the CTE `verdict` holds, for each slot of `$1` schedule ids and `$2`
/// slots (parallel arrays, `n` their position), what the rule looks at:
/// whether the pipeline is `live`, the version a run would execute
/// (`version_number`, `published_versions`: its latest version, only when
/// that pins at least one file, see [`crate::pipeline_versions::latest_runnable`]),
/// its `active_run` if it has a pending or running one, and whether the slot
/// `already_fired`. A slot may fire when [`may_fire!`] holds for it.
///
/// The batch's pipelines with an active run are read once per batch off the
/// partial index `idx_runs_active_pipeline` (the `active` CTE): a probe of
/// `idx_runs_pipeline` would walk a pipeline's whole run history whenever it
/// has no active run (the common case), which grows by one run per slot, and
/// a read of every active run (`idx_runs_status`) grows with each batch of a
/// burst.
///
/// Whether a slot `already_fired` is a probe of `uq_runs_schedule_slot` per
/// slot, in a `LATERAL` subquery, which the planner can only run as such. As
/// an `EXISTS` it was free to hash every run instead, and did once `runs`
/// held a few thousand rows: each batch of a burst then read the whole
/// table, grown by the batches before it (10⁵ due schedules fired in 11 s
/// against 0.7 s for 10⁴).
macro_rules! slot_verdicts_cte {
    () => {
        concat!(
            active_pipelines_cte!(),
            ", verdict AS ( \
                 SELECT d.schedule_id, d.slot, d.n, s.pipeline_id, \
                     (p.id IS NOT NULL AND p.deleted_at IS NULL) AS live, \
                     v.version_number, v.published_versions, a.run_id AS active_run, \
                     f.fired IS NOT NULL AS already_fired \
                 FROM unnest($1::uuid[], $2::timestamptz[]) WITH ORDINALITY AS d(schedule_id, slot, n) \
                 JOIN schedules s ON s.id = d.schedule_id \
                 LEFT JOIN pipelines p ON p.id = s.pipeline_id \
                 LEFT JOIN LATERAL ( \
                     SELECT true AS fired FROM runs r \
                     WHERE r.schedule_id = d.schedule_id AND r.scheduled_for = d.slot LIMIT 1 \
                 ) f ON true \
                 LEFT JOIN LATERAL (",
            latest_runnable_version!("pv.version_number, pv.published_versions", "s.pipeline_id"),
            ") v ON true \
                 LEFT JOIN active a ON a.pipeline_id = s.pipeline_id \
             ) "
        )
    };
}

/// The predicate over a `verdict` row under which its slot fires: a live
/// pipeline with a runnable version, no pending or running run, and no run
/// for the slot yet. [`explain_unfired`] names the first part that fails.
macro_rules! may_fire {
    () => {
        "live AND version_number IS NOT NULL AND active_run IS NULL AND NOT already_fired"
    };
}

/// The set-based fire of [`fire_slots`] (the second of its two statements):
/// `$1` schedule ids, `$2` slots, `$3` trigger labels (parallel arrays), `$4`
/// the creation time. Every slot for which `may_fire!` holds in the
/// `verdict` (`slot_verdicts_cte!`) gets a pending run executing that
/// version. `DISTINCT ON` keeps one slot per pipeline (the first in the
/// batch's order): a second schedule of the same pipeline would otherwise
/// start it again while the first run is pending. The unique index
/// `uq_runs_schedule_slot` is the last word on duplicates: `ON CONFLICT DO
/// NOTHING` turns a slot another transaction fired into a slot not fired
/// here, never into an error that would abort the batch. Exposed for plan tests.
pub const FIRE_SQL: &str = concat!(
    slot_verdicts_cte!(),
    "INSERT INTO runs (pipeline_id, trigger, version_number, published_versions, schedule_id, \
                       scheduled_for, created_at) \
     SELECT DISTINCT ON (pipeline_id) \
            pipeline_id, ($3::text[])[n], version_number, published_versions, schedule_id, slot, \
            $4::timestamptz \
     FROM verdict WHERE ",
    may_fire!(),
    " ORDER BY pipeline_id, n \
     ON CONFLICT (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL DO NOTHING \
     RETURNING id, schedule_id, scheduled_for"
);

/// Fires the given claimed slots in two statements (whatever their number):
/// locks their live pipelines (`LOCK_PIPELINES_SQL`), then inserts one
/// pending run per slot that may fire ([`FIRE_SQL`]), executing the latest
/// published version with its pinned snapshot, created at `now`, carrying
/// its schedule and slot. Returns the slots that fired; the others did not,
/// for a reason [`explain_unfired`] tells. Call it in the transaction that
/// claimed the schedules and that advances them ([`advance`]).
pub async fn fire_slots(
    client: &impl GenericClient,
    slots: &[SlotToFire],
    now: OffsetDateTime,
) -> Result<Vec<FiredSlot>, DaoError> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<ScheduleId> = slots.iter().map(|s| s.schedule_id).collect();
    let times: Vec<OffsetDateTime> = slots.iter().map(|s| s.slot).collect();
    let triggers: Vec<&str> = slots.iter().map(|s| s.trigger.as_str()).collect();
    sql::query(client, LOCK_PIPELINES_SQL, &[&ids]).await?;
    let rows = sql::query(client, FIRE_SQL, &[&ids, &times, &triggers, &now]).await?;
    rows.iter()
        .map(|row| {
            Ok(FiredSlot {
                schedule_id: row.try_get("schedule_id")?,
                slot: row.try_get("scheduled_for")?,
                run_id: row.try_get("id")?,
            })
        })
        .collect()
}

/// How a claimed schedule moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advance {
    /// The schedule (claimed in the caller's transaction).
    pub id: ScheduleId,
    /// Its next slot; `None` when the expression never matches again (or can
    /// no longer be evaluated): the schedule stays, and never fires.
    pub next_run_at: Option<OffsetDateTime>,
    /// The run it just created, if it fired: recorded as its last run, at `now`.
    pub run_id: Option<RunId>,
}

/// Moves claimed schedules to their next slot in one statement, and records
/// the run of those that fired (`last_run_id`, `last_run_at = now`); the
/// others keep their last run. Returns the number of schedules updated.
pub async fn advance(client: &impl GenericClient, advances: &[Advance], now: OffsetDateTime) -> Result<u64, DaoError> {
    if advances.is_empty() {
        return Ok(0);
    }
    let ids: Vec<ScheduleId> = advances.iter().map(|a| a.id).collect();
    let next: Vec<Option<OffsetDateTime>> = advances.iter().map(|a| a.next_run_at).collect();
    let runs: Vec<Option<RunId>> = advances.iter().map(|a| a.run_id).collect();
    sql::execute(
        client,
        "UPDATE schedules s SET next_run_at = d.next_run_at, \
            last_run_id = COALESCE(d.run_id, s.last_run_id), \
            last_run_at = CASE WHEN d.run_id IS NULL THEN s.last_run_at ELSE $4::timestamptz END \
         FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[]) AS d(id, next_run_at, run_id) \
         WHERE s.id = d.id",
        &[&ids, &next, &runs, &now],
    )
    .await
}

/// Why a claimed slot did not fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFired {
    /// The pipeline was deleted (soft-deleted; it may still be restored or purged).
    PipelineDeleted,
    /// The pipeline was never published: a run needs a published snapshot.
    NeverPublished,
    /// The pipeline has a pending or running run (possibly one just created
    /// by another of its schedules): it is not started again.
    ActiveRun {
        /// One of its active runs, when one is still active.
        run_id: Option<RunId>,
    },
    /// The slot already has its run (fired by another transaction).
    AlreadyFired,
}

impl NotFired {
    /// A short, stable name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            NotFired::PipelineDeleted => "pipeline_deleted",
            NotFired::NeverPublished => "never_published",
            NotFired::ActiveRun { .. } => "active_run",
            NotFired::AlreadyFired => "already_fired",
        }
    }
}

/// A claimed slot that did not fire, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnfiredSlot {
    /// The schedule.
    pub schedule_id: ScheduleId,
    /// Its pipeline.
    pub pipeline_id: PipelineId,
    /// The slot.
    pub slot: OffsetDateTime,
    /// Why it did not fire.
    pub reason: NotFired,
}

/// Why each of these slots (claimed, and not fired by [`fire_slots`] in the
/// same transaction) did not fire, in one query. The reasons are checked in
/// the order of [`NotFired`]'s variants; a slot none of them applies to any
/// more lost to an active run that has finished since.
pub async fn explain_unfired(
    client: &impl GenericClient,
    slots: &[(ScheduleId, OffsetDateTime)],
) -> Result<Vec<UnfiredSlot>, DaoError> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<ScheduleId> = slots.iter().map(|s| s.0).collect();
    let times: Vec<OffsetDateTime> = slots.iter().map(|s| s.1).collect();
    let rows = sql::query(
        client,
        concat!(
            slot_verdicts_cte!(),
            "SELECT schedule_id, slot, pipeline_id, live, version_number IS NOT NULL AS runnable, \
                    already_fired, active_run \
             FROM verdict ORDER BY n"
        ),
        &[&ids, &times],
    )
    .await?;
    rows.iter()
        .map(|row| {
            let reason = if !row.try_get::<_, bool>("live")? {
                NotFired::PipelineDeleted
            } else if !row.try_get::<_, bool>("runnable")? {
                NotFired::NeverPublished
            } else if row.try_get("already_fired")? {
                NotFired::AlreadyFired
            } else {
                NotFired::ActiveRun {
                    run_id: row.try_get("active_run")?,
                }
            };
            Ok(UnfiredSlot {
                schedule_id: row.try_get("schedule_id")?,
                pipeline_id: row.try_get("pipeline_id")?,
                slot: row.try_get("slot")?,
                reason,
            })
        })
        .collect()
}

/// The earliest slot anything the scheduler fires is waiting for: the
/// smallest `next_run_at` of enabled schedules and `next_fire_at` of enabled
/// cron triggers (`pipeline_triggers`, V10), each read off its partial
/// index; `None` when nothing is scheduled. It may be in the past (a slot
/// another scheduler is firing right now).
pub async fn earliest_slot(client: &impl GenericClient) -> Result<Option<OffsetDateTime>, DaoError> {
    let row = sql::query_one(
        client,
        "schedule",
        "SELECT LEAST( \
            (SELECT min(next_run_at) FROM schedules WHERE enabled = true), \
            (SELECT min(next_fire_at) FROM pipeline_triggers WHERE enabled = true AND next_fire_at IS NOT NULL) \
         ) AS earliest",
        &[],
    )
    .await?;
    Ok(row.try_get("earliest")?)
}

/// `NOTIFY` [`CHANGED_CHANNEL`] with the schedule's id as payload, delivered
/// when the caller's transaction commits (at once outside a transaction), so
/// sleeping schedulers recompute when to wake up.
/// Disables every schedule of the pipeline (and clears their next slot).
/// Returns the ids of those that were enabled.
pub async fn disable_for_pipeline(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
) -> Result<Vec<ScheduleId>, DaoError> {
    let rows = sql::query(
        client,
        "UPDATE schedules SET enabled = false, next_run_at = NULL WHERE pipeline_id = $1 AND enabled RETURNING id",
        &[&pipeline_id],
    )
    .await?;
    rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
}

/// Enables again the disabled ones among `ids` of pipeline `pipeline_id`
/// (a restore undoing [`disable_for_pipeline`]); their slots are for the
/// caller to set. Returns the ids enabled.
pub async fn enable_for_pipeline(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    ids: &[ScheduleId],
) -> Result<Vec<ScheduleId>, DaoError> {
    let rows = sql::query(
        client,
        "UPDATE schedules SET enabled = true WHERE pipeline_id = $1 AND id = ANY($2) AND NOT enabled RETURNING id",
        &[&pipeline_id, &ids],
    )
    .await?;
    rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
}

/// Sends the schedules-changed notification for `id` (delivered at commit).
pub async fn notify_changed(client: &impl GenericClient, id: ScheduleId) -> Result<(), DaoError> {
    sql::notify(client, CHANGED_CHANNEL, id).await
}
