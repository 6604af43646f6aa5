//! `rat-api`: the ratd-compatible REST server of the RAT metadata plane.
//!
//! Variables (each also a flag; `rat-api --help` lists them all), besides the
//! shared ones of `rat-cli` (`RAT_DATABASE_URL`, `RAT_DB_POOL_SIZE`,
//! `RAT_LOG_FORMAT`, `RAT_STORE`, `RAT_S3_*`):
//! - `RAT_LISTEN_ADDR`: public listener (default `127.0.0.1:8080`)
//! - `RAT_API_KEY` / `RAT_API_KEY_FILE`: bearer key required on `/api/v1`
//! - `RAT_PUBLIC_URL`: base URL clients use (default `http://<listen addr>`)
//! - `RAT_INTERNAL_LISTEN_ADDR`: the runner listener (default `127.0.0.1:8090`)
//! - `RAT_RUNNER_TOKEN` / `RAT_RUNNER_TOKEN_FILE`: bearer token runners present there
//! - `RAT_INTERNAL_PUBLIC_URL`: base URL runners reach it at (default `http://<internal listen addr>`)
//! - `RAT_PRESIGN_TTL_SECS`: lifetime of presigned file URLs given to runners (default 900)
//! - `RAT_CORS_ORIGINS`: comma-separated allowed origins (default `http://localhost:3000`)
//! - `RAT_MAX_BODY_BYTES`, `RAT_MAX_UPLOAD_BYTES`: body limits (1 MiB, 32 MiB)
//! - `RAT_SHUTDOWN_TIMEOUT_SECS`: how long in-flight requests may finish after SIGTERM
//! - `RAT_SSE_MAX_PER_CLIENT`, `RAT_SSE_MAX_TOTAL`: live log streams per client IP and per process (8, 256)
//! - `RAT_WEBHOOK_RATE_PER_SEC`, `RAT_WEBHOOK_BURST`, `RAT_WEBHOOK_MAX_CLIENTS`: the webhook
//!   rate limit per client IP (10/s, bursts of 20, 10,000 clients tracked)
//! - `RAT_WORKER_THREADS`: async worker threads (default one per core)
//! - `RAT_ALLOWED_HOSTS`: host names served besides loopback ones when the api
//!   has no key and listens on loopback (DNS-rebinding protection)
//! - `RAT_METRICS_TOKEN` / `RAT_METRICS_TOKEN_FILE`: bearer token opening `/metrics`
//!   (besides the API key; without either, `/metrics` is open)
//! - `RAT_MAX_CONNECTIONS`: connections served at once per listener (1024)
//! - `RAT_HEADER_READ_TIMEOUT_SECS`: time to send a request head, also the idle
//!   keep-alive timeout (15)
//! - `RAT_BODY_IDLE_TIMEOUT_SECS`, `RAT_BODY_READ_TIMEOUT_SECS`: longest pause in,
//!   and longest time of, a request body (30, 300)
//! - `RAT_MAX_URI_BYTES`, `RAT_MAX_HEADER_BYTES`: request URI and header limits (8 KiB, 32 KiB)
//! - `RAT_MAX_CONCURRENT_UPLOADS`, `RAT_UPLOAD_SLOT_WAIT_SECS`: uploads received at once
//!   and how long another waits for a slot (4, 30)
//! - `RAT_MAX_EDITOR_BYTES`: largest file shown as text by `GET /files/{path}` (1 MiB)
//! - `RAT_PROBE_INTERVAL_MS`, `RAT_PROBE_TIMEOUT_MS`: how often the database (and a
//!   store known down) is probed, and how long a probe, or a store call before the
//!   store is probed, may take (1000, 1000); while either is down, requests
//!   needing it answer 503 at once (`rat_service::health`)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::HeaderValue;
use clap::{Parser, Subcommand};
use rat_api::state::{ApiSettings, AppState, defaults};
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
    /// Address of the internal listener runners talk to (the runner protocol).
    #[arg(long, env = "RAT_INTERNAL_LISTEN_ADDR", default_value = defaults::INTERNAL_LISTEN_ADDR)]
    internal_listen_addr: SocketAddr,
    /// Bearer token runners must present on the internal listener.
    #[arg(long, env = "RAT_RUNNER_TOKEN", hide_env_values = true)]
    runner_token: Option<String>,
    /// File holding the runner token.
    #[arg(long, env = "RAT_RUNNER_TOKEN_FILE")]
    runner_token_file: Option<PathBuf>,
    /// Base URL runners reach the internal listener at (used in file URLs).
    #[arg(long, env = "RAT_INTERNAL_PUBLIC_URL")]
    internal_public_url: Option<String>,
    /// Lifetime of the presigned file URLs handed to runners, in seconds.
    #[arg(long, env = "RAT_PRESIGN_TTL_SECS", default_value_t = defaults::PRESIGN_TTL_SECS,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    presign_ttl_secs: u64,
    /// Origins allowed by CORS, comma-separated (exact matches).
    #[arg(
        long,
        env = "RAT_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = defaults::CORS_ORIGINS
    )]
    cors_origins: Vec<String>,
    /// Largest JSON request body, in bytes.
    #[arg(long, env = "RAT_MAX_BODY_BYTES", default_value_t = defaults::MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Largest multipart upload, in bytes.
    #[arg(long, env = "RAT_MAX_UPLOAD_BYTES", default_value_t = defaults::MAX_UPLOAD_BYTES)]
    max_upload_bytes: usize,
    /// Async worker threads (default: one per CPU core).
    #[arg(long, env = "RAT_WORKER_THREADS")]
    worker_threads: Option<usize>,
    /// Seconds in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(long, env = "RAT_SHUTDOWN_TIMEOUT_SECS", default_value_t = 20)]
    shutdown_timeout_secs: u64,
    /// Milliseconds between two probes of the database, and of a file store
    /// known down.
    #[arg(long, env = "RAT_PROBE_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(50..=60_000))]
    probe_interval_ms: u64,
    /// Milliseconds a probe may take before its dependency counts as down;
    /// also how long a store call waits before the store is probed.
    #[arg(long, env = "RAT_PROBE_TIMEOUT_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(50..=60_000))]
    probe_timeout_ms: u64,
    /// Live log streams (SSE) one client IP address may hold open at once.
    #[arg(long, env = "RAT_SSE_MAX_PER_CLIENT", default_value_t = defaults::SSE_MAX_PER_CLIENT)]
    sse_max_per_client: usize,
    /// Live log streams (SSE) this process serves at once.
    #[arg(long, env = "RAT_SSE_MAX_TOTAL", default_value_t = defaults::SSE_MAX_TOTAL)]
    sse_max_total: usize,
    /// Sustained `POST /api/v1/webhooks` calls per second one client IP may make.
    #[arg(long, env = "RAT_WEBHOOK_RATE_PER_SEC", default_value_t = defaults::WEBHOOK_RATE_PER_SEC,
          value_parser = positive_rate)]
    webhook_rate_per_sec: f64,
    /// Webhook calls one client IP may make at once before its rate applies.
    #[arg(long, env = "RAT_WEBHOOK_BURST", default_value_t = defaults::WEBHOOK_BURST,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    webhook_burst: u32,
    /// Client IPs the webhook rate limiter tracks at once (bounds its memory).
    #[arg(long, env = "RAT_WEBHOOK_MAX_CLIENTS", default_value_t = defaults::WEBHOOK_MAX_CLIENTS as u64,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    webhook_max_clients: u64,
    /// Host names served besides loopback ones while the api has no key and
    /// listens on a loopback address (comma-separated).
    #[arg(long, env = "RAT_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// Bearer token that opens `/metrics` (the API key does too).
    #[arg(long, env = "RAT_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// File holding the metrics token.
    #[arg(long, env = "RAT_METRICS_TOKEN_FILE")]
    metrics_token_file: Option<PathBuf>,
    /// Connections each listener serves at once; further clients wait to be accepted.
    #[arg(long, env = "RAT_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Seconds a connection has to send a request head (also the idle keep-alive timeout).
    #[arg(long, env = "RAT_HEADER_READ_TIMEOUT_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_read_timeout_secs: u64,
    /// Longest pause, in seconds, between two pieces of a request body.
    #[arg(long, env = "RAT_BODY_IDLE_TIMEOUT_SECS", default_value_t = defaults::BODY_IDLE_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_idle_timeout_secs: u64,
    /// Longest time, in seconds, a whole request body may take.
    #[arg(long, env = "RAT_BODY_READ_TIMEOUT_SECS", default_value_t = defaults::BODY_READ_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    body_read_timeout_secs: u64,
    /// Longest request URI (path and query), in bytes.
    #[arg(long, env = "RAT_MAX_URI_BYTES", default_value_t = defaults::MAX_URI_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(256..=32 * 1024))]
    max_uri_bytes: u64,
    /// Largest total size of a request's headers, in bytes.
    #[arg(long, env = "RAT_MAX_HEADER_BYTES", default_value_t = defaults::MAX_HEADER_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1024..=48 * 1024))]
    max_header_bytes: u64,
    /// Uploads received at once (files, landing files, samples).
    #[arg(long, env = "RAT_MAX_CONCURRENT_UPLOADS", default_value_t = defaults::MAX_CONCURRENT_UPLOADS as u64,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    max_concurrent_uploads: u64,
    /// Seconds an upload waits for a slot before it is refused with 503.
    #[arg(long, env = "RAT_UPLOAD_SLOT_WAIT_SECS", default_value_t = defaults::UPLOAD_SLOT_WAIT_SECS,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    upload_slot_wait_secs: u64,
    /// Largest file `GET /files/{path}` shows as text, in bytes.
    #[arg(long, env = "RAT_MAX_EDITOR_BYTES", default_value_t = defaults::MAX_EDITOR_BYTES,
          value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    max_editor_bytes: u64,
    #[command(flatten)]
    oidc: OidcArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Sign-in with an OpenID Connect provider (multi-user mode).
#[derive(Debug, clap::Args)]
struct OidcArgs {
    /// The issuer URL; setting it turns multi-user mode on. Its discovery
    /// document (`{issuer}/.well-known/openid-configuration`) gives the JWKS.
    #[arg(long = "oidc-issuer", env = "RAT_OIDC_ISSUER")]
    issuer: Option<String>,
    /// The audience an access token must name in `aud` (required with an issuer).
    #[arg(long = "oidc-audience", env = "RAT_OIDC_AUDIENCE")]
    audience: Option<String>,
    /// The claim holding the user name (`sub` when a token lacks it).
    #[arg(
        long = "oidc-user-claim",
        env = "RAT_OIDC_USER_CLAIM",
        default_value = "preferred_username"
    )]
    user_claim: String,
    /// The dotted path of the claim holding the roles (Keycloak: `realm_access.roles`).
    #[arg(long = "oidc-roles-claim", env = "RAT_OIDC_ROLES_CLAIM", default_value = "groups")]
    roles_claim: String,
    /// The role that may do everything.
    #[arg(long = "admin-role", env = "RAT_ADMIN_ROLE", default_value = "rat-admin")]
    admin_role: String,
    /// Seconds of clock skew tolerated on a token's `exp` and `nbf`.
    #[arg(long = "oidc-leeway-secs", env = "RAT_OIDC_LEEWAY_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=600))]
    leeway_secs: u64,
    /// Least seconds between two JWKS fetches caused by unknown key ids.
    #[arg(long = "oidc-jwks-refresh-secs", env = "RAT_OIDC_JWKS_REFRESH_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    jwks_refresh_secs: u64,
}

impl OidcArgs {
    /// The issuer's verifier, discovered now; `None` without an issuer.
    async fn verifier(&self) -> anyhow::Result<Option<std::sync::Arc<rat_service::identity::OidcVerifier>>> {
        let Some(issuer) = self.issuer.as_deref().map(str::trim).filter(|i| !i.is_empty()) else {
            return Ok(None);
        };
        let Some(audience) = self.audience.as_deref().map(str::trim).filter(|a| !a.is_empty()) else {
            bail!("RAT_OIDC_AUDIENCE must be set with RAT_OIDC_ISSUER: tokens are accepted only for this audience");
        };
        let mut settings = rat_service::identity::OidcSettings::new(issuer, audience);
        settings.user_claim = self.user_claim.clone();
        settings.roles_claim = self.roles_claim.clone();
        settings.admin_role = self.admin_role.clone();
        settings.leeway = Duration::from_secs(self.leeway_secs);
        settings.jwks_refresh_interval = Duration::from_secs(self.jwks_refresh_secs);
        let verifier = rat_service::identity::OidcVerifier::discover(settings)
            .await
            .with_context(|| format!("reading the OpenID configuration of {issuer}"))?;
        tracing::info!(issuer, "multi-user mode: signing in with the issuer's access tokens");
        Ok(Some(std::sync::Arc::new(verifier)))
    }
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

/// A rate in calls per second: finite and positive.
fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0 => Ok(rate),
        _ => Err(format!(
            "expected a number of calls per second above 0 (at most 1000000), got {text:?}"
        )),
    }
}

/// No transparent huge pages for this process. mimalloc advises the kernel
/// to back its arenas with 2 MiB pages, so every arena region touched at all
/// costs a whole 2 MiB of resident memory: about 20 MiB of an idle rat-api's
/// 36 MiB. Allocation stays as fast; resident memory follows what is used.
/// Best effort: a kernel without the call (before 3.15) changes nothing.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("note: could not turn transparent huge pages off: {e}");
    }
}

fn main() -> anyhow::Result<()> {
    disable_transparent_huge_pages();
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
            return rat_cli::migrate(&cli.database.migration_database()?).await;
        }
        serve(cli).await
    })
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let api_key = rat_cli::secret("RAT_API_KEY", cli.api_key.as_deref(), cli.api_key_file.as_ref())?;
    let oidc = cli.oidc.verifier().await?;
    let authenticated = api_key.is_some() || oidc.is_some();
    if !authenticated && !cli.listen_addr.ip().is_loopback() && !cli.insecure_no_auth {
        bail!(
            "refusing to serve {} without authentication: set RAT_API_KEY or RAT_OIDC_ISSUER, bind a \
             loopback address, or pass --insecure-no-auth",
            cli.listen_addr
        );
    }
    let runner_token = rat_cli::secret(
        "RAT_RUNNER_TOKEN",
        cli.runner_token.as_deref(),
        cli.runner_token_file.as_ref(),
    )?;
    let metrics_token = rat_cli::secret(
        "RAT_METRICS_TOKEN",
        cli.metrics_token.as_deref(),
        cli.metrics_token_file.as_ref(),
    )?;
    if let Some(token) = &runner_token {
        use secrecy::ExposeSecret;
        // The runner token must never open /api/v1, nor a user key the runner listener.
        if api_key
            .as_ref()
            .is_some_and(|key| key.expose_secret() == token.expose_secret())
        {
            bail!("RAT_RUNNER_TOKEN must differ from RAT_API_KEY");
        }
    }
    let runner_open = rat_api::internal::open_without_token(
        runner_token.is_some(),
        authenticated,
        cli.internal_listen_addr,
        cli.insecure_no_auth,
    )
    .map_err(anyhow::Error::msg)?;
    let cors_origins = cli
        .cors_origins
        .iter()
        .filter(|o| !o.trim().is_empty())
        .map(|o| HeaderValue::from_str(o.trim()).with_context(|| format!("invalid CORS origin {o:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;

    cli.database.prepare("rat-api").await?;
    let pool = rat_service::db::create_pool(&cli.database.pool_settings("rat-api")?).context("creating the pool")?;
    let store = cli.store.open().await?;
    let mut settings = ApiSettings::new(
        cli.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", cli.listen_addr)),
    );
    settings.api_key = api_key;
    settings.oidc = oidc;
    settings.cors_origins = cors_origins;
    settings.max_json_body = cli.max_body_bytes;
    settings.max_upload = cli.max_upload_bytes;
    settings.runner_open = runner_open;
    settings.runner_token = runner_token;
    settings.internal_public_url = cli
        .internal_public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", cli.internal_listen_addr));
    settings.presign_ttl = Duration::from_secs(cli.presign_ttl_secs);
    settings.sse_max_per_client = cli.sse_max_per_client;
    settings.sse_max_total = cli.sse_max_total;
    settings.webhook_rate_per_second = cli.webhook_rate_per_sec;
    settings.webhook_burst = cli.webhook_burst;
    settings.webhook_max_clients = usize::try_from(cli.webhook_max_clients).unwrap_or(usize::MAX);
    settings.metrics_token = metrics_token;
    settings.allowed_hosts = rat_api::security::allowed_hosts(
        authenticated,
        cli.listen_addr.ip().is_loopback(),
        &[&settings.public_url, &settings.internal_public_url],
        &cli.allowed_hosts,
    );
    settings.max_uri_bytes = usize::try_from(cli.max_uri_bytes).unwrap_or(usize::MAX);
    settings.max_header_bytes = usize::try_from(cli.max_header_bytes).unwrap_or(usize::MAX);
    settings.body_deadlines = rat_api::body::BodyDeadlines {
        idle: Duration::from_secs(cli.body_idle_timeout_secs),
        total: Duration::from_secs(cli.body_read_timeout_secs),
    };
    settings.max_concurrent_uploads = usize::try_from(cli.max_concurrent_uploads).unwrap_or(usize::MAX);
    settings.upload_slot_wait = Duration::from_secs(cli.upload_slot_wait_secs);
    settings.max_editor_bytes = cli.max_editor_bytes;
    let limits = rat_api::server::ServeLimits {
        max_connections: usize::try_from(cli.max_connections).unwrap_or(usize::MAX),
        header_read_timeout: Duration::from_secs(cli.header_read_timeout_secs),
        // Room for the URI and headers we check ourselves, so requests over
        // our limits get our answer (with the envelope) rather than hyper's.
        max_head_bytes: settings.max_uri_bytes + settings.max_header_bytes + 4 * 1024,
    };
    raise_open_files_limit(limits.max_connections);
    let probe = rat_service::health::ProbeSettings {
        interval: Duration::from_millis(cli.probe_interval_ms),
        timeout: Duration::from_millis(cli.probe_timeout_ms),
    };
    let services = Services::with_probe_settings(pool, store, probe);
    // Marks the database or the store down while it does not answer, so
    // requests needing it fail at once instead of each waiting its timeout.
    tokio::spawn(rat_service::health::watch(
        services.clone(),
        cli.database.database()?,
        probe,
        tokio::sync::watch::channel(false).1,
    ));
    let state = AppState::new(
        services,
        settings,
        rat_api::metrics_handle(),
        rat_api::live::LiveLogs::new(cli.database.database()?),
    );
    // Live log streams never end on their own while their run is active:
    // they are ended when shutdown begins, so the graceful shutdown below
    // does not wait for them until the grace period runs out.
    let live = state.live.clone();
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
    // Requests refused before they did anything are summed into one audit
    // row per kind and minute, not written one row each.
    let refusals = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(REFUSALS_FLUSH_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = refusals.flush_refusals().await {
                tracing::warn!(error = %e, "could not record the refused requests in the audit log");
            }
        }
    });
    // Audit rows that could not be written when their action answered (the
    // database was away) are written as soon as it answers again.
    let spool = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(AUDIT_SPOOL_FLUSH_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match spool.flush_audit_spool().await {
                Ok(0) => {}
                Ok(written) => tracing::info!(written, "wrote spooled audit rows"),
                Err(e) => tracing::debug!(error = %e, waiting = spool.audit_spool.len(), "spooled audit rows wait"),
            }
        }
    });
    let final_flush = state.clone();
    let runner_auth = if state.settings.runner_token.is_some() {
        "token"
    } else if state.settings.runner_open {
        "none (community mode)"
    } else {
        "refusing every request (no RAT_RUNNER_TOKEN)"
    };
    let state_has_key = state.settings.api_key.is_some();
    let allowed_hosts_note = match &state.settings.allowed_hosts {
        None => "any".to_owned(),
        Some(extra) if extra.is_empty() => "loopback names".to_owned(),
        Some(extra) => format!("loopback names, {}", extra.join(", ")),
    };
    let internal_app = rat_api::internal::router(state.clone());
    let app = rat_api::app::router(state);

    let listener = tokio::net::TcpListener::bind(cli.listen_addr)
        .await
        .with_context(|| format!("binding {}", cli.listen_addr))?;
    tracing::info!(
        addr = %cli.listen_addr,
        auth = if state_has_key { "api key" } else { "none (community mode)" },
        hosts = allowed_hosts_note,
        "rat-api listening"
    );
    let internal_listener = tokio::net::TcpListener::bind(cli.internal_listen_addr)
        .await
        .with_context(|| format!("binding the runner listener {}", cli.internal_listen_addr))?;
    tracing::info!(addr = %cli.internal_listen_addr, auth = runner_auth, "runner listener listening");

    // One signal stops both listeners; each finishes its in-flight requests.
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        rat_cli::shutdown_signal().await;
        live.shutdown();
        let _ = stopping_tx.send(true);
    });
    let stopped = |mut stopping: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    };
    let public = rat_api::server::serve(listener, app, limits, stopped(stopping_rx.clone()));
    let internal = rat_api::server::serve(internal_listener, internal_app, limits, stopped(stopping_rx.clone()));
    let grace = Duration::from_secs(cli.shutdown_timeout_secs);
    let mut grace_rx = stopping_rx;
    tokio::select! {
        result = async { tokio::try_join!(public, internal) } => {
            result.context("serving")?;
        }
        () = async {
            let _ = grace_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time; exiting");
        }
    }
    if let Err(e) = final_flush.flush_audit_spool().await {
        tracing::error!(error = %e, lost = final_flush.audit_spool.len(), "could not write the spooled audit rows");
    }
    if let Err(e) = final_flush.flush_refusals().await {
        tracing::warn!(error = %e, "could not record the refused requests in the audit log");
    }
    tracing::info!("rat-api stopped");
    Ok(())
}

/// How often refused requests are summed into the audit log.
const REFUSALS_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// How often audit rows spooled during a database outage are written again.
const AUDIT_SPOOL_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Raises this process's soft limit of open files to its hard limit (as Go
/// programs do at start), so the connection cap, not the descriptor limit,
/// is what bounds the connections; warns when even the hard limit is below
/// what two listeners at the cap need.
fn raise_open_files_limit(max_connections: usize) {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
            return;
        };
        if soft < hard
            && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
        {
            tracing::warn!(error = %e, "could not raise the open files limit");
        }
        let limit = getrlimit(Resource::RLIMIT_NOFILE).map_or(soft, |(soft, _)| soft);
        // Both listeners at the cap, the pool, the store's connections and spare.
        let needed = (2 * max_connections as u64).saturating_add(256);
        if limit < needed {
            tracing::warn!(
                open_files_limit = limit,
                needed,
                "the open files limit is below what RAT_MAX_CONNECTIONS needs on both listeners; \
                 lower RAT_MAX_CONNECTIONS or raise the limit (ulimit -n)"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = max_connections;
}
