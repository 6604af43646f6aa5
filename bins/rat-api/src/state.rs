//! What every handler shares: the services, the runtime settings and the
//! metrics handle. Nothing here caches data from the database: every request
//! reads Postgres, so any replica answers the same.

use std::sync::Arc;

use axum::http::HeaderValue;
use metrics_exporter_prometheus::PrometheusHandle;
use rat_service::Services;
use secrecy::SecretString;

/// The defaults of the settings that are also flags of `rat-api`, stated
/// once: [`ApiSettings::new`] starts from them, and `main`'s flags show them
/// in `--help`.
pub mod defaults {
    /// Largest JSON request body, in bytes (`RAT_MAX_BODY_BYTES`).
    pub const MAX_BODY_BYTES: usize = 1024 * 1024;
    /// Largest multipart upload, in bytes (`RAT_MAX_UPLOAD_BYTES`).
    pub const MAX_UPLOAD_BYTES: usize = 32 * 1024 * 1024;
    /// The origin allowed by CORS: the portal (`RAT_CORS_ORIGINS`).
    pub const CORS_ORIGINS: &str = "http://localhost:3000";
    /// Address of the internal (runner) listener (`RAT_INTERNAL_LISTEN_ADDR`);
    /// the runners' URL of it is `http://` and this.
    pub const INTERNAL_LISTEN_ADDR: &str = "127.0.0.1:8090";
    /// Lifetime of presigned file URLs, in seconds (`RAT_PRESIGN_TTL_SECS`).
    pub const PRESIGN_TTL_SECS: u64 = 900;
    /// Live log streams per client IP (`RAT_SSE_MAX_PER_CLIENT`).
    pub const SSE_MAX_PER_CLIENT: usize = 8;
    /// Live log streams per process (`RAT_SSE_MAX_TOTAL`).
    pub const SSE_MAX_TOTAL: usize = 256;
    /// Webhook calls per second per client IP (`RAT_WEBHOOK_RATE_PER_SEC`).
    pub const WEBHOOK_RATE_PER_SEC: f64 = 10.0;
    /// Webhook calls at once per client IP (`RAT_WEBHOOK_BURST`).
    pub const WEBHOOK_BURST: u32 = 20;
    /// Client IPs the webhook rate limiter tracks (`RAT_WEBHOOK_MAX_CLIENTS`).
    pub const WEBHOOK_MAX_CLIENTS: usize = 10_000;
    /// Longest request URI, in bytes (`RAT_MAX_URI_BYTES`).
    pub const MAX_URI_BYTES: usize = 8 * 1024;
    /// Largest total size of a request's headers, in bytes (`RAT_MAX_HEADER_BYTES`).
    pub const MAX_HEADER_BYTES: usize = 32 * 1024;
    /// Longest pause in a request body, in seconds (`RAT_BODY_IDLE_TIMEOUT_SECS`).
    pub const BODY_IDLE_TIMEOUT_SECS: u64 = 30;
    /// Longest time of a whole request body, in seconds (`RAT_BODY_READ_TIMEOUT_SECS`).
    pub const BODY_READ_TIMEOUT_SECS: u64 = 300;
    /// Uploads received at once (`RAT_MAX_CONCURRENT_UPLOADS`).
    pub const MAX_CONCURRENT_UPLOADS: usize = 4;
    /// Seconds an upload waits for a slot (`RAT_UPLOAD_SLOT_WAIT_SECS`).
    pub const UPLOAD_SLOT_WAIT_SECS: u64 = 30;
    /// Largest file shown as text, in bytes (`RAT_MAX_EDITOR_BYTES`).
    pub const MAX_EDITOR_BYTES: u64 = 1024 * 1024;
}

/// Settings the handlers need, built by `main` from flags and variables.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Bearer key required on `/api/v1` (except webhooks); `None` = no auth.
    pub api_key: Option<SecretString>,
    /// The issuer's token verifier (`RAT_OIDC_ISSUER`): users sign in with
    /// its access tokens (multi-user mode).
    pub oidc: Option<Arc<rat_service::identity::OidcVerifier>>,
    /// Largest JSON body accepted.
    pub max_json_body: usize,
    /// Largest multipart upload accepted.
    pub max_upload: usize,
    /// Origins allowed by CORS (exact matches).
    pub cors_origins: Vec<HeaderValue>,
    /// Base URL clients reach this api at (webhook URLs are built from it).
    pub public_url: String,
    /// Build information shown by the health routes.
    pub build: BuildInfo,
    /// Time allowed to each readiness check.
    pub readiness_timeout: std::time::Duration,
    /// Live log streams one client (IP address) may hold open at once.
    pub sse_max_per_client: usize,
    /// Live log streams this process serves at once.
    pub sse_max_total: usize,
    /// Interval of the `: keep-alive` comments of an idle live log stream.
    pub sse_keep_alive: std::time::Duration,
    /// A live log stream re-reads at least this often, in case a
    /// notification was missed.
    pub sse_poll_interval: std::time::Duration,
    /// Bearer token runners present on the internal (runner) listener.
    pub runner_token: Option<SecretString>,
    /// Without a runner token, whether the internal listener lets every
    /// request through (community mode on loopback, or `--insecure-no-auth`);
    /// when false it refuses every request with 401. Ignored with a token.
    pub runner_open: bool,
    /// Base URL runners reach the internal listener at; the file URLs of
    /// claims on a store that cannot presign are built from it.
    pub internal_public_url: String,
    /// Lifetime of the presigned file URLs handed out with claims.
    pub presign_ttl: std::time::Duration,
    /// `POST /api/v1/webhooks` calls one client (IP address) may make per
    /// second, sustained.
    pub webhook_rate_per_second: f64,
    /// `POST /api/v1/webhooks` calls one client may make at once, before the
    /// sustained rate applies.
    pub webhook_burst: u32,
    /// Clients the webhook rate limiter tracks at once (bounds its memory).
    pub webhook_max_clients: usize,
    /// Bearer token `/metrics` requires besides the API key; without either,
    /// `/metrics` is open.
    pub metrics_token: Option<SecretString>,
    /// `Host` names served besides loopback ones; `None` serves every name.
    /// `main` restricts a server without an API key on a loopback address
    /// ([`crate::security::allowed_hosts`]).
    pub allowed_hosts: Option<Vec<String>>,
    /// Longest request URI (path and query) in bytes; longer ones are 414.
    pub max_uri_bytes: usize,
    /// Largest total size of a request's headers in bytes; larger are 431.
    pub max_header_bytes: usize,
    /// How long a request body may pause and take in all (408 after).
    pub body_deadlines: crate::body::BodyDeadlines,
    /// Uploads (files, landing files, samples) received at once; more wait
    /// for a slot, at most `upload_slot_wait`.
    pub max_concurrent_uploads: usize,
    /// How long an upload waits for a slot before it is refused with 503.
    pub upload_slot_wait: std::time::Duration,
    /// Largest file `GET /files/{path}` returns as editable text; larger
    /// ones, and binary ones, are downloaded with `?download=true`.
    pub max_editor_bytes: u64,
}

/// Version information of this build.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// Crate version.
    pub version: &'static str,
    /// Git commit, when known at build time.
    pub git_commit: &'static str,
    /// Build time, when known.
    pub build_time: &'static str,
}

impl BuildInfo {
    /// This binary's build information (`RAT_GIT_COMMIT` / `RAT_BUILD_TIME`
    /// may be set in the build environment).
    pub fn current() -> Self {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            git_commit: option_env!("RAT_GIT_COMMIT").unwrap_or("unknown"),
            build_time: option_env!("RAT_BUILD_TIME").unwrap_or("unknown"),
        }
    }
}

impl ApiSettings {
    /// Defaults of the contract: those of [`defaults`] (the runner
    /// listener's URL from its default address), no auth on `/api/v1`; the
    /// runner listener refuses every request until a runner token is set
    /// (or `runner_open`); every `Host` served.
    pub fn new(public_url: impl Into<String>) -> Self {
        ApiSettings {
            api_key: None,
            oidc: None,
            max_json_body: defaults::MAX_BODY_BYTES,
            max_upload: defaults::MAX_UPLOAD_BYTES,
            cors_origins: vec![HeaderValue::from_static(defaults::CORS_ORIGINS)],
            public_url: public_url.into(),
            build: BuildInfo::current(),
            readiness_timeout: std::time::Duration::from_secs(2),
            sse_max_per_client: defaults::SSE_MAX_PER_CLIENT,
            sse_max_total: defaults::SSE_MAX_TOTAL,
            sse_keep_alive: std::time::Duration::from_secs(15),
            sse_poll_interval: std::time::Duration::from_secs(5),
            runner_token: None,
            runner_open: false,
            internal_public_url: format!("http://{}", defaults::INTERNAL_LISTEN_ADDR),
            presign_ttl: std::time::Duration::from_secs(defaults::PRESIGN_TTL_SECS),
            webhook_rate_per_second: defaults::WEBHOOK_RATE_PER_SEC,
            webhook_burst: defaults::WEBHOOK_BURST,
            webhook_max_clients: defaults::WEBHOOK_MAX_CLIENTS,
            metrics_token: None,
            allowed_hosts: None,
            max_uri_bytes: defaults::MAX_URI_BYTES,
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            body_deadlines: crate::body::BodyDeadlines {
                idle: std::time::Duration::from_secs(defaults::BODY_IDLE_TIMEOUT_SECS),
                total: std::time::Duration::from_secs(defaults::BODY_READ_TIMEOUT_SECS),
            },
            max_concurrent_uploads: defaults::MAX_CONCURRENT_UPLOADS,
            upload_slot_wait: std::time::Duration::from_secs(defaults::UPLOAD_SLOT_WAIT_SECS),
            max_editor_bytes: defaults::MAX_EDITOR_BYTES,
        }
    }
}

/// Shared state of the router: one `Arc`, since every middleware layer and
/// handler takes its own clone on every request.
#[derive(Clone)]
pub struct AppState(Arc<AppStateParts>);

impl AppState {
    /// The state of a router serving `services` with `settings`.
    pub fn new(
        services: Services,
        settings: ApiSettings,
        metrics: PrometheusHandle,
        live: crate::live::LiveLogs,
    ) -> Self {
        let uploads = Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent_uploads.max(1)));
        let auth = rat_service::identity::Authenticator::new(settings.api_key.clone(), settings.oidc.clone())
            .with_personal_tokens(services.pool.clone());
        AppState(Arc::new(AppStateParts {
            auth,
            services,
            settings: Arc::new(settings),
            metrics,
            live,
            refusals: crate::refusals::Refusals::default(),
            audit_spool: std::sync::Arc::default(),
            uploads,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateParts;

    fn deref(&self) -> &AppStateParts {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct AppStateParts {
    /// Database pool and file store.
    pub services: Services,
    /// Runtime settings.
    pub settings: Arc<ApiSettings>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Live log streams: the notifier, the stream counters, the shutdown signal.
    pub live: crate::live::LiveLogs,
    /// Requests refused before they did anything, to be summed into the
    /// audit log ([`AppState::flush_refusals`]).
    pub refusals: crate::refusals::Refusals,
    /// Audit rows whose write failed after their action answered, written
    /// again by [`AppState::flush_audit_spool`].
    pub audit_spool: std::sync::Arc<rat_service::audit::Spool>,
    /// Upload slots ([`ApiSettings::max_concurrent_uploads`]).
    pub uploads: Arc<tokio::sync::Semaphore>,
    /// Turns a request's credential into a caller.
    pub auth: rat_service::identity::Authenticator,
}

impl AppState {
    /// Writes the summary audit rows of the refusals counted since the last
    /// call ([`crate::refusals`]); `main` calls it every minute and at
    /// shutdown. Returns how many rows were written.
    pub async fn flush_refusals(&self) -> Result<usize, rat_service::ServiceError> {
        let now = time::OffsetDateTime::now_utc();
        let entries = self.refusals.take(now);
        rat_service::audit::record(&self.services, &entries, None, now).await
    }

    /// Writes the audit rows spooled because the database did not answer
    /// ([`rat_service::audit::Spool`]); `main` calls it every second and at
    /// shutdown.
    pub async fn flush_audit_spool(&self) -> Result<usize, rat_service::ServiceError> {
        if self.audit_spool.is_empty() {
            return Ok(0);
        }
        self.audit_spool.flush(&self.services).await
    }
}
