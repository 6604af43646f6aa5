//! `runs`: creation with the pinned snapshot, the status machine enforced in
//! SQL, logs, and listing with every filter of `GET /runs`.

use deadpool_postgres::GenericClient;
use rat_domain::{
    Layer, LogEntry, NamespaceName, Page, PageRequest, PipelineName, PublishedVersions, Run, RunSortField, RunStatus,
    RunSummary, Sort,
};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

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
    pub pipeline_id: Uuid,
    /// The trigger label (see `rat_domain::trigger_label`).
    pub trigger: String,
    /// The published version it executes.
    pub version_number: i32,
    /// The pinned snapshot it executes.
    pub published_versions: PublishedVersions,
    /// The schedule that fired it.
    pub schedule_id: Option<Uuid>,
    /// The trigger that fired it.
    pub trigger_id: Option<Uuid>,
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
pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Run, DaoError> {
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
    id: Uuid,
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

/// Most runs one [`claim`] hands out.
pub const MAX_CLAIM_BATCH: i64 = 100;

/// Longest runner id (`runs.runner_id` is `VARCHAR(255)`).
pub const MAX_RUNNER_ID_LEN: usize = 255;

/// Whether `runner_id` is a valid runner id: non-empty, at most
/// [`MAX_RUNNER_ID_LEN`] characters, none of them a control character.
pub fn is_valid_runner_id(runner_id: &str) -> bool {
    !runner_id.is_empty() && runner_id.chars().count() <= MAX_RUNNER_ID_LEN && !runner_id.chars().any(char::is_control)
}

/// Checks what every lease-taking call is given: `Invalid { runner_id }` for
/// a bad runner id, `Invalid { lease }` for a lease that ends before `now`.
fn check_lease(runner_id: &str, lease_until: OffsetDateTime, now: OffsetDateTime) -> Result<(), DaoError> {
    if !is_valid_runner_id(runner_id) {
        return Err(DaoError::Invalid {
            constraint: "runner_id".to_owned(),
        });
    }
    if lease_until <= now {
        return Err(DaoError::Invalid {
            constraint: "lease".to_owned(),
        });
    }
    Ok(())
}

/// The statement of [`claim`] (`$1` = limit, `$2` = runner, `$3` = now,
/// `$4` = lease end), exposed for plan tests: pending runs are read in order
/// off `idx_runs_pending` and locked `SKIP LOCKED`. `picked_id` keeps the
/// RETURNING list unambiguous (only `runs` has an `id`); the outer
/// `status = 'pending'` repeats the guard of the state machine for the
/// UPDATE itself.
pub const CLAIM_SQL: &str = concat!(
    "WITH picked AS ( \
         SELECT id AS picked_id FROM runs \
         WHERE status = 'pending' \
           AND EXISTS (SELECT 1 FROM pipelines p WHERE p.id = runs.pipeline_id AND p.deleted_at IS NULL) \
         ORDER BY created_at, id \
         LIMIT $1 \
         FOR UPDATE SKIP LOCKED \
     ) \
     UPDATE runs SET status = 'running', \
         started_at = COALESCE(started_at, $3), \
         runner_id = $2, \
         lease_expires_at = $4, \
         heartbeat_at = $3 \
     FROM picked \
     WHERE runs.id = picked.picked_id AND runs.status = 'pending' \
     RETURNING ",
    summary_columns!(),
    ", published_versions"
);

/// Hands up to `limit` (1..=[`MAX_CLAIM_BATCH`]) pending runs, oldest first,
/// to `runner_id`: each moves to `running` with `started_at = now`, and is
/// leased to the runner until `lease_until`. Empty when nothing is pending.
///
/// One statement: the pending rows are picked off `idx_runs_pending` with
/// `FOR UPDATE SKIP LOCKED` and updated in place, so concurrent claimers
/// never wait for each other and never receive the same run (a row another
/// claim is updating is skipped; once that claim commits, the row is no
/// longer pending). A run cancelled concurrently is either cancelled first
/// (and skipped here) or claimed first (and its cancel then applies to a
/// running run). `Invalid { claim_limit }`, `{ runner_id }` or `{ lease }`
/// for bad arguments.
pub async fn claim(
    client: &impl GenericClient,
    runner_id: &str,
    limit: i64,
    lease_until: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Vec<Run>, DaoError> {
    if !(1..=MAX_CLAIM_BATCH).contains(&limit) {
        return Err(DaoError::Invalid {
            constraint: "claim_limit".to_owned(),
        });
    }
    check_lease(runner_id, lease_until, now)?;
    let rows = sql::query(client, CLAIM_SQL, &[&limit, &runner_id, &now, &lease_until]).await?;
    let mut claimed = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    // RETURNING has no order; the runner gets the oldest first.
    claimed.sort_by_key(|run| (run.created_at, run.id));
    Ok(claimed)
}

/// Why a runner's report about a run was refused. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotHeld {
    /// The run was cancelled (by a user) while this runner held it: the
    /// runner should stop executing it.
    #[error("run was cancelled")]
    Cancelled,
    /// The run already reached this terminal status.
    #[error("run is already {0}")]
    Finished(RunStatus),
    /// The runner held the run, but its lease expired: the run is no longer
    /// its to report on (the reaper fails it).
    #[error("the lease on this run expired")]
    LeaseExpired,
    /// The run is pending, or running under another runner.
    #[error("run is not held by this runner (it is {0})")]
    NotHolder(RunStatus),
}

/// Classifies a run that `runner_id` may not report on as of `now`, from its
/// status, holder and lease; `None` when the runner does hold it.
fn not_held(
    status: RunStatus,
    holder: Option<&str>,
    lease_expires_at: Option<OffsetDateTime>,
    runner_id: &str,
    now: OffsetDateTime,
) -> Option<NotHeld> {
    let is_holder = holder == Some(runner_id);
    match status {
        RunStatus::Cancelled if is_holder => Some(NotHeld::Cancelled),
        s if s.is_terminal() => Some(NotHeld::Finished(s)),
        RunStatus::Running if is_holder => match lease_expires_at {
            Some(until) if until > now => None,
            _ => Some(NotHeld::LeaseExpired),
        },
        s => Some(NotHeld::NotHolder(s)),
    }
}

/// Reads the run's status, holder and lease (with `FOR SHARE` when `lock`)
/// and says why `runner_id` does not hold it, or `None` when it does.
/// `NotFound` for an unknown run.
async fn read_hold(
    client: &impl GenericClient,
    id: Uuid,
    runner_id: &str,
    now: OffsetDateTime,
    lock: bool,
) -> Result<Option<NotHeld>, DaoError> {
    let statement = if lock {
        "SELECT status, runner_id, lease_expires_at FROM runs WHERE id = $1 FOR SHARE"
    } else {
        "SELECT status, runner_id, lease_expires_at FROM runs WHERE id = $1"
    };
    let row = sql::query_one(client, "run", statement, &[&id]).await?;
    let status: RunStatus = sql::parse_column(&row, "status")?;
    let holder: Option<String> = row.try_get("runner_id")?;
    let lease: Option<OffsetDateTime> = row.try_get("lease_expires_at")?;
    Ok(not_held(status, holder.as_deref(), lease, runner_id, now))
}

/// Checks that `runner_id` holds the run as of `now` (running, its runner,
/// lease not expired) and keeps it so until the caller's transaction ends:
/// the row is read `FOR SHARE`, so a concurrent cancel or completion waits
/// for that transaction, and one that committed first is seen. Call it in a
/// transaction, before writing on the holder's behalf (log entries).
/// `Ok(Err(NotHeld))` when the runner does not hold it; `NotFound` for an
/// unknown run.
pub async fn lock_held(
    client: &impl GenericClient,
    id: Uuid,
    runner_id: &str,
    now: OffsetDateTime,
) -> Result<Result<(), NotHeld>, DaoError> {
    Ok(match read_hold(client, id, runner_id, now, true).await? {
        None => Ok(()),
        Some(reason) => Err(reason),
    })
}

/// Extends the lease of a run `runner_id` holds to `lease_until` and records
/// the heartbeat at `now`, if and only if the run is running, held by that
/// runner, and its lease has not expired (all in the UPDATE's WHERE). With
/// `lease_until = None` the lease keeps its length: it is renewed for as long
/// as it last ran (from the claim or the previous heartbeat to its end).
/// `Ok(Err(NotHeld))` otherwise, with nothing changed (`NotHeld::Cancelled`
/// tells the holder to stop); `NotFound` for an unknown run; `Invalid {
/// runner_id }` or `{ lease }` for bad arguments.
pub async fn heartbeat(
    client: &impl GenericClient,
    id: Uuid,
    runner_id: &str,
    lease_until: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Result<Run, NotHeld>, DaoError> {
    check_lease(runner_id, lease_until.unwrap_or(now + time::Duration::SECOND), now)?;
    // Claims and heartbeats set `heartbeat_at` and `lease_expires_at`
    // together, so their difference is the length of the current lease.
    let updated = sql::query_opt(
        client,
        &format!(
            "UPDATE runs SET \
                lease_expires_at = COALESCE($3, $4 + (lease_expires_at - COALESCE(heartbeat_at, started_at, $4))), \
                heartbeat_at = $4 \
             WHERE id = $1 AND status = 'running' AND runner_id = $2 AND lease_expires_at > $4 \
             RETURNING {COLUMNS}"
        ),
        &[&id, &runner_id, &lease_until, &now],
    )
    .await?;
    if let Some(row) = updated {
        return Ok(Ok(from_row(&row)?));
    }
    refusal(client, id, runner_id, now).await
}

/// Explains a refused holder-checked UPDATE. Statuses only move forward and
/// leases only expire, so what is read now still refuses the update.
async fn refusal(
    client: &impl GenericClient,
    id: Uuid,
    runner_id: &str,
    now: OffsetDateTime,
) -> Result<Result<Run, NotHeld>, DaoError> {
    match read_hold(client, id, runner_id, now, false).await? {
        Some(reason) => Ok(Err(reason)),
        // The row changed between the UPDATE and the read in a way that
        // would now let it through (a heartbeat of the same runner cannot
        // make an expired lease valid again, so this is a concurrent writer
        // outside the protocol): refuse rather than guess.
        None => Ok(Err(NotHeld::NotHolder(RunStatus::Running))),
    }
}

/// Moves a run `runner_id` holds to the terminal status `to` with the
/// runner's report, if and only if it is running, held by that runner, and
/// its lease has not expired at `now`: the guard of [`transition`] plus the
/// holder and lease, all in the UPDATE's WHERE, so a cancel, a second report
/// or a reaper racing it cannot both succeed. Sets `finished_at = now`, and
/// sends [`STATUS_CHANNEL`] in the caller's transaction like [`transition`].
/// `Ok(Err(NotHeld))` when refused (nothing changed); `NotFound` for an
/// unknown run; `Invalid { status }` when `to` is not terminal, `{ runner_id }`
/// for a bad runner id.
pub async fn complete_held(
    client: &impl GenericClient,
    id: Uuid,
    runner_id: &str,
    to: RunStatus,
    report: &RunReport,
    now: OffsetDateTime,
) -> Result<Result<Run, NotHeld>, DaoError> {
    if !to.is_terminal() {
        return Err(DaoError::Invalid {
            constraint: "status".to_owned(),
        });
    }
    if !is_valid_runner_id(runner_id) {
        return Err(DaoError::Invalid {
            constraint: "runner_id".to_owned(),
        });
    }
    // A held run is always `running` (claims set the holder and the status
    // together), so `running` is the one source status to accept here.
    let updated = sql::query_opt(
        client,
        &format!(
            "UPDATE runs SET status = $3, \
                finished_at = $4, \
                error = COALESCE($5, error), \
                duration_ms = COALESCE($6, duration_ms), \
                rows_written = COALESCE($7, rows_written), \
                phase_profiles = COALESCE($8, phase_profiles) \
             WHERE id = $1 AND status = 'running' AND runner_id = $2 AND lease_expires_at > $4 \
             RETURNING {COLUMNS}"
        ),
        &[
            &id,
            &runner_id,
            &to.as_str(),
            &now,
            &report.error,
            &report.duration_ms,
            &report.rows_written,
            &report.phase_profiles,
        ],
    )
    .await?;
    if let Some(row) = updated {
        sql::notify(client, STATUS_CHANNEL, id).await?;
        return Ok(Ok(from_row(&row)?));
    }
    refusal(client, id, runner_id, now).await
}

/// `NOTIFY` channel announcing new log entries of a run (payload: the run id),
/// sent in the appending transaction: live log streams listen on it.
pub const LOG_CHANNEL: &str = "rat_run_logs";

/// `NOTIFY` channel announcing that a run reached a terminal status (payload:
/// the run id), sent in the transaction that records the status: live log
/// streams end on it, and trigger evaluation reacts to successes.
pub const STATUS_CHANNEL: &str = "rat_run_status";

/// Most entries one append may carry.
pub const MAX_LOG_BATCH: usize = 1000;

/// Appends log entries to the run, in order, in one statement; returns the
/// id of the last entry (entries of a run are read back in id order). At
/// most [`MAX_LOG_BATCH`] entries per call. `NotFound` for an unknown run.
pub async fn append_log_entries(client: &impl GenericClient, id: Uuid, entries: &[LogEntry]) -> Result<i64, DaoError> {
    if entries.is_empty() || entries.len() > MAX_LOG_BATCH {
        return Err(DaoError::Invalid {
            constraint: "log_batch_size".to_owned(),
        });
    }
    let timestamps: Vec<OffsetDateTime> = entries.iter().map(|e| e.timestamp).collect();
    let levels: Vec<&str> = entries.iter().map(|e| e.level.as_str()).collect();
    let messages: Vec<&str> = entries.iter().map(|e| e.message.as_str()).collect();
    // WITH ORDINALITY keeps the batch's order in the identity column.
    let rows = sql::query(
        client,
        "INSERT INTO run_logs (run_id, timestamp, level, message) \
         SELECT $1, t, l, m FROM unnest($2::timestamptz[], $3::text[], $4::text[]) WITH ORDINALITY AS e(t, l, m, n) \
         ORDER BY n \
         RETURNING id",
        &[&id, &timestamps, &levels, &messages],
    )
    .await
    .map_err(|e| match e {
        DaoError::MissingReference { .. } => DaoError::NotFound { entity: "run" },
        other => other,
    })?;
    let mut last = 0;
    for row in &rows {
        last = last.max(row.try_get::<_, i64>("id")?);
    }
    sql::notify(client, LOG_CHANNEL, id).await?;
    Ok(last)
}

/// Up to `limit` log entries of the run with an id above `after`, in order,
/// each with its id (the cursor of a live stream).
pub async fn log_entries_after(
    client: &impl GenericClient,
    id: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, LogEntry)>, DaoError> {
    let rows = sql::query(
        client,
        "SELECT id, timestamp, level, message FROM run_logs WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        &[&id, &after, &limit],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("id")?,
                LogEntry {
                    timestamp: row.try_get("timestamp")?,
                    level: sql::parse_column(row, "level")?,
                    message: row.try_get("message")?,
                },
            ))
        })
        .collect()
}

/// The run's logs in the seed's shape (`runs.logs`, a JSON array written by
/// older writers or imports; empty when none) and its status.
pub async fn legacy_logs(client: &impl GenericClient, id: Uuid) -> Result<(serde_json::Value, RunStatus), DaoError> {
    let row = sql::query_one(
        client,
        "run",
        "SELECT COALESCE(logs, '[]'::jsonb) AS logs, status FROM runs WHERE id = $1",
        &[&id],
    )
    .await?;
    Ok((row.try_get("logs")?, sql::parse_column(&row, "status")?))
}

/// The run's status alone (cheap: no snapshot, no logs). `NotFound` for an unknown run.
pub async fn status(client: &impl GenericClient, id: Uuid) -> Result<RunStatus, DaoError> {
    let row = sql::query_one(client, "run", "SELECT status FROM runs WHERE id = $1", &[&id]).await?;
    sql::parse_column(&row, "status")
}

/// What a [`RunEvents`] listener hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    /// New log entries of the run were committed ([`LOG_CHANNEL`]).
    Logs(Uuid),
    /// The run reached a terminal status ([`STATUS_CHANNEL`]).
    Finished(Uuid),
}

impl RunEvent {
    /// The run it is about.
    pub fn run_id(self) -> Uuid {
        match self {
            RunEvent::Logs(id) | RunEvent::Finished(id) => id,
        }
    }
}

/// A dedicated connection listening on [`LOG_CHANNEL`] and
/// [`STATUS_CHANNEL`] (see [`crate::listen::Listener`]). Notifications sent
/// while it was not connected are lost, so whoever reconnects must re-read
/// what it watches.
#[derive(Debug)]
pub struct RunEvents {
    listener: crate::listen::Listener,
}

impl RunEvents {
    /// Connects and `LISTEN`s on both channels; once this returns, every
    /// notification committed later is delivered by [`RunEvents::recv`].
    pub async fn connect(database_url: &str, application_name: &str) -> Result<Self, DaoError> {
        let listener =
            crate::listen::Listener::connect(database_url, application_name, &[LOG_CHANNEL, STATUS_CHANNEL]).await?;
        Ok(RunEvents { listener })
    }

    /// The next notification, in commit order; `None` once the connection
    /// has ended (reconnect with [`RunEvents::connect`]).
    pub async fn recv(&mut self) -> Option<RunEvent> {
        loop {
            let notification = self.listener.recv().await?;
            let Ok(id) = Uuid::parse_str(&notification.payload) else {
                tracing::warn!(
                    channel = notification.channel,
                    "ignoring a notification without a run id"
                );
                continue;
            };
            match notification.channel.as_str() {
                LOG_CHANNEL => return Some(RunEvent::Logs(id)),
                STATUS_CHANNEL => return Some(RunEvent::Finished(id)),
                _ => continue,
            }
        }
    }

    /// A round trip on the connection: an error means it is gone, even if
    /// the socket has not reported it yet.
    pub async fn ping(&self) -> Result<(), DaoError> {
        self.listener.ping().await
    }
}

/// Deletes a run. References from schedules, triggers and quality results
/// become NULL, so this never fails on a reference.
pub async fn delete(client: &impl GenericClient, id: Uuid) -> Result<(), DaoError> {
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
    pipeline_id: Uuid,
    error: &str,
    now: OffsetDateTime,
) -> Result<Vec<Uuid>, DaoError> {
    let rows = sql::query(
        client,
        "UPDATE runs SET status = 'cancelled', finished_at = $2, error = COALESCE(error, $3) \
         WHERE pipeline_id = $1 AND status IN ('pending', 'running') \
         RETURNING id",
        &[&pipeline_id, &now, &error],
    )
    .await?;
    let ids = rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<Vec<Uuid>, _>>()?;
    sql::notify_each(client, STATUS_CHANNEL, &ids).await?;
    Ok(ids)
}

/// Which of `pipeline_ids` have a pending or running run (one statement, off
/// the small partial index of active runs).
pub async fn with_active_run(client: &impl GenericClient, pipeline_ids: &[Uuid]) -> Result<Vec<Uuid>, DaoError> {
    if pipeline_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sql::query(
        client,
        "SELECT DISTINCT pipeline_id FROM runs WHERE status IN ('pending', 'running') AND pipeline_id = ANY($1)",
        &[&pipeline_ids],
    )
    .await?;
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}

/// Whether the pipeline has a pending or running run.
pub async fn has_active_run(client: &impl GenericClient, pipeline_id: Uuid) -> Result<bool, DaoError> {
    let row = sql::query_one(
        client,
        "run",
        "SELECT EXISTS (SELECT 1 FROM runs WHERE pipeline_id = $1 AND status IN ('pending', 'running'))",
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
    pub pipeline_id: Option<Uuid>,
    /// Only this status.
    pub status: Option<RunStatus>,
    /// Started at or after.
    pub started_after: Option<OffsetDateTime>,
    /// Started before.
    pub started_before: Option<OffsetDateTime>,
}

/// Pipelines an address filter may resolve to before the list falls back to
/// a join.
const MAX_RESOLVED_PIPELINES: usize = 1000;

/// The default order of `GET /runs`: newest first.
pub const DEFAULT_SORT: Sort<RunSortField> = Sort {
    field: RunSortField::CreatedAt,
    descending: true,
};

/// Runs matching `filter`, sorted, one page, with the total. Listed runs
/// carry no snapshot ([`RunSummary`]): read one run whole with [`get`].
pub async fn list(
    client: &impl GenericClient,
    filter: &RunFilter,
    sort: Sort<RunSortField>,
    page: PageRequest,
) -> Result<Page<RunSummary>, DaoError> {
    let namespace = filter.namespace.as_ref().map(NamespaceName::as_str);
    let layer = filter.layer.map(Layer::as_str);
    let pipeline = filter.pipeline.as_ref().map(PipelineName::as_str);
    let status = filter.status.map(RunStatus::as_str);

    // Filters on the pipeline's address are resolved to pipeline ids first
    // (a small, indexed lookup). With the ids as parameters, a page of one
    // pipeline's runs is read in order straight off idx_runs_pipeline,
    // instead of joining and sorting every run of the matching pipelines.
    let by_address = namespace.is_some() || layer.is_some() || pipeline.is_some();
    let pipeline_ids: Vec<Uuid> = if by_address {
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
        return Ok(Page {
            items: Vec::new(),
            total: 0,
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
    conditions.push_opt("pipeline_id = $?", &filter.pipeline_id);
    conditions.push_opt("status = $?", &status);
    conditions.push_opt("started_at >= $?", &filter.started_after);
    conditions.push_opt("started_at < $?", &filter.started_before);
    let order = OrderBy {
        columns: match sort.field {
            RunSortField::CreatedAt => &["created_at", "id"],
            RunSortField::StartedAt => &["started_at", "id"],
            RunSortField::FinishedAt => &["finished_at", "id"],
            RunSortField::DurationMs => &["duration_ms", "id"],
            RunSortField::Status => &["status", "id"],
        },
        descending: sort.descending,
    };
    sql::fetch_page(
        client,
        SUMMARY_COLUMNS,
        "runs",
        &conditions,
        order,
        page,
        summary_from_row,
    )
    .await
}
