//! The fault suite behind `cargo xtask chaos` (issue 20), and its short
//! version in CI (`tests/tests/it/chaos.rs`).
//!
//! Starts the real binaries — two `rat-api` replicas, two `rat-scheduler`s,
//! one `rat-reaper`, the dev `rat-runner` — on a private PostgreSQL cluster
//! and a moto S3 of their own (behind a TCP proxy that can refuse
//! connections), drives a mixed load through both api replicas (reads, file
//! writes, publishes, runs, every-second schedules), and injects one fault at
//! a time. For each fault it reports the requests that failed and how, the
//! longest wait a client saw, and how long after the fault cleared the first
//! request succeeded. After the last fault it checks the invariants: no
//! schedule slot fired twice, no slot missed outside a fault's window (the
//! catch-up-once rule), no published version pinning a file version the store
//! does not have, no run left active past its lease, and an audit row for
//! every mutation that answered 2xx.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rat_testkit::cluster::{Cluster, PrivateCluster};
use rat_testkit::s3::MotoServer;
use rat_versioning::VersionedStore;
use serde_json::json;
use time::OffsetDateTime;

/// Pipelines the load works on.
const PIPELINES: usize = 12;
/// Every-second schedules (on the first pipelines).
const SCHEDULES: usize = 4;
/// Load tasks running at once.
const CLIENTS: usize = 6;
/// The runner's lease: a silent runner's runs are failed by the reaper once
/// it expires.
const LEASE_SECS: u64 = 10;
/// The reaper's poll interval.
const REAPER_POLL_SECS: u64 = 3;

/// One fault the suite injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `pg_ctl restart -m fast`.
    PostgresRestartFast,
    /// `pg_ctl restart -m immediate` (a crash and recovery).
    PostgresRestartImmediate,
    /// Postgres stopped for the given time, then started.
    PostgresDown(Duration),
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

/// One process of the platform.
struct Proc {
    name: String,
    binary: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<tokio::process::Child>,
}

impl Proc {
    fn start(&mut self) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.child = Some(crate::spawn(&self.binary, &env, &self.log));
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    fn signal(&self, signal: &str) -> Result<(), String> {
        let pid = self
            .child
            .as_ref()
            .and_then(tokio::process::Child::id)
            .ok_or_else(|| format!("{} is not running", self.name))?;
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .map_err(|e| format!("kill {signal} {pid}: {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("kill {signal} {} failed", self.name))
    }
}

/// A TCP proxy in front of moto that can refuse connections (its listener
/// closed and every open connection cut) and accept them again.
struct S3Proxy {
    port: u16,
    generation: Arc<AtomicUsize>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    target: String,
}

impl S3Proxy {
    async fn start(target: String) -> Result<S3Proxy, String> {
        let port = crate::free_port();
        let proxy = S3Proxy {
            port,
            generation: Arc::new(AtomicUsize::new(0)),
            task: Mutex::new(None),
            target,
        };
        proxy.accept().await?;
        Ok(proxy)
    }

    /// Listens again (after [`S3Proxy::refuse`]).
    async fn accept(&self) -> Result<(), String> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .map_err(|e| format!("the S3 proxy cannot listen on {}: {e}", self.port))?;
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let (target, current) = (self.target.clone(), self.generation.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let (target, current) = (target.clone(), current.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    // Cut when the proxy is closed (a newer generation).
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let cut = async {
                        while current.load(Ordering::SeqCst) == generation {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        () = cut => {}
                    }
                });
            }
        });
        *self.task.lock().expect("proxy task") = Some(task);
        Ok(())
    }

    /// Closes the listener and cuts every open connection: clients get
    /// "connection refused".
    fn refuse(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(task) = self.task.lock().expect("proxy task").take() {
            task.abort();
        }
    }
}

/// One request of the load.
#[derive(Debug, Clone)]
struct Sample {
    /// Since the suite started.
    at: Duration,
    took: Duration,
    /// `0`: no answer.
    status: u16,
    /// A mutation's request id, when it answered 2xx.
    mutated: Option<String>,
}

/// The running platform.
struct Platform {
    pg: PrivateCluster,
    database_url: String,
    moto: MotoServer,
    proxy: S3Proxy,
    bucket: String,
    apis: Vec<Proc>,
    api_bases: Vec<String>,
    schedulers: Vec<Proc>,
    reaper: Proc,
    runner: Proc,
}

impl Platform {
    async fn start(config: &Config) -> Result<Platform, String> {
        std::fs::create_dir_all(&config.logs).map_err(|e| format!("{}: {e}", config.logs.display()))?;
        let pg = tokio::task::spawn_blocking(PrivateCluster::start)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot start PostgreSQL: {e}"))?;
        let database_url = pg.url();
        let moto = tokio::task::spawn_blocking(MotoServer::try_start)
            .await
            .map_err(|e| e.to_string())??;
        let proxy = S3Proxy::start(format!("127.0.0.1:{}", moto.port())).await?;
        let bucket = rat_testkit::s3::unique_bucket_name();
        let binary = |name: &str| config.bin_dir.join(name);
        for name in ["rat-api", "rat-scheduler", "rat-reaper", "rat-runner"] {
            if !binary(name).is_file() {
                return Err(format!("{name} not found in {}", config.bin_dir.display()));
            }
        }
        let store_env = |env: &mut Vec<(String, String)>| {
            for (k, v) in [
                ("RAT_STORE", "s3".to_owned()),
                ("RAT_S3_ENDPOINT", format!("http://127.0.0.1:{}", proxy.port)),
                ("RAT_S3_REGION", "eu-west-1".to_owned()),
                ("RAT_S3_BUCKET", bucket.clone()),
                ("RAT_S3_ACCESS_KEY", "test".to_owned()),
                ("RAT_S3_SECRET_KEY", "test".to_owned()),
                ("RAT_S3_CREATE_BUCKET", "true".to_owned()),
            ] {
                env.push((k.to_owned(), v));
            }
        };
        let common = |env: &mut Vec<(String, String)>| {
            env.push(("RAT_DATABASE_URL".to_owned(), database_url.clone()));
            env.push(("RUST_LOG".to_owned(), "info".to_owned()));
        };
        let proc = |name: String, bin: &str, env: Vec<(String, String)>| Proc {
            log: config.logs.join(format!("{name}.log")),
            name,
            binary: binary(bin),
            env,
            child: None,
        };
        let mut apis = Vec::new();
        let mut api_bases = Vec::new();
        let mut internal = Vec::new();
        for n in 0..2 {
            let (port, internal_port) = (crate::free_port(), crate::free_port());
            let mut env = vec![
                ("RAT_LISTEN_ADDR".to_owned(), format!("127.0.0.1:{port}")),
                (
                    "RAT_INTERNAL_LISTEN_ADDR".to_owned(),
                    format!("127.0.0.1:{internal_port}"),
                ),
                ("RAT_DB_POOL_SIZE".to_owned(), "8".to_owned()),
            ];
            common(&mut env);
            store_env(&mut env);
            apis.push(proc(format!("rat-api-{n}"), "rat-api", env));
            api_bases.push(format!("http://127.0.0.1:{port}"));
            internal.push(format!("127.0.0.1:{internal_port}"));
        }
        // One api migrates first, so the others find the schema ready.
        apis[0].start();
        crate::wait_listening(&[&api_bases[0][7..]], 120, &apis[0].log).await;
        apis[1].start();
        crate::wait_listening(&[&api_bases[1][7..]], 120, &apis[1].log).await;
        let mut schedulers = Vec::new();
        for n in 0..2 {
            let mut env = vec![
                ("RAT_DB_POOL_SIZE".to_owned(), "4".to_owned()),
                ("RAT_SCHEDULER_MAX_SLEEP_SECS".to_owned(), "1".to_owned()),
            ];
            common(&mut env);
            let mut scheduler = proc(format!("rat-scheduler-{n}"), "rat-scheduler", env);
            scheduler.start();
            schedulers.push(scheduler);
        }
        let mut env = vec![
            ("RAT_DB_POOL_SIZE".to_owned(), "4".to_owned()),
            ("RAT_REAPER_POLL_SECS".to_owned(), REAPER_POLL_SECS.to_string()),
        ];
        common(&mut env);
        store_env(&mut env);
        let mut reaper = proc("rat-reaper".to_owned(), "rat-reaper", env);
        reaper.start();
        let mut runner = proc(
            "rat-runner".to_owned(),
            "rat-runner",
            vec![
                ("RAT_RUNNER_API_URL".to_owned(), format!("http://{}", internal[1])),
                ("RAT_RUNNER_ID".to_owned(), "chaos-runner".to_owned()),
                ("RAT_RUNNER_LEASE_SECS".to_owned(), LEASE_SECS.to_string()),
                ("RAT_RUNNER_POLL_MS".to_owned(), "200".to_owned()),
                ("RUST_LOG".to_owned(), "info".to_owned()),
            ],
        );
        runner.start();
        Ok(Platform {
            pg,
            database_url,
            moto,
            proxy,
            bucket,
            apis,
            api_bases,
            schedulers,
            reaper,
            runner,
        })
    }

    async fn db(&self) -> Result<tokio_postgres::Client, String> {
        let (client, connection) = tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("connecting to the database: {e}"))?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Injects `fault`; returns once it has cleared.
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

    async fn stop(&mut self) {
        let _ = self.runner.signal("-CONT");
        self.moto.resume();
        for proc in self
            .apis
            .iter_mut()
            .chain(self.schedulers.iter_mut())
            .chain([&mut self.reaper, &mut self.runner])
        {
            proc.kill().await;
        }
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

/// The load: `CLIENTS` tasks sending requests through both api replicas (a
/// request whose connection is refused by one is sent to the other, as a
/// load balancer would), until told to stop.
struct Load {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(bases: Vec<String>, started: Instant) -> Load {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        let tasks = (0..CLIENTS)
            .map(|client| {
                let (samples, stop, http, bases) = (samples.clone(), stop.clone(), http.clone(), bases.clone());
                tokio::spawn(async move {
                    let mut n: usize = client;
                    while !stop.load(Ordering::Relaxed) {
                        n = n.wrapping_add(CLIENTS);
                        let sample = one_request(&http, &bases, n, started).await;
                        samples.lock().expect("samples").push(sample);
                    }
                })
            })
            .collect();
        Load { samples, stop, tasks }
    }

    async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        std::mem::take(&mut *self.samples.lock().expect("samples"))
    }

    fn snapshot(&self) -> Vec<Sample> {
        self.samples.lock().expect("samples").clone()
    }
}

fn pipeline_path(n: usize) -> String {
    format!("/api/v1/pipelines/chaos/silver/p{}", n % PIPELINES)
}

/// The `n`th request of the mix.
async fn one_request(http: &reqwest::Client, bases: &[String], n: usize, started: Instant) -> Sample {
    let pipeline = n / 7;
    let (method, path, body) = match n % 20 {
        0..=7 => (reqwest::Method::GET, pipeline_path(pipeline), None),
        8..=10 => (reqwest::Method::GET, "/api/v1/runs?limit=20".to_owned(), None),
        11..=12 => (
            reqwest::Method::GET,
            format!(
                "/api/v1/files/chaos/pipelines/silver/p{}/pipeline.sql",
                pipeline % PIPELINES
            ),
            None,
        ),
        13..=15 => (
            reqwest::Method::PUT,
            format!(
                "/api/v1/files/chaos/pipelines/silver/p{}/pipeline.sql",
                pipeline % PIPELINES
            ),
            Some(json!({ "content": format!("SELECT {n} AS n") })),
        ),
        16..=17 => (
            reqwest::Method::POST,
            format!("{}/publish", pipeline_path(pipeline)),
            Some(json!({ "message": format!("chaos {n}") })),
        ),
        _ => (
            reqwest::Method::POST,
            "/api/v1/runs".to_owned(),
            Some(json!({"namespace": "chaos", "layer": "silver", "pipeline": format!("p{}", pipeline % PIPELINES)})),
        ),
    };
    let mutation = method != reqwest::Method::GET;
    let request_id = uuid::Uuid::new_v4().to_string();
    let sent = Instant::now();
    let mut status = 0;
    for attempt in 0..bases.len() {
        let base = &bases[(n + attempt) % bases.len()];
        let mut request = http
            .request(method.clone(), format!("{base}{path}"))
            .header("x-request-id", &request_id);
        if let Some(body) = &body {
            request = request.json(body);
        }
        match request.send().await {
            Ok(response) => {
                status = response.status().as_u16();
                let _ = response.bytes().await;
                break;
            }
            // Nothing was sent: a load balancer tries the other replica.
            Err(e) if e.is_connect() => continue,
            Err(_) => break,
        }
    }
    Sample {
        at: sent.duration_since(started),
        took: sent.elapsed(),
        status,
        mutated: (mutation && (200..300).contains(&status)).then_some(request_id),
    }
}

/// Runs the suite.
pub async fn run(config: Config) -> Result<Report, String> {
    let mut platform = Platform::start(&config).await?;
    let result = drive(&mut platform, &config).await;
    platform.stop().await;
    result
}

async fn drive(platform: &mut Platform, config: &Config) -> Result<Report, String> {
    let http = reqwest::Client::new();
    let base = platform.api_bases[0].clone();
    let call = |method: reqwest::Method, path: String, body: serde_json::Value| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let response = http
                .request(method.clone(), format!("{base}{path}"))
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("{method} {path}: {e}"))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(format!("{method} {path}: {status} {text}"));
            }
            Ok::<String, String>(text)
        }
    };
    call(
        reqwest::Method::POST,
        "/api/v1/namespaces".to_owned(),
        json!({"name": "chaos"}),
    )
    .await?;
    for n in 0..PIPELINES {
        call(
            reqwest::Method::POST,
            "/api/v1/pipelines".to_owned(),
            json!({"namespace": "chaos", "layer": "silver", "name": format!("p{n}")}),
        )
        .await?;
        call(
            reqwest::Method::PUT,
            format!("/api/v1/files/chaos/pipelines/silver/p{n}/pipeline.sql"),
            json!({"content": "SELECT 1 AS n"}),
        )
        .await?;
        call(
            reqwest::Method::POST,
            format!("{}/publish", pipeline_path(n)),
            json!({"message": "first"}),
        )
        .await?;
    }
    // Every-second schedules (six-field cron), firing from the next second.
    let db = platform.db().await?;
    db.execute(
        "INSERT INTO schedules (pipeline_id, cron_expr, next_run_at) \
         SELECT id, '* * * * * *', date_trunc('second', now()) + interval '2 seconds' FROM pipelines \
         WHERE namespace = 'chaos' AND name = ANY($1)",
        &[&(0..SCHEDULES).map(|n| format!("p{n}")).collect::<Vec<_>>()],
    )
    .await
    .map_err(|e| format!("creating the schedules: {}", pg(e)))?;

    let started = Instant::now();
    let wall_start = OffsetDateTime::now_utc();
    let load = Load::start(platform.api_bases.clone(), started);
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
    while quiesce.elapsed() < Duration::from_secs(LEASE_SECS + 3 * REAPER_POLL_SECS + 5) {
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
            "no run left active past its lease and the reaper's next pass".to_owned(),
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
            &[&i32::try_from(2 * REAPER_POLL_SECS + 5).unwrap_or(i32::MAX)],
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

/// A driver error with the server's message, when it has one.
fn pg(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// The logs directory's processes, for a failure message.
pub fn log_tails(logs: &Path) -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(logs) {
        for entry in entries.flatten() {
            let _ = writeln!(
                out,
                "--- {}\n{}",
                entry.path().display(),
                crate::tail(&entry.path(), 15)
            );
        }
    }
    out
}
