//! One reaper pass: retention over every table that grows, and over the file
//! store, as a plain function of `now` and the settings.
//!
//! Ten tasks, each independent (one failing is logged and counted, the
//! others still run), each walking an index in bounded batches of one short
//! transaction, so a pass over a million rows never blocks the api:
//! 1. runs beyond `runs_max_per_pipeline` per pipeline and finished runs
//!    older than `runs_max_age_days` (pending and running runs never);
//! 2. run logs older than `logs_max_age_days` (the run row stays);
//! 3. quality results beyond `quality_results_max_per_test` per test;
//! 4. runs that cannot finish: lease expired, running longer than
//!    `stuck_run_timeout_minutes`, pending and unclaimed for a day: failed,
//!    with a message saying why;
//! 5. pipelines soft-deleted more than `soft_delete_purge_days` ago: every
//!    version of their files first, then the row with everything below it;
//! 6. processed files of `auto_purge` landing zones older than the zone's
//!    `processed_max_age_days`: every version of the object, then the row;
//! 7. audit entries older than `audit_log_max_age_days`; before it, when
//!    [`PassPolicy::nessie`] is set (`RAT_NESSIE_URL`), orphan Nessie
//!    branches: `run-{id}` branches whose run is finished or gone, or pending
//!    for longer than `nessie_orphan_branch_max_age_hours`, unless their
//!    merge failed in the last 7 days (`branches_cleaned`);
//! 8. failed merges reported longer ago than `audit_log_max_age_days`
//!    (counted in the task report, not in `reaper_status`);
//! 9. registered plugins that have not reported their health within
//!    [`PassPolicy::plugin_report_window`] are marked `down` (counted in
//!    the task report only).
//! 10. the run counts (V22): the deltas of run changes folded into the
//!     counters (`crate::runs::fold_counts`; counted in the task report only).
//!
//! A pipeline's `retention_config` overrides the first four for its own runs
//! and results. Objects are always deleted before the rows pointing at them,
//! so an interrupted pass leaves rows to retry, never rows pointing at nothing.

use std::time::{Duration, Instant};

use rat_dao::{reaper_status, settings};
use rat_domain::{NextPass, ReaperCounters, ReaperStatus, RetentionSettings};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::{ServiceError, Services};

/// The default [`PassPolicy::batch_target`]: batches of a few hundred to a
/// couple of thousand rows on an idle database. Measured with `cargo xtask
/// bench reaper` (2 cores, 2,000 api requests/s beside the pass): batches of
/// 2,000 runs (~5 ms each) tripled the api's p99; with this target (batches
/// of 500–800 runs) it was 1.05–2.76 times idle over six runs.
pub const DEFAULT_BATCH_TARGET: Duration = Duration::from_millis(2);

/// How a pass works, beyond the retention settings.
#[derive(Debug, Clone)]
pub struct PassPolicy {
    /// Most rows per batch (one short transaction each).
    pub batch_size: i64,
    /// How long one batch should take at most: a batch that takes longer
    /// halves the next one (down to [`MIN_BATCH_SIZE`]), one that takes less
    /// than half of it grows the next by half (up to `batch_size`). It bounds
    /// how long a batch holds its row locks, and how long the foreground
    /// waits behind it for a CPU: a batch is one uninterrupted burst of a
    /// database backend, and on a machine with few cores an api request that
    /// wakes behind it waits up to its length (`docs/retention.md`,
    /// "Batches"). Short by default ([`DEFAULT_BATCH_TARGET`]).
    pub batch_target: Duration,
    /// Most batches one task runs per pass (the rest waits for the next pass).
    pub max_batches_per_task: u32,
    /// Pending runs nobody claimed for this long are failed.
    pub pending_claim_timeout: Duration,
    /// Age of processed landing files when a zone sets none.
    pub default_processed_max_age_days: i64,
    /// Concurrent object deletions.
    pub store_concurrency: usize,
    /// Attempts per object deletion before the task gives up on this pass.
    pub store_attempts: u32,
    /// A registered plugin that has not reported its health for this long
    /// is marked `down`.
    pub plugin_report_window: Duration,
    /// The Nessie catalog whose orphan `run-{id}` branches the pass deletes
    /// (`RAT_NESSIE_URL`); `None` skips that task.
    pub nessie: Option<crate::nessie::NessieClient>,
}

impl Default for PassPolicy {
    fn default() -> Self {
        PassPolicy {
            batch_size: 2000,
            batch_target: DEFAULT_BATCH_TARGET,
            max_batches_per_task: 10_000,
            pending_claim_timeout: Duration::from_secs(24 * 3600),
            default_processed_max_age_days: 30,
            store_concurrency: 8,
            store_attempts: 3,
            plugin_report_window: DEFAULT_PLUGIN_REPORT_WINDOW,
            nessie: None,
        }
    }
}

/// The default of [`PassPolicy::plugin_report_window`]: ten minutes.
pub const DEFAULT_PLUGIN_REPORT_WINDOW: Duration = Duration::from_secs(600);

/// What one task did in a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskReport {
    /// `runs`, `logs`, `quality`, `stuck_runs`, `pipelines`, `landing_files`,
    /// `branches` (only with Nessie), `audit`, `failed_merges`, `plugins`.
    pub task: &'static str,
    /// Rows (or objects) it removed or changed.
    pub rows: u64,
    /// Wall time.
    pub duration: Duration,
    /// Why it stopped early, if it failed.
    pub error: Option<String>,
}

/// What a pass did.
#[derive(Debug, Clone, PartialEq)]
pub struct PassReport {
    /// This pass's counters (also added to `reaper_status`).
    pub counters: ReaperCounters,
    /// One entry per task, in order.
    pub tasks: Vec<TaskReport>,
    /// The status row after the pass.
    pub status: ReaperStatus,
    /// Settings problems found while reading them (defaults were used).
    pub settings_problems: Vec<String>,
    /// The pass stopped early because `lost` turned true; `last_run_at` was
    /// left as it was.
    pub interrupted: bool,
}

/// Why a pass stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the reaper lost its lock; pass stopped")]
pub struct LockLost;

mod pacing;
mod tasks;

pub use pacing::MIN_BATCH_SIZE;
use pacing::check;
use tasks::{
    clean_branches, fail_stuck, overrides, prune_audit, prune_failed_merges, prune_logs, prune_quality, prune_runs,
    purge_landing_files, purge_pipelines,
};

/// Batches of run-count deltas a pass folds at most (`crate::runs::FOLD_BATCH`
/// each): ten million deltas, far more than the runs a pass deletes.
const FOLD_BATCHES_PER_PASS: u32 = 200;

/// The retention settings a pass uses, read fresh from Postgres.
async fn current_settings(services: &Services) -> Result<(RetentionSettings, Vec<String>), ServiceError> {
    let client = services.pool.get().await?;
    Ok(settings::retention(&client).await?)
}

/// When the next pass is owed: the status row and `reaper_interval_minutes`
/// read fresh, so a changed interval applies from the next look.
pub async fn next_pass(services: &Services, now: OffsetDateTime) -> Result<NextPass, ServiceError> {
    let client = services.pool.get().await?;
    let status = reaper_status::get(&client).await?;
    let (settings, _) = settings::retention(&client).await?;
    Ok(status.next_pass(time::Duration::minutes(settings.reaper_interval_minutes), now))
}

/// Runs one pass at `now`. `lost` turns true when the caller loses the
/// reaper lock (or is shutting down): the pass then stops between two
/// batches, each of which is its own transaction. The counters of what was
/// done are added to `reaper_status` at the end of every pass that can reach
/// the database, and `last_run_at` is set to the pass's start unless the
/// pass was interrupted.
#[tracing::instrument(skip(services, policy, lost))]
pub async fn run_pass(
    services: &Services,
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<PassReport, ServiceError> {
    // `last_run_at` is the pass's start: a pass requested while this one runs
    // is later than it, so it is not taken as served.
    let started_at = OffsetDateTime::now_utc();
    let (system, settings_problems) = current_settings(services).await?;
    for problem in &settings_problems {
        tracing::warn!(problem, "retention settings: using the default");
    }
    let overrides = match overrides(services).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "cannot read per-pipeline retention; using the system settings only");
            Vec::new()
        }
    };
    let mut counters = ReaperCounters::default();
    let mut tasks = Vec::new();
    macro_rules! task {
        ($name:literal, $counter:ident, $work:expr) => {{
            let rows = task!($name, $work);
            counters.$counter += rows as i64;
        }};
        ($name:literal, $work:expr) => {{
            let started = Instant::now();
            let outcome = match check(lost) {
                Ok(()) => $work.await,
                Err(e) => Err(e),
            };
            let (rows, error) = match outcome {
                Ok(rows) => (rows, None),
                Err(e) => {
                    tracing::error!(task = $name, error = %e, "reaper task failed; the other tasks go on");
                    (0, Some(e.to_string()))
                }
            };
            tasks.push(TaskReport {
                task: $name,
                rows,
                duration: started.elapsed(),
                error,
            });
            rows
        }};
    }
    task!(
        "runs",
        runs_pruned,
        prune_runs(services, &system, &overrides, now, policy, lost)
    );
    task!(
        "logs",
        logs_pruned,
        prune_logs(services, &system, &overrides, now, policy, lost)
    );
    task!(
        "quality",
        quality_pruned,
        prune_quality(services, &system, &overrides, policy, lost)
    );
    task!(
        "stuck_runs",
        runs_failed,
        fail_stuck(services, &system, &overrides, now, policy, lost)
    );
    task!(
        "pipelines",
        pipelines_purged,
        purge_pipelines(services, &system, now, policy, lost)
    );
    task!(
        "landing_files",
        lz_files_cleaned,
        purge_landing_files(services, now, policy, lost)
    );
    if let Some(nessie) = &policy.nessie {
        task!(
            "branches",
            branches_cleaned,
            clean_branches(services, nessie, &system, now, lost)
        );
    }
    task!("audit", audit_pruned, prune_audit(services, &system, now, policy, lost));
    task!(
        "failed_merges",
        prune_failed_merges(services, &system, now, policy, lost)
    );
    task!(
        "plugins",
        crate::platform::mark_silent_plugins_down(services, now, policy.plugin_report_window)
    );
    // Last: the deltas of every run this pass deleted or failed, with
    // everyone else's (the scheduler folds too; without one, this does).
    task!("run_counts", async {
        crate::runs::fold_counts(&services.pool, FOLD_BATCHES_PER_PASS)
            .await
            .map(|n| n as u64)
    });

    // A pass stopped by a lost lock (or a shutdown) is still owed: its work
    // counts, but `last_run_at` stays, so the next holder runs one at once.
    let interrupted = *lost.borrow();
    let status = {
        let client = services.pool.get().await?;
        if interrupted {
            reaper_status::record_interrupted_pass(&client, &counters).await?
        } else {
            reaper_status::record_pass(&client, &counters, started_at).await?
        }
    };
    for report in &tasks {
        tracing::info!(
            task = report.task,
            rows = report.rows,
            duration_ms = report.duration.as_millis() as u64,
            failed = report.error.is_some(),
            "reaper task"
        );
    }
    Ok(PassReport {
        counters,
        tasks,
        status,
        settings_problems,
        interrupted,
    })
}

/// The `application_name` of the connection holding the reaper lock.
pub const LOCK_APPLICATION_NAME: &str = "rat-reaper-lock";
/// How often the watchdog of [`run_exclusive`] checks that the lock
/// connection answers.
const LOCK_PING_INTERVAL: Duration = Duration::from_secs(1);
/// How long that check may take before the lock is taken as lost.
const LOCK_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What came of [`run_exclusive`].
#[derive(Debug)]
pub enum Attempt {
    /// This process ran the pass.
    Done(Box<PassReport>),
    /// Another process holds the reaper lock (and is running a pass).
    Busy,
    /// Once the lock was taken, the pass was no longer owed: another
    /// process had just run it.
    NotDue,
}

/// One pass at a time among any number of reapers: takes the reaper lock (a
/// session advisory lock on a dedicated session to `database` (its direct URL), never
/// a pooled one, which could be recycled under it), runs [`run_pass`] at
/// `now`, and releases the lock. With `only_if_due`, a pass another process
/// ran between the caller's look and the lock is skipped ([`Attempt::NotDue`]).
///
/// A watchdog pings the lock connection every second while the pass runs;
/// when it stops answering (the lock is gone: another reaper may take it),
/// or `stop` turns true, the pass stops between two batches, so two passes
/// never overlap for longer than one batch.
pub async fn run_exclusive(
    services: &Services,
    database: &rat_dao::Database,
    policy: &PassPolicy,
    stop: &watch::Receiver<bool>,
    only_if_due: bool,
    now: OffsetDateTime,
) -> Result<Attempt, ServiceError> {
    let lock = rat_dao::connect_dedicated(database, LOCK_APPLICATION_NAME).await?;
    if !reaper_status::try_lock(&lock).await? {
        tracing::debug!("another reaper holds the lock");
        return Ok(Attempt::Busy);
    }
    if only_if_due && matches!(next_pass(services, now).await?, NextPass::At(_)) {
        // Dropping the connection releases the lock.
        return Ok(Attempt::NotDue);
    }
    let report = pass_holding(services, policy, &lock, stop.clone(), now).await?;
    // Released with the session anyway; unlocking first lets a waiting
    // replica in without waiting for the server to notice the close.
    if let Err(e) = reaper_status::unlock(&lock).await {
        tracing::warn!(error = %e, "releasing the reaper lock; closing its connection releases it");
    }
    Ok(Attempt::Done(Box::new(report)))
}

/// Runs a pass while a watchdog checks the lock connection (and `stop`),
/// and logs its summary.
async fn pass_holding(
    services: &Services,
    policy: &PassPolicy,
    lock: &rat_dao::DedicatedConnection,
    mut stop: watch::Receiver<bool>,
    now: OffsetDateTime,
) -> Result<PassReport, ServiceError> {
    let started = Instant::now();
    let (lost_sender, lost) = watch::channel(false);
    tracing::info!("pass started");
    let pass = run_pass(services, now, policy, &lost);
    let watchdog = async {
        let mut ping = tokio::time::interval(LOCK_PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ping.tick() => {
                    let answered = matches!(
                        tokio::time::timeout(LOCK_PING_TIMEOUT, lock.batch_execute("SELECT 1")).await,
                        Ok(Ok(()))
                    );
                    if !answered || lock.is_closed() {
                        tracing::error!("the reaper lock connection stopped answering: the lock is lost; stopping the pass");
                        break;
                    }
                }
                () = crate::stopped(&mut stop) => break,
            }
        }
        lost_sender.send_replace(true);
        std::future::pending::<()>().await;
    };
    let report = tokio::select! {
        report = pass => report?,
        () = watchdog => unreachable!("the watchdog never returns"),
    };
    let c = &report.counters;
    tracing::info!(
        runs_pruned = c.runs_pruned,
        logs_pruned = c.logs_pruned,
        quality_pruned = c.quality_pruned,
        runs_failed = c.runs_failed,
        pipelines_purged = c.pipelines_purged,
        lz_files_cleaned = c.lz_files_cleaned,
        audit_pruned = c.audit_pruned,
        failed_tasks = report.tasks.iter().filter(|t| t.error.is_some()).count(),
        interrupted = report.interrupted,
        duration_ms = started.elapsed().as_millis() as u64,
        "pass finished"
    );
    Ok(report)
}
