//! `reaper`: one reaper pass over 1,000,000 finished runs and 1,000,000
//! audit rows past retention (plus recent ones it must keep), run in-process
//! with the default [`PassPolicy`] while the release `rat-api` serves a read
//! load (paced at `--rate`, or a closed loop) and a concurrent writer inserts and updates rows of
//! the same tables. Prints rows/s per task, the writer's slowest statement
//! (the longest lock wait a writer saw), sampled lock waits, and the api's
//! p50/p99 during the pass against idle. Targets (design §6): ≥ 100,000
//! rows/s, no lock held > 200 ms, api p99 within 2× of idle.

use crate::release_api::ReleaseApi;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rat_service::Services;
use rat_service::reaper::{PassPolicy, run_pass};
use rat_testkit::TestDatabase;
use rat_testkit::dao::{PoolSettings, connect_dedicated, create_pool};
use rat_versioning::VersionedStore;
use time::OffsetDateTime;
use uuid::Uuid;

/// Arguments of the reaper benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The `rat-api` binary (release build).
    #[arg(long, env = "RAT_API_BIN")]
    api_bin: PathBuf,
    /// Finished runs past `runs_max_age_days`, spread over 100 pipelines.
    #[arg(long, default_value_t = 1_000_000)]
    runs: i64,
    /// Audit rows past `audit_log_max_age_days`.
    #[arg(long, default_value_t = 1_000_000)]
    audit: i64,
    /// Concurrent HTTP clients of the read load.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Requests per second of the read load, spread over the clients, each
    /// sending at a fixed pace and timed from when its request was due if
    /// it went out late (so a stall counts in full). The default is about a
    /// fifth of what this api serves on 2 cores. 0: a closed loop, each
    /// client sending its next request as soon as the last one answered
    /// (saturating the machine, which then measures the share of CPU left
    /// to the api more than its latency).
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seconds of the idle (no pass) measurement: about as long as the pass
    /// (10 s on 2 cores), so both p99s are taken over as many requests.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// Where the charts of the pass are written (rows/s and api p99 over
    /// the pass, per second).
    #[arg(long, default_value = "target/bench-reaper")]
    out: PathBuf,
}

/// Published pipelines the old runs are spread over.
const PIPELINES: i64 = 100;
/// Recent finished runs per pipeline, fewer than `runs_max_per_pipeline`
/// (100) so the pass must keep every one.
const RECENT_RUNS_PER_PIPELINE: i64 = 50;
/// Recent audit rows the pass must keep.
const RECENT_AUDIT: i64 = 10_000;
/// The pipeline the concurrent writer creates its runs in (not one of the
/// seeded hundred, so its own pruning does not blur the kept-rows check).
const WRITER_PIPELINE: &str = "reap_writer";
/// `application_name` of the reaper's connections, to find them in `pg_stat_activity`.
const REAPER_APP: &str = "rat-bench-reaper";
/// `application_name` of the concurrent writer's connection.
const WRITER_APP: &str = "rat-bench-writer";
/// The longest a pass may take before the benchmark gives up.
const PASS_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Phases a sample is attributed to, by when it started.
const WARMUP: u8 = 0;
const IDLE: u8 = 1;
const PASS: u8 = 2;
const STOP: u8 = 3;

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A percentile of sorted samples (NaN when there are none).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Seeds the pipelines, old and recent runs, old and recent audit rows in a
/// few set-based statements, then `VACUUM ANALYZE`s what it wrote.
async fn seed(db: &TestDatabase, args: &Args) -> anyhow::Result<()> {
    let client = db.client().await;
    // No statement timeout (the pool's is 30 s): on a busy machine one
    // set-based insert of 10⁶ rows can take longer.
    client.batch_execute("SET statement_timeout = 0").await?;
    // Published two years ago, each with its version 1, like a long-lived
    // pipeline whose runs reference that version.
    client
        .execute(
            "WITH n AS ( \
                 SELECT CASE WHEN g = 0 THEN $2 ELSE 'reap_' || lpad(g::text, 3, '0') END AS name \
                 FROM generate_series(0, $1::bigint) g \
             ), p AS ( \
                 INSERT INTO pipelines (namespace, layer, name, s3_path, published_at, published_versions, created_at) \
                 SELECT 'default', 'silver', name, 'default/pipelines/silver/' || name || '/', \
                        now() - interval '2 years', \
                        jsonb_build_object('default/pipelines/silver/' || name || '/pipeline.sql', 'v1', \
                                           'default/pipelines/silver/' || name || '/config.yaml', 'v1'), \
                        now() - interval '2 years' \
                 FROM n RETURNING id, published_versions \
             ) \
             INSERT INTO pipeline_versions (pipeline_id, version_number, message, published_versions, created_at) \
             SELECT id, 1, 'seeded', published_versions, now() - interval '2 years' FROM p",
            &[&PIPELINES, &WRITER_PIPELINE],
        )
        .await
        .context("seeding pipelines")?;

    // Old runs in creation order (as a real table fills), 30 s apart, the
    // newest one day beyond the default 90-day retention; every tenth failed.
    let started = Instant::now();
    client
        .execute(
            "WITH p AS ( \
                 SELECT row_number() OVER (ORDER BY name) - 1 AS n, id, published_versions \
                 FROM pipelines WHERE name <> $3 \
             ) \
             INSERT INTO runs (pipeline_id, status, trigger, started_at, finished_at, duration_ms, rows_written, \
                               error, created_at, version_number, published_versions) \
             SELECT p.id, CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'success' END, 'manual', \
                    t.at + interval '1 second', t.at + interval '61 seconds', 60000, g % 100000, \
                    CASE WHEN g % 10 = 0 THEN 'bench: a seeded failure' END, t.at, 1, p.published_versions \
             FROM generate_series(1, $1::bigint) g \
             CROSS JOIN LATERAL (SELECT now() - interval '91 days' - ($1 - g) * interval '30 seconds' AS at) t \
             JOIN p ON p.n = g % $2",
            &[&args.runs, &PIPELINES, &WRITER_PIPELINE],
        )
        .await
        .context("seeding old runs")?;
    // Recent runs, 12 h apart over the last 25 days: kept by age and by count.
    client
        .execute(
            "INSERT INTO runs (pipeline_id, status, trigger, started_at, finished_at, duration_ms, rows_written, \
                               created_at, version_number, published_versions) \
             SELECT p.id, 'success', 'manual', t.at + interval '1 second', t.at + interval '61 seconds', 60000, 0, \
                    t.at, 1, p.published_versions \
             FROM pipelines p CROSS JOIN generate_series(1, $1::bigint) g \
             CROSS JOIN LATERAL (SELECT now() - interval '1 hour' - g * interval '12 hours' AS at) t \
             WHERE p.name <> $2",
            &[&RECENT_RUNS_PER_PIPELINE, &WRITER_PIPELINE],
        )
        .await
        .context("seeding recent runs")?;
    let runs_secs = started.elapsed().as_secs_f64();

    // Old audit rows 15 s apart, the newest one day beyond 365 days; recent
    // ones 30 min apart over the last 208 days.
    let started = Instant::now();
    client
        .execute(
            "INSERT INTO audit_log (actor, action, object_type, object_id, details, timestamp) \
             SELECT 'bench-seed', (ARRAY['pipeline.create', 'pipeline.publish', 'run.create', 'schedule.update', \
                                         'settings.update'])[1 + g % 5], \
                    'pipeline', gen_random_uuid(), jsonb_build_object('n', g), \
                    now() - interval '366 days' - ($1 - g) * interval '15 seconds' \
             FROM generate_series(1, $1::bigint) g",
            &[&args.audit],
        )
        .await
        .context("seeding old audit rows")?;
    client
        .execute(
            "INSERT INTO audit_log (actor, action, object_type, object_id, details, timestamp) \
             SELECT 'bench-seed', 'run.create', 'run', gen_random_uuid(), jsonb_build_object('n', g), \
                    now() - g * interval '30 minutes' \
             FROM generate_series(1, $1::bigint) g",
            &[&RECENT_AUDIT],
        )
        .await
        .context("seeding recent audit rows")?;
    let audit_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let checkpoint = crate::settle(&client).await?;
    println!(
        "seeded {} pipelines, {} old + {} recent runs in {runs_secs:.1} s, {} old + {} recent audit rows in \
         {audit_secs:.1} s; VACUUM ANALYZE{} {:.1} s",
        PIPELINES + 1,
        grouped(args.runs as u64),
        grouped((PIPELINES * RECENT_RUNS_PER_PIPELINE) as u64),
        grouped(args.audit as u64),
        grouped(RECENT_AUDIT as u64),
        if checkpoint { " + CHECKPOINT" } else { "" },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A task on a thread and current-thread runtime of its own, so its timings
/// (and those of the load beside it) never include a wait for a worker
/// thread of this process busy with other futures.
struct OwnRuntime<T> {
    name: &'static str,
    thread: std::thread::JoinHandle<anyhow::Result<T>>,
}

impl<T: Send + 'static> OwnRuntime<T> {
    /// Runs the future `make` returns on a new thread.
    fn spawn<F, Fut>(name: &'static str, make: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(make())
        });
        OwnRuntime { name, thread }
    }

    /// Its answer, waited for without blocking this runtime.
    async fn join(self) -> anyhow::Result<T> {
        let name = self.name;
        tokio::task::spawn_blocking(move || self.thread.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the {name} thread panicked"))?
    }
}

/// One HTTP client of the read load over its own keep-alive connection:
/// each request's latency (ms) under the phase it started in. With a
/// `pace`, one request is due every `pace` and its latency runs from when it
/// was due when the previous answer came after that (a stall counts in
/// full), else from when it was sent; without, a closed loop.
async fn client_loop(
    url: String,
    phase: Arc<AtomicU8>,
    deadline: Instant,
    pace: Option<Duration>,
    origin: Instant,
) -> anyhow::Result<([Vec<f64>; 3], Vec<(f64, f64)>)> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
    let mut samples: [Vec<f64>; 3] = Default::default();
    // (seconds since `origin` when sent, latency in ms), every phase.
    let mut timeline = Vec::new();
    let mut previous_done = Instant::now();
    let mut ticks = pace.map(|pace| {
        let mut ticks = tokio::time::interval(pace);
        // A late request is sent at once and the schedule kept, so a stall
        // shows as the queue of requests it delayed.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        ticks
    });
    loop {
        let at = phase.load(Ordering::Relaxed);
        if at == STOP || Instant::now() > deadline {
            return Ok((samples, timeline));
        }
        let started = match &mut ticks {
            Some(ticks) => {
                let due = ticks.tick().await.into_std();
                // Timed from when it was due if the previous answer made it
                // late; otherwise from now (the timer's own lateness, up to a
                // millisecond, is not the api's).
                if previous_done > due { due } else { Instant::now() }
            }
            None => Instant::now(),
        };
        let response = http.get(&url).send().await?;
        let status = response.status();
        response.bytes().await?;
        anyhow::ensure!(status.is_success(), "GET {url} answered {status}");
        let latency = started.elapsed().as_secs_f64() * 1000.0;
        samples[usize::from(at)].push(latency);
        timeline.push((started.saturating_duration_since(origin).as_secs_f64(), latency));
        previous_done = Instant::now();
    }
}

/// What the writer's statements are, in loop order.
const WRITER_STATEMENTS: [&str; 4] = [
    "INSERT audit_log",
    "INSERT runs",
    "UPDATE runs pending->running",
    "UPDATE runs running->success",
];

/// The concurrent writer's statement latencies of one phase.
#[derive(Debug, Default)]
struct WriterPhase {
    /// Every statement's latency (ms).
    latencies: Vec<f64>,
    /// The slowest statement: its latency and which of [`WRITER_STATEMENTS`].
    slowest: (f64, usize),
}

/// The concurrent writer, on its own connection: a loop of one audit insert,
/// one run insert and the run's two status updates (through the same
/// `WHERE status = …` guard as the api), each statement timed.
async fn writer_loop(
    url: String,
    pipeline_id: Uuid,
    snapshot: serde_json::Value,
    phase: Arc<AtomicU8>,
    deadline: Instant,
) -> anyhow::Result<[WriterPhase; 3]> {
    let client = connect_dedicated(&url.as_str().into(), WRITER_APP).await?;
    let audit = client
        .prepare(
            "INSERT INTO audit_log (actor, action, object_type, object_id, details) \
             VALUES ('bench-writer', 'run.create', 'run', $1, '{}')",
        )
        .await?;
    let insert_run = client
        .prepare(
            "INSERT INTO runs (pipeline_id, trigger, version_number, published_versions) \
             VALUES ($1, 'manual', 1, $2) RETURNING id",
        )
        .await?;
    let start_run = client
        .prepare(
            "UPDATE runs SET status = 'running', started_at = now(), runner_id = 'bench-writer', \
                 heartbeat_at = now(), lease_expires_at = now() + interval '5 minutes' \
             WHERE id = $1 AND status = 'pending'",
        )
        .await?;
    let finish_run = client
        .prepare(
            "UPDATE runs SET status = 'success', finished_at = now(), duration_ms = 1, rows_written = 0, \
                 lease_expires_at = NULL \
             WHERE id = $1 AND status = 'running'",
        )
        .await?;
    let mut phases: [WriterPhase; 3] = Default::default();
    let mut record = |at: u8, statement: usize, started: Instant| {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let phase = &mut phases[usize::from(at)];
        phase.latencies.push(ms);
        if ms > phase.slowest.0 {
            phase.slowest = (ms, statement);
        }
    };
    loop {
        let at = phase.load(Ordering::Relaxed);
        if at == STOP || Instant::now() > deadline {
            return Ok(phases);
        }
        let started = Instant::now();
        client.execute(&audit, &[&Uuid::new_v4()]).await?;
        record(at, 0, started);
        let started = Instant::now();
        let run_id: Uuid = client.query_one(&insert_run, &[&pipeline_id, &snapshot]).await?.get(0);
        record(at, 1, started);
        let started = Instant::now();
        let moved = client.execute(&start_run, &[&run_id]).await?;
        record(at, 2, started);
        anyhow::ensure!(moved == 1, "the writer's run {run_id} was not pending");
        let started = Instant::now();
        let moved = client.execute(&finish_run, &[&run_id]).await?;
        record(at, 3, started);
        anyhow::ensure!(moved == 1, "the writer's run {run_id} was not running");
        // A short pause: the writer stands for a trickle of api writes, not
        // a second saturating load on two cores.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A reaper statement seen running for longer than [`SLOW_STATEMENT_MS`],
/// or a writer statement for longer than [`SLOW_WRITE_MS`].
#[derive(Debug, Default, Clone)]
struct Incident {
    /// Whose statement: the reaper's or the writer's.
    who: String,
    /// How long it had run at the last sample that saw it (ms).
    ms: f64,
    /// The statement.
    query: String,
    /// Its wait events at the samples that saw it (`CPU`: none).
    waits: BTreeSet<String>,
    /// The oldest snapshot held by another session at the last such sample.
    oldest_snapshot: String,
}

/// Reaper statements longer than this are recorded one by one.
const SLOW_STATEMENT_MS: f64 = 200.0;
/// Writer statements longer than this (they take about a millisecond) too.
const SLOW_WRITE_MS: f64 = 50.0;

/// What the `pg_stat_activity` sampler saw in one phase.
#[derive(Debug, Default)]
struct Sampled {
    /// The longest wait on a heavyweight lock seen (ms) and who waited.
    lock_wait: (f64, String),
    /// The longest-running reaper statement seen (ms) and its text.
    reaper_statement: (f64, String),
    /// How often each wait event (`CPU`: none) was seen on an active reaper session.
    reaper_waits: BTreeMap<String, u64>,
    /// The oldest snapshot (transaction age, ms) any other session held, and whose.
    oldest_snapshot: (f64, String),
    /// Slow reaper and writer statements, by backend and start time.
    incidents: BTreeMap<(i32, String), Incident>,
    /// Samples taken.
    samples: u64,
}

/// Polls `pg_stat_activity` every 20 ms: lock waits of any session, how long
/// the reaper's current statement (one batch, one transaction) has run and
/// what it waits on, and the oldest snapshot held meanwhile (one keeps
/// deleted index entries from being marked dead, so later batches walk them).
async fn sampler_loop(url: String, phase: Arc<AtomicU8>, deadline: Instant) -> anyhow::Result<[Sampled; 3]> {
    let client = connect_dedicated(&url.as_str().into(), "rat-bench-sampler").await?;
    let query = client
        .prepare(
            "SELECT pid, coalesce(nullif(application_name, ''), backend_type), coalesce(state, ''), \
                    coalesce(wait_event_type || ':' || wait_event, 'CPU'), \
                    coalesce(extract(epoch FROM clock_timestamp() - query_start)::float8 * 1000, 0), \
                    coalesce(extract(epoch FROM clock_timestamp() - xact_start)::float8 * 1000, 0), \
                    backend_xmin IS NOT NULL, left(regexp_replace(query, '\\s+', ' ', 'g'), 100), \
                    coalesce(query_start::text, '') \
             FROM pg_stat_activity \
             WHERE (datname = current_database() OR backend_type = 'autovacuum worker') AND pid <> pg_backend_pid()",
        )
        .await?;
    let mut sampled: [Sampled; 3] = Default::default();
    loop {
        let at = phase.load(Ordering::Relaxed);
        if at == STOP || Instant::now() > deadline {
            return Ok(sampled);
        }
        let rows = client.query(&query, &[]).await?;
        let slot = &mut sampled[usize::from(at)];
        slot.samples += 1;
        // The oldest snapshot of a session other than the reaper at this instant.
        let mut oldest = (0.0, String::new());
        for row in &rows {
            let (who, state, wait): (String, String, String) = (row.get(1), row.get(2), row.get(3));
            let (xact_ms, has_xmin, text): (f64, bool, String) = (row.get(5), row.get(6), row.get(7));
            if has_xmin && who != REAPER_APP && xact_ms > oldest.0 {
                oldest = (xact_ms, format!("{xact_ms:.0} ms, {who} ({state}): {text}"));
            }
            if wait.starts_with("Lock:") {
                let waited: f64 = row.get(4);
                if waited > slot.lock_wait.0 {
                    slot.lock_wait = (waited, format!("{who} on {wait}: {text}"));
                }
            }
        }
        if oldest.0 > slot.oldest_snapshot.0 {
            slot.oldest_snapshot = oldest.clone();
        }
        for row in rows.iter().filter(|r| r.get::<_, &str>(2) == "active") {
            let (pid, who, wait, running, text, started): (i32, &str, String, f64, String, String) =
                (row.get(0), row.get(1), row.get(3), row.get(4), row.get(7), row.get(8));
            let threshold = match who {
                REAPER_APP => {
                    *slot.reaper_waits.entry(wait.clone()).or_default() += 1;
                    if running > slot.reaper_statement.0 {
                        slot.reaper_statement = (running, text.clone());
                    }
                    SLOW_STATEMENT_MS
                }
                WRITER_APP => SLOW_WRITE_MS,
                _ => continue,
            };
            if running > threshold {
                let incident = slot.incidents.entry((pid, started)).or_default();
                incident.who = who.to_owned();
                incident.ms = running;
                incident.query = text;
                incident.waits.insert(wait);
                incident.oldest_snapshot = oldest.1.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Jiffies of all cores from `/proc/stat`: user+nice, system+irq+softirq,
/// iowait, steal, idle (`None` off Linux).
fn cpu_times() -> Option<[u64; 5]> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    Some([
        field(0) + field(1),
        field(2) + field(5) + field(6),
        field(4),
        field(7),
        field(3),
    ])
}

/// The CPU split between two [`cpu_times`] readings, as a sentence.
fn cpu_split(before: Option<[u64; 5]>, after: Option<[u64; 5]>) -> String {
    let (Some(before), Some(after)) = (before, after) else {
        return "unknown".to_owned();
    };
    let delta: Vec<f64> = before
        .iter()
        .zip(after)
        .map(|(b, a)| a.saturating_sub(*b) as f64)
        .collect();
    let total: f64 = delta.iter().sum::<f64>().max(1.0);
    format!(
        "user {:.0}%, system {:.0}%, iowait {:.0}%, steal {:.0}%, idle {:.0}%",
        delta[0] / total * 100.0,
        delta[1] / total * 100.0,
        delta[2] / total * 100.0,
        delta[3] / total * 100.0,
        delta[4] / total * 100.0
    )
}

/// Counts of seeded rows the pass had to delete (old) or keep (recent).
#[derive(Debug)]
struct Remaining {
    old_runs: i64,
    recent_runs: i64,
    old_audit: i64,
    recent_audit: i64,
    writer_runs: i64,
    writer_audit: i64,
}

async fn remaining(db: &TestDatabase, now: OffsetDateTime) -> anyhow::Result<Remaining> {
    let client = db.client().await;
    let runs = client
        .query_one(
            "SELECT count(*) FILTER (WHERE r.created_at < $1::timestamptz - interval '90 days'), \
                    count(*) FILTER (WHERE r.created_at >= $1::timestamptz - interval '90 days' AND p.name <> $2), \
                    count(*) FILTER (WHERE p.name = $2) \
             FROM runs r JOIN pipelines p ON p.id = r.pipeline_id",
            &[&now, &WRITER_PIPELINE],
        )
        .await?;
    let audit = client
        .query_one(
            "SELECT count(*) FILTER (WHERE timestamp < $1::timestamptz - interval '365 days'), \
                    count(*) FILTER (WHERE timestamp >= $1::timestamptz - interval '365 days' AND actor = 'bench-seed'), \
                    count(*) FILTER (WHERE actor = 'bench-writer') \
             FROM audit_log",
            &[&now],
        )
        .await?;
    Ok(Remaining {
        old_runs: runs.get(0),
        recent_runs: runs.get(1),
        writer_runs: runs.get(2),
        old_audit: audit.get(0),
        recent_audit: audit.get(1),
        writer_audit: audit.get(2),
    })
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.api_bin.is_file(),
        "{} is not a file (cargo xtask bench reaper builds it)",
        args.api_bin.display()
    );
    anyhow::ensure!(
        args.runs >= 1 && args.audit >= 1,
        "--runs and --audit must be at least 1"
    );
    anyhow::ensure!(args.clients >= 1, "--clients must be at least 1");
    anyhow::ensure!(
        args.rate.is_finite() && args.rate >= 0.0,
        "--rate must be a number of requests per second (0 for a closed loop)"
    );

    let db = TestDatabase::new().await;
    let seed_started = Instant::now();
    seed(&db, &args).await?;
    println!("seeding took {:.1} s in all", seed_started.elapsed().as_secs_f64());

    let (writer_pipeline, snapshot): (Uuid, serde_json::Value) = {
        let row = db
            .client()
            .await
            .query_one(
                "SELECT id, published_versions FROM pipelines WHERE name = $1",
                &[&WRITER_PIPELINE],
            )
            .await?;
        (row.get(0), row.get(1))
    };

    let store_dir = tempfile::Builder::new().prefix("rat-bench-reaper-").tempdir()?;
    let api = ReleaseApi::start(
        &args.api_bin,
        db.url(),
        store_dir.path(),
        (args.clients * 2).max(4),
        &[],
    )
    .await?;
    let base = api.base.clone();
    let url = format!("{base}/api/v1/pipelines/default/silver/reap_001");
    let check = reqwest::get(&url).await?;
    anyhow::ensure!(check.status().is_success(), "GET {url} answered {}", check.status());

    // Every loop stops at STOP, and in any case by this deadline.
    let deadline = Instant::now() + Duration::from_secs(args.idle_secs + 60) + PASS_LIMIT;
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let origin = Instant::now();
    let pace = (args.rate > 0.0).then(|| Duration::from_secs_f64(args.clients as f64 / args.rate));
    let clients: Vec<_> = (0..args.clients)
        .map(|_| tokio::spawn(client_loop(url.clone(), phase.clone(), deadline, pace, origin)))
        .collect();
    // The writer runs on a runtime of its own, so its timings are the
    // database's answer time, not a wait for a busy worker thread.
    let writer = {
        let (db_url, phase) = (db.url().to_owned(), phase.clone());
        OwnRuntime::spawn("writer", move || {
            writer_loop(db_url, writer_pipeline, snapshot, phase, deadline)
        })
    };
    let sampler = tokio::spawn(sampler_loop(db.url().to_owned(), phase.clone(), deadline));

    tokio::time::sleep(Duration::from_secs(1)).await;
    phase.store(IDLE, Ordering::Relaxed);
    let cpu_idle_start = cpu_times();
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let cpu_pass_start = cpu_times();

    let policy = PassPolicy::default();
    let now = OffsetDateTime::now_utc();
    phase.store(PASS, Ordering::Relaxed);
    let pass_started = Instant::now();
    let deletions = tokio::spawn(deletion_loop(db.url().to_owned(), phase.clone(), deadline, origin));
    // The pass runs on a runtime of its own, as `rat-reaper` is a process of
    // its own: the load's timings never include a worker thread of this
    // process busy with the pass's futures.
    let pass = {
        let (db_url, store_path, policy) = (db.url().to_owned(), store_dir.path().to_path_buf(), policy.clone());
        OwnRuntime::spawn("pass", move || async move {
            // The reaper's own pool, named so the sampler can tell its
            // statements apart.
            let pool = create_pool(&PoolSettings {
                max_size: 4,
                application_name: REAPER_APP.to_owned(),
                ..PoolSettings::new(db_url.as_str())
            })?;
            let store = rat_versioning::fs::FsStore::open(store_path).await?;
            let services = Services::new(pool, Arc::new(store) as Arc<dyn VersionedStore>);
            let (_lost_sender, lost) = tokio::sync::watch::channel(false);
            anyhow::Ok(tokio::time::timeout(PASS_LIMIT, run_pass(&services, now, &policy, &lost)).await)
        })
    };
    let outcome = pass.join().await?;
    let pass_secs = pass_started.elapsed().as_secs_f64();
    phase.store(STOP, Ordering::Relaxed);
    let cpu_pass_end = cpu_times();

    let mut load: [Vec<f64>; 3] = Default::default();
    let mut timeline = Vec::new();
    for client in clients {
        let (samples, mine) = client.await??;
        for (all, mine) in load.iter_mut().zip(samples) {
            all.extend(mine);
        }
        timeline.extend(mine);
    }
    let deleted_over_time = deletions.await??;
    let pass_from = pass_started.saturating_duration_since(origin).as_secs_f64();
    let pass_to = pass_from + pass_started.elapsed().as_secs_f64();
    for samples in &mut load {
        samples.sort_by(f64::total_cmp);
    }
    let mut writes = writer.join().await?;
    for written in &mut writes {
        written.latencies.sort_by(f64::total_cmp);
    }
    let sampled = sampler.await??;
    drop(api);

    let report = outcome
        .map_err(|_| anyhow::anyhow!("the pass did not end within {} s", PASS_LIMIT.as_secs()))?
        .context("reaper pass")?;

    println!(
        "reaper pass (batch_size {}, max_batches_per_task {}): {pass_secs:.2} s{}",
        policy.batch_size,
        policy.max_batches_per_task,
        if report.interrupted { ", interrupted" } else { "" }
    );
    for task in &report.tasks {
        let secs = task.duration.as_secs_f64();
        let rate = if task.rows > 0 {
            format!(" = {} rows/s", grouped((task.rows as f64 / secs) as u64))
        } else {
            String::new()
        };
        println!(
            "  {:<14}{:>10} rows in {secs:>7.3} s{rate}{}",
            task.task,
            grouped(task.rows),
            task.error
                .as_deref()
                .map(|e| format!(" FAILED: {e}"))
                .unwrap_or_default()
        );
    }
    let task_rows = |name: &str| report.tasks.iter().find(|t| t.task == name).map_or(0, |t| t.rows);
    let deleted = task_rows("runs") + task_rows("audit");
    println!(
        "  runs + audit: {} rows in {pass_secs:.2} s = {} rows/s over the whole pass (target >= 100,000 rows/s)",
        grouped(deleted),
        grouped((deleted as f64 / pass_secs) as u64)
    );

    let left = remaining(&db, now).await?;
    println!(
        "after the pass: old runs left {}, recent seeded runs {}/{}, writer's runs {} (its pipeline \
         was trimmed to runs_max_per_pipeline once, after the age pass; it kept writing); old audit rows left {}, recent seeded {}/{}, writer's {}",
        left.old_runs,
        grouped(left.recent_runs as u64),
        grouped((PIPELINES * RECENT_RUNS_PER_PIPELINE) as u64),
        grouped(left.writer_runs as u64),
        left.old_audit,
        grouped(left.recent_audit as u64),
        grouped(RECENT_AUDIT as u64),
        grouped(left.writer_audit as u64),
    );

    let writer_line = |name: &str, phase: &WriterPhase| {
        let l = &phase.latencies;
        println!(
            "  {name}: {} statements, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms ({})",
            grouped(l.len() as u64),
            percentile(l, 0.5),
            percentile(l, 0.99),
            phase.slowest.0,
            WRITER_STATEMENTS[phase.slowest.1]
        );
    };
    println!("concurrent writer (own connection; INSERT audit, INSERT run, 2 status UPDATEs, 2 ms pause):");
    writer_line("idle", &writes[usize::from(IDLE)]);
    writer_line("pass", &writes[usize::from(PASS)]);
    println!(
        "  longest single statement during the pass: {:.1} ms (target < 200 ms; idle {:.1} ms)",
        writes[usize::from(PASS)].slowest.0,
        writes[usize::from(IDLE)].slowest.0
    );
    let (idle_s, pass_s) = (&sampled[usize::from(IDLE)], &sampled[usize::from(PASS)]);
    println!(
        "pg_stat_activity every 20 ms ({} samples idle, {} during the pass):",
        idle_s.samples, pass_s.samples
    );
    let waited = |s: &Sampled| {
        if s.lock_wait.0 > 0.0 {
            format!("{:.1} ms ({})", s.lock_wait.0, s.lock_wait.1)
        } else {
            "none seen".to_owned()
        }
    };
    println!(
        "  longest heavyweight-lock wait: idle {}, pass {}",
        waited(idle_s),
        waited(pass_s)
    );
    println!(
        "  longest reaper statement (one batch = one transaction, so its locks' hold time): {:.1} ms \
         (target < 200 ms): {}",
        pass_s.reaper_statement.0, pass_s.reaper_statement.1
    );
    let total_waits: u64 = pass_s.reaper_waits.values().sum::<u64>().max(1);
    let mut waits: Vec<(&String, &u64)> = pass_s.reaper_waits.iter().collect();
    waits.sort_by(|a, b| b.1.cmp(a.1));
    println!(
        "  reaper sessions' wait events when active: {}",
        waits
            .iter()
            .take(6)
            .map(|(wait, n)| format!("{wait} {:.0}%", **n as f64 / total_waits as f64 * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  oldest snapshot held by another session: idle {}; pass {}",
        if idle_s.oldest_snapshot.1.is_empty() {
            "none"
        } else {
            &idle_s.oldest_snapshot.1
        },
        if pass_s.oldest_snapshot.1.is_empty() {
            "none"
        } else {
            &pass_s.oldest_snapshot.1
        }
    );
    for (who, threshold) in [(REAPER_APP, SLOW_STATEMENT_MS), (WRITER_APP, SLOW_WRITE_MS)] {
        let mut incidents: Vec<&Incident> = pass_s.incidents.values().filter(|i| i.who == who).collect();
        incidents.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        println!(
            "  {who} statements seen running > {threshold:.0} ms: {}{}",
            incidents.len(),
            if incidents.is_empty() { "" } else { ", the longest:" }
        );
        for incident in incidents.iter().take(3) {
            println!(
                "    >= {:.0} ms, waits {}: {}\n      oldest other snapshot then: {}",
                incident.ms,
                incident.waits.iter().cloned().collect::<Vec<_>>().join("+"),
                incident.query,
                if incident.oldest_snapshot.is_empty() {
                    "none"
                } else {
                    &incident.oldest_snapshot
                }
            );
        }
    }
    println!(
        "cpu (all cores): idle phase {}; pass {}",
        cpu_split(cpu_idle_start, cpu_pass_start),
        cpu_split(cpu_pass_start, cpu_pass_end)
    );

    let (idle, pass) = (&load[usize::from(IDLE)], &load[usize::from(PASS)]);
    let idle_secs = args.idle_secs as f64;
    if args.rate > 0.0 {
        println!(
            "api GET /api/v1/pipelines/default/silver/reap_001, {:.0} requests/s paced over {} clients (keep-alive), \
             latency from when each request was due:",
            args.rate, args.clients
        );
    } else {
        println!(
            "api GET /api/v1/pipelines/default/silver/reap_001, {} closed-loop clients (keep-alive):",
            args.clients
        );
    }
    println!(
        "  idle: {} requests, {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
        grouped(idle.len() as u64),
        idle.len() as f64 / idle_secs,
        percentile(idle, 0.5),
        percentile(idle, 0.99),
        idle.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  pass: {} requests, {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
        grouped(pass.len() as u64),
        pass.len() as f64 / pass_secs,
        percentile(pass, 0.5),
        percentile(pass, 0.99),
        pass.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  p99 during the pass / idle: {:.2}x (target <= 2x)",
        percentile(pass, 0.99) / percentile(idle, 0.99)
    );
    write_charts(
        &args.out,
        &timeline,
        &deleted_over_time,
        pass_from,
        pass_to,
        percentile(idle, 0.99),
    )?;

    if let Some(failed) = report.tasks.iter().find(|t| t.error.is_some()) {
        bail!("reaper task {} failed: the figures are not a full pass", failed.task);
    }
    anyhow::ensure!(
        left.old_runs == 0 && left.old_audit == 0,
        "the pass left {} old runs and {} old audit rows: the rates are not of a complete pass",
        left.old_runs,
        left.old_audit
    );
    anyhow::ensure!(
        left.recent_runs == PIPELINES * RECENT_RUNS_PER_PIPELINE && left.recent_audit == RECENT_AUDIT,
        "the pass deleted rows within retention: {} recent runs and {} recent audit rows left",
        left.recent_runs,
        left.recent_audit
    );
    Ok(())
}

/// Rows deleted from `runs` and `audit_log` so far (the statistics
/// collector's counter), every second from the start of the pass until it
/// ends: (seconds since `origin`, rows).
async fn deletion_loop(
    url: String,
    phase: Arc<AtomicU8>,
    deadline: Instant,
    origin: Instant,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let client = connect_dedicated(&url.as_str().into(), "rat-bench-deletions").await?;
    let mut points = Vec::new();
    let mut base = None;
    loop {
        let at = origin.elapsed().as_secs_f64();
        // Statistics of other sessions' transactions, not this one's snapshot.
        client.batch_execute("SELECT pg_stat_clear_snapshot()").await?;
        let row = client
            .query_one(
                "SELECT coalesce(sum(n_tup_del), 0)::float8 FROM pg_stat_user_tables \
                 WHERE relname IN ('runs', 'audit_log')",
                &[],
            )
            .await?;
        let deleted: f64 = row.get(0);
        let base = *base.get_or_insert(deleted);
        points.push((at, deleted - base));
        if phase.load(Ordering::Relaxed) == STOP || Instant::now() > deadline {
            return Ok(points);
        }
        // Backends flush their counters at most once a second (Postgres 15).
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Per whole second of the pass: rows deleted per second and the api's p99;
/// written as two SVG charts in `out`.
fn write_charts(
    out: &std::path::Path,
    timeline: &[(f64, f64)],
    deleted: &[(f64, f64)],
    pass_from: f64,
    pass_to: f64,
    idle_p99: f64,
) -> anyhow::Result<()> {
    use rat_testkit::chart::{Chart, Series};
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let rates: Vec<(f64, f64)> = deleted
        .windows(2)
        .map(|w| {
            (
                (w[1].0 - pass_from).max(0.0),
                (w[1].1 - w[0].1) / (w[1].0 - w[0].0).max(1e-3),
            )
        })
        .collect();
    Chart {
        title: "reaper pass: runs + audit rows deleted per second",
        x_label: "seconds into the pass",
        y_label: "rows/s",
        x_log: false,
        y_log: false,
        series: &[
            Series {
                name: "rows/s (1 s samples)".to_owned(),
                points: rates,
            },
            Series {
                name: "target 100,000 rows/s".to_owned(),
                points: vec![(0.0, 100_000.0), ((pass_to - pass_from).max(1.0), 100_000.0)],
            },
        ],
    }
    .write_svg(&out.join("reaper-rows.svg"))?;
    let mut per_second: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (at, latency) in timeline {
        if *at >= pass_from - 5.0 && *at <= pass_to {
            per_second
                .entry((at - pass_from).floor() as i64)
                .or_default()
                .push(*latency);
        }
    }
    let p99: Vec<(f64, f64)> = per_second
        .into_iter()
        .map(|(second, mut samples)| {
            samples.sort_by(f64::total_cmp);
            (second as f64, percentile(&samples, 0.99))
        })
        .collect();
    let span = (-5.0, (pass_to - pass_from).max(1.0));
    Chart {
        title: "api p99 per second, before (< 0) and during the reaper pass",
        x_label: "seconds into the pass",
        y_label: "p99 latency (ms)",
        x_log: false,
        y_log: false,
        series: &[
            Series {
                name: "api p99".to_owned(),
                points: p99,
            },
            Series {
                name: "2x idle p99 (target)".to_owned(),
                points: vec![(span.0, 2.0 * idle_p99), (span.1, 2.0 * idle_p99)],
            },
        ],
    }
    .write_svg(&out.join("reaper-api-p99.svg"))?;
    println!("charts in {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(grouped(12_345_678), "12,345,678");
    }

    #[test]
    fn percentiles_of_sorted_samples() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.5), 51.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
