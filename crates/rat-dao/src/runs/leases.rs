//! Runners' leases on runs: claiming pending runs, heartbeats that extend
//! the lease, and what only the holder may do (report logs, complete), each
//! guarded in SQL by the holder and the lease.

use crate::GenericClient;
use rat_domain::{Run, RunStatus};
use rat_domain::{RunId, RunnerId};
use time::OffsetDateTime;

use crate::DaoError;
use crate::sql;

use super::{COLUMNS, RunReport, STATUS_CHANNEL, from_row};

/// Most runs one [`claim`] hands out.
pub const MAX_CLAIM_BATCH: i64 = 100;

/// Longest runner id ([`RunnerId`]'s rule).
pub use rat_domain::MAX_RUNNER_ID_LEN;

/// Checks what every lease-taking call is given: `Invalid { runner_id }` for
/// a bad runner id, `Invalid { lease }` for a lease that ends before `now`.
fn check_lease(runner_id: &str, lease_until: OffsetDateTime, now: OffsetDateTime) -> Result<(), DaoError> {
    if !RunnerId::is_valid(runner_id) {
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
    id: RunId,
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
    id: RunId,
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
    id: RunId,
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
    id: RunId,
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
/// its lease has not expired at `now`: the guard of `transition` plus the
/// holder and lease, all in the UPDATE's WHERE, so a cancel, a second report
/// or a reaper racing it cannot both succeed. Sets `finished_at = now`, and
/// sends [`STATUS_CHANNEL`] in the caller's transaction like `transition`.
/// `Ok(Err(NotHeld))` when refused (nothing changed); `NotFound` for an
/// unknown run; `Invalid { status }` when `to` is not terminal, `{ runner_id }`
/// for a bad runner id.
pub async fn complete_held(
    client: &impl GenericClient,
    id: RunId,
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
    if !RunnerId::is_valid(runner_id) {
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
