//! Runs for users: create with the published snapshot, list, get, cancel, logs.
//!
//! A run records what it executes when it is created: the latest published
//! version of its pipeline and that version's pinned `{key: version id}` map.
//! A pipeline that was never published cannot run. Status changes go through
//! the guarded UPDATE of `rat_dao::runs::transition`, so a terminal run never
//! changes again, whoever asks.

use rat_dao::runs::{self, NewRun};
pub use rat_dao::runs::{DEFAULT_SORT, RunFilter, RunReport};
use rat_dao::{DaoError, pipelines};
use rat_domain::RunId;
use rat_domain::{Cursor, PageRequest, PipelineRef, Run, RunSortField, RunStatus, RunSummary, Sort};
use time::OffsetDateTime;

use crate::identity::Caller;
use crate::paging::{self, CursorPage};
use crate::pipelines::{require_on_id, require_on_loaded};
use crate::{ServiceError, Services, sharing, versions};
use rat_domain::Permission;

/// Requires `needed` of `caller` on the pipeline of run `id`: `NotFound`
/// ("run") when they may not read it, as for an unknown run.
async fn require_on_run(
    client: &impl rat_dao::GenericClient,
    caller: &Caller,
    id: RunId,
    needed: Permission,
    doing: &str,
) -> Result<(), ServiceError> {
    if caller.admin {
        return Ok(());
    }
    let pipeline_id = runs::pipeline_of(client, id).await?;
    require_on_id(client, caller, pipeline_id, needed, doing, "run").await
}

/// Creates a pending run of the live pipeline at `address`, executing its
/// latest published version. `trigger` is the run's label, already checked
/// (`rat_domain::trigger_label`). `NotFound` for an unknown pipeline,
/// `FailedPrecondition` for a pipeline never published.
///
/// The pipeline is read and locked, the snapshot read and the run inserted in
/// one transaction. Publish and rollback take the same row lock, so the run
/// records exactly the version that is the latest when it commits, and a
/// concurrent delete of the pipeline waits until the run is recorded.
#[tracing::instrument(skip(services, caller), fields(pipeline = %address))]
pub async fn create(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    trigger: &str,
    now: OffsetDateTime,
) -> Result<Run, ServiceError> {
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let pipeline = pipelines::get_by_ref_for_update(&transaction, address).await?;
    require_on_loaded(&transaction, caller, &pipeline, Permission::Write, "running").await?;
    let snapshot = versions::run_snapshot(&transaction, &pipeline).await?;
    let run = runs::create(
        &transaction,
        &NewRun {
            pipeline_id: pipeline.id,
            trigger: trigger.to_owned(),
            version_number: snapshot.version_number,
            published_versions: snapshot.published_versions,
            schedule_id: None,
            trigger_id: None,
            scheduled_for: None,
        },
        now,
    )
    .await?;
    transaction.commit().await?;
    tracing::info!(run = %run.id, version = run.version_number.get(), "run created");
    Ok(run)
}

/// The scope of the cursors of `GET /runs` in `sort`'s order; `None` when
/// the order does not page by cursor ([`runs::keyset`]).
fn cursor_scope(sort: Sort<RunSortField>) -> Option<&'static str> {
    runs::keyset(sort).map(|_| {
        if sort.descending {
            "runs:-created_at"
        } else {
            "runs:created_at"
        }
    })
}

/// Runs matching `filter` of pipelines `caller` may read, sorted, one page,
/// with the total (all in SQL, so the page and the total count only those)
/// and the cursor of the next page. `cursor` (a `next_cursor` given back)
/// starts the page after the run it names; it must come from the same
/// order, and only `[-]created_at` pages by cursor (`InvalidInput` else).
pub async fn list(
    services: &Services,
    caller: &Caller,
    filter: &RunFilter,
    sort: Sort<RunSortField>,
    page: PageRequest,
    cursor: Option<&str>,
) -> Result<CursorPage<RunSummary>, ServiceError> {
    let scope = cursor_scope(sort);
    let after = paging::decode(scope, cursor)?;
    let client = services.pool.get().await?;
    let mut filter = filter.clone();
    filter.readable_by = (!caller.admin).then(|| sharing::share_names(caller));
    let listed = runs::list(&client, &filter, sort, page, after).await?;
    Ok(paging::page(listed, scope, |run| Cursor {
        at: run.created_at,
        id: run.id,
    }))
}

/// The run with this id; `NotFound` when there is none or `caller` may not
/// read its pipeline.
pub async fn get(services: &Services, caller: &Caller, id: RunId) -> Result<Run, ServiceError> {
    let client = services.pool.get().await?;
    let run = runs::get(&client, id).await?;
    require_on_id(&client, caller, run.pipeline_id, Permission::Read, "reading", "run").await?;
    Ok(run)
}

/// Cancels a pending or running run. `NotFound` for an unknown run,
/// `FailedPrecondition` ("run is already success") for a terminal one, which
/// is left exactly as it was.
#[tracing::instrument(skip(services, caller))]
pub async fn cancel(services: &Services, caller: &Caller, id: RunId, now: OffsetDateTime) -> Result<Run, ServiceError> {
    let client = services.pool.get().await?;
    require_on_run(&client, caller, id, Permission::Write, "cancelling a run of").await?;
    match runs::transition(&client, id, RunStatus::Cancelled, &RunReport::default(), now).await {
        Ok(run) => Ok(run),
        // Cancel is allowed from every non-terminal status, so a refusal
        // always means the run already finished.
        Err(DaoError::InvalidTransition { from, .. }) => {
            Err(ServiceError::precondition(format!("run is already {from}")))
        }
        Err(other) => Err(other.into()),
    }
}

/// A run's log entries and its status.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLogs {
    /// The stored entries in the order they were appended (a JSON array).
    pub entries: Vec<serde_json::Value>,
    /// The run's status when the entries were read.
    pub status: RunStatus,
}

/// Most entries [`logs`] returns (the newest are dropped beyond it; a live
/// stream pages through them instead).
pub const MAX_LOG_ENTRIES: i64 = 10_000;

/// The run's log entries (empty when none) and its status: entries kept in
/// the seed's shape (`runs.logs`) first, then those appended by runners, in
/// order, at most [`MAX_LOG_ENTRIES`].
pub async fn logs(services: &Services, caller: &Caller, id: RunId) -> Result<RunLogs, ServiceError> {
    Ok(log_page(services, caller, id, None, MAX_LOG_ENTRIES).await?.0)
}

/// The scope of run log cursors.
const LOG_CURSOR_SCOPE: &str = "run-logs";

/// One page of the run's log entries and its status, with the cursor of the
/// next page (`None` once no entry follows). Without `cursor`: the entries
/// kept in the seed's shape, then the first `limit` appended by runners;
/// with one (a `next_cursor` given back): the next `limit` appended after
/// it. `limit` is clamped to 1..=[`MAX_LOG_ENTRIES`].
pub async fn log_page(
    services: &Services,
    caller: &Caller,
    id: RunId,
    cursor: Option<&str>,
    limit: i64,
) -> Result<(RunLogs, Option<String>), ServiceError> {
    let after: Option<Cursor<i64>> = paging::decode(Some(LOG_CURSOR_SCOPE), cursor)?;
    let limit = limit.clamp(1, MAX_LOG_ENTRIES);
    let client = services.pool.get().await?;
    require_on_run(&client, caller, id, Permission::Read, "reading").await?;
    let (mut entries, status, from) = match after {
        None => {
            let RunLogs { entries, status } = read_legacy_logs(&client, id).await?;
            (entries, status, 0)
        }
        Some(cursor) => (Vec::new(), runs::status(&client, id).await?, cursor.id),
    };
    let mut appended = runs::log_entries_after(&client, id, from, limit + 1).await?;
    let more = appended.len() as i64 > limit;
    appended.truncate(limit as usize);
    let next_cursor = appended.last().filter(|_| more).map(|(last, _)| {
        Cursor {
            at: OffsetDateTime::UNIX_EPOCH,
            id: *last,
        }
        .encode(LOG_CURSOR_SCOPE)
    });
    entries.extend(appended.into_iter().map(|(_, entry)| log_entry_json(&entry)));
    Ok((RunLogs { entries, status }, next_cursor))
}

/// What a live log stream sends first: the entries kept in the seed's shape
/// (`runs.logs`, which carry no id and never grow) and the run's status.
/// `NotFound` for an unknown run. The entries appended by runners follow,
/// page by page, from [`log_tail`].
pub async fn legacy_log_entries(services: &Services, caller: &Caller, id: RunId) -> Result<RunLogs, ServiceError> {
    let client = services.pool.get().await?;
    require_on_run(&client, caller, id, Permission::Read, "reading").await?;
    read_legacy_logs(&client, id).await
}

async fn read_legacy_logs(client: &impl rat_dao::GenericClient, id: RunId) -> Result<RunLogs, ServiceError> {
    let (legacy, status) = runs::legacy_logs(client, id).await?;
    match legacy {
        serde_json::Value::Array(entries) => Ok(RunLogs { entries, status }),
        // Only arrays are ever stored; anything else was written behind the
        // repository's back.
        other => Err(ServiceError::Internal {
            source: format!("logs of run {id} are not an array but {}", json_kind(&other)).into(),
        }),
    }
}

/// Log entries appended after a cursor, and the run's status.
#[derive(Debug, Clone, PartialEq)]
pub struct LogTail {
    /// The run's status, read *before* the entries: when it is terminal and
    /// fewer than the limit came back, the entries are the run's last.
    pub status: RunStatus,
    /// Entries with an id above the cursor, oldest first, each with its id.
    pub entries: Vec<(i64, rat_domain::LogEntry)>,
}

/// Most entries one [`log_tail`] call reads.
pub const MAX_LOG_TAIL: i64 = 1000;

/// The run's status, then up to `limit` (at most [`MAX_LOG_TAIL`]) entries
/// with an id above `after`. `NotFound` for an unknown (or deleted) run.
///
/// The status is read first on purpose: entries are committed before the
/// status that ends the run, so once a terminal status has been read, a
/// later read of the entries sees every entry the run will ever have.
pub async fn log_tail(
    services: &Services,
    caller: &Caller,
    id: RunId,
    after: i64,
    limit: i64,
) -> Result<LogTail, ServiceError> {
    let client = services.pool.get().await?;
    require_on_run(&client, caller, id, Permission::Read, "reading").await?;
    let status = runs::status(&client, id).await?;
    let entries = runs::log_entries_after(&client, id, after, limit.clamp(1, MAX_LOG_TAIL)).await?;
    Ok(LogTail { status, entries })
}

/// The wire shape of an entry: `{timestamp, level, message}`.
pub fn log_entry_json(entry: &rat_domain::LogEntry) -> serde_json::Value {
    let timestamp = entry
        .timestamp
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    serde_json::json!({ "timestamp": timestamp, "level": entry.level.as_str(), "message": entry.message })
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Deltas one fold batch moves (one short transaction).
pub const FOLD_BATCH: i64 = 50_000;

/// Folds the deltas of the run counts (V22, `rat_dao::runs::fold_counts`)
/// into the counters, in batches of [`FOLD_BATCH`], one short transaction
/// each, at most `max_batches` of them; returns how many deltas it folded.
/// A replica that finds another folding returns at once (the other one
/// folds what this one would have). The scheduler folds after each tick and
/// the reaper on each pass; counts are exact whether or not anyone folds,
/// folding only keeps them cheap to read.
pub async fn fold_counts(pool: &rat_dao::Pool, max_batches: u32) -> Result<i64, ServiceError> {
    let mut client = pool.get().await?;
    let (mut folded, mut after) = (0, 0);
    for _ in 0..max_batches {
        let transaction = client.transaction().await?;
        if !runs::try_lock_fold(&transaction).await? {
            break;
        }
        // From where the previous batch stopped, not over the index entries
        // of the deltas it deleted.
        let (batch, last) = runs::fold_counts(&transaction, after, FOLD_BATCH).await?;
        transaction.commit().await?;
        folded += batch;
        after = last;
        if batch < FOLD_BATCH {
            break;
        }
    }
    Ok(folded)
}
