//! `schedules`: cron schedules of pipelines. Besides create, read, update,
//! delete and list, the scheduler claims due schedules with
//! [`due_for_update`] and records each fire with [`record_fire`].

use deadpool_postgres::GenericClient;
use rat_domain::{CronExpr, Layer, NamespaceName, Page, PageRequest, PipelineName, Schedule, ScheduleTimezone};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

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

/// The query of [`due_for_update`] (`$1` = now, `$2` = limit), exposed for
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
    pub pipeline_id: Uuid,
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
pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Schedule, DaoError> {
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
pub async fn get_for_update(client: &impl GenericClient, id: Uuid) -> Result<Schedule, DaoError> {
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
pub async fn update(client: &impl GenericClient, id: Uuid, changes: &ScheduleUpdate) -> Result<Schedule, DaoError> {
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
pub async fn delete(client: &impl GenericClient, id: Uuid) -> Result<(), DaoError> {
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
    pub pipeline_id: Option<Uuid>,
    /// Only enabled (or only disabled) schedules.
    pub enabled: Option<bool>,
    /// Schedules of live pipelines in this namespace.
    pub namespace: Option<NamespaceName>,
    /// Schedules of live pipelines in this layer.
    pub layer: Option<Layer>,
    /// Schedules of live pipelines with this name.
    pub pipeline: Option<PipelineName>,
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
    conditions.push_opt(
        "pipeline_id IN (SELECT id FROM pipelines WHERE namespace = $? AND deleted_at IS NULL)",
        &namespace,
    );
    conditions.push_opt(
        "pipeline_id IN (SELECT id FROM pipelines WHERE layer = $? AND deleted_at IS NULL)",
        &layer,
    );
    conditions.push_opt(
        "pipeline_id IN (SELECT id FROM pipelines WHERE name = $? AND deleted_at IS NULL)",
        &pipeline,
    );
    let order = OrderBy {
        columns: &["created_at", "id"],
        descending: false,
    };
    sql::fetch_page(client, COLUMNS, "schedules", &conditions, order, page, from_row).await
}

/// Enabled schedules whose `next_run_at` is at or before `now`, earliest slot
/// first, at most `limit`, each locked until the end of the caller's
/// transaction. Rows another transaction holds are skipped (`SKIP LOCKED`),
/// so concurrent scheduler replicas never claim the same schedule.
pub async fn due_for_update(
    client: &impl GenericClient,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<Schedule>, DaoError> {
    let rows = sql::query(client, DUE_SQL, &[&now, &limit]).await?;
    rows.iter().map(from_row).collect()
}

/// Records that the schedule fired: the run it created, when, and its next
/// slot (`None` when the expression never matches again).
pub async fn record_fire(
    client: &impl GenericClient,
    id: Uuid,
    run_id: Uuid,
    fired_at: OffsetDateTime,
    next_run_at: Option<OffsetDateTime>,
) -> Result<Schedule, DaoError> {
    let row = sql::query_one(
        client,
        "schedule",
        &format!(
            "UPDATE schedules SET last_run_id = $2, last_run_at = $3, next_run_at = $4 \
             WHERE id = $1 RETURNING {COLUMNS}"
        ),
        &[&id, &run_id, &fired_at, &next_run_at],
    )
    .await?;
    from_row(&row)
}
