//! The platform the fault suite and the soak drive (`tests::chaos`,
//! `tests::soak`): the real binaries on a private PostgreSQL cluster and a
//! moto S3 of their own (behind a TCP proxy that can refuse connections),
//! the pipelines and every-second schedules the load works on, and the load
//! itself: closed-loop clients sending a mix of reads, file writes,
//! publishes and runs through every api replica.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rat_testkit::cluster::PrivateCluster;
use rat_testkit::s3::MotoServer;
use serde_json::json;

/// Pipelines the load works on.
pub(crate) const PIPELINES: usize = 12;
/// Every-second schedules (on the first pipelines).
pub(crate) const SCHEDULES: usize = 4;
/// Load tasks running at once.
pub(crate) const CLIENTS: usize = 6;
/// The runner's lease: a silent runner's runs are failed by the reaper once
/// it expires.
pub(crate) const LEASE_SECS: u64 = 10;
/// The reaper's poll interval.
pub(crate) const REAPER_POLL_SECS: u64 = 3;

/// How many replicas of the scaled binaries to start (always one reaper and
/// one runner).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Replicas {
    /// `rat-api` replicas; the load goes through all of them.
    pub apis: usize,
    /// `rat-scheduler` replicas.
    pub schedulers: usize,
}

/// One process of the platform.
pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) binary: PathBuf,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) log: PathBuf,
    pub(crate) child: Option<tokio::process::Child>,
}

impl Proc {
    pub(crate) fn start(&mut self) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.child = Some(crate::spawn(&self.binary, &env, &self.log));
    }

    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    pub(crate) fn signal(&self, signal: &str) -> Result<(), String> {
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
pub(crate) struct S3Proxy {
    pub(crate) port: u16,
    pub(crate) generation: Arc<AtomicUsize>,
    pub(crate) task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(crate) target: String,
}

impl S3Proxy {
    pub(crate) async fn start(target: String) -> Result<S3Proxy, String> {
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
    pub(crate) async fn accept(&self) -> Result<(), String> {
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
    pub(crate) fn refuse(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(task) = self.task.lock().expect("proxy task").take() {
            task.abort();
        }
    }
}

/// One request of the load.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// Since the suite started.
    pub(crate) at: Duration,
    pub(crate) took: Duration,
    /// `0`: no answer.
    pub(crate) status: u16,
    /// A mutation's request id, when it answered 2xx.
    pub(crate) mutated: Option<String>,
}

impl Sample {
    /// When the answer came (or the request gave up), since the load
    /// started.
    pub(crate) fn answered(&self) -> Duration {
        self.at + self.took
    }
}

/// The running platform.
pub(crate) struct Platform {
    pub(crate) pg: PrivateCluster,
    pub(crate) database_url: String,
    pub(crate) moto: MotoServer,
    pub(crate) proxy: S3Proxy,
    pub(crate) bucket: String,
    pub(crate) apis: Vec<Proc>,
    pub(crate) api_bases: Vec<String>,
    pub(crate) schedulers: Vec<Proc>,
    pub(crate) reaper: Proc,
    pub(crate) runner: Proc,
}

impl Platform {
    pub(crate) async fn start(bin_dir: &Path, logs: &Path, replicas: Replicas) -> Result<Platform, String> {
        std::fs::create_dir_all(logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        // Durable: the audit invariant checks that nothing acknowledged is
        // lost across an immediate shutdown, which a cluster with
        // synchronous_commit=off does not promise by itself.
        let pg = tokio::task::spawn_blocking(PrivateCluster::start_durable)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot start PostgreSQL: {e}"))?;
        let database_url = pg.url();
        let moto = tokio::task::spawn_blocking(MotoServer::try_start)
            .await
            .map_err(|e| e.to_string())??;
        let proxy = S3Proxy::start(format!("127.0.0.1:{}", moto.port())).await?;
        let bucket = rat_testkit::s3::unique_bucket_name();
        let binary = |name: &str| bin_dir.join(name);
        for name in ["rat-api", "rat-scheduler", "rat-reaper", "rat-runner"] {
            if !binary(name).is_file() {
                return Err(format!("{name} not found in {}", bin_dir.display()));
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
            log: logs.join(format!("{name}.log")),
            name,
            binary: binary(bin),
            env,
            child: None,
        };
        let mut apis = Vec::new();
        let mut api_bases = Vec::new();
        let mut internal = Vec::new();
        // The runner listener serves only with a token, and the runner
        // will not start without one.
        let runner_token = uuid::Uuid::new_v4().to_string();
        for n in 0..replicas.apis.max(1) {
            let (port, internal_port) = (crate::free_port(), crate::free_port());
            let mut env = vec![
                ("RAT_LISTEN_ADDR".to_owned(), format!("127.0.0.1:{port}")),
                (
                    "RAT_INTERNAL_LISTEN_ADDR".to_owned(),
                    format!("127.0.0.1:{internal_port}"),
                ),
                ("RAT_DB_POOL_SIZE".to_owned(), "8".to_owned()),
                ("RAT_RUNNER_TOKEN".to_owned(), runner_token.clone()),
            ];
            common(&mut env);
            store_env(&mut env);
            apis.push(proc(format!("rat-api-{n}"), "rat-api", env));
            api_bases.push(format!("http://127.0.0.1:{port}"));
            internal.push(format!("127.0.0.1:{internal_port}"));
        }
        // One api at a time: the first migrates, the others find the schema
        // ready.
        for (api, base) in apis.iter_mut().zip(&api_bases) {
            api.start();
            crate::wait_listening(&[&base[7..]], 120, &api.log).await;
        }
        let mut schedulers = Vec::new();
        for n in 0..replicas.schedulers {
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
                (
                    "RAT_RUNNER_API_URL".to_owned(),
                    format!("http://{}", internal[internal.len() - 1]),
                ),
                ("RAT_RUNNER_TOKEN".to_owned(), runner_token),
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

    pub(crate) async fn db(&self) -> Result<tokio_postgres::Client, String> {
        let (client, connection) = tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("connecting to the database: {e}"))?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Every process of the platform that runs, by name (`rat-api-0` …),
    /// with its process id.
    pub(crate) fn processes(&self) -> Vec<(String, u32)> {
        self.apis
            .iter()
            .chain(&self.schedulers)
            .chain([&self.reaper, &self.runner])
            .filter_map(|proc| Some((proc.name.clone(), proc.child.as_ref()?.id()?)))
            .collect()
    }

    /// Kills every process of the platform (Postgres and moto end when the
    /// platform is dropped).
    pub(crate) async fn stop(&mut self) {
        let _ = self.runner.signal("-CONT");
        self.moto.resume();
        // A fault cut short by an error may have left Postgres frozen.
        let _ = self.pg.cluster().resume();
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

/// At most how often the load writes a file and publishes; between those,
/// the mix's write and publish turns become reads (of the file, of the
/// pipeline), so the clients keep their pace. Without one (the fault suite),
/// every turn of the mix is sent as it comes: about 15% of the requests are
/// file writes and 10% publishes, tens a second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// Between two file writes (of the whole load, not per client).
    pub file_write_every: Duration,
    /// Between two publishes.
    pub publish_every: Duration,
}

/// When the paced requests may next be sent.
struct Pacer {
    pace: Pace,
    next_write: Mutex<Instant>,
    next_publish: Mutex<Instant>,
}

impl Pacer {
    fn new(pace: Pace) -> Self {
        let now = Instant::now();
        Pacer {
            pace,
            next_write: Mutex::new(now),
            next_publish: Mutex::new(now),
        }
    }

    /// Whether a request paced by `next` and `every` may go now (and if so,
    /// when the next may).
    fn take(next: &Mutex<Instant>, every: Duration) -> bool {
        let mut next = next.lock().expect("pacer");
        let now = Instant::now();
        if now < *next {
            return false;
        }
        *next = now + every;
        true
    }

    fn may_write(&self) -> bool {
        Self::take(&self.next_write, self.pace.file_write_every)
    }

    fn may_publish(&self) -> bool {
        Self::take(&self.next_publish, self.pace.publish_every)
    }
}

/// The load: `CLIENTS` tasks sending requests through both api replicas (a
/// request whose connection is refused by one is sent to the other, as a
/// load balancer would), until told to stop.
pub(crate) struct Load {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub(crate) fn start(bases: Vec<String>, started: Instant, pace: Option<Pace>) -> Load {
        let pacer = pace.map(|pace| Arc::new(Pacer::new(pace)));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        let tasks = (0..CLIENTS)
            .map(|client| {
                let (samples, stop, http, bases) = (samples.clone(), stop.clone(), http.clone(), bases.clone());
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    let mut n: usize = client;
                    while !stop.load(Ordering::Relaxed) {
                        n = n.wrapping_add(CLIENTS);
                        let sample = one_request(&http, &bases, n, started, pacer.as_deref()).await;
                        samples.lock().expect("samples").push(sample);
                    }
                })
            })
            .collect();
        Load { samples, stop, tasks }
    }

    pub(crate) async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        std::mem::take(&mut *self.samples.lock().expect("samples"))
    }

    /// The requests answered from `from` (since the load started) on.
    pub(crate) fn answered_since(&self, from: Duration) -> Vec<Sample> {
        let samples = self.samples.lock().expect("samples");
        // Samples are pushed as they are answered: look back from the end
        // only as far as the first answered before `from` (with a second
        // of slack for pushes that raced).
        let horizon = from.saturating_sub(Duration::from_secs(1));
        samples
            .iter()
            .rev()
            .take_while(|s| s.answered() >= horizon)
            .filter(|s| s.answered() >= from)
            .cloned()
            .collect()
    }

    pub(crate) fn snapshot(&self) -> Vec<Sample> {
        self.samples.lock().expect("samples").clone()
    }
}

pub(crate) fn pipeline_path(n: usize) -> String {
    format!("/api/v1/pipelines/chaos/silver/p{}", n % PIPELINES)
}

/// The `n`th request of the mix (a write or publish turn becomes a read when
/// `pacer` says it is not yet time).
async fn one_request(
    http: &reqwest::Client,
    bases: &[String],
    n: usize,
    started: Instant,
    pacer: Option<&Pacer>,
) -> Sample {
    let pipeline = n / 7;
    let mut turn = n % 20;
    if let Some(pacer) = pacer {
        if (13..=15).contains(&turn) && !pacer.may_write() {
            turn = 11;
        } else if (16..=17).contains(&turn) && !pacer.may_publish() {
            turn = 0;
        }
    }
    let (method, path, body) = match turn {
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
/// Creates what the load works on: namespace `chaos`, `PIPELINES`
/// published pipelines, and every-second schedules on the first `SCHEDULES`.
pub(crate) async fn prepare_load(platform: &Platform) -> Result<(), String> {
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
    Ok(())
}

/// A driver error with the server's message, when it has one.
pub(crate) fn pg(e: tokio_postgres::Error) -> String {
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
