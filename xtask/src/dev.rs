//! `cargo xtask dev`: the platform on one machine, on embedded defaults.
//!
//! Everything lives under `.rat-dev/` in the checkout, so a restart keeps it:
//! `pg/` is a private PostgreSQL cluster listening on 127.0.0.1 only, and
//! `store/` the filesystem-backed versioned file store. `rat-api` runs on
//! 127.0.0.1:8080 (runner listener 127.0.0.1:8090) against both, with
//! `rat-scheduler` firing schedules and cron triggers, `rat-reaper` enforcing
//! retention, and the minimal `rat-runner` executing runs; Ctrl-C stops
//! everything, last started first.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use rat_testkit::cluster::{Cluster, ClusterOptions, INSTALL_HINT};
use tokio_postgres::NoTls;

use crate::project_root;

/// The dev database's name.
const DEV_DATABASE: &str = "rat";

/// Arguments of `cargo xtask dev`.
#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    #[command(subcommand)]
    action: Option<DevAction>,
    /// TCP port of the dev PostgreSQL (on 127.0.0.1).
    #[arg(long, default_value_t = 54329, global = true)]
    pg_port: u16,
    /// Address rat-api listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    api_addr: String,
    /// Address of rat-api's runner listener.
    #[arg(long, default_value = "127.0.0.1:8090")]
    internal_addr: String,
}

#[derive(Debug, Subcommand)]
enum DevAction {
    /// Stop a dev PostgreSQL left running.
    Stop,
}

/// Where the dev platform keeps its state.
pub(crate) struct DevPaths {
    root: PathBuf,
    pg_port: u16,
}

impl Default for DevPaths {
    fn default() -> Self {
        DevPaths {
            root: project_root().join(".rat-dev"),
            pg_port: 54329,
        }
    }
}

impl DevPaths {
    /// The dev platform's file store (`RAT_STORE=fs:<this>`).
    pub(crate) fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    fn cluster_options(&self) -> ClusterOptions {
        ClusterOptions {
            base_dir: self.root.join("pg"),
            socket_dir: None,
            tcp: true,
            port: self.pg_port,
            durable: true,
            settings: Vec::new(),
        }
    }
}

/// Starts the dev cluster if needed, creates the dev database if missing, and
/// returns its connection string.
pub(crate) async fn ensure_dev_database(paths: &DevPaths) -> anyhow::Result<String> {
    crate::system::ensure_postgres_server()?;
    std::fs::create_dir_all(&paths.root).with_context(|| format!("creating {}", paths.root.display()))?;
    let options = paths.cluster_options();
    let cluster = tokio::task::spawn_blocking(move || Cluster::ensure_running(options))
        .await?
        .map_err(|e| anyhow!("{e}\n{INSTALL_HINT}"))
        .context("starting the dev PostgreSQL")?;
    let (admin, connection) = tokio_postgres::connect(&cluster.admin_url(), NoTls)
        .await
        .context("connecting to the dev PostgreSQL")?;
    let connection = tokio::spawn(connection);
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DEV_DATABASE])
        .await?
        .is_some();
    if !exists {
        admin.batch_execute(&format!("CREATE DATABASE {DEV_DATABASE}")).await?;
    }
    drop(admin);
    let _ = connection.await;
    cluster
        .tcp_url_for(DEV_DATABASE)
        .ok_or_else(|| anyhow!("the dev cluster listens on TCP"))
}

pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let paths = DevPaths {
        pg_port: args.pg_port,
        ..DevPaths::default()
    };
    if let Some(DevAction::Stop) = args.action {
        let cluster = Cluster::new(paths.cluster_options()).map_err(|e| anyhow!("{e}"))?;
        cluster.stop().map_err(|e| anyhow!("{e}"))?;
        println!("dev PostgreSQL stopped");
        return Ok(());
    }

    let url = ensure_dev_database(&paths).await?;
    let store_dir = paths.store_dir();
    let store = rat_versioning::fs::FsStore::open(store_dir.clone())
        .await
        .with_context(|| format!("opening the file store in {}", store_dir.display()))?;
    let report = rat_testkit::dao::migrate(&url.as_str().into())
        .await
        .context("migrating the dev database")?;
    if !report.applied.is_empty() {
        println!("applied {} migration(s)", report.applied.len());
    }
    if rat_testkit::seed::is_empty(&url).await? {
        println!("empty database: seeding the demo data set (pipelines published through the service)");
        rat_testkit::demo::seed_demo(&url, std::sync::Arc::new(store), false).await?;
    }

    // The services, built in debug mode and run with the dev settings.
    crate::cargo(&[
        "build",
        "--quiet",
        "--package",
        "rat-api",
        "--package",
        "rat-scheduler",
        "--package",
        "rat-reaper",
        "--package",
        "rat-runner",
    ])?;
    let bin_dir = crate::project_root().join("target/debug");
    // A fresh runner token per start: the dev runner and the api share it.
    let runner_token = format!("{:032x}", rand::random::<u128>());
    let environment = [
        ("RAT_DATABASE_URL", url.clone()),
        ("RAT_STORE", format!("fs:{}", store_dir.display())),
        ("RAT_LISTEN_ADDR", args.api_addr.clone()),
        ("RAT_INTERNAL_LISTEN_ADDR", args.internal_addr.clone()),
        ("RAT_RUNNER_TOKEN", runner_token.clone()),
    ];
    let mut services = Vec::new();
    let api = tokio::process::Command::new(bin_dir.join("rat-api"))
        .envs(environment.iter().map(|(k, v)| (*k, v.as_str())))
        // Its own process group: a terminal Ctrl-C reaches only xtask, which
        // then stops the services in order (runner, then api).
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .context("starting rat-api")?;
    services.push(("rat-api", api));
    wait_for_health(&args.api_addr).await?;
    // The api has migrated the database; the others start on it as is.
    for name in ["rat-scheduler", "rat-reaper"] {
        let child = tokio::process::Command::new(bin_dir.join(name))
            .envs(environment.iter().map(|(k, v)| (*k, v.as_str())))
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        services.push((name, child));
    }
    let runner = tokio::process::Command::new(bin_dir.join("rat-runner"))
        .env("RAT_RUNNER_API_URL", format!("http://{}", args.internal_addr))
        .env("RAT_RUNNER_TOKEN", &runner_token)
        .env("RAT_RUNNER_ID", "dev-runner")
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .context("starting rat-runner")?;
    services.push(("rat-runner", runner));

    println!();
    println!("RAT dev platform is up. State is kept in {}.", paths.root.display());
    println!();
    println!(
        "  API          http://{}/api/v1   (try: curl http://{}/api/v1/namespaces)",
        args.api_addr, args.api_addr
    );
    println!(
        "  Runner       rat-runner on http://{} (minimal: checks the pinned files, reports success)",
        args.internal_addr
    );
    println!("  Scheduler    rat-scheduler (cron schedules and cron triggers, woken by changes)");
    println!("  Reaper       rat-reaper (retention; POST /api/v1/admin/retention/run asks for a pass)");
    println!("  PostgreSQL   {url}");
    println!("               psql '{url}'");
    println!("               RAT_DATABASE_URL='{url}'");
    println!("  File store   RAT_STORE='fs:{}'", store_dir.display());
    println!();
    println!("Press Ctrl-C to stop.");

    let stopped_early = tokio::select! {
        signal = tokio::signal::ctrl_c() => {
            signal.context("waiting for Ctrl-C")?;
            None
        }
        (name, status) = first_exit(&mut services) => Some((name, status)),
    };
    if let Some((name, status)) = &stopped_early {
        eprintln!("{name} exited ({status}); stopping the platform");
    }
    println!("stopping...");
    // Last started, first stopped: the runner, reaper and scheduler finish
    // before the api goes.
    for (name, child) in services.iter_mut().rev() {
        terminate(name, child).await;
    }
    let cluster = Cluster::new(paths.cluster_options()).map_err(|e| anyhow!("{e}"))?;
    tokio::task::spawn_blocking(move || cluster.stop())
        .await?
        .map_err(|e| anyhow!("{e}"))?;
    println!("stopped; `cargo xtask dev` starts it again with the same data");
    match stopped_early {
        Some((name, status)) => anyhow::bail!("{name} exited unexpectedly ({status})"),
        None => Ok(()),
    }
}

/// Polls `GET /health` on `addr` until it answers 200 (at most 30 s).
async fn wait_for_health(addr: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..300 {
        let answered = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
            stream.write_all(b"GET /health HTTP/1.0\r\n\r\n").await.ok()?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head).await.ok()?;
            Some(head.ends_with(b" 200"))
        }
        .await
        .unwrap_or(false);
        if answered {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("{addr} did not answer GET /health within 30 s")
}

/// Resolves when the first of the services exits.
async fn first_exit(services: &mut [(&'static str, tokio::process::Child)]) -> (&'static str, String) {
    let waits = services.iter_mut().map(|(name, child)| {
        Box::pin(async move {
            let status = child.wait().await.map_or_else(|e| e.to_string(), |s| s.to_string());
            (*name, status)
        })
    });
    futures_util::future::select_all(waits).await.0
}

/// Asks a service to stop (SIGTERM) and waits up to 30 s before killing it.
async fn terminate(name: &str, child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    match tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            eprintln!("{name} did not stop within 30 s; killing it");
            let _ = child.kill().await;
        }
    }
}
