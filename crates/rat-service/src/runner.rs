//! The runner protocol: what external runner processes do to runs, through
//! the api's internal listener.
//!
//! - [`claim`] hands pending runs to a runner (each to exactly one runner,
//!   `FOR UPDATE SKIP LOCKED`), moves them to `running` and leases them; the
//!   answer carries the pinned files with a URL for each exact version.
//! - [`heartbeat`] extends the lease, and tells the holder of a cancelled run
//!   to stop.
//! - [`append_logs`] adds log entries to a run the runner holds.
//! - [`complete`] records the outcome and the quality results in one
//!   transaction.
//! - [`callback_status`] accepts ratd's runner callback, whose runners know
//!   no leases.
//!
//! Every report is checked in SQL against the run's holder, lease and status
//! (`rat_dao::runs::{heartbeat, lock_held, complete_held}`): a report about a
//! run the runner does not hold (another runner's, lease expired, cancelled,
//! finished) is refused and changes nothing. Time is always passed in
//! (`now`), so leases are testable with an injected clock.

use rat_domain::RunId;
use std::collections::{BTreeMap, HashMap, HashSet};

pub use rat_dao::runs::MAX_LOG_BATCH;
use rat_dao::runs::{self, NotHeld, RunReport};
use rat_dao::{DaoError, Transaction, pipelines, quality};
use rat_domain::{
    LogEntry, PipelineRef, PipelineType, QualityStatus, QualityTest, Run, RunStatus, TestName, TestOutcome,
};
use rat_versioning::{KeyPrefix, Object, ObjectKey, VersionId, VersionedStore};
use time::OffsetDateTime;

use crate::{ServiceError, Services, firing, versions};

/// A runner's name as it reports it (the rule is the domain's).
pub use rat_domain::RunnerId;

/// Shortest lease a runner may ask for, in seconds.
pub const MIN_LEASE_SECONDS: i64 = 10;
/// Longest lease a runner may ask for, in seconds.
pub const MAX_LEASE_SECONDS: i64 = 3600;
/// The lease given when the runner asks for none, in seconds.
pub const DEFAULT_LEASE_SECONDS: i64 = 60;

/// A lease duration within [`MIN_LEASE_SECONDS`]..=[`MAX_LEASE_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease(time::Duration);

impl Lease {
    /// The lease for `seconds` (default [`DEFAULT_LEASE_SECONDS`]); out of range is invalid input.
    pub fn parse(seconds: Option<i64>) -> Result<Self, ServiceError> {
        Self::seconds(seconds.unwrap_or(DEFAULT_LEASE_SECONDS))
    }

    /// The lease for `seconds`; out of range is invalid input.
    pub fn seconds(seconds: i64) -> Result<Self, ServiceError> {
        if !(MIN_LEASE_SECONDS..=MAX_LEASE_SECONDS).contains(&seconds) {
            return Err(ServiceError::invalid(format!(
                "lease_seconds must be between {MIN_LEASE_SECONDS} and {MAX_LEASE_SECONDS}, got {seconds}"
            )));
        }
        Ok(Lease(time::Duration::seconds(seconds)))
    }

    /// When a lease taken at `now` ends.
    pub fn until(self, now: OffsetDateTime) -> OffsetDateTime {
        now + self.0
    }
}

/// Most runs one claim may ask for.
pub const MAX_CLAIM: i64 = runs::MAX_CLAIM_BATCH;

/// Checks `max_runs` of a claim (default 1, at most [`MAX_CLAIM`]).
pub fn claim_size(max_runs: Option<i64>) -> Result<i64, ServiceError> {
    let max_runs = max_runs.unwrap_or(1);
    if !(1..=MAX_CLAIM).contains(&max_runs) {
        return Err(ServiceError::invalid(format!(
            "max_runs must be between 1 and {MAX_CLAIM}, got {max_runs}"
        )));
    }
    Ok(max_runs)
}

/// One pinned file of a claimed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedFile {
    /// The full key in the store.
    pub key: ObjectKey,
    /// The key relative to the pipeline's directory (`pipeline.sql`).
    pub path: String,
    /// The pinned version.
    pub version_id: VersionId,
    /// A presigned URL for exactly that version, or `None` when the store
    /// cannot presign (the filesystem store): the caller then points the
    /// runner at its own file route.
    pub url: Option<String>,
}

/// A run handed to a runner, with what it needs to execute it.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    /// The run, now `running` and leased.
    pub run: Run,
    /// The pipeline's address.
    pub pipeline: PipelineRef,
    /// The pipeline's language.
    pub pipeline_type: PipelineType,
    /// Every pinned file of the run's snapshot, in key order.
    pub files: Vec<ClaimedFile>,
    /// The Iceberg maintenance the runner applies to the pipeline's table.
    pub iceberg: IcebergMaintenance,
}

/// Iceberg table maintenance for a run's table, from the retention settings
/// (the system value, or the pipeline's override): the runner holds the
/// catalog credentials, so it is the one that expires snapshots and removes
/// orphan files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcebergMaintenance {
    /// Expire snapshots older than this many days.
    pub snapshot_max_age_days: i64,
    /// Remove files no snapshot references once older than this many days.
    pub orphan_file_max_age_days: i64,
}

impl IcebergMaintenance {
    /// The maintenance of `pipeline` under the system settings `system`
    /// (its stored overrides laid over them; invalid ones are ignored and logged).
    pub fn of(system: &rat_domain::RetentionSettings, pipeline: &rat_domain::Pipeline) -> Self {
        let (overrides, problems) = rat_domain::RetentionOverrides::from_stored(pipeline.retention_config.as_ref());
        for problem in problems {
            tracing::warn!(pipeline = %pipeline.id, problem, "ignoring an invalid retention override");
        }
        let effective = system.with_overrides(&overrides);
        IcebergMaintenance {
            snapshot_max_age_days: effective.iceberg_snapshot_max_age_days,
            orphan_file_max_age_days: effective.iceberg_orphan_file_max_age_days,
        }
    }
}

/// Presigning requests in flight at once during a claim.
const PRESIGN_CONCURRENCY: usize = 16;

/// Hands up to `max_runs` pending runs, oldest first, to `runner`, leased
/// until `now + lease`; each comes with its pipeline's address and type and
/// every pinned file with a URL valid for `presign_ttl`.
///
/// One transaction: the claim, the pipeline reads and the presigning. If
/// anything fails (the store cannot presign), or the caller goes away before
/// the commit, the runs stay pending for another claim; no run is left
/// leased to a runner that never heard of it.
#[tracing::instrument(skip(services), fields(runner = runner.as_str()))]
pub async fn claim(
    services: &Services,
    runner: &RunnerId,
    max_runs: i64,
    lease: Lease,
    presign_ttl: std::time::Duration,
    now: OffsetDateTime,
) -> Result<Vec<ClaimedRun>, ServiceError> {
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let claimed = runs::claim(&transaction, runner.as_str(), max_runs, lease.until(now), now).await?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    // At most `max_runs` distinct pipelines, usually one or two.
    let mut pipelines_by_id = BTreeMap::new();
    for run in &claimed {
        if let std::collections::btree_map::Entry::Vacant(slot) = pipelines_by_id.entry(run.pipeline_id) {
            slot.insert(pipelines::get(&transaction, run.pipeline_id).await?);
        }
    }
    let (system, problems) = rat_dao::settings::retention(&transaction).await?;
    for problem in problems {
        tracing::warn!(problem = %problem, "stored retention setting is invalid; using its default");
    }
    let mut answers = Vec::with_capacity(claimed.len());
    for run in claimed {
        let pipeline = &pipelines_by_id[&run.pipeline_id];
        let files = presign_files(services.store.as_ref(), &pipeline.s3_path, &run, presign_ttl).await?;
        answers.push(ClaimedRun {
            pipeline: pipeline.address.clone(),
            pipeline_type: pipeline.pipeline_type,
            files,
            iceberg: IcebergMaintenance::of(&system, pipeline),
            run,
        });
    }
    transaction.commit().await?;
    tracing::info!(runs = answers.len(), "runs claimed");
    Ok(answers)
}

/// The run's pinned files with their URLs, presigned at most
/// [`PRESIGN_CONCURRENCY`] at a time, in key order.
async fn presign_files(
    store: &dyn VersionedStore,
    prefix: &KeyPrefix,
    run: &Run,
    ttl: std::time::Duration,
) -> Result<Vec<ClaimedFile>, ServiceError> {
    crate::concurrent::try_map_bounded(
        run.published_versions.iter(),
        PRESIGN_CONCURRENCY,
        |(key, version)| async move {
            Ok::<_, ServiceError>(ClaimedFile {
                key: key.clone(),
                path: key.strip_prefix(prefix).unwrap_or(key.as_str()).to_owned(),
                version_id: version.clone(),
                url: store.presign_get(key, version, ttl).await?,
            })
        },
    )
    .await
}

/// The conflict a refused report answers with (409 on the wire).
fn refused(reason: NotHeld) -> ServiceError {
    ServiceError::precondition(reason.to_string())
}

/// What a heartbeat answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    /// The run.
    pub run_id: RunId,
    /// Its status (`running`, or `cancelled` when the runner must stop).
    pub status: RunStatus,
    /// When the lease now ends.
    pub lease_expires_at: Option<OffsetDateTime>,
    /// True when the run was cancelled: the runner should stop executing it
    /// (every later report about it is refused).
    pub stop: bool,
}

/// Extends `runner`'s lease on run `id` to `now + lease` (with `None`, for
/// as long as the current lease lasts: the length asked for at the claim or
/// the last heartbeat). A run cancelled
/// while the runner held it answers `stop: true` (nothing changes);
/// `FailedPrecondition` when the runner does not hold it (another runner's,
/// lease expired, finished), `NotFound` for an unknown run.
#[tracing::instrument(skip(services), fields(runner = runner.as_str()))]
pub async fn heartbeat(
    services: &Services,
    id: RunId,
    runner: &RunnerId,
    lease: Option<Lease>,
    now: OffsetDateTime,
) -> Result<HeartbeatAnswer, ServiceError> {
    let client = services.pool.get().await?;
    let lease_until = lease.map(|lease| lease.until(now));
    match runs::heartbeat(&client, id, runner.as_str(), lease_until, now).await? {
        Ok(run) => Ok(HeartbeatAnswer {
            run_id: run.id,
            status: run.status,
            lease_expires_at: run.lease_expires_at,
            stop: false,
        }),
        Err(NotHeld::Cancelled) => {
            let run = runs::get(&client, id).await?;
            Ok(HeartbeatAnswer {
                run_id: run.id,
                status: run.status,
                lease_expires_at: run.lease_expires_at,
                stop: true,
            })
        }
        Err(reason) => Err(refused(reason)),
    }
}

/// Appends `entries` (at most `rat_dao::runs::MAX_LOG_BATCH`) to run `id`,
/// which `runner` must hold at `now`. The hold is checked and the entries
/// written in one transaction with the run row read `FOR SHARE`, so entries
/// never land after a completion or cancel that committed first. An empty
/// batch only checks the hold. `FailedPrecondition` when the runner does not
/// hold the run, `NotFound` for an unknown run.
#[tracing::instrument(skip(services, entries), fields(runner = runner.as_str(), entries = entries.len()))]
pub async fn append_logs(
    services: &Services,
    id: RunId,
    runner: &RunnerId,
    entries: &[LogEntry],
    now: OffsetDateTime,
) -> Result<(), ServiceError> {
    if entries.len() > runs::MAX_LOG_BATCH {
        return Err(ServiceError::invalid(format!(
            "at most {} log entries per request, got {}",
            runs::MAX_LOG_BATCH,
            entries.len()
        )));
    }
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    runs::lock_held(&transaction, id, runner.as_str(), now)
        .await?
        .map_err(refused)?;
    if !entries.is_empty() {
        runs::append_log_entries(&transaction, id, entries).await?;
    }
    transaction.commit().await?;
    Ok(())
}

/// Most quality results one completion may carry.
pub const MAX_QUALITY_RESULTS: usize = 1000;

/// One quality test's outcome as a runner reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityReport {
    /// The test (of the run's pipeline).
    pub test: TestName,
    /// Violations counted; required unless `error` is set.
    pub value: Option<f64>,
    /// Violations expected (usually 0).
    pub expected: Option<f64>,
    /// Execution time of the test.
    pub duration_ms: Option<i32>,
    /// Why the test's SQL could not run; makes the result `error`.
    pub error: Option<String>,
}

impl QualityReport {
    fn outcome(&self) -> Result<TestOutcome, ServiceError> {
        match (&self.error, self.value) {
            (Some(_), _) => Ok(TestOutcome::ExecutionError),
            (None, Some(value)) if value.is_finite() => Ok(TestOutcome::Violations(value)),
            (None, Some(_)) => Err(ServiceError::invalid(format!(
                "quality result {}: value must be a finite number",
                self.test
            ))),
            (None, None) => Err(ServiceError::invalid(format!(
                "quality result {}: value is required unless error is set",
                self.test
            ))),
        }
    }
}

/// What a runner reports when a run ends.
#[derive(Debug, Clone)]
pub struct Completion {
    /// `success`, `failed` or `cancelled`.
    pub status: RunStatus,
    /// Error message, duration, rows written, per-phase timings.
    pub report: RunReport,
    /// One result per quality test that ran, at most [`MAX_QUALITY_RESULTS`].
    pub quality_results: Vec<QualityReport>,
}

/// Records the outcome of run `id`, which `runner` must hold at `now`: the
/// terminal status with the report and one `quality_results` row per
/// reported test, in one transaction. A success also does, in that
/// transaction, what a success sets off (`on_success`); the status change
/// is announced on `rat_run_status` at commit.
///
/// `InvalidInput` for a non-terminal status, an unknown test of the run's
/// pipeline, a test reported twice, or a result without a value (nothing is
/// recorded then, and the run stays running); `FailedPrecondition` when the
/// runner does not hold the run (nothing changes); `NotFound` for an unknown
/// run.
#[tracing::instrument(skip(services, completion), fields(runner = runner.as_str()))]
pub async fn complete(
    services: &Services,
    id: RunId,
    runner: &RunnerId,
    completion: &Completion,
    now: OffsetDateTime,
) -> Result<Run, ServiceError> {
    let status = completion.status;
    if !status.is_terminal() {
        return Err(ServiceError::invalid("status must be success, failed or cancelled"));
    }
    if let Some(error) = &completion.report.error {
        rat_domain::text::check_text_len("error", error, rat_domain::text::MAX_RUN_ERROR_CHARS)?;
    }
    let results = &completion.quality_results;
    if results.len() > MAX_QUALITY_RESULTS {
        return Err(ServiceError::invalid(format!(
            "at most {MAX_QUALITY_RESULTS} quality results per run, got {}",
            results.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut outcomes = Vec::with_capacity(results.len());
    for result in results {
        if !seen.insert(result.test.as_str()) {
            return Err(ServiceError::invalid(format!(
                "quality test {} is reported more than once",
                result.test
            )));
        }
        outcomes.push(result.outcome()?);
    }

    let mut client = services.pool.get().await?;
    let mut transaction = client.transaction().await?;
    let run = runs::complete_held(&transaction, id, runner.as_str(), status, &completion.report, now)
        .await?
        .map_err(refused)?;
    // Two statements whatever the count: the reported tests in one read,
    // their results in one insert.
    let names: Vec<&str> = results.iter().map(|r| r.test.as_str()).collect();
    let tests: HashMap<String, QualityTest> = quality::get_by_names(&transaction, run.pipeline_id, &names)
        .await?
        .into_iter()
        .map(|test| (test.name.as_str().to_owned(), test))
        .collect();
    let mut rows = Vec::with_capacity(results.len());
    for (result, outcome) in results.iter().zip(outcomes) {
        let Some(test) = tests.get(result.test.as_str()) else {
            // Dropping the transaction rolls the status change back too.
            return Err(ServiceError::invalid(format!(
                "the run's pipeline has no quality test {}",
                result.test
            )));
        };
        rows.push(quality::NewQualityResult {
            test_id: test.id,
            run_id: Some(run.id),
            status: QualityStatus::evaluate(test.severity, outcome),
            value: result.value,
            expected: result.expected,
            duration_ms: result.duration_ms,
            ran_at: now,
        });
    }
    quality::insert_results(&transaction, &rows).await?;
    if status == RunStatus::Success {
        on_success(&mut transaction, &run, now).await?;
    }
    transaction.commit().await?;
    tracing::info!(run = %run.id, status = %run.status, quality_results = results.len(), "run completed");
    Ok(run)
}

/// What a run's success sets off, inside the transaction that records it
/// (so it happens exactly when the success is committed, never without it).
/// Every path recording a success calls it: [`complete`] and
/// [`callback_status`].
///
/// TRIGGER HOOK (pipeline_success): every enabled `pipeline_success` trigger
/// watching the run's pipeline fires here (`crate::firing`), each in a
/// savepoint of this transaction: the downstream runs exist if and only if
/// this success commits, and a trigger that cannot fire (its pipeline never
/// published or deleted, in its cooldown) never prevents the success from
/// being recorded. The success itself is already announced on
/// `rat_run_status` by the status update in this same transaction.
async fn on_success(transaction: &mut Transaction<'_>, run: &Run, now: OffsetDateTime) -> Result<(), ServiceError> {
    firing::fire_pipeline_success(transaction, run, now).await?;
    Ok(())
}

/// Applies ratd's runner callback (`{run_id, status, error, duration_ms,
/// rows_written}`) to run `id`. ratd's runners know no leases, so the
/// status goes through the state machine's guard alone, whoever holds the
/// run: `running` moves a pending run to running (a run already running
/// stays as it is); a terminal status applies to a running run, and
/// `failed`/`cancelled` also to a pending one. A success does what
/// [`complete`] does on success, in the same transaction.
/// `FailedPrecondition` when the state machine refuses (the run already
/// finished, or `success` of a pending run); `NotFound` for an unknown run.
#[tracing::instrument(skip(services, report))]
pub async fn callback_status(
    services: &Services,
    id: RunId,
    status: RunStatus,
    report: &RunReport,
    now: OffsetDateTime,
) -> Result<Run, ServiceError> {
    if status == RunStatus::Pending {
        return Err(ServiceError::invalid(
            "status must be running, success, failed or cancelled",
        ));
    }
    if let Some(error) = &report.error {
        rat_domain::text::check_text_len("error", error, rat_domain::text::MAX_RUN_ERROR_CHARS)?;
    }
    let mut client = services.pool.get().await?;
    let mut transaction = client.transaction().await?;
    let run = match runs::transition(&transaction, id, status, report, now).await {
        Ok(run) => run,
        // A repeated "running" is not a conflict: the run is where the runner says.
        Err(DaoError::InvalidTransition {
            from: RunStatus::Running,
            to: RunStatus::Running,
        }) => runs::get(&transaction, id).await?,
        Err(DaoError::InvalidTransition { from, .. }) if from.is_terminal() => {
            return Err(ServiceError::precondition(format!("run is already {from}")));
        }
        Err(other) => return Err(other.into()),
    };
    if run.status == RunStatus::Success && status == RunStatus::Success {
        on_success(&mut transaction, &run, now).await?;
    }
    transaction.commit().await?;
    tracing::info!(run = %run.id, status = %run.status, "runner callback applied");
    Ok(run)
}

/// One file at one exact version, for runners when the store cannot presign
/// (the filesystem store). `InvalidInput` for a malformed key or version,
/// `NotFound` when that version does not exist.
pub async fn read_file_version(services: &Services, key: &str, version: &str) -> Result<Object, ServiceError> {
    versions::read_pinned(services, key, version).await
}

pub use rat_dao::runner_plugins::RunnerPlugin;

/// Most plugins one runner may report.
pub const MAX_REPORTED_PLUGINS: usize = 200;
/// Longest text of a reported plugin's field, in characters.
pub const MAX_PLUGIN_FIELD_CHARS: usize = 255;

/// How recently a runner must have reported for its plugins to be listed:
/// the longest lease, since a live runner claims or heartbeats at least
/// that often.
pub const PLUGINS_LIVE_WINDOW: time::Duration = time::Duration::seconds(MAX_LEASE_SECONDS);

/// Checks a runner's plugin report: at most [`MAX_REPORTED_PLUGINS`], every
/// name present, every field at most [`MAX_PLUGIN_FIELD_CHARS`] characters.
pub fn check_plugins(plugins: &[RunnerPlugin]) -> Result<(), ServiceError> {
    if plugins.len() > MAX_REPORTED_PLUGINS {
        return Err(ServiceError::invalid(format!(
            "plugins: at most {MAX_REPORTED_PLUGINS} may be reported, got {}",
            plugins.len()
        )));
    }
    for plugin in plugins {
        if plugin.name.trim().is_empty() {
            return Err(ServiceError::invalid("plugins: every plugin needs a name"));
        }
        for (field, value) in [
            ("plugins.name", &plugin.name),
            ("plugins.group", &plugin.group),
            ("plugins.version", &plugin.version),
            ("plugins.package_name", &plugin.package_name),
        ] {
            rat_domain::text::check_text_len(field, value, MAX_PLUGIN_FIELD_CHARS)?;
        }
    }
    Ok(())
}

/// Records the plugins `runner` can load (replacing its previous report),
/// reported at `now`.
pub async fn report_plugins(
    services: &Services,
    runner: &RunnerId,
    plugins: &[RunnerPlugin],
    now: OffsetDateTime,
) -> Result<(), ServiceError> {
    check_plugins(plugins)?;
    let client = services.pool.get().await?;
    rat_dao::runner_plugins::report(&client, runner.as_str(), plugins, now).await?;
    Ok(())
}

/// The distinct plugins the runners that reported within
/// [`PLUGINS_LIVE_WINDOW`] of `now` can load; empty when none reported.
/// Anyone signed in may read them (they describe the platform, not data).
pub async fn live_plugins(services: &Services, now: OffsetDateTime) -> Result<Vec<RunnerPlugin>, ServiceError> {
    let client = services.pool.get().await?;
    Ok(rat_dao::runner_plugins::list_live(&client, now - PLUGINS_LIVE_WINDOW).await?)
}
