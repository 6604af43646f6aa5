//! The fault suite behind `cargo xtask chaos` (issue 20), and its short
//! version in CI (`tests/tests/it/chaos.rs`).
//!
//! Starts the real binaries — two `rat-api` replicas, two `rat-scheduler`s,
//! one `rat-reaper`, the dev `rat-runner` — on a private PostgreSQL cluster
//! and a moto S3 of their own (behind a TCP proxy that can refuse
//! connections), drives a mixed load through both api replicas (reads, file
//! writes, publishes, runs, every-second schedules; the platform and the
//! load are `crate::platform`, shared with the soak), and injects one fault at
//! a time. For each fault it reports the requests that failed and how, the
//! longest wait a client saw, and how long after the fault cleared the first
//! request succeeded. After the last fault it checks the invariants: no
//! schedule slot fired twice, no slot missed outside a fault's window (the
//! catch-up-once rule), no published version pinning a file version the store
//! does not have, no run left active past its lease, and an audit row for
//! every mutation that answered 2xx.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rat_testkit::cluster::Cluster;
use rat_versioning::VersionedStore;
use time::OffsetDateTime;

pub use crate::platform::log_tails;

/// The reaper's pass interval during the suite (its shortest setting): a
/// run whose lease expired is failed by the next pass.
const REAPER_INTERVAL_SECS: u64 = 60;
use crate::platform::{LEASE_SECS, Load, Platform, REAPER_POLL_SECS, Replicas, Sample, pg, prepare_load};

/// One fault the suite injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `pg_ctl restart -m fast`.
    PostgresRestartFast,
    /// `pg_ctl restart -m immediate` (a crash and recovery).
    PostgresRestartImmediate,
    /// Postgres stopped for the given time, then started.
    PostgresDown(Duration),
    /// Postgres unreachable for the given time without a restart: the
    /// postmaster and its processes frozen with SIGSTOP, then SIGCONT.
    PostgresPaused(Duration),
    /// The S3 server paused (SIGSTOP) for the given time.
    S3Hung(Duration),
    /// S3 refusing connections for the given time (its proxy closed).
    S3Refusing(Duration),
    /// One api replica killed with SIGKILL, restarted after a second.
    KillApi,
    /// One scheduler killed with SIGKILL, restarted after a second.
    KillScheduler,
    /// The reaper killed with SIGKILL, restarted after a second.
    KillReaper,
    /// The runner paused (SIGSTOP) past its lease, so it stops heartbeating.
    RunnerSilent,
}

impl Fault {
    /// Every fault, as `cargo xtask chaos` runs them.
    pub fn all() -> Vec<Fault> {
        vec![
            Fault::PostgresRestartFast,
            Fault::PostgresRestartImmediate,
            Fault::PostgresDown(Duration::from_secs(10)),
            Fault::PostgresPaused(Duration::from_secs(10)),
            Fault::S3Hung(Duration::from_secs(10)),
            Fault::S3Refusing(Duration::from_secs(10)),
            Fault::KillApi,
            Fault::KillScheduler,
            Fault::KillReaper,
            Fault::RunnerSilent,
        ]
    }

    /// The faults that take seconds, not tens of seconds (CI's run).
    pub fn short() -> Vec<Fault> {
        vec![
            Fault::PostgresRestartFast,
            Fault::S3Hung(Duration::from_secs(3)),
            Fault::S3Refusing(Duration::from_secs(3)),
            Fault::KillApi,
            Fault::KillScheduler,
            Fault::KillReaper,
        ]
    }

    fn name(&self) -> String {
        match self {
            Fault::PostgresRestartFast => "Postgres restarted (fast shutdown)".to_owned(),
            Fault::PostgresRestartImmediate => "Postgres restarted (immediate shutdown)".to_owned(),
            Fault::PostgresDown(d) => format!("Postgres stopped for {} s", d.as_secs()),
            Fault::PostgresPaused(d) => format!("Postgres unreachable (paused) for {} s", d.as_secs()),
            Fault::S3Hung(d) => format!("S3 hung (paused) for {} s", d.as_secs()),
            Fault::S3Refusing(d) => format!("S3 refusing connections for {} s", d.as_secs()),
            Fault::KillApi => "an api replica SIGKILLed and restarted".to_owned(),
            Fault::KillScheduler => "a scheduler SIGKILLed and restarted".to_owned(),
            Fault::KillReaper => "the reaper SIGKILLed and restarted".to_owned(),
            Fault::RunnerSilent => format!(
                "the runner silent (paused) for {} s",
                LEASE_SECS + 2 * REAPER_POLL_SECS + 2
            ),
        }
    }
}

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `rat-api`, `rat-scheduler`, `rat-reaper` and `rat-runner` are.
    pub bin_dir: PathBuf,
    /// The faults, in order.
    pub faults: Vec<Fault>,
    /// Load before each fault, and after it cleared.
    pub settle: Duration,
    /// Where the processes' logs go.
    pub logs: PathBuf,
}

/// What one fault did to the clients.
#[derive(Debug, Clone)]
pub struct FaultReport {
    /// The fault.
    pub fault: String,
    /// Requests sent from injection until the settle after it ended.
    pub requests: usize,
    /// Of those, answered 5xx or not answered, by status (`0`: no answer).
    pub failed: BTreeMap<u16, usize>,
    /// The longest time a client waited for one answer.
    pub longest_wait: Duration,
    /// From the fault clearing to the first request that succeeded after it.
    pub first_success_after: Option<Duration>,
}

/// Everything the suite measured and checked.
#[derive(Debug, Clone)]
pub struct Report {
    /// One entry per fault.
    pub faults: Vec<FaultReport>,
    /// All requests sent.
    pub requests: usize,
    /// Each invariant, and the violations found (empty when it holds).
    pub invariants: Vec<(String, Vec<String>)>,
}

impl Report {
    /// Whether every invariant holds and every fault was recovered from.
    pub fn passed(&self) -> bool {
        self.invariants.iter().all(|(_, violations)| violations.is_empty())
            && self.faults.iter().all(|f| f.first_success_after.is_some())
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| fault | requests | failed (status × count; 0 = no answer) | longest wait | first success after it cleared |"
        );
        let _ = writeln!(out, "|---|---:|---|---:|---:|");
        for f in &self.faults {
            let failed = if f.failed.is_empty() {
                "none".to_owned()
            } else {
                f.failed
                    .iter()
                    .map(|(status, n)| format!("{status} × {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let first = f
                .first_success_after
                .map_or("never".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()));
            let _ = writeln!(
                out,
                "| {} | {} | {failed} | {:.2} s | {first} |",
                f.fault,
                f.requests,
                f.longest_wait.as_secs_f64()
            );
        }
        let _ = writeln!(out, "\n{} requests in all.\n", self.requests);
        for (invariant, violations) in &self.invariants {
            if violations.is_empty() {
                let _ = writeln!(out, "- holds: {invariant}");
            } else {
                let _ = writeln!(out, "- **VIOLATED**: {invariant} ({} cases)", violations.len());
                for v in violations.iter().take(10) {
                    let _ = writeln!(out, "  - {v}");
                }
            }
        }
        out
    }
}

impl Platform {
    async fn inject(&mut self, fault: Fault) -> Result<(), String> {
        let cluster = self.pg.cluster().clone();
        match fault {
            Fault::PostgresRestartFast => {
                on_cluster(&cluster, Cluster::stop).await?;
                on_cluster(&cluster, Cluster::start).await?;
            }
            Fault::PostgresRestartImmediate => {
                on_cluster(&cluster, Cluster::stop_immediately).await?;
                on_cluster(&cluster, Cluster::start).await?;
            }
            Fault::PostgresDown(down) => {
                on_cluster(&cluster, Cluster::stop).await?;
                tokio::time::sleep(down).await;
                on_cluster(&cluster, Cluster::start).await?;
            }
            Fault::PostgresPaused(paused) => {
                on_cluster(&cluster, Cluster::pause).await?;
                tokio::time::sleep(paused).await;
                on_cluster(&cluster, Cluster::resume).await?;
            }
            Fault::S3Hung(hung) => {
                self.moto.pause();
                tokio::time::sleep(hung).await;
                self.moto.resume();
            }
            Fault::S3Refusing(refusing) => {
                self.proxy.refuse();
                tokio::time::sleep(refusing).await;
                self.proxy.accept().await?;
            }
            Fault::KillApi => {
                self.apis[0].kill().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.apis[0].start();
                crate::wait_listening(&[&self.api_bases[0][7..]], 60, &self.apis[0].log).await;
            }
            Fault::KillScheduler => {
                self.schedulers[0].kill().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.schedulers[0].start();
            }
            Fault::KillReaper => {
                self.reaper.kill().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.reaper.start();
            }
            Fault::RunnerSilent => {
                self.runner.signal("-STOP")?;
                tokio::time::sleep(Duration::from_secs(LEASE_SECS + 2 * REAPER_POLL_SECS + 2)).await;
                self.runner.signal("-CONT")?;
            }
        }
        Ok(())
    }
}

/// Runs `operation` (`pg_ctl` under the hood, blocking) on `cluster`.
async fn on_cluster(
    cluster: &Cluster,
    operation: fn(&Cluster) -> Result<(), rat_testkit::cluster::ClusterError>,
) -> Result<(), String> {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || operation(&cluster))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Runs the suite.
pub async fn run(config: Config) -> Result<Report, String> {
    let replicas = Replicas { apis: 2, schedulers: 2 };
    let mut platform = Platform::start(&config.bin_dir, &config.logs, replicas).await?;
    let result = drive(&mut platform, &config).await;
    platform.stop().await;
    result
}

async fn drive(platform: &mut Platform, config: &Config) -> Result<Report, String> {
    prepare_load(platform).await?;
    // Runs whose runner went silent are failed by the reaper's next pass:
    // passes every minute (the shortest interval), and every run kept, so
    // the slot invariants see every run the schedules made.
    platform
        .db()
        .await?
        .execute(
            "UPDATE platform_settings SET value = value || jsonb_build_object(\
             'reaper_interval_minutes', $1::int, 'runs_max_per_pipeline', 1000000) WHERE key = 'retention'",
            &[&i32::try_from(REAPER_INTERVAL_SECS / 60).unwrap_or(1)],
        )
        .await
        .map_err(|e| format!("setting the reaper's interval: {}", pg(e)))?;

    let started = Instant::now();
    let wall_start = OffsetDateTime::now_utc();
    let load = Load::start(platform.api_bases.clone(), started, None);
    let mut windows = Vec::new();
    let mut faults = Vec::new();
    tokio::time::sleep(config.settle).await;
    for fault in &config.faults {
        let injected = started.elapsed();
        platform.inject(*fault).await?;
        let cleared = started.elapsed();
        tokio::time::sleep(config.settle).await;
        let settled = started.elapsed();
        windows.push((injected, settled));
        faults.push(fault_report(fault.name(), &load.snapshot(), injected, cleared, settled));
    }
    let samples = load.stop().await;

    // Quiesce: no new runs, and a little time for the runner to finish. (A
    // new session: the faults may have ended the first one.)
    let db = platform.db().await?;
    db.execute("UPDATE schedules SET enabled = false", &[])
        .await
        .map_err(|e| format!("disabling the schedules: {}", pg(e)))?;
    let quiesce = Instant::now();
    while quiesce.elapsed() < Duration::from_secs(LEASE_SECS + REAPER_INTERVAL_SECS + 3 * REAPER_POLL_SECS + 5) {
        let active: i64 = db
            .query_one("SELECT count(*) FROM runs WHERE status IN ('pending', 'running')", &[])
            .await
            .map_err(pg)?
            .get(0);
        if active == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let windows: Vec<(OffsetDateTime, OffsetDateTime)> = windows
        .into_iter()
        .map(|(from, to)| (wall_start + from, wall_start + to))
        .collect();
    let invariants = vec![
        ("no schedule slot fired twice".to_owned(), duplicate_slots(&db).await?),
        (
            "no slot missed outside a fault's window (catch-up-once)".to_owned(),
            missed_slots(&db, wall_start, &windows).await?,
        ),
        (
            "every published pin exists in the store".to_owned(),
            missing_pins(&db, platform).await?,
        ),
        (
            "no run left running past its lease and the reaper's next pass".to_owned(),
            stuck_runs(&db).await?,
        ),
        (
            "an audit row for every mutation that answered 2xx".to_owned(),
            unaudited(&db, &samples).await?,
        ),
    ];
    Ok(Report {
        faults,
        requests: samples.len(),
        invariants,
    })
}

fn fault_report(
    fault: String,
    samples: &[Sample],
    injected: Duration,
    cleared: Duration,
    settled: Duration,
) -> FaultReport {
    let during: Vec<&Sample> = samples.iter().filter(|s| s.at >= injected && s.at < settled).collect();
    let mut failed = BTreeMap::new();
    for s in &during {
        if s.status == 0 || s.status >= 500 {
            *failed.entry(s.status).or_insert(0) += 1;
        }
    }
    let first_success_after = samples
        .iter()
        .filter(|s| s.at >= cleared && (200..300).contains(&s.status))
        .map(|s| s.at + s.took - cleared)
        .min();
    FaultReport {
        fault,
        requests: during.len(),
        failed,
        longest_wait: during.iter().map(|s| s.took).max().unwrap_or_default(),
        first_success_after,
    }
}

async fn duplicate_slots(db: &tokio_postgres::Client) -> Result<Vec<String>, String> {
    let rows = db
        .query(
            "SELECT schedule_id, scheduled_for, count(*) FROM runs WHERE schedule_id IS NOT NULL \
             GROUP BY 1, 2 HAVING count(*) > 1",
            &[],
        )
        .await
        .map_err(pg)?;
    Ok(rows
        .iter()
        .map(|r| {
            format!(
                "schedule {} slot {} fired {} times",
                r.get::<_, uuid::Uuid>(0),
                r.get::<_, OffsetDateTime>(1),
                r.get::<_, i64>(2)
            )
        })
        .collect())
}

/// Slots with no run, outside every fault window (plus 2 s either side),
/// whose previous run had finished before the slot (a run still active at a
/// slot rightly skips it).
async fn missed_slots(
    db: &tokio_postgres::Client,
    from: OffsetDateTime,
    windows: &[(OffsetDateTime, OffsetDateTime)],
) -> Result<Vec<String>, String> {
    let to: OffsetDateTime = db
        .query_one("SELECT max(scheduled_for) FROM runs WHERE schedule_id IS NOT NULL", &[])
        .await
        .map_err(pg)?
        .get::<_, Option<OffsetDateTime>>(0)
        .unwrap_or(from);
    let rows = db
        .query(
            "SELECT s.id, t.slot, \
                 (SELECT r.finished_at FROM runs r WHERE r.schedule_id = s.id AND r.scheduled_for < t.slot \
                  ORDER BY r.scheduled_for DESC LIMIT 1) AS previous_finished \
             FROM schedules s CROSS JOIN generate_series(date_trunc('second', $1::timestamptz) + interval '3 s', \
                 $2::timestamptz - interval '2 s', interval '1 second') t(slot) \
             WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.schedule_id = s.id AND r.scheduled_for = t.slot)",
            &[&from, &to],
        )
        .await
        .map_err(pg)?;
    let margin = time::Duration::seconds(2);
    Ok(rows
        .iter()
        .filter_map(|r| {
            let slot: OffsetDateTime = r.get(1);
            let previous_finished: Option<OffsetDateTime> = r.get(2);
            let in_fault = windows
                .iter()
                .any(|(start, end)| slot >= *start - margin && slot <= *end + margin);
            let skipped = previous_finished.is_none_or(|finished| finished > slot);
            (!in_fault && !skipped).then(|| format!("schedule {} slot {slot} never fired", r.get::<_, uuid::Uuid>(0)))
        })
        .collect())
}

async fn missing_pins(db: &tokio_postgres::Client, platform: &Platform) -> Result<Vec<String>, String> {
    let store = rat_versioning::s3::S3Store::connect(platform.moto.s3_config(&platform.bucket))
        .await
        .map_err(|e| format!("connecting to the store: {e}"))?;
    let rows = db
        .query(
            "SELECT v.version_number, p.name, pin.key, pin.value #>> '{}' \
             FROM pipeline_versions v JOIN pipelines p ON p.id = v.pipeline_id, \
             jsonb_each(v.published_versions) pin",
            &[],
        )
        .await
        .map_err(pg)?;
    let mut checked = HashSet::new();
    let mut missing = Vec::new();
    for row in &rows {
        let (key, version): (String, String) = (row.get(2), row.get(3));
        if !checked.insert((key.clone(), version.clone())) {
            continue;
        }
        let (Ok(object_key), Ok(version_id)) = (
            rat_domain::ObjectKey::parse(&key),
            rat_versioning::VersionId::new(version.clone()),
        ) else {
            missing.push(format!("{key}@{version}: not a key and version id"));
            continue;
        };
        if let Err(e) = store.get(&object_key, Some(&version_id)).await {
            missing.push(format!(
                "{} v{}: {key}@{version}: {e}",
                row.get::<_, String>(1),
                row.get::<_, i32>(0)
            ));
        }
    }
    Ok(missing)
}

async fn stuck_runs(db: &tokio_postgres::Client) -> Result<Vec<String>, String> {
    let rows = db
        .query(
            "SELECT id, status, lease_expires_at FROM runs WHERE status = 'running' \
             AND lease_expires_at < now() - make_interval(secs => $1::int)",
            &[&i32::try_from(REAPER_INTERVAL_SECS + 2 * REAPER_POLL_SECS + 5).unwrap_or(i32::MAX)],
        )
        .await
        .map_err(pg)?;
    Ok(rows
        .iter()
        .map(|r| {
            format!(
                "run {} still {} with its lease expired at {:?}",
                r.get::<_, uuid::Uuid>(0),
                r.get::<_, String>(1),
                r.get::<_, Option<OffsetDateTime>>(2)
            )
        })
        .collect())
}

async fn unaudited(db: &tokio_postgres::Client, samples: &[Sample]) -> Result<Vec<String>, String> {
    let ids: Vec<String> = samples.iter().filter_map(|s| s.mutated.clone()).collect();
    let rows = db
        .query(
            "SELECT sent.request_id FROM unnest($1::text[]) AS sent(request_id) \
             WHERE NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.details->>'request_id' = sent.request_id)",
            &[&ids],
        )
        .await
        .map_err(pg)?;
    Ok(rows
        .iter()
        .map(|r| format!("request {} answered 2xx with no audit row", r.get::<_, String>(0)))
        .collect())
}
