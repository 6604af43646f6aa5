//! `rat-api`: the ratd-compatible REST server of the RAT metadata plane.
//!
//! Variables (each also a flag; `rat-api --help` lists them all), besides the
//! shared ones of `rat-cli` (`RAT_DATABASE_URL`, `RAT_DB_POOL_SIZE`,
//! `RAT_LOG_FORMAT`, `RAT_STORE`, `RAT_S3_*`):
//! - `RAT_LISTEN_ADDR`: public listener (default `127.0.0.1:8080`)
//! - `RAT_API_KEY` / `RAT_API_KEY_FILE`: bearer key required on `/api/v1`
//! - `RAT_PUBLIC_URL`: base URL clients use (default `http://<listen addr>`)
//! - `RAT_CORS_ORIGINS`: comma-separated allowed origins (default `http://localhost:3000`)
//! - `RAT_MAX_BODY_BYTES`, `RAT_MAX_UPLOAD_BYTES`: body limits (1 MiB, 32 MiB)
//! - `RAT_SHUTDOWN_TIMEOUT_SECS`: how long in-flight requests may finish after SIGTERM
//! - `RAT_WORKER_THREADS`: async worker threads (default one per core)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::HeaderValue;
use clap::{Parser, Subcommand};
use rat_api::state::{ApiSettings, AppState};
use rat_service::Services;

/// The RAT metadata REST API (ratd-compatible `/api/v1`).
#[derive(Debug, Parser)]
#[command(name = "rat-api", version, about)]
struct Cli {
    #[command(flatten)]
    database: rat_cli::DatabaseArgs,
    #[command(flatten)]
    store: rat_cli::StoreArgs,
    #[command(flatten)]
    log: rat_cli::LogArgs,
    /// Address of the public listener.
    #[arg(long, env = "RAT_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    listen_addr: SocketAddr,
    /// Bearer key required on every `/api/v1` route (webhooks excepted).
    #[arg(long, env = "RAT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// File holding the API key.
    #[arg(long, env = "RAT_API_KEY_FILE")]
    api_key_file: Option<PathBuf>,
    /// Serve a non-loopback address without any authentication (dangerous).
    #[arg(long)]
    insecure_no_auth: bool,
    /// Base URL clients reach this api at (used in webhook URLs).
    #[arg(long, env = "RAT_PUBLIC_URL")]
    public_url: Option<String>,
    /// Origins allowed by CORS, comma-separated (exact matches).
    #[arg(
        long,
        env = "RAT_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:3000"
    )]
    cors_origins: Vec<String>,
    /// Largest JSON request body, in bytes.
    #[arg(long, env = "RAT_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Largest multipart upload, in bytes.
    #[arg(long, env = "RAT_MAX_UPLOAD_BYTES", default_value_t = 32 * 1024 * 1024)]
    max_upload_bytes: usize,
    /// Async worker threads (default: one per CPU core).
    #[arg(long, env = "RAT_WORKER_THREADS")]
    worker_threads: Option<usize>,
    /// Seconds in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(long, env = "RAT_SHUTDOWN_TIMEOUT_SECS", default_value_t = 20)]
    shutdown_timeout_secs: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending schema migrations and exit.
    Migrate,
}

/// mimalloc: markedly cheaper than the system allocator for the many small,
/// short-lived allocations of request handling.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _log_writer = cli.log.init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = cli.worker_threads {
        anyhow::ensure!(threads >= 1, "RAT_WORKER_THREADS must be at least 1");
        runtime.worker_threads(threads);
    }
    let runtime = runtime.build().context("starting the async runtime")?;
    runtime.block_on(async {
        if let Some(Command::Migrate) = cli.command {
            return rat_cli::migrate(&cli.database.database_url).await;
        }
        serve(cli).await
    })
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let api_key = rat_cli::secret("RAT_API_KEY", cli.api_key.as_deref(), cli.api_key_file.as_ref())?;
    if api_key.is_none() && !cli.listen_addr.ip().is_loopback() && !cli.insecure_no_auth {
        bail!(
            "refusing to serve {} without authentication: set RAT_API_KEY, bind a loopback address, \
             or pass --insecure-no-auth",
            cli.listen_addr
        );
    }
    let cors_origins = cli
        .cors_origins
        .iter()
        .filter(|o| !o.trim().is_empty())
        .map(|o| HeaderValue::from_str(o.trim()).with_context(|| format!("invalid CORS origin {o:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;

    cli.database.migrate_unless_disabled().await?;
    let pool = rat_dao::create_pool(&cli.database.pool_settings("rat-api")).context("creating the pool")?;
    let store = cli.store.open().await?;
    let mut settings = ApiSettings::new(
        cli.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", cli.listen_addr)),
    );
    settings.api_key = api_key;
    settings.cors_origins = cors_origins;
    settings.max_json_body = cli.max_body_bytes;
    settings.max_upload = cli.max_upload_bytes;
    let state = AppState {
        services: Services::new(pool, store),
        settings: Arc::new(settings),
        metrics: rat_api::metrics_handle(),
    };
    // Histogram samples accumulate until drained: without this, a server
    // nobody scrapes would grow without bound.
    let upkeep = state.metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = rat_api::app::router(state);

    let listener = tokio::net::TcpListener::bind(cli.listen_addr)
        .await
        .with_context(|| format!("binding {}", cli.listen_addr))?;
    tracing::info!(addr = %cli.listen_addr, auth = cli.api_key.is_some() || cli.api_key_file.is_some(), "rat-api listening");

    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(
        async move {
            rat_cli::shutdown_signal().await;
            let _ = stopping_tx.send(true);
        },
    );
    let grace = Duration::from_secs(cli.shutdown_timeout_secs);
    tokio::select! {
        result = server => result.context("serving")?,
        () = async {
            let _ = stopping_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time; exiting");
        }
    }
    tracing::info!("rat-api stopped");
    Ok(())
}
