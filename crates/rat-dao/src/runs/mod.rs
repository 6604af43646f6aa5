//! `runs`: creation with the pinned snapshot, the status machine enforced in
//! SQL, deletion and cancellation, and listing with every filter of `GET /runs`.
//! Runners' leases (`leases`: claim, heartbeat, completion by the holder)
//! and run logs (`logs`: entries, their notifications) have their own
//! modules; everything is re-exported here, so callers say `runs::claim`.

pub use counts::{fold_counts, pending_deltas, try_lock_fold};
pub use leases::*;
pub use logs::*;

use crate::GenericClient;
use rat_domain::{
    Cursor, KeysetPage, Layer, NamespaceName, PageRequest, PipelineName, PublishedVersions, Run, RunSortField,
    RunStatus, RunSummary, Sort,
};
use rat_domain::{PipelineId, RunId, ScheduleId, TriggerId, VersionNumber};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::DaoError;
use crate::sql::{self, Conditions, OrderBy};

/// Every column of a run but its logs and snapshot.
macro_rules! summary_columns {
    () => {
        "id, pipeline_id, status, trigger, started_at, finished_at, duration_ms, rows_written, error, \
         logs_s3_path, phase_profiles, created_at, schedule_id, trigger_id, scheduled_for, version_number, \
         runner_id, lease_expires_at, heartbeat_at"
    };
}

/// The columns of a listed run ([`RunSummary`]).
const SUMMARY_COLUMNS: &str = summary_columns!();
/// The columns of a whole run ([`Run`]).
const COLUMNS: &str = concat!(summary_columns!(), ", published_versions");

mod counts;
// Declared after the column macro, which they use.
mod leases;
mod logs;

/// Decodes a listed run (no snapshot column).
fn summary_from_row(row: &Row) -> Result<RunSummary, DaoError> {
    Ok(Run {
        id: row.try_get("id")?,
        pipeline_id: row.try_get("pipeline_id")?,
        status: sql::parse_column(row, "status")?,
        trigger: row.try_get("trigger")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        duration_ms: row.try_get("duration_ms")?,
        rows_written: row.try_get("rows_written")?,
        error: row.try_get("error")?,
        logs_s3_path: row.try_get("logs_s3_path")?,
        phase_profiles: row.try_get("phase_profiles")?,
        created_at: row.try_get("created_at")?,
        schedule_id: row.try_get("schedule_id")?,
        trigger_id: row.try_get("trigger_id")?,
        scheduled_for: row.try_get("scheduled_for")?,
        version_number: row.try_get("version_number")?,
        published_versions: (),
        runner_id: row.try_get("runner_id")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
    })
}

/// Decodes a whole run.
pub(crate) fn from_row(row: &Row) -> Result<Run, DaoError> {
    let published: serde_json::Value = row.try_get("published_versions")?;
    let published_versions =
        PublishedVersions::from_json(&published).map_err(|e| DaoError::corrupt("published_versions", e))?;
    Ok(summary_from_row(row)?.with_snapshot(published_versions))
}

/// What creating a run needs. A run always executes a published snapshot.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The pipeline.
    pub pipeline_id: PipelineId,
    /// The trigger label (see `rat_domain::trigger_label`).
    pub trigger: String,
    /// The published version it executes.
    pub version_number: VersionNumber,
    /// The pinned snapshot it executes.
    pub published_versions: PublishedVersions,
    /// The schedule that fired it.
    pub schedule_id: Option<ScheduleId>,
    /// The trigger that fired it.
    pub trigger_id: Option<TriggerId>,
    /// The cron slot it was fired for.
    pub scheduled_for: Option<OffsetDateTime>,
}

/// Inserts a pending run. `Conflict { uq_runs_schedule_slot }` (or
/// `uq_runs_trigger_slot`) when the slot already has its run.
pub async fn create(client: &impl GenericClient, new: &NewRun, now: OffsetDateTime) -> Result<Run, DaoError> {
    let row = sql::query_one(
        client,
        "run",
        &format!(
            "INSERT INTO runs (pipeline_id, trigger, version_number, published_versions, schedule_id, trigger_id, \
                               scheduled_for, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        ),
        &[
            &new.pipeline_id,
            &new.trigger,
            &new.version_number,
            &new.published_versions.to_json(),
            &new.schedule_id,
            &new.trigger_id,
            &new.scheduled_for,
            &now,
        ],
    )
    .await?;
    from_row(&row)
}

/// The run with this id.
pub async fn get(client: &impl GenericClient, id: RunId) -> Result<Run, DaoError> {
    let row = sql::query_one(
        client,
        "run",
        &format!("SELECT {COLUMNS} FROM runs WHERE id = $1"),
        &[&id],
    )
    .await?;
    from_row(&row)
}

/// What a status change records besides the status. `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Error message.
    pub error: Option<String>,
    /// Execution time.
    pub duration_ms: Option<i32>,
    /// Rows written.
    pub rows_written: Option<i64>,
    /// Per-phase timings.
    pub phase_profiles: Option<serde_json::Value>,
}

/// Moves a run to `to`, if and only if the state machine allows it from the
/// run's current status: the guard is the UPDATE's `WHERE status = ANY(...)`,
/// so concurrent writers cannot both succeed and a terminal run never changes.
/// Entering `running` sets `started_at` (once); entering a terminal status
/// sets `finished_at`. Refused moves change nothing and return
/// `InvalidTransition` with the status the run has.
pub async fn transition(
    client: &impl GenericClient,
    id: RunId,
    to: RunStatus,
    report: &RunReport,
    now: OffsetDateTime,
) -> Result<Run, DaoError> {
    let sources: Vec<&str> = to.allowed_sources().iter().map(|s| s.as_str()).collect();
    let terminal = to.is_terminal();
    let started = to == RunStatus::Running;
    let updated = sql::query_opt(
        client,
        &format!(
            "UPDATE runs SET status = $2, \
                started_at = CASE WHEN $3 THEN COALESCE(started_at, $5) ELSE started_at END, \
                finished_at = CASE WHEN $4 THEN $5 ELSE finished_at END, \
                error = COALESCE($6, error), \
                duration_ms = COALESCE($7, duration_ms), \
                rows_written = COALESCE($8, rows_written), \
                phase_profiles = COALESCE($9, phase_profiles) \
             WHERE id = $1 AND status = ANY($10) \
             RETURNING {COLUMNS}"
        ),
        &[
            &id,
            &to.as_str(),
            &started,
            &terminal,
            &now,
            &report.error,
            &report.duration_ms,
            &report.rows_written,
            &report.phase_profiles,
            &sources,
        ],
    )
    .await?;
    if let Some(row) = updated {
        if terminal {
            sql::notify(client, STATUS_CHANNEL, id).await?;
        }
        return from_row(&row);
    }
    // Refused or missing. Statuses only move forward, so the status read now
    // is one from which the move is still not allowed.
    Err(DaoError::InvalidTransition {
        from: status(client, id).await?,
        to,
    })
}

/// The run's status alone (cheap: no snapshot, no logs). `NotFound` for an unknown run.
pub async fn status(client: &impl GenericClient, id: RunId) -> Result<RunStatus, DaoError> {
    let row = sql::query_one(client, "run", "SELECT status FROM runs WHERE id = $1", &[&id]).await?;
    sql::parse_column(&row, "status")
}

/// The pipeline a run belongs to. `NotFound` for an unknown run.
pub async fn pipeline_of(client: &impl GenericClient, id: RunId) -> Result<PipelineId, DaoError> {
    let row = sql::query_one(client, "run", "SELECT pipeline_id FROM runs WHERE id = $1", &[&id]).await?;
    Ok(row.try_get("pipeline_id")?)
}

/// Deletes a run. References from schedules, triggers and quality results
/// become NULL, so this never fails on a reference.
pub async fn delete(client: &impl GenericClient, id: RunId) -> Result<(), DaoError> {
    let deleted = sql::execute(client, "DELETE FROM runs WHERE id = $1", &[&id])
        .await
        .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound { entity: "run" });
    }
    Ok(())
}

/// Cancels every pending or running run of the pipeline at `now`, with
/// `error` as their reason (runners holding one learn it at their next
/// heartbeat), and announces each on [`STATUS_CHANNEL`]. Returns their ids.
pub async fn cancel_active_of_pipeline(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    error: &str,
    now: OffsetDateTime,
) -> Result<Vec<RunId>, DaoError> {
    let rows = sql::query(
        client,
        concat!(
            "UPDATE runs SET status = 'cancelled', finished_at = $2, error = COALESCE(error, $3) \
             WHERE pipeline_id = $1 AND status IN ",
            active_statuses!(),
            " RETURNING id"
        ),
        &[&pipeline_id, &now, &error],
    )
    .await?;
    let ids = rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<Vec<RunId>, _>>()?;
    sql::notify_each(client, STATUS_CHANNEL, &ids).await?;
    Ok(ids)
}

/// Which of `pipeline_ids` have a pending or running run (one statement, off
/// the small partial index of active runs).
pub async fn with_active_run(
    client: &impl GenericClient,
    pipeline_ids: &[PipelineId],
) -> Result<Vec<PipelineId>, DaoError> {
    if pipeline_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sql::query(
        client,
        concat!(
            "SELECT DISTINCT pipeline_id FROM runs WHERE status IN ",
            active_statuses!(),
            " AND pipeline_id = ANY($1)"
        ),
        &[&pipeline_ids],
    )
    .await?;
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}

/// Whether the pipeline has a pending or running run.
pub async fn has_active_run(client: &impl GenericClient, pipeline_id: PipelineId) -> Result<bool, DaoError> {
    let row = sql::query_one(
        client,
        "run",
        concat!(
            "SELECT EXISTS (SELECT 1 FROM runs WHERE pipeline_id = $1 AND status IN ",
            active_statuses!(),
            ")"
        ),
        &[&pipeline_id],
    )
    .await?;
    Ok(row.try_get(0)?)
}

/// Filters of `GET /runs`, all applied in SQL.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Runs of live pipelines in this namespace.
    pub namespace: Option<NamespaceName>,
    /// Runs of live pipelines in this layer.
    pub layer: Option<Layer>,
    /// Runs of live pipelines with this name.
    pub pipeline: Option<PipelineName>,
    /// Runs of this pipeline (by id, live or not).
    pub pipeline_id: Option<PipelineId>,
    /// Only this status.
    pub status: Option<RunStatus>,
    /// Started at or after.
    pub started_after: Option<OffsetDateTime>,
    /// Started before.
    pub started_before: Option<OffsetDateTime>,
    /// Only runs of pipelines these share principals may read (the access
    /// rule in SQL, `readable_pipeline!`); `None` = all.
    pub readable_by: Option<Vec<String>>,
}

/// Pipelines an address filter may resolve to before the list falls back to
/// a join.
const MAX_RESOLVED_PIPELINES: usize = 1000;

/// The default order of `GET /runs`: newest first.
pub const DEFAULT_SORT: Sort<RunSortField> = Sort {
    field: RunSortField::CreatedAt,
    descending: true,
};

/// The keyset comparison of a sort, when the sort has one: only the
/// creation time is never NULL and indexed with the id (`idx_runs_created_at`,
/// `idx_runs_pipeline`), so only `[-]created_at` pages by cursor.
pub fn keyset(sort: Sort<RunSortField>) -> Option<&'static str> {
    match (sort.field, sort.descending) {
        (RunSortField::CreatedAt, true) => Some("(created_at, id) < ($?, $?2)"),
        (RunSortField::CreatedAt, false) => Some("(created_at, id) > ($?, $?2)"),
        _ => None,
    }
}

fn order(sort: Sort<RunSortField>) -> OrderBy {
    OrderBy {
        columns: match sort.field {
            RunSortField::CreatedAt => &["created_at", "id"],
            RunSortField::StartedAt => &["started_at", "id"],
            RunSortField::FinishedAt => &["finished_at", "id"],
            RunSortField::DurationMs => &["duration_ms", "id"],
            RunSortField::Status => &["status", "id"],
        },
        descending: sort.descending,
    }
}

/// The conditions of `filter` on the run's own columns (its address filters
/// aside, which [`list`] resolves first).
fn push_row_filters<'a>(conditions: &mut Conditions<'a>, filter: &'a RunFilter, status: &'a Option<&'a str>) {
    conditions.push_opt("pipeline_id = $?", &filter.pipeline_id);
    conditions.push_opt("status = $?", status);
    conditions.push_opt("started_at >= $?", &filter.started_after);
    conditions.push_opt("started_at < $?", &filter.started_before);
    conditions.push_opt(of_readable_pipeline!(), &filter.readable_by);
}

/// The statement [`list`] sends for `filter` (without address filters:
/// those become a `pipeline_id` condition) and `sort`, from a cursor or
/// not; its parameters are the filters given, in the order of
/// [`RunFilter`]'s fields, then the cursor's key and id, the limit and the
/// offset. For plan tests (`EXPLAIN`).
pub fn list_statement(filter: &RunFilter, sort: Sort<RunSortField>, from_cursor: bool) -> String {
    let status = filter.status.map(RunStatus::as_str);
    let mut conditions = Conditions::new();
    push_row_filters(&mut conditions, filter, &status);
    let after = if from_cursor { keyset(sort) } else { None };
    sql::page_statement(SUMMARY_COLUMNS, "runs", &conditions, order(sort), after)
}

/// Runs matching `filter`, sorted, one page, with the total and whether
/// more follow; from just after `after` when given (which the sort must
/// page by, see [`keyset`]: else `Invalid { cursor }`). Listed runs carry
/// no snapshot ([`RunSummary`]): read one run whole with [`get`].
pub async fn list(
    client: &impl GenericClient,
    filter: &RunFilter,
    sort: Sort<RunSortField>,
    page: PageRequest,
    after: Option<Cursor<RunId>>,
) -> Result<KeysetPage<RunSummary>, DaoError> {
    let after = match (after, keyset(sort)) {
        (None, _) => None,
        (Some(cursor), Some(fragment)) => Some((cursor, fragment)),
        (Some(_), None) => {
            return Err(DaoError::Invalid {
                constraint: "cursor".to_owned(),
            });
        }
    };
    let namespace = filter.namespace.as_ref().map(NamespaceName::as_str);
    let layer = filter.layer.map(Layer::as_str);
    let pipeline = filter.pipeline.as_ref().map(PipelineName::as_str);
    let status = filter.status.map(RunStatus::as_str);

    // Filters on the pipeline's address are resolved to pipeline ids first
    // (a small, indexed lookup). With the ids as parameters, a page of one
    // pipeline's runs is read in order straight off idx_runs_pipeline,
    // instead of joining and sorting every run of the matching pipelines.
    let by_address = namespace.is_some() || layer.is_some() || pipeline.is_some();
    let pipeline_ids: Vec<PipelineId> = if by_address {
        let mut lookup = Conditions::new();
        lookup.push_fixed("deleted_at IS NULL");
        lookup.push_opt("namespace = $?", &namespace);
        lookup.push_opt("layer = $?", &layer);
        lookup.push_opt("name = $?", &pipeline);
        sql::select_ids(client, "pipelines", &lookup, MAX_RESOLVED_PIPELINES + 1).await?
    } else {
        Vec::new()
    };
    if by_address && pipeline_ids.is_empty() {
        return Ok(KeysetPage {
            items: Vec::new(),
            total: 0,
            more: false,
        });
    }
    let single_id = pipeline_ids.first().copied().filter(|_| pipeline_ids.len() == 1);
    let many_ids = (pipeline_ids.len() > 1 && pipeline_ids.len() <= MAX_RESOLVED_PIPELINES).then_some(&pipeline_ids);

    let mut conditions = Conditions::new();
    conditions.push_opt("pipeline_id = $?", &single_id);
    conditions.push_opt("pipeline_id = ANY($?)", &many_ids);
    if pipeline_ids.len() > MAX_RESOLVED_PIPELINES {
        // Too many pipelines to pass as parameters: let Postgres join.
        sql::push_pipeline_address(&mut conditions, &namespace, &layer, &pipeline);
    }
    push_row_filters(&mut conditions, filter, &status);
    let count_sql =
        kept_count(filter, !pipeline_ids.is_empty()).map(|source| counts::count_statement(source, &conditions));
    let after = after.as_ref().map(|(cursor, fragment)| sql::After {
        fragment,
        at: &cursor.at,
        id: &cursor.id,
    });
    sql::fetch_keyset_page(
        client,
        SUMMARY_COLUMNS,
        "runs",
        &conditions,
        order(sort),
        page,
        after,
        count_sql,
        summary_from_row,
    )
    .await
}

/// Where the total of a list of runs comes from: the kept counts (V22) when
/// every condition of `filter` is on the pipeline (its id, its address —
/// `by_pipelines`, resolved to ids or joined — or the access rule) or the
/// status; `None` (count the rows) for a time window.
fn kept_count(filter: &RunFilter, by_pipelines: bool) -> Option<counts::CountSource> {
    if filter.started_after.is_some() || filter.started_before.is_some() {
        return None;
    }
    if by_pipelines || filter.pipeline_id.is_some() || filter.readable_by.is_some() {
        Some(counts::CountSource::ByPipeline)
    } else {
        Some(counts::CountSource::Totals)
    }
}

/// The count statement [`list`] sends for `filter` (without address
/// filters), when the kept counts serve it; for plan tests (`EXPLAIN`).
pub fn count_statement(filter: &RunFilter) -> Option<String> {
    let status = filter.status.map(RunStatus::as_str);
    let mut conditions = Conditions::new();
    push_row_filters(&mut conditions, filter, &status);
    kept_count(filter, false).map(|source| counts::count_statement(source, &conditions))
}

/// The status and creation time of each run of `ids` that exists (at most
/// [`MAX_STATES_PER_QUERY`] ids per call; a missing run has no entry).
pub async fn states(
    client: &impl GenericClient,
    ids: &[RunId],
) -> Result<Vec<(RunId, RunStatus, OffsetDateTime)>, DaoError> {
    if ids.len() > MAX_STATES_PER_QUERY {
        return Err(DaoError::Internal {
            source: format!("{} runs in one query, at most {MAX_STATES_PER_QUERY}", ids.len()).into(),
        });
    }
    let rows = sql::query(
        client,
        "SELECT id, status, created_at FROM runs WHERE id = ANY($1)",
        &[&ids],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("id")?,
                sql::parse_column(row, "status")?,
                row.try_get("created_at")?,
            ))
        })
        .collect()
}

/// Most ids [`states`] takes at once.
pub const MAX_STATES_PER_QUERY: usize = 1_000;
