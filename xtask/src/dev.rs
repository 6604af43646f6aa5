//! `cargo xtask dev`: the platform on one machine, on embedded defaults.
//!
//! Everything lives under `.rat-dev/` in the checkout, so a restart keeps it:
//! `pg/` is a private PostgreSQL cluster listening on 127.0.0.1 only, and
//! `store/` the filesystem-backed versioned file store. Later issues add the
//! api, scheduler and reaper processes.

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
    fn cluster_options(&self) -> ClusterOptions {
        ClusterOptions {
            base_dir: self.root.join("pg"),
            socket_dir: None,
            tcp: true,
            port: self.pg_port,
            durable: true,
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
    let store_dir = paths.root.join("store");
    rat_versioning::fs::FsStore::open(store_dir.clone())
        .await
        .with_context(|| format!("opening the file store in {}", store_dir.display()))?;
    let report = rat_dao::migrate(&url).await.context("migrating the dev database")?;
    if !report.applied.is_empty() {
        println!("applied {} migration(s)", report.applied.len());
    }
    if rat_testkit::seed::is_empty(&url).await? {
        println!("empty database: seeding a small demo data set");
        rat_testkit::seed::seed(&url, &rat_testkit::seed::Scale::small(), false).await?;
    }

    println!();
    println!("RAT dev platform is up. State is kept in {}.", paths.root.display());
    println!();
    println!("  PostgreSQL   {url}");
    println!("               psql '{url}'");
    println!("               RAT_DATABASE_URL='{url}'");
    println!("  File store   RAT_STORE='fs:{}'", store_dir.display());
    println!();
    println!("Press Ctrl-C to stop.");

    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    println!("stopping...");
    let cluster = Cluster::new(paths.cluster_options()).map_err(|e| anyhow!("{e}"))?;
    tokio::task::spawn_blocking(move || cluster.stop())
        .await?
        .map_err(|e| anyhow!("{e}"))?;
    println!("stopped; `cargo xtask dev` starts it again with the same data");
    Ok(())
}
