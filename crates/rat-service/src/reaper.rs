//! One reaper pass: retention over every table that grows, and over the file
//! store, as a plain function of `now` and the settings.
//!
//! Seven tasks, each independent (one failing is logged and counted, the
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
//! 7. audit entries older than `audit_log_max_age_days`.
//!
//! A pipeline's `retention_config` overrides the first four for its own runs
//! and results. Objects are always deleted before the rows pointing at them,
//! so an interrupted pass leaves rows to retry, never rows pointing at nothing.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt, stream};
use rat_dao::{audit, landing, pipelines, reaper_status, reaping, settings};
use rat_domain::{NextPass, ReaperCounters, ReaperStatus, RetentionOverrides, RetentionSettings};
use rat_versioning::{KeyPrefix, ObjectKey, ObjectVersion, StoreError, VersionId};
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{ServiceError, Services};

/// How a pass works, beyond the retention settings.
#[derive(Debug, Clone)]
pub struct PassPolicy {
    /// Most rows per batch (one short transaction each).
    pub batch_size: i64,
    /// How long one batch should take at most: a batch that takes longer
    /// halves the next one (down to [`MIN_BATCH_SIZE`]), one that takes less
    /// than half of it grows the next by half (up to `batch_size`). It bounds
    /// how long a batch holds its row locks when the machine is busy, where
    /// a fixed size would not.
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
}

impl Default for PassPolicy {
    fn default() -> Self {
        PassPolicy {
            batch_size: 2000,
            batch_target: Duration::from_millis(100),
            max_batches_per_task: 2000,
            pending_claim_timeout: Duration::from_secs(24 * 3600),
            default_processed_max_age_days: 30,
            store_concurrency: 8,
            store_attempts: 3,
        }
    }
}

/// What one task did in a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskReport {
    /// `runs`, `logs`, `quality`, `stuck_runs`, `pipelines`, `landing_files`, `audit`.
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

/// Checks between batches that this process still holds the reaper lock.
fn check(lost: &watch::Receiver<bool>) -> Result<(), ServiceError> {
    if *lost.borrow() {
        return Err(ServiceError::Unavailable {
            message: LockLost.to_string(),
            source: None,
        });
    }
    Ok(())
}

fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

/// The smallest batch the pacing goes down to.
pub const MIN_BATCH_SIZE: i64 = 50;

/// The size of the next batch of a task, paced by how long batches take
/// (see [`PassPolicy::batch_target`]).
#[derive(Debug, Clone, Copy)]
struct Pacer {
    size: i64,
    max: i64,
    target: Duration,
}

impl Pacer {
    fn new(policy: &PassPolicy) -> Self {
        let max = policy.batch_size.max(1);
        Pacer {
            size: max,
            max,
            target: policy.batch_target,
        }
    }

    fn record(&mut self, took: Duration) {
        if took > self.target {
            self.size = (self.size / 2).max(MIN_BATCH_SIZE.min(self.max));
        } else if took < self.target / 2 {
            self.size = (self.size + self.size / 2 + 1).min(self.max);
        }
    }
}

/// Runs `batch(size)` until it returns fewer than `size` rows, the task's
/// batch budget is spent, or the lock is lost; the total. `size` is paced
/// (see [`PassPolicy::batch_target`]).
async fn batches<F, Fut>(policy: &PassPolicy, lost: &watch::Receiver<bool>, mut batch: F) -> Result<u64, ServiceError>
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = Result<u64, ServiceError>>,
{
    let mut total = 0;
    let mut pacer = Pacer::new(policy);
    for _ in 0..policy.max_batches_per_task {
        check(lost)?;
        let (size, started) = (pacer.size, Instant::now());
        let done = batch(size).await?;
        pacer.record(started.elapsed());
        total += done;
        if done < size as u64 {
            break;
        }
    }
    Ok(total)
}

/// Runs `batch(cursor, size)` until it returns no cursor (the last batch was
/// short), the task's batch budget is spent, or the lock is lost; the total.
/// Each call gets the cursor the previous one returned, and a paced size.
async fn walk<C, F, Fut>(policy: &PassPolicy, lost: &watch::Receiver<bool>, mut batch: F) -> Result<u64, ServiceError>
where
    F: FnMut(Option<C>, i64) -> Fut,
    Fut: Future<Output = Result<(u64, Option<C>), ServiceError>>,
{
    let mut total = 0;
    let mut from = None;
    let mut pacer = Pacer::new(policy);
    for _ in 0..policy.max_batches_per_task {
        check(lost)?;
        let started = Instant::now();
        let (done, next) = batch(from.take(), pacer.size).await?;
        pacer.record(started.elapsed());
        total += done;
        match next {
            Some(cursor) => from = Some(cursor),
            None => break,
        }
    }
    Ok(total)
}

/// The pipelines with overrides, parsed (invalid entries are ignored and logged).
async fn overrides(services: &Services) -> Result<Vec<(Uuid, RetentionOverrides)>, ServiceError> {
    let client = services.pool.get().await?;
    let rows = reaping::pipelines_with_overrides(&client, 10_000).await?;
    Ok(rows
        .into_iter()
        .map(|(id, config)| {
            let (parsed, problems) = RetentionOverrides::from_stored(Some(&config));
            for problem in problems {
                tracing::warn!(pipeline = %id, problem, "ignoring an invalid retention override");
            }
            (id, parsed)
        })
        .filter(|(_, parsed)| parsed.iter().next().is_some())
        .collect())
}

fn overridden(overrides: &[(Uuid, RetentionOverrides)], key: &str) -> Vec<Uuid> {
    overrides
        .iter()
        .filter(|(_, o)| o.iter().any(|(k, _)| k == key))
        .map(|(id, _)| *id)
        .collect()
}

async fn prune_runs(
    services: &Services,
    system: &RetentionSettings,
    overrides: &[(Uuid, RetentionOverrides)],
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let special: Vec<Uuid> = overrides.iter().map(|(id, _)| *id).collect();
    let cutoff = now - days(system.runs_max_age_days);
    // Age first, globally, along idx_runs_created_at.
    let mut total = walk(policy, lost, |from, size| {
        let special = &special;
        async move {
            let client = services.pool.get().await?;
            Ok(reaping::delete_runs_older_than(&client, cutoff, special, from, size).await?)
        }
    })
    .await?;
    // Then the per-pipeline count, for pipelines above it.
    let crowded = {
        let client = services.pool.get().await?;
        reaping::pipelines_with_more_runs_than(&client, system.runs_max_per_pipeline).await?
    };
    let mut plans: Vec<(Uuid, i64, OffsetDateTime)> = crowded
        .into_iter()
        .filter(|id| !special.contains(id))
        .map(|id| (id, system.runs_max_per_pipeline, cutoff))
        .collect();
    for (id, own) in overrides {
        let effective = system.with_overrides(own);
        plans.push((
            *id,
            effective.runs_max_per_pipeline,
            now - days(effective.runs_max_age_days),
        ));
    }
    for (pipeline_id, keep, cutoff) in plans {
        total += batches(policy, lost, |size| async move {
            let client = services.pool.get().await?;
            Ok(reaping::delete_pipeline_runs(&client, pipeline_id, keep, cutoff, size).await?)
        })
        .await?;
    }
    Ok(total)
}

async fn prune_logs(
    services: &Services,
    system: &RetentionSettings,
    overrides: &[(Uuid, RetentionOverrides)],
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let special = overridden(overrides, "logs_max_age_days");
    let cutoff = now - days(system.logs_max_age_days);
    let excluded = &special;
    let mut total = batches(policy, lost, |size| async move {
        let client = services.pool.get().await?;
        Ok(reaping::clear_logs_older_than(&client, cutoff, excluded, size).await?)
    })
    .await?;
    for (pipeline_id, own) in overrides.iter().filter(|(id, _)| special.contains(id)) {
        let cutoff = now - days(system.with_overrides(own).logs_max_age_days);
        total += batches(policy, lost, |size| async move {
            let client = services.pool.get().await?;
            Ok(reaping::clear_pipeline_logs_older_than(&client, *pipeline_id, cutoff, size).await?)
        })
        .await?;
    }
    Ok(total)
}

async fn prune_quality(
    services: &Services,
    system: &RetentionSettings,
    overrides: &[(Uuid, RetentionOverrides)],
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let special = overridden(overrides, "quality_results_max_per_test");
    let mut plans: Vec<(Uuid, i64)> = {
        let client = services.pool.get().await?;
        reaping::tests_with_more_results_than(&client, system.quality_results_max_per_test, &special)
            .await?
            .into_iter()
            .map(|test| (test, system.quality_results_max_per_test))
            .collect()
    };
    for (pipeline_id, own) in overrides.iter().filter(|(id, _)| special.contains(id)) {
        let keep = system.with_overrides(own).quality_results_max_per_test;
        let client = services.pool.get().await?;
        for test in reaping::pipeline_tests_with_more_results_than(&client, *pipeline_id, keep).await? {
            plans.push((test, keep));
        }
    }
    let mut total = 0;
    for (test_id, keep) in plans {
        total += batches(policy, lost, |size| async move {
            let client = services.pool.get().await?;
            Ok(reaping::delete_test_results_beyond(&client, test_id, keep, size).await?)
        })
        .await?;
    }
    Ok(total)
}

async fn fail_stuck(
    services: &Services,
    system: &RetentionSettings,
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let pending_cutoff = now - policy.pending_claim_timeout;
    batches(policy, lost, |size| async move {
        let client = services.pool.get().await?;
        let failed =
            reaping::fail_stuck_runs(&client, now, system.stuck_run_timeout_minutes, pending_cutoff, size).await?;
        for run in &failed {
            tracing::info!(run = %run.run_id, reason = %run.reason, "failed a run that could not finish");
        }
        Ok(failed.len() as u64)
    })
    .await
}

/// Deletes `versions` from the store, `concurrency` at a time, retrying each
/// up to `attempts` times; the first lasting failure stops the task.
async fn delete_versions(
    services: &Services,
    versions: Vec<(ObjectKey, VersionId)>,
    policy: &PassPolicy,
) -> Result<u64, ServiceError> {
    let attempts = policy.store_attempts.max(1);
    stream::iter(versions)
        .map(|(key, version)| async move {
            let mut delay = Duration::from_millis(100);
            for attempt in 1..=attempts {
                match services.store.delete_version(&key, &version).await {
                    Ok(()) => return Ok(1u64),
                    Err(e @ StoreError::Unavailable { .. }) if attempt < attempts => {
                        tracing::warn!(key = %key, error = %e, attempt, "object deletion failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    Err(e) => return Err(ServiceError::from(e)),
                }
            }
            unreachable!("the last attempt returns")
        })
        .buffer_unordered(policy.store_concurrency.max(1))
        .try_fold(0u64, |total, n| async move { Ok(total + n) })
        .await
}

/// Every version (and delete marker) under `prefix`, following pages
/// (bounded like every listing).
async fn all_versions(services: &Services, prefix: &KeyPrefix) -> Result<Vec<ObjectVersion>, ServiceError> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = services.store.list_versions(prefix, token.as_deref(), 1000).await?;
        all.extend(page.items);
        if all.len() > rat_versioning::MAX_LISTED_FILES * 10 {
            return Err(ServiceError::Internal {
                source: format!(
                    "more than {} versions under {prefix}",
                    rat_versioning::MAX_LISTED_FILES * 10
                )
                .into(),
            });
        }
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(all),
        }
    }
}

async fn purge_pipelines(
    services: &Services,
    system: &RetentionSettings,
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let cutoff = now - days(system.soft_delete_purge_days);
    let mut purged = 0;
    for _ in 0..policy.max_batches_per_task {
        check(lost)?;
        let doomed = {
            let client = services.pool.get().await?;
            pipelines::soft_deleted_before(&client, cutoff, 50).await?
        };
        if doomed.is_empty() {
            break;
        }
        for pipeline in &doomed {
            check(lost)?;
            let prefix = KeyPrefix::parse(&pipeline.s3_path)?;
            // A live pipeline of the same name shares the prefix: its files
            // (everything it still needs, and everything written since it
            // was created) must survive the purge of its predecessor.
            let keep: Option<(HashSet<(String, String)>, OffsetDateTime)> = {
                let client = services.pool.get().await?;
                match pipelines::get_by_ref(&client, &pipeline.address).await {
                    Ok(live) => Some((reaping::pinned_versions(&client, live.id).await?, live.created_at)),
                    Err(rat_dao::DaoError::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                }
            };
            let versions: Vec<(ObjectKey, VersionId)> = all_versions(services, &prefix)
                .await?
                .into_iter()
                .filter(|v| match &keep {
                    None => true,
                    Some((pinned, live_since)) => {
                        !v.is_latest
                            && v.last_modified < *live_since
                            && !pinned.contains(&(v.key.to_string(), v.version_id.to_string()))
                    }
                })
                .map(|v| (v.key, v.version_id))
                .collect();
            let objects = delete_versions(services, versions, policy).await?;
            // Objects first, then the row: an interrupted purge leaves a row
            // to retry, never a row pointing at deleted files.
            let client = services.pool.get().await?;
            pipelines::purge(&client, pipeline.id).await?;
            purged += 1;
            tracing::info!(pipeline = %pipeline.address, id = %pipeline.id, objects, "purged a deleted pipeline");
        }
        if doomed.len() < 50 {
            break;
        }
    }
    Ok(purged)
}

async fn purge_landing_files(
    services: &Services,
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let zones = {
        let client = services.pool.get().await?;
        reaping::auto_purge_zones(&client, 10_000).await?
    };
    let mut cleaned = 0;
    for (zone_id, max_age) in zones {
        let age = max_age.map_or(policy.default_processed_max_age_days, i64::from);
        let cutoff = now - days(age);
        for _ in 0..policy.max_batches_per_task {
            check(lost)?;
            let files = {
                let client = services.pool.get().await?;
                landing::files_older_than(&client, zone_id, cutoff, policy.batch_size.min(500)).await?
            };
            if files.is_empty() {
                break;
            }
            let keys: HashSet<String> = files.iter().map(|f| f.s3_path.clone()).collect();
            let parent = |key: &str| {
                key.rsplit_once('/')
                    .map(|(dir, _)| format!("{dir}/"))
                    .unwrap_or_default()
            };
            let mut versions = Vec::new();
            let prefixes: HashSet<String> = keys.iter().map(|k| parent(k)).collect();
            for prefix in prefixes {
                let prefix = KeyPrefix::parse(&prefix)?;
                versions.extend(
                    all_versions(services, &prefix)
                        .await?
                        .into_iter()
                        .filter(|v| keys.contains(v.key.as_str()))
                        .map(|v| (v.key, v.version_id)),
                );
            }
            delete_versions(services, versions, policy).await?;
            let ids: Vec<Uuid> = files.iter().map(|f| f.id).collect();
            let client = services.pool.get().await?;
            cleaned += reaping::delete_landing_files(&client, &ids).await?;
            if (files.len() as i64) < policy.batch_size.min(500) {
                break;
            }
        }
    }
    Ok(cleaned)
}

async fn prune_audit(
    services: &Services,
    system: &RetentionSettings,
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let cutoff = now - days(system.audit_log_max_age_days);
    walk(policy, lost, |from, size| async move {
        let client = services.pool.get().await?;
        Ok(audit::delete_older_than(&client, cutoff, from, size).await?)
    })
    .await
}

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
            counters.$counter += rows as i64;
            tasks.push(TaskReport {
                task: $name,
                rows,
                duration: started.elapsed(),
                error,
            });
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
        fail_stuck(services, &system, now, policy, lost)
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
    task!("audit", audit_pruned, prune_audit(services, &system, now, policy, lost));

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
/// session advisory lock on a dedicated connection to `database_url`, never
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
    database_url: &str,
    policy: &PassPolicy,
    stop: &watch::Receiver<bool>,
    only_if_due: bool,
    now: OffsetDateTime,
) -> Result<Attempt, ServiceError> {
    let lock = rat_dao::connect_dedicated(database_url, LOCK_APPLICATION_NAME).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(batch_size: i64) -> PassPolicy {
        PassPolicy {
            batch_size,
            batch_target: Duration::from_millis(100),
            ..PassPolicy::default()
        }
    }

    #[test]
    fn slow_batches_shrink_the_next_down_to_the_floor_and_fast_ones_grow_it_back() {
        let mut pacer = Pacer::new(&policy(2000));
        assert_eq!(pacer.size, 2000, "starts at the most");
        pacer.record(Duration::from_millis(70));
        assert_eq!(pacer.size, 2000, "between half the target and the target: kept");
        pacer.record(Duration::from_millis(400));
        assert_eq!(pacer.size, 1000);
        for _ in 0..10 {
            pacer.record(Duration::from_millis(400));
        }
        assert_eq!(pacer.size, MIN_BATCH_SIZE);
        pacer.record(Duration::from_millis(10));
        assert_eq!(pacer.size, 76);
        for _ in 0..20 {
            pacer.record(Duration::from_millis(10));
        }
        assert_eq!(pacer.size, 2000, "never beyond the most");
    }

    #[test]
    fn a_most_below_the_floor_is_kept() {
        let mut pacer = Pacer::new(&policy(2));
        pacer.record(Duration::from_secs(1));
        assert_eq!(pacer.size, 2);
        pacer.record(Duration::ZERO);
        assert_eq!(pacer.size, 2);
    }
}
