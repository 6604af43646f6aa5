//! End to end: the real binaries behind a real PgBouncer in transaction
//! pooling mode (`rat_testkit::pgbouncer`), as production runs them behind
//! a transaction pooler: `RAT_DATABASE_URL` through PgBouncer,
//! `RAT_DB_POOLER=transaction`, and `RAT_DATABASE_DIRECT_URL` straight to
//! Postgres for `LISTEN`, session advisory locks and migrations.
//!
//! - The api's routes (the whole curl tour, several at once, beside a burst
//!   of concurrent reads) answer as they do without a pooler, while a few
//!   server connections serve many client connections.
//! - Three schedulers firing every-second schedules give each slot exactly
//!   one run.
//! - Two reapers never run passes at the same time.
//! - The live log stream of a run delivers entries a runner appends.
//! - A binary told `RAT_DB_POOLER=transaction` without a direct URL refuses
//!   to start, naming `RAT_DATABASE_DIRECT_URL`.
//!
//! Each test reads PgBouncer's own statistics (its admin console) to check
//! that the binaries' queries really went through it. No startup option
//! passes PgBouncer, so the test database's role gets `search_path` and
//! `statement_timeout` as role settings, as an operator would set them.
//!
//! PgBouncer must be installed (Debian: `apt-get install -y pgbouncer`);
//! without it the tests fail saying so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rat_testkit::TestDatabase;
use rat_testkit::pgbouncer::{PgBouncer, PgBouncerOptions, admin_show};
use rat_wire::runner::{ClaimBody, CompleteBody, LogEntryBody, LogsBody};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Server connections PgBouncer keeps per database: far fewer than the
/// binaries' pools, so that transactions of different clients really share
/// server sessions.
const SERVER_POOL: u16 = 4;

/// A test database behind its own PgBouncer.
struct Behind {
    db: TestDatabase,
    bouncer: PgBouncer,
    /// Through PgBouncer.
    pooled_url: String,
    scratch: PathBuf,
}

impl Behind {
    async fn new(name: &str) -> Behind {
        let db = TestDatabase::new().await;
        let dbname = db.name().to_owned();
        assert!(
            dbname
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "unexpected test database name {dbname:?}"
        );
        // What the binaries would send as startup options, set on the role
        // (for this database only; gone when it is dropped).
        db.client()
            .await
            .batch_execute(&format!(
                "ALTER ROLE postgres IN DATABASE {dbname} SET search_path = public; \
                 ALTER ROLE postgres IN DATABASE {dbname} SET statement_timeout = '30s'"
            ))
            .await
            .expect("role settings");
        let url = db.url().to_owned();
        let options = PgBouncerOptions {
            default_pool_size: SERVER_POOL,
            ..PgBouncerOptions::default()
        };
        let bouncer = tokio::task::spawn_blocking(move || PgBouncer::start(&url, &options))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("cannot start PgBouncer: {e}"));
        let pooled_url = bouncer.url_for(&dbname);
        // The role settings reach sessions opened through PgBouncer.
        let (client, connection) = tokio_postgres::connect(&pooled_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect through PgBouncer: {e}\n{}", bouncer.log_tail(20)));
        tokio::spawn(connection);
        let rows = client
            .simple_query("SELECT current_schema(), current_setting('statement_timeout')")
            .await
            .unwrap();
        let row = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .expect("a row");
        assert_eq!(
            (row.get(0), row.get(1)),
            (Some("public"), Some("30s")),
            "role settings through PgBouncer"
        );
        Behind {
            db,
            bouncer,
            pooled_url,
            scratch: tests::scratch_dir(name),
        }
    }

    /// The database variables of a binary behind PgBouncer.
    fn env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("RAT_DATABASE_URL", self.pooled_url.as_str()),
            ("RAT_DATABASE_DIRECT_URL", self.db.url()),
            ("RAT_DB_POOLER", "transaction"),
        ]
    }

    /// PgBouncer's `SHOW <what>` rows of this test's database.
    async fn show(&self, what: &str) -> Vec<BTreeMap<String, String>> {
        admin_show(&self.bouncer, &format!("SHOW {what}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .filter(|row| row.get("database").map(String::as_str) == Some(self.db.name()))
            .collect()
    }

    /// Queries PgBouncer passed to the server for this test's database.
    async fn queries_through(&self) -> u64 {
        self.show("STATS")
            .await
            .iter()
            .map(|row| number(row, "total_query_count"))
            .sum()
    }

    /// Server connections PgBouncer holds for this test's database, in any state.
    async fn server_connections(&self) -> u64 {
        self.show("POOLS")
            .await
            .iter()
            .map(|row| {
                ["sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"]
                    .iter()
                    .map(|column| number(row, column))
                    .sum::<u64>()
            })
            .sum()
    }

    /// A plain client straight to Postgres.
    async fn direct(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(self.db.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }
}

impl Drop for Behind {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

fn number(row: &BTreeMap<String, String>, column: &str) -> u64 {
    row.get(column)
        .unwrap_or_else(|| panic!("no column {column} in {row:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("column {column} of {row:?}: {e}"))
}

/// A running `rat-api` behind PgBouncer.
struct Api {
    child: tokio::process::Child,
    base: String,
    internal: String,
    log: PathBuf,
}

const API_KEY: &str = "pgbouncer-test-key";

async fn start_api(behind: &Behind) -> Api {
    let (port, internal_port) = (tests::free_port(), tests::free_port());
    let (listen, internal) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{internal_port}"));
    let store = format!("fs:{}", behind.scratch.join("store").display());
    let log = behind.scratch.join("rat-api.log");
    let mut env = behind.env();
    env.extend([
        ("RAT_DB_POOL_SIZE", "16"),
        ("RAT_STORE", store.as_str()),
        ("RAT_LISTEN_ADDR", listen.as_str()),
        ("RAT_INTERNAL_LISTEN_ADDR", internal.as_str()),
        ("RAT_API_KEY", API_KEY),
        ("RAT_RUNNER_TOKEN", "pgbouncer-runner-token"),
        ("RUST_LOG", "warn"),
    ]);
    let child = tests::spawn(&tests::binary("rat-api"), &env, &log);
    let http = reqwest::Client::new();
    let base = format!("http://{listen}");
    for _ in 0..300 {
        if http
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Api {
                child,
                base,
                internal: format!("http://{internal}"),
                log,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("rat-api did not become healthy within 30 s:\n{}", tests::tail(&log, 40));
}

impl Api {
    /// SIGTERM, and a clean exit.
    async fn stop(mut self) {
        tests::terminate(&self.child).await;
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("rat-api stops within 20 s of SIGTERM")
            .unwrap();
        assert!(
            status.success(),
            "rat-api exited with {status}:\n{}",
            tests::tail(&self.log, 40)
        );
    }
}

/// `method path` with the API key and an optional JSON body: status and JSON answer.
async fn call(
    http: &reqwest::Client,
    api: &Api,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http.request(method, format!("{}{path}", api.base)).bearer_auth(API_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A typed client of the api's runner listener, with its token.
fn runner_client(api: &Api) -> rat_client::RunnerClient {
    rat_client::Builder::new(&api.internal)
        .token("pgbouncer-runner-token".to_owned().into())
        .runner()
        .expect("runner client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_every_route_through_pgbouncer() {
    let behind = Behind::new("rat-pgbouncer-api").await;
    let api = start_api(&behind).await;
    let before = behind.queries_through().await;

    // Three curl tours (every route of the contract) at once, each in its
    // own namespace, beside 32 clients reading lists.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/curl-tour.sh");
    let tours: Vec<_> = (0..3)
        .map(|_| {
            let child = tokio::process::Command::new("bash")
                .arg(&script)
                .env("RAT_API", &api.base)
                .env("RAT_API_KEY", API_KEY)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("running bash docs/curl-tour.sh");
            tokio::spawn(child.wait_with_output())
        })
        .collect();
    let http = reqwest::Client::new();
    let readers: Vec<_> = (0..32)
        .map(|n| {
            let http = http.clone();
            let base = api.base.clone();
            let log = api.log.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let path = if (n + i) % 2 == 0 {
                        "/api/v1/namespaces?limit=50"
                    } else {
                        "/api/v1/pipelines?limit=50"
                    };
                    let answer = http
                        .get(format!("{base}{path}"))
                        .bearer_auth(API_KEY)
                        .send()
                        .await
                        .unwrap();
                    let status = answer.status();
                    assert_eq!(
                        status,
                        200,
                        "GET {path}: {}\nrat-api log:\n{}",
                        answer.text().await.unwrap_or_default(),
                        tests::tail(&log, 20)
                    );
                }
            })
        })
        .collect();
    for reader in readers {
        reader.await.unwrap();
    }
    for tour in tours {
        let output = tour.await.unwrap().expect("running bash docs/curl-tour.sh");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("answered as the contract says"),
            "a curl tour through PgBouncer failed:\n{stdout}\n{}\nrat-api log:\n{}\nPgBouncer log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            tests::tail(&api.log, 40),
            behind.bouncer.log_tail(20)
        );
    }

    // A namespace and pipeline made through the api are there for a direct reader.
    let (status, _) = call(
        &http,
        &api,
        reqwest::Method::POST,
        "/api/v1/namespaces",
        Some(json!({"name": "through_pgbouncer"})),
    )
    .await;
    assert_eq!(status, 201);
    let direct = behind.direct().await;
    let found: i64 = direct
        .query_one("SELECT count(*) FROM namespaces WHERE name = 'through_pgbouncer'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 1);

    // The queries went through PgBouncer, many clients on few server sessions.
    let queries = behind.queries_through().await - before;
    assert!(
        queries >= 1000,
        "PgBouncer passed only {queries} queries for the api's requests: were they sent around it?"
    );
    let clients = behind.show("CLIENTS").await.len();
    let servers = behind.server_connections().await;
    assert!(
        servers <= u64::from(SERVER_POOL) && clients as u64 > servers,
        "{clients} client connections on {servers} server connections (pool {SERVER_POOL})"
    );
    println!("{queries} queries through PgBouncer; {clients} api connections on {servers} server connections");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_log_stream_delivers_through_pgbouncer() {
    let behind = Behind::new("rat-pgbouncer-logs").await;
    let api = start_api(&behind).await;
    let http = reqwest::Client::new();
    use reqwest::Method;

    let (status, _) = call(
        &http,
        &api,
        Method::POST,
        "/api/v1/namespaces",
        Some(json!({"name": "live"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &http,
        &api,
        Method::POST,
        "/api/v1/pipelines",
        Some(json!({"namespace": "live", "layer": "bronze", "name": "orders"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &http,
        &api,
        Method::PUT,
        "/api/v1/files/live/pipelines/bronze/orders/pipeline.sql",
        Some(json!({"content": "SELECT 1 AS id"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = call(
        &http,
        &api,
        Method::POST,
        "/api/v1/pipelines/live/bronze/orders/publish",
        Some(json!({"message": "first"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = call(
        &http,
        &api,
        Method::POST,
        "/api/v1/runs",
        Some(json!({"namespace": "live", "layer": "bronze", "pipeline": "orders"})),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let run = answer["run_id"].as_str().expect("run_id").to_owned();

    // The stream, opened before the runner logs anything.
    let mut stream = http
        .get(format!("{}/api/v1/runs/{run}/logs", api.base))
        .bearer_auth(API_KEY)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");

    // A runner claims the run and logs, through the api (and PgBouncer),
    // with the typed client.
    let runner = runner_client(&api);
    let claimed = runner
        .claim(&ClaimBody {
            runner_id: "pgb-runner".to_owned(),
            max_runs: Some(1),
            lease_seconds: None,
            plugins: None,
        })
        .await
        .expect("claimed");
    assert_eq!(claimed.runs.len(), 1, "{claimed:?}");
    assert_eq!(claimed.runs[0].run_id.to_string(), run, "{claimed:?}");
    let run_id = claimed.runs[0].run_id;
    let mut text = String::new();
    for n in 0..3 {
        let message = format!("live entry {n} through pgbouncer");
        runner
            .append_logs(
                run_id,
                &LogsBody {
                    runner_id: "pgb-runner".to_owned(),
                    entries: vec![LogEntryBody {
                        timestamp: OffsetDateTime::now_utc().format(&Rfc3339).unwrap(),
                        level: "info".to_owned(),
                        message: message.clone(),
                    }],
                },
            )
            .await
            .unwrap_or_else(|e| panic!("appending logs: {e}"));
        read_until(&mut stream, &mut text, &message).await;
    }
    let done = runner
        .complete(run_id, &CompleteBody::new("pgb-runner", "success"))
        .await
        .unwrap_or_else(|e| panic!("complete: {e}"));
    assert_eq!(done.status, "success");
    read_until(&mut stream, &mut text, "event: status").await;
    assert!(text.contains("\"success\""), "{text}");
    assert!(
        behind.queries_through().await > 0,
        "PgBouncer passed no query for this database"
    );
    drop(stream);
    api.stop().await;
}

/// Reads the SSE stream into `text` until it holds `needle` (10 s at most).
async fn read_until(stream: &mut reqwest::Response, text: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("{needle:?} did not arrive on the live stream within 10 s; got:\n{text}"))
            .expect("stream readable")
            .unwrap_or_else(|| panic!("the stream ended before {needle:?}; got:\n{text}"));
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
}

/// Schedules in the scheduler test.
const SCHEDULES: i32 = 50;
/// How long the schedulers fire.
const FIRING: Duration = Duration::from_secs(14);
/// Slots this close to either end are not checked (see scheduler_replicas).
const MARGIN_SECS: i64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_schedulers_through_pgbouncer_fire_every_slot_exactly_once() {
    let behind = Behind::new("rat-pgbouncer-scheduler").await;
    let binary = tests::binary("rat-scheduler");
    let client = behind.db.client().await;
    let mut env = behind.env();
    env.extend([
        ("RAT_DB_POOL_SIZE", "4"),
        ("RAT_SCHEDULER_MAX_SLEEP_SECS", "1"),
        ("RUST_LOG", "info"),
    ]);
    let logs: Vec<PathBuf> = (0..3)
        .map(|n| behind.scratch.join(format!("scheduler-{n}.log")))
        .collect();
    let mut children: Vec<_> = logs.iter().map(|log| tests::spawn(&binary, &env, log)).collect();
    let report_logs = || {
        logs.iter()
            .map(|log| format!("--- {}\n{}", log.display(), tests::tail(log, 15)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        rat_testkit::fixtures::wait_for_sessions(&client, "rat-scheduler-listener", 3, Duration::from_secs(30)).await,
        "3 schedulers did not start listening within 30 s:\n{}",
        report_logs()
    );
    let before = behind.queries_through().await;

    let first_slot = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + time::Duration::seconds(3);
    rat_testkit::fixtures::scheduled_pipelines(&client, SCHEDULES, "* * * * * *", Some(first_slot)).await;

    // A runner that finishes every run at once (see scheduler_replicas).
    let completing = Arc::new(AtomicBool::new(true));
    let completer = {
        let completing = completing.clone();
        let completer_client = behind.db.client().await;
        tokio::spawn(async move {
            while completing.load(Ordering::Relaxed) {
                completer_client
                    .execute(
                        "UPDATE runs SET status = 'success', started_at = now(), finished_at = now() \
                         WHERE status = 'pending'",
                        &[],
                    )
                    .await
                    .expect("completing runs");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let until_first: Duration = (first_slot - OffsetDateTime::now_utc())
        .try_into()
        .unwrap_or(Duration::ZERO);
    tokio::time::sleep(until_first + FIRING).await;

    let stopped_at = OffsetDateTime::now_utc();
    for child in &children {
        tests::terminate(child).await;
    }
    for (n, child) in children.iter_mut().enumerate() {
        let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .unwrap_or_else(|_| panic!("scheduler {n} did not stop within 15 s of SIGTERM"))
            .unwrap();
        assert!(
            status.success(),
            "scheduler {n} exited with {status}:\n{}",
            report_logs()
        );
    }
    completing.store(false, Ordering::Relaxed);
    completer.await.unwrap();

    crate::scheduler_replicas::assert_no_slot_twice(&client).await;

    let window_start = first_slot + time::Duration::seconds(MARGIN_SECS);
    let window_end = stopped_at.replace_nanosecond(0).unwrap() - time::Duration::seconds(MARGIN_SECS);
    assert!(
        window_end - window_start >= time::Duration::seconds(8),
        "window {window_start} .. {window_end} is too short"
    );
    let missing: i64 = client
        .query_one(
            "SELECT count(*) FROM schedules s \
             CROSS JOIN generate_series($1::timestamptz, $2::timestamptz, interval '1 second') t(slot) \
             WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.schedule_id = s.id AND r.scheduled_for = t.slot)",
            &[&window_start, &window_end],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        missing,
        0,
        "slots in {window_start} .. {window_end} without a run:\n{}",
        report_logs()
    );
    let runs: i64 = client
        .query_one(
            "SELECT count(*) FROM runs WHERE scheduled_for BETWEEN $1 AND $2",
            &[&window_start, &window_end],
        )
        .await
        .unwrap()
        .get(0);
    let slots = (window_end - window_start).whole_seconds() + 1;
    assert_eq!(runs, i64::from(SCHEDULES) * slots);

    let queries = behind.queries_through().await - before;
    assert!(
        queries >= 3 * slots as u64,
        "PgBouncer passed only {queries} queries while the schedulers fired: were they sent around it?"
    );
    println!("{runs} runs in the window; {queries} queries through PgBouncer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reapers_through_pgbouncer_never_run_passes_at_the_same_time() {
    let behind = Behind::new("rat-pgbouncer-reaper").await;
    let binary = tests::binary("rat-reaper");
    let client = behind.db.client().await;
    client
        .execute("UPDATE reaper_status SET last_run_at = now() WHERE id = 1", &[])
        .await
        .unwrap();
    let store = format!("fs:{}", behind.scratch.join("store").display());
    let mut env = behind.env();
    env.extend([
        ("RAT_DB_POOL_SIZE", "4"),
        ("RAT_STORE", store.as_str()),
        ("RAT_REAPER_BATCH_SIZE", "200"),
        ("RAT_REAPER_POLL_SECS", "1"),
        ("RAT_LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ]);
    let logs: Vec<PathBuf> = (0..2).map(|n| behind.scratch.join(format!("reaper-{n}.log"))).collect();
    let mut children: Vec<_> = logs.iter().map(|log| tests::spawn(&binary, &env, log)).collect();
    let report_logs = || {
        logs.iter()
            .map(|log| format!("--- {}\n{}", log.display(), tests::tail(log, 30)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        rat_testkit::fixtures::wait_for_sessions(&client, "rat-reaper-listener", 2, Duration::from_secs(30)).await,
        "2 reapers did not start listening within 30 s:\n{}",
        report_logs()
    );
    let before = behind.queries_through().await;

    for _ in 0..3 {
        client
            .execute(
                "INSERT INTO audit_log (actor, action, timestamp) \
                 SELECT 'test', 'old', now() - interval '400 days' - g * interval '1 second' \
                 FROM generate_series(1, 5000) g",
                &[],
            )
            .await
            .unwrap();
        let asked = crate::reaper_replicas::request_pass(&client).await;
        let paths: Vec<&std::path::Path> = logs.iter().map(PathBuf::as_path).collect();
        crate::reaper_replicas::wait_for_pass_after(&client, asked, &paths).await;
    }

    for child in &children {
        tests::terminate(child).await;
    }
    for (n, child) in children.iter_mut().enumerate() {
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .unwrap_or_else(|_| panic!("reaper {n} did not stop within 20 s of SIGTERM"))
            .unwrap();
        assert!(status.success(), "reaper {n} exited with {status}:\n{}", report_logs());
    }

    let mut all: Vec<(OffsetDateTime, OffsetDateTime, usize)> = Vec::new();
    for (n, log) in logs.iter().enumerate() {
        all.extend(
            crate::reaper_replicas::passes(log)
                .into_iter()
                .map(|(start, end)| (start, end, n)),
        );
    }
    all.sort();
    assert!(
        all.len() >= 3,
        "expected at least 3 passes, saw {all:?}:\n{}",
        report_logs()
    );
    for pair in all.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "passes overlap: reaper {} ran {}..{} and reaper {} {}..{}",
            pair[0].2,
            pair[0].0,
            pair[0].1,
            pair[1].2,
            pair[1].0,
            pair[1].1
        );
    }
    let old: i64 = client
        .query_one("SELECT count(*) FROM audit_log WHERE action = 'old'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(old, 0, "every old row deleted");
    let queries = behind.queries_through().await - before;
    assert!(
        queries >= 15_000 / 200,
        "PgBouncer passed only {queries} queries for the passes' batches: were they sent around it?"
    );
    println!("passes: {all:?}; {queries} queries through PgBouncer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_pooler_without_a_direct_url_is_refused_at_start() {
    let behind = Behind::new("rat-pgbouncer-no-direct").await;
    let store = format!("fs:{}", behind.scratch.join("store").display());
    for name in ["rat-api", "rat-scheduler", "rat-reaper"] {
        let log = behind.scratch.join(format!("{name}.log"));
        let listen = format!("127.0.0.1:{}", tests::free_port());
        let internal = format!("127.0.0.1:{}", tests::free_port());
        let mut child = tests::spawn(
            &tests::binary(name),
            &[
                ("RAT_DATABASE_URL", behind.pooled_url.as_str()),
                ("RAT_DB_POOLER", "transaction"),
                ("RAT_STORE", store.as_str()),
                ("RAT_LISTEN_ADDR", listen.as_str()),
                ("RAT_INTERNAL_LISTEN_ADDR", internal.as_str()),
            ],
            &log,
        );
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .unwrap_or_else(|_| panic!("{name} kept running without RAT_DATABASE_DIRECT_URL"))
            .unwrap();
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!status.success(), "{name} exited with {status}:\n{stderr}");
        assert!(
            stderr.contains("RAT_DATABASE_DIRECT_URL"),
            "{name}'s refusal does not name RAT_DATABASE_DIRECT_URL:\n{stderr}"
        );
    }
}
