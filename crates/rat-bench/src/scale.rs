//! `scale`: whether the api's reads stay flat as the data grows (issue 19).
//!
//! Each size (runs: 10⁵, 10⁶, 10⁷ by default) is seeded into a database of
//! its own, set-based in SQL (`generate_series`, secondary indexes dropped
//! during the load and rebuilt after it, sequential ids), with in proportion:
//! pipelines (N/100, 10³ → 10⁵) each with one schedule and one quality test,
//! N audit entries over 400 days, N/10 quality results, and N/10 run-log
//! entries on ten long runs. Then the release `rat-api` is started on it and
//! each read is timed, one request at a time, from this process: p50/p99 per
//! read per size, deep pages by `offset` beside the same depth by `cursor`.
//! The scheduler is timed separately with 10⁴ and 10⁵ schedules due at one
//! instant. Figures go to stdout and to `--out` (text and SVG charts).
//!
//! Targets (issue 19): every read's p99 at the largest size within 2× of the
//! smallest, and under 20 ms at 10⁷ runs. Reported, never asserted.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rat_domain::Cursor;
use rat_testkit::TestDatabase;
use rat_testkit::chart::{Chart, Series};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::release_api::ReleaseApi;

/// Arguments of the scale benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The `rat-api` binary (release build).
    #[arg(long, env = "RAT_API_BIN")]
    api_bin: PathBuf,
    /// The `rat-scheduler` binary (release build).
    #[arg(long, env = "RAT_SCHEDULER_BIN")]
    scheduler_bin: PathBuf,
    /// Sizes in runs, comma-separated (`1e5` notation accepted).
    #[arg(long, default_value = "1e5,1e6,1e7", value_delimiter = ',')]
    sizes: Vec<String>,
    /// Schedule counts of the scheduler burst, comma-separated.
    #[arg(long, default_value = "1e4,1e5", value_delimiter = ',')]
    schedules: Vec<String>,
    /// Timed requests per read and round (fewer when `--read-secs` runs out
    /// first).
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Rounds over every read at each size; a read's figures are those of
    /// its median round by p99, so that one stall of the machine (a
    /// checkpoint, a neighbour's burst) during one read's turn does not
    /// stand for that read. Every round's p99 is in the report.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=15))]
    rounds: u32,
    /// Most seconds spent timing one read in one round at one size (at
    /// least 10 requests).
    #[arg(long, default_value_t = 15)]
    read_secs: u64,
    /// Where the text report and the SVG charts are written.
    #[arg(long, default_value = "target/bench-scale")]
    out: PathBuf,
}

/// `1e5`, `100000` or `100_000` as a count.
fn parse_count(text: &str) -> anyhow::Result<i64> {
    let text = text.trim().replace('_', "");
    let value: f64 = text.parse().with_context(|| format!("{text:?} is not a count"))?;
    anyhow::ensure!((1.0..=1e9).contains(&value), "{text} is out of range (1..1e9)");
    Ok(value as i64)
}

/// What one size holds.
#[derive(Debug, Clone, Copy)]
struct Volume {
    runs: i64,
    pipelines: i64,
    audit: i64,
    quality_results: i64,
    long_runs: i64,
    log_entries_per_long_run: i64,
}

impl Volume {
    fn of(runs: i64) -> Volume {
        Volume {
            runs,
            pipelines: (runs / 100).clamp(1_000, 100_000),
            audit: runs,
            quality_results: runs / 10,
            long_runs: 10,
            log_entries_per_long_run: (runs / 100).max(100),
        }
    }
}

/// A UUID made of a table tag and a row number: sequential within a table,
/// so the primary key grows at its right edge while seeding.
const UUID_SQL: &str =
    "(lpad(to_hex($TAG::int), 8, '0') || '-0000-4000-8000-' || lpad(to_hex($N::bigint), 12, '0'))::uuid";

fn uuid_sql(tag: u32, n: &str) -> String {
    UUID_SQL.replace("$TAG", &tag.to_string()).replace("$N", n)
}

fn seq_uuid(tag: u32, n: i64) -> Uuid {
    Uuid::parse_str(&format!("{tag:08x}-0000-4000-8000-{n:012x}")).expect("a well-formed uuid")
}

const PIPELINE_TAG: u32 = 1;
const RUN_TAG: u32 = 2;
const TEST_TAG: u32 = 3;

/// The seeded time span of runs (90 days, oldest first) ends here.
fn seed_now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).expect("valid")
}

/// Runs `statement` on `table` with its secondary indexes (those that are not
/// constraints) dropped, then rebuilds them: one sorted build each instead of
/// millions of random insertions.
async fn load(client: &rat_testkit::dao::PooledClient, table: &str, statement: &str) -> anyhow::Result<()> {
    let indexes: Vec<(String, String)> = client
        .query(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1 \
             AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass)",
            &[&table],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for (name, _) in &indexes {
        client.batch_execute(&format!("DROP INDEX {name}")).await?;
    }
    client
        .batch_execute(statement)
        .await
        .with_context(|| format!("loading {table}"))?;
    for (_, definition) in &indexes {
        client.batch_execute(definition).await?;
    }
    Ok(())
}

/// Seeds `volume` into the database of `client`, with a progress bar.
async fn seed(db: &TestDatabase, volume: Volume, now: OffsetDateTime) -> anyhow::Result<()> {
    let client = &db.client().await;
    let steps: Vec<(&str, u64)> = vec![
        ("pipelines", volume.pipelines as u64),
        ("runs", volume.runs as u64),
        ("audit", volume.audit as u64),
        ("quality", volume.quality_results as u64),
        ("run logs", (volume.long_runs * volume.log_entries_per_long_run) as u64),
    ];
    let progress = ProgressBar::new(steps.iter().map(|s| s.1).sum());
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} rows {msg}")
            .expect("valid template"),
    );
    client
        // No statement timeout (the pool's is 30 s): one load of 10⁷ rows,
        // or the index builds after it, take minutes.
        .batch_execute("SET statement_timeout = 0; SET maintenance_work_mem = '256MB'; SET synchronous_commit = off")
        .await?;
    let (p, n) = (volume.pipelines, volume.runs);
    let now_sql = format!("to_timestamp({})", now.unix_timestamp());

    progress.set_message("pipelines, schedules, quality tests");
    // Pipelines p000001…, every layer, all published; one yearly schedule
    // (never due during the measurement) and one quality test each.
    let pipeline_id = uuid_sql(PIPELINE_TAG, "g");
    client
        .batch_execute(&format!(
            "INSERT INTO pipelines (id, namespace, layer, name, s3_path, description, published_at, created_at, updated_at) \
             SELECT {pipeline_id}, 'default', (ARRAY['bronze','silver','gold'])[1 + g % 3], 'p' || lpad(g::text, 6, '0'), \
                    'default/pipelines/' || (ARRAY['bronze','silver','gold'])[1 + g % 3] || '/p' || lpad(g::text, 6, '0') || '/', \
                    (ARRAY['orders','customers','payments','events','sessions'])[1 + g % 5] || ' of the shop', \
                    {now_sql} - interval '400 days', {now_sql} - interval '400 days', {now_sql} - interval '400 days' \
             FROM generate_series(0, {p} - 1) g; \
             INSERT INTO schedules (pipeline_id, cron_expr, next_run_at) \
             SELECT {pipeline_id}, '0 0 1 1 *', {now_sql} + interval '300 days' FROM generate_series(0, {p} - 1) g; \
             INSERT INTO quality_tests (id, pipeline_id, name, severity, s3_path) \
             SELECT {test_id}, {pipeline_id}, 'not_null', 'error', \
                    'default/pipelines/x/tests/quality/not_null.sql' FROM generate_series(0, {p} - 1) g",
            test_id = uuid_sql(TEST_TAG, "g"),
        ))
        .await
        .context("seeding pipelines")?;
    progress.inc(p as u64);

    // Runs over 90 days, oldest first (run i of pipeline i % P); the newest
    // 0.1% still pending or running.
    progress.set_message("runs");
    let chunk = 1_000_000_i64;
    let run_id = uuid_sql(RUN_TAG, "i");
    let run_pipeline = uuid_sql(PIPELINE_TAG, &format!("(i % {p})"));
    let mut from = 0;
    let mut statements = String::new();
    while from < n {
        let to = (from + chunk).min(n);
        statements.push_str(&format!(
            "INSERT INTO runs (id, pipeline_id, status, trigger, created_at, started_at, finished_at, duration_ms, \
                               rows_written, version_number, published_versions) \
             SELECT {run_id}, {run_pipeline}, s, 'manual', c, c + interval '1 second', \
                    CASE WHEN s IN ('pending', 'running') THEN NULL ELSE c + interval '61 seconds' END, \
                    CASE WHEN s IN ('pending', 'running') THEN NULL ELSE 60000 END, 1000, 1, '{{}}' \
             FROM (SELECT i, {now_sql} - (({n} - i) * (90 * 86400.0 / {n})) * interval '1 second' AS c, \
                          CASE WHEN i >= {n} - {n} / 1000 THEN (ARRAY['pending','running'])[1 + i % 2] \
                               WHEN i % 10 = 0 THEN 'failed' ELSE 'success' END AS s \
                   FROM generate_series({from}, {to} - 1) i) t;"
        ));
        from = to;
    }
    load(client, "runs", &statements).await?;
    progress.inc(n as u64);

    progress.set_message("audit log");
    let mut statements = String::new();
    let (a, mut from) = (volume.audit, 0);
    while from < a {
        let to = (from + chunk).min(a);
        statements.push_str(&format!(
            "INSERT INTO audit_log (id, actor, action, object_type, object_id, details, timestamp) \
             SELECT {id}, (ARRAY['admin','alice','bob','carol','dave','ci-bot'])[1 + i % 6], \
                    (ARRAY['pipeline.create','pipeline.update','pipeline.publish','run.create','run.cancel', \
                           'file.write','schedule.update','trigger.create','namespace.create'])[1 + (i / 6) % 9], \
                    'pipeline', {object}, jsonb_build_object('method', 'POST', 'status', 200), \
                    {now_sql} - (({a} - i) * (400 * 86400.0 / {a})) * interval '1 second' \
             FROM generate_series({from}, {to} - 1) i;",
            id = uuid_sql(4, "i"),
            object = uuid_sql(PIPELINE_TAG, &format!("(i % {p})")),
        ));
        from = to;
    }
    load(client, "audit_log", &statements).await?;
    progress.inc(a as u64);

    // Quality results of the newest finished runs.
    progress.set_message("quality results");
    let q = volume.quality_results;
    let newest_finished = n - n / 1000 - 1;
    load(
        client,
        "quality_results",
        &format!(
            "INSERT INTO quality_results (test_id, run_id, status, value, expected, duration_ms, ran_at) \
             SELECT {test}, {run}, CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'passed' END, 0, 0, 120, {now_sql} \
             FROM generate_series({start}, {newest_finished}) i",
            start = (newest_finished - q + 1).max(0),
            test = uuid_sql(TEST_TAG, &format!("(i % {p})")),
            run = uuid_sql(RUN_TAG, "i"),
        ),
    )
    .await?;
    progress.inc(q as u64);

    // Run logs: ten long runs among the newest finished.
    progress.set_message("run logs");
    let per_run = volume.log_entries_per_long_run;
    load(
        client,
        "run_logs",
        &format!(
            "INSERT INTO run_logs (run_id, timestamp, level, message) \
             SELECT {run}, {now_sql} + j * interval '1 millisecond', 'info', 'step ' || j || ': rows merged' \
             FROM generate_series(0, {long} - 1) r, generate_series(0, {per_run} - 1) j \
             ORDER BY r, j",
            long = volume.long_runs,
            run = uuid_sql(RUN_TAG, &format!("({newest_finished} - r)")),
        ),
    )
    .await?;
    progress.inc((volume.long_runs * per_run) as u64);

    // What the scheduler does after its ticks: the runs' count deltas (one
    // per pipeline and status per loading statement) into the counters.
    progress.set_message("run counts");
    rat_service::runs::fold_counts(db.pool(), 10_000)
        .await
        .context("folding the run counts")?;

    progress.set_message("vacuum analyze");
    crate::settle(client).await?;
    progress.finish_with_message("seeded");
    Ok(())
}

/// Latencies of one read at one size (milliseconds).
struct Timed {
    name: &'static str,
    p50: f64,
    p99: f64,
    samples: usize,
    /// The p99 of every round, in the order they ran (one for a single
    /// round's timing).
    round_p99s: Vec<f64>,
}

impl Timed {
    /// The median round (by p99) of one read's rounds, carrying every
    /// round's p99.
    fn median_round(mut rounds: Vec<Timed>) -> Timed {
        let round_p99s: Vec<f64> = rounds.iter().map(|t| t.p99).collect();
        rounds.sort_by(|a, b| a.p99.total_cmp(&b.p99));
        let mut median = rounds.swap_remove(rounds.len() / 2);
        median.round_p99s = round_p99s;
        median
    }

    /// `p50 … ms  p99 … ms  (n requests; round p99s …)`, for the console
    /// and the report.
    fn line(&self) -> String {
        let rounds = if self.round_p99s.len() > 1 {
            let p99s: Vec<String> = self.round_p99s.iter().map(|p| format!("{p:.2}")).collect();
            format!("; round p99s {}", p99s.join(" / "))
        } else {
            String::new()
        };
        format!(
            "  {:<38} p50 {:>8.2} ms  p99 {:>8.2} ms  ({} requests{rounds})",
            self.name, self.p50, self.p99, self.samples
        )
    }
}

/// Times GETs of `urls` (taken in turn) one at a time: a few warm-up
/// requests, then up to `requests` timed ones or `secs` seconds.
async fn time_read(
    http: &reqwest::Client,
    base: &str,
    name: &'static str,
    urls: &[String],
    requests: usize,
    secs: u64,
) -> anyhow::Result<Timed> {
    for url in urls.iter().cycle().take(3) {
        let answer = http.get(format!("{base}{url}")).send().await?;
        anyhow::ensure!(
            answer.status().is_success(),
            "{name}: {url} answered {}",
            answer.status()
        );
        answer.bytes().await?;
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut samples = Vec::with_capacity(requests);
    for url in urls.iter().cycle() {
        if samples.len() >= requests || (samples.len() >= 10 && Instant::now() > deadline) {
            break;
        }
        let started = Instant::now();
        let answer = http.get(format!("{base}{url}")).send().await?;
        let status = answer.status();
        answer.bytes().await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(status.is_success(), "{name}: {url} answered {status}");
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok(Timed {
        name,
        p50: at(0.5),
        p99: at(0.99),
        samples: samples.len(),
        round_p99s: Vec::new(),
    })
}

/// Every read of the issue at one size.
async fn measure_size(
    args: &Args,
    db: &TestDatabase,
    volume: Volume,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<Timed>> {
    let store = tempfile::tempdir()?;
    let api = ReleaseApi::start(&args.api_bin, db.url(), store.path(), 8, &[]).await?;
    let http = reqwest::Client::new();
    let (n, p) = (volume.runs, volume.pipelines);
    let layer = |g: i64| ["bronze", "silver", "gold"][(g % 3) as usize];
    // Pipelines spread over the whole set.
    let picks: Vec<i64> = (0..50).map(|k| (k * 7919 + 13) % p).collect();
    let one_pipeline: Vec<String> = picks
        .iter()
        .map(|g| format!("/api/v1/pipelines/default/{}/p{g:06}", layer(*g)))
        .collect();
    let runs_of_pipeline: Vec<String> = picks
        .iter()
        .map(|g| format!("/api/v1/runs?namespace=default&layer={}&pipeline=p{g:06}", layer(*g)))
        .collect();
    // Deep pages: the middle of the list, by offset, and by the cursor of
    // the row just before it (what a client walking there would hold).
    // Newest first, the row at offset `depth` is run n-1-depth; the cursor
    // of its page names the row before it, run n-depth.
    let depth = n / 2;
    let before = seq_uuid(RUN_TAG, n - depth);
    let client = db.client().await;
    let row = client
        .query_one("SELECT created_at FROM runs WHERE id = $1", &[&before])
        .await?;
    let deep_cursor = Cursor {
        at: row.get::<_, OffsetDateTime>(0),
        id: before,
    }
    .encode("runs:-created_at");
    let window_end = now - time::Duration::days(200);
    let window = format!(
        "since={}&until={}",
        rfc3339(window_end - time::Duration::days(1)),
        rfc3339(window_end)
    );
    let newest_finished = n - n / 1000 - 1;
    let long_run = seq_uuid(RUN_TAG, newest_finished);
    let log_first = format!("/api/v1/runs/{long_run}/logs?limit=1000");
    let first_logs: serde_json::Value = http
        .get(format!("{}{log_first}", api.base))
        .send()
        .await?
        .json()
        .await?;
    // A cursor half-way through the long run's entries.
    let log_ids: (i64, i64) = {
        let row = client
            .query_one("SELECT min(id), max(id) FROM run_logs WHERE run_id = $1", &[&long_run])
            .await?;
        (row.get(0), row.get(1))
    };
    let log_cursor = Cursor {
        at: OffsetDateTime::UNIX_EPOCH,
        id: (log_ids.0 + log_ids.1) / 2,
    }
    .encode("run-logs");
    anyhow::ensure!(first_logs["logs"].is_array(), "the long run's logs: {first_logs}");

    let reads: Vec<(&'static str, Vec<String>)> = vec![
        ("GET one pipeline", one_pipeline),
        ("GET /runs?pipeline= first page", runs_of_pipeline),
        ("GET /runs first page", vec!["/api/v1/runs".to_owned()]),
        (
            "GET /runs deep page (offset)",
            vec![format!("/api/v1/runs?offset={depth}")],
        ),
        (
            "GET /runs deep page (cursor)",
            vec![format!("/api/v1/runs?cursor={deep_cursor}")],
        ),
        (
            "GET /runs?status=running",
            vec!["/api/v1/runs?status=running".to_owned()],
        ),
        (
            "GET /audit by actor, 1-day window",
            vec![format!("/api/v1/audit?actor=alice&{window}")],
        ),
        (
            "GET /audit by action, 1-day window",
            vec![format!("/api/v1/audit?action=run.create&{window}")],
        ),
        (
            "GET /pipelines?search=&sort=",
            vec!["/api/v1/pipelines?search=orders&sort=name".to_owned()],
        ),
        (
            "GET /pipelines?search= one name",
            vec!["/api/v1/pipelines?search=p000123&sort=name".to_owned()],
        ),
        ("GET run logs, first page", vec![log_first]),
        (
            "GET run logs, deep page (cursor)",
            vec![format!("/api/v1/runs/{long_run}/logs?limit=1000&cursor={log_cursor}")],
        ),
    ];
    // Round after round over every read, so the rounds of one read are
    // spread over the whole measurement of the size.
    let mut rounds: Vec<Vec<Timed>> = reads.iter().map(|_| Vec::new()).collect();
    for round in 1..=args.rounds {
        println!("  round {round} of {}", args.rounds);
        for (&(name, ref urls), mine) in reads.iter().zip(&mut rounds) {
            let t = time_read(&http, &api.base, name, urls, args.requests, args.read_secs).await?;
            println!("{}", t.line());
            mine.push(t);
        }
    }
    Ok(rounds.into_iter().map(Timed::median_round).collect())
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
        .replace('+', "%2B")
}

/// Seconds from the instant `count` schedules are due until the last run is
/// committed, one release `rat-scheduler`.
async fn scheduler_burst(scheduler_bin: &Path, count: i32) -> anyhow::Result<f64> {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    rat_testkit::fixtures::scheduled_pipelines(&client, count, "0 0 1 1 *", None).await;
    let mut child = std::process::Command::new(scheduler_bin)
        .env("RAT_DATABASE_URL", db.url())
        .env("RAT_DB_POOL_SIZE", "4")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", scheduler_bin.display()))?;
    let result = async {
        anyhow::ensure!(
            rat_testkit::fixtures::wait_for_sessions(&client, "rat-scheduler-listener", 1, Duration::from_secs(30))
                .await,
            "the scheduler did not start within 30 s"
        );
        let due = OffsetDateTime::now_utc().replace_nanosecond(0)? + time::Duration::seconds(2);
        client.execute("UPDATE schedules SET next_run_at = $1", &[&due]).await?;
        client.batch_execute("ANALYZE schedules; NOTIFY rat_schedules").await?;
        let until_due: Duration = (due - OffsetDateTime::now_utc()).try_into().unwrap_or(Duration::ZERO);
        tokio::time::sleep(until_due).await;
        // Every run of this database is a fired slot. Counted as `GET /runs`
        // counts them, from the kept run counts (V22), not by a scan of
        // `runs`: polled every 20 ms, a scan of the growing table took a core
        // from the scheduler it measures.
        let count_fired = rat_testkit::dao::runs::count_statement(&Default::default())
            .context("the total of all runs comes from the kept counts")?;
        let started = Instant::now();
        loop {
            let fired: i64 = client.query_one(&count_fired, &[]).await?.get(0);
            if fired >= i64::from(count) {
                return Ok(started.elapsed().as_secs_f64());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(300),
                "only {fired} of {count} schedules fired after 300 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Bytes of the database the client is connected to.
async fn database_size(client: &rat_testkit::dao::PooledClient) -> anyhow::Result<i64> {
    Ok(client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await?
        .get(0))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let sizes = args
        .sizes
        .iter()
        .map(|s| parse_count(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let schedule_counts = args
        .schedules
        .iter()
        .map(|s| parse_count(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut report = String::new();
    // The bursts first, each in a small database of its own: after the
    // largest size (minutes of both cores at work, gigabytes written) the
    // same burst took 40% longer than on a rested machine.
    let mut fire_times = Vec::new();
    let mut bursts = String::new();
    for &count in &schedule_counts {
        let count = i32::try_from(count).context("schedule count")?;
        let secs = scheduler_burst(&args.scheduler_bin, count).await?;
        let line = format!("scheduler: {count} schedules due at one instant fired in {secs:.2} s");
        println!("{line}");
        bursts.push_str(&line);
        bursts.push('\n');
        fire_times.push((f64::from(count), secs));
    }
    let mut per_size: Vec<(i64, Vec<Timed>)> = Vec::new();
    let mut largest_disk = 0_i64;
    for &size in &sizes {
        let volume = Volume::of(size);
        println!(
            "size {size} runs: {} pipelines and schedules, {} audit entries, {} quality results, {} run-log entries",
            volume.pipelines,
            volume.audit,
            volume.quality_results,
            volume.long_runs * volume.log_entries_per_long_run
        );
        let db = TestDatabase::new().await;
        let client = db.client().await;
        let now = seed_now();
        let seed_started = Instant::now();
        seed(&db, volume, now).await?;
        let seed_secs = seed_started.elapsed().as_secs_f64();
        let bytes = database_size(&client).await?;
        largest_disk = largest_disk.max(bytes);
        let line = format!(
            "size {size} runs: seeded in {seed_secs:.0} s, database {:.2} GiB",
            bytes as f64 / (1u64 << 30) as f64
        );
        println!("{line}");
        report.push_str(&line);
        report.push('\n');
        let timed = measure_size(&args, &db, volume, now).await?;
        report.push_str(&format!("  each read's median round of {} (by p99):\n", args.rounds));
        for t in &timed {
            report.push_str(&t.line());
            report.push('\n');
        }
        per_size.push((size, timed));
        drop(client);
        drop(db);
    }

    // Ratios of the largest size to the smallest, and the 20 ms target.
    if let (Some((small, first)), Some((large, last))) = (per_size.first(), per_size.last())
        && per_size.len() > 1
    {
        let header = format!("\np99 at {large} runs vs {small} runs (target: <= 2x, and < 20 ms at 1e7):");
        println!("{header}");
        report.push_str(&header);
        report.push('\n');
        for (a, b) in first.iter().zip(last) {
            let line = format!(
                "  {:<38} {:>8.2} ms -> {:>8.2} ms  ({:.1}x){}",
                a.name,
                a.p99,
                b.p99,
                b.p99 / a.p99.max(0.001),
                if b.p99 / a.p99.max(0.001) <= 2.0 && (*large < 10_000_000 || b.p99 < 20.0) {
                    ""
                } else {
                    "  MISSED"
                }
            );
            println!("{line}");
            report.push_str(&line);
            report.push('\n');
        }
    }

    report.push_str(&bursts);
    let line = format!(
        "largest database {:.2} GiB; wall time {:.0} s",
        largest_disk as f64 / (1u64 << 30) as f64,
        started.elapsed().as_secs_f64()
    );
    println!("{line}");
    report.push_str(&line);
    report.push('\n');

    // Charts.
    if !per_size.is_empty() {
        let names: Vec<&'static str> = per_size[0].1.iter().map(|t| t.name).collect();
        let series: Vec<Series> = names
            .iter()
            .enumerate()
            .map(|(k, name)| Series {
                name: (*name).to_owned(),
                points: per_size
                    .iter()
                    .map(|(size, timed)| (*size as f64, timed[k].p99))
                    .collect(),
            })
            .collect();
        Chart {
            title: "api read p99 against data size",
            x_label: "runs in the database",
            y_label: "p99 latency (ms)",
            x_log: true,
            y_log: true,
            series: &series,
        }
        .write_svg(&args.out.join("scale-p99.svg"))?;
    }
    if !fire_times.is_empty() {
        Chart {
            title: "scheduler: time to fire every due schedule",
            x_label: "schedules due at one instant",
            y_label: "seconds until the last run is committed",
            x_log: true,
            y_log: false,
            series: &[Series {
                name: "one rat-scheduler".to_owned(),
                points: fire_times,
            }],
        }
        .write_svg(&args.out.join("scale-scheduler.svg"))?;
    }
    std::fs::write(args.out.join("scale.txt"), &report)?;
    println!("report and charts in {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_in_either_notation() {
        assert_eq!(parse_count("1e5").unwrap(), 100_000);
        assert_eq!(parse_count("10_000").unwrap(), 10_000);
        assert!(parse_count("0").is_err());
        assert!(parse_count("lots").is_err());
    }

    #[test]
    fn sequential_ids_match_their_sql() {
        assert_eq!(seq_uuid(2, 255).to_string(), "00000002-0000-4000-8000-0000000000ff");
        assert_eq!(
            uuid_sql(2, "i"),
            "(lpad(to_hex(2::int), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i::bigint), 12, '0'))::uuid"
        );
    }
}
