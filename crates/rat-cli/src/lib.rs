//! What `rat-api`, `rat-scheduler` and `rat-reaper` share: the database flags,
//! logging setup and the `migrate` subcommand. Only binaries depend on this
//! crate; library crates take typed config and never read the environment.
//!
//! Variables (each also a flag, `RAT_DATABASE_URL` = `--database-url`):
//! - `RAT_DATABASE_URL`: Postgres connection string (`postgres://…` or
//!   `host=/path …`; `sslmode` and `sslrootcert` are honoured), possibly a pooler
//! - `RAT_DATABASE_DIRECT_URL`: straight to Postgres, for `LISTEN`, session
//!   advisory locks and migrations (required with `RAT_DB_POOLER=transaction`)
//! - `RAT_MIGRATE_DATABASE_URL`: the schema owner's connection, for migrations
//! - `RAT_DB_SCHEMA`: the tenant schema (default `public`)
//! - `RAT_DB_POOLER`: `session` (default: Postgres itself, or a session pooler)
//!   or `transaction` (PgBouncer `pool_mode = transaction`)
//! - `RAT_DB_STATEMENTS`: `auto` (default) or `unnamed` (as through a
//!   transaction pooler, even straight to Postgres; for measuring)
//! - `RAT_DB_POOL_SIZE`: pool size (default 16)
//! - `RAT_LOG_FORMAT`: `text` (default) or `json`
//! - `RAT_STORE`: `s3` or `fs:<dir>` (api, reaper)
//! - `RAT_S3_ENDPOINT`, `RAT_S3_REGION`, `RAT_S3_BUCKET`, `RAT_S3_ACCESS_KEY`
//!   (or `RAT_S3_ACCESS_KEY_FILE`), `RAT_S3_SECRET_KEY` (or
//!   `RAT_S3_SECRET_KEY_FILE`), `RAT_S3_PATH_STYLE`, `RAT_S3_CREATE_BUCKET`,
//!   `RAT_S3_TIMEOUT_SECS`: the S3 store
//!
//! What it must never do: be depended on by a library crate, or hold
//! business rules (it turns flags into `rat-service`'s typed settings).
//!
//! ```no_run
//! use clap::Parser;
//!
//! /// A program configured exactly like the platform's binaries.
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     database: rat_cli::DatabaseArgs,
//!     #[command(flatten)]
//!     store: rat_cli::StoreArgs,
//! }
//!
//! # async fn example() -> anyhow::Result<()> {
//! let cli = Cli::parse();
//! cli.database.prepare("my-program").await?; // migrate, then check the schema
//! let pool = rat_service::db::create_pool(&cli.database.pool_settings("my-program")?)?;
//! let services = rat_service::Services::new(pool, cli.store.open().await?);
//! # let _ = services;
//! # Ok(())
//! # }
//! ```

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use rat_service::db::{Database, SchemaState};
use rat_service::listen::ListenEvent;
use rat_versioning::VersionedStore;
use secrecy::{ExposeSecret, SecretString};

/// Database flags every binary takes.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Postgres connection string (`postgres://user@host:port/db` or `host=/socket/dir dbname=rat`);
    /// `sslmode` (disable, prefer, require, verify-ca, verify-full) and `sslrootcert` are honoured.
    #[arg(long, env = "RAT_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Straight to Postgres when `--database-url` is a pooler: `LISTEN`, session advisory locks
    /// and migrations go here.
    #[arg(long, env = "RAT_DATABASE_DIRECT_URL", hide_env_values = true)]
    pub database_direct_url: Option<String>,
    /// The schema owner's connection string, for migrations (default: the direct URL).
    #[arg(long, env = "RAT_MIGRATE_DATABASE_URL", hide_env_values = true)]
    pub migrate_database_url: Option<String>,
    /// The tenant schema every table, notification channel and lock lives in.
    #[arg(long, env = "RAT_DB_SCHEMA", default_value = rat_service::db::DEFAULT_SCHEMA)]
    pub db_schema: String,
    /// What `--database-url` reaches: `session` (Postgres, or a session pooler) or
    /// `transaction` (a transaction pooler such as PgBouncer in `pool_mode = transaction`).
    #[arg(long, env = "RAT_DB_POOLER", default_value = "session")]
    pub db_pooler: String,
    /// `unnamed` sends every statement unnamed, as through a transaction pooler, even straight
    /// to Postgres: to measure what that mode costs (`cargo xtask bench api --via-pgbouncer`).
    /// `auto` (default): unnamed only with `RAT_DB_POOLER=transaction`.
    #[arg(long, env = "RAT_DB_STATEMENTS", default_value = "auto", value_parser = ["auto", "unnamed"])]
    pub db_statements: String,
    /// Most pooled connections this process opens.
    #[arg(long, env = "RAT_DB_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub db_pool_size: u16,
    /// Do not apply pending migrations at start (the services' role cannot: they then check
    /// that the schema is the version they need).
    #[arg(long)]
    pub no_migrate: bool,
}

impl DatabaseArgs {
    /// The database as the flags describe it, validated (schema name, pooler
    /// mode, connection strings).
    pub fn database(&self) -> anyhow::Result<Database> {
        let database = Database {
            url: self.database_url.clone(),
            direct_url: self.database_direct_url.clone(),
            schema: self.db_schema.parse().context("RAT_DB_SCHEMA")?,
            pooler: self.db_pooler.parse().context("RAT_DB_POOLER")?,
        };
        database.validate().context("database settings")?;
        Ok(database)
    }

    /// The database migrations run against: the owner's URL when given,
    /// else the direct one; always straight to Postgres, in the schema.
    pub fn migration_database(&self) -> anyhow::Result<Database> {
        let database = self.database()?;
        let url = self
            .migrate_database_url
            .clone()
            .unwrap_or_else(|| database.session_url().to_owned());
        Ok(Database {
            url,
            direct_url: None,
            schema: database.schema,
            pooler: rat_service::db::PoolerMode::Session,
        })
    }

    /// Pool settings for this process.
    pub fn pool_settings(&self, application_name: &str) -> anyhow::Result<rat_service::db::PoolSettings> {
        let mut settings = rat_service::db::PoolSettings::new(self.database()?);
        settings.max_size = usize::from(self.db_pool_size);
        settings.application_name = application_name.to_owned();
        Ok(settings)
    }

    /// Prepares the database for a service at start: sends statements
    /// unnamed from now on when `RAT_DB_STATEMENTS=unnamed`, applies pending
    /// migrations (as the owner) unless `--no-migrate` was given, then checks
    /// that a connection works as the pool makes it (TLS, role, schema) and
    /// that the schema is the version this build needs. An older schema is
    /// refused, saying how to migrate; a newer one (an upgrade rolling out:
    /// migrations only add) is logged and accepted.
    pub async fn prepare(&self, application_name: &str) -> anyhow::Result<()> {
        if self.db_statements == "unnamed" {
            rat_service::db::use_unnamed_statements();
        }
        if self.no_migrate {
            tracing::info!("--no-migrate: schema migrations skipped");
        } else {
            migrate(&self.migration_database()?).await?;
        }
        let settings = self.pool_settings(application_name)?;
        settings
            .check_connection()
            .await
            .context("connecting to the database")?;
        let database = self.database()?;
        match rat_service::db::schema_state(&database)
            .await
            .context("reading the schema version")?
        {
            SchemaState::UpToDate { version } => {
                tracing::info!(version, schema = %database.schema, "schema is the version this build needs");
                Ok(())
            }
            SchemaState::Older { found, needed } => bail!(
                "schema {} is at version {found}, this build needs version {needed}: apply the migrations as \
                 the schema's owner first (`{application_name} migrate` with RAT_MIGRATE_DATABASE_URL set to the \
                 owner's connection), then start the services",
                database.schema
            ),
            SchemaState::Newer { found, known } => {
                tracing::warn!(
                    found,
                    known,
                    schema = %database.schema,
                    "the schema was migrated by a newer build; running on it (migrations only add), \
                     upgrade this binary"
                );
                Ok(())
            }
        }
    }
}

/// Applies pending migrations of `database` (under its migration advisory
/// lock) and logs what was applied.
pub async fn migrate(database: &Database) -> anyhow::Result<()> {
    let report = rat_service::db::migrate(database)
        .await
        .context("applying schema migrations")?;
    tracing::info!(applied = report.applied.len(), schema = %database.schema, "schema is up to date");
    Ok(())
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging flags every binary takes.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "RAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl LogArgs {
    /// Installs the global tracing subscriber; `RUST_LOG` filters (default
    /// `info`). Lines go to stderr through a background writer, so a request
    /// never waits on the terminal or a log pipe; keep the returned guard
    /// alive until exit, or the last lines may be lost.
    #[must_use = "dropping the guard stops the log writer"]
    pub fn init(&self) -> tracing_appender::non_blocking::WorkerGuard {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
        match self.log_format {
            LogFormat::Text => builder.init(),
            LogFormat::Json => builder.json().init(),
        }
        guard
    }
}

/// Reads a secret given directly or through a `*_FILE` path (trailing
/// newline removed). Giving both is an error, and so is an empty or
/// whitespace-only secret: it would match an absent credential, or be taken
/// for "no secret" by one reader and for "a secret" by another.
pub fn secret(name: &str, value: Option<&str>, file: Option<&PathBuf>) -> anyhow::Result<Option<SecretString>> {
    let text = match (value, file) {
        (Some(_), Some(_)) => bail!("give {name} or {name}_FILE, not both"),
        (Some(value), None) => value.to_owned(),
        (None, Some(path)) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {name}_FILE {}", path.display()))?;
            text.trim_end_matches(['\n', '\r']).to_owned()
        }
        (None, None) => return Ok(None),
    };
    if text.trim().is_empty() {
        match file {
            Some(path) => bail!(
                "{name}_FILE {} holds an empty secret: put the secret in it, or unset {name}_FILE",
                path.display()
            ),
            None => bail!("{name} is set but empty: set it to the secret, or unset it"),
        }
    }
    Ok(Some(SecretString::from(text)))
}

/// Where pipeline code is stored.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// `s3` (an S3 bucket with versioning) or `fs:<dir>` (a local versioned store).
    #[arg(long, env = "RAT_STORE", default_value = "s3")]
    pub store: String,
    /// S3 endpoint URL (`https://s3.eu-west-1.amazonaws.com`, `http://minio:9000`).
    #[arg(long, env = "RAT_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "RAT_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Bucket holding pipeline code (versioning must be enabled).
    #[arg(long, env = "RAT_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// Access key id.
    #[arg(long, env = "RAT_S3_ACCESS_KEY", hide_env_values = true)]
    pub s3_access_key: Option<String>,
    /// File holding the access key id.
    #[arg(long, env = "RAT_S3_ACCESS_KEY_FILE")]
    pub s3_access_key_file: Option<PathBuf>,
    /// Secret access key.
    #[arg(long, env = "RAT_S3_SECRET_KEY", hide_env_values = true)]
    pub s3_secret_key: Option<String>,
    /// File holding the secret access key.
    #[arg(long, env = "RAT_S3_SECRET_KEY_FILE")]
    pub s3_secret_key_file: Option<PathBuf>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most non-AWS servers.
    #[arg(long, env = "RAT_S3_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub s3_path_style: bool,
    /// Create the bucket (with versioning) when it is missing.
    #[arg(long, env = "RAT_S3_CREATE_BUCKET", default_value_t = false, action = clap::ArgAction::Set)]
    pub s3_create_bucket: bool,
    /// Timeout of each S3 request, in seconds.
    #[arg(long, env = "RAT_S3_TIMEOUT_SECS", default_value_t = 10)]
    pub s3_timeout_secs: u64,
}

impl StoreArgs {
    /// Opens the configured store: connects to S3 (verifying versioning) or
    /// opens the local directory.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn VersionedStore>> {
        if let Some(dir) = self.store.strip_prefix("fs:") {
            let store = rat_versioning::fs::FsStore::open(PathBuf::from(dir))
                .await
                .with_context(|| format!("opening the file store in {dir}"))?;
            return Ok(Arc::new(store));
        }
        if self.store != "s3" {
            bail!("RAT_STORE must be `s3` or `fs:<dir>`, got {:?}", self.store);
        }
        let missing = |name: &str| anyhow::anyhow!("RAT_STORE=s3 needs {name}");
        let access = secret(
            "RAT_S3_ACCESS_KEY",
            self.s3_access_key.as_deref(),
            self.s3_access_key_file.as_ref(),
        )?
        .ok_or_else(|| missing("RAT_S3_ACCESS_KEY"))?;
        let secret_key = secret(
            "RAT_S3_SECRET_KEY",
            self.s3_secret_key.as_deref(),
            self.s3_secret_key_file.as_ref(),
        )?
        .ok_or_else(|| missing("RAT_S3_SECRET_KEY"))?;
        let config = rat_versioning::s3::S3Config {
            endpoint: self.s3_endpoint.clone().ok_or_else(|| missing("RAT_S3_ENDPOINT"))?,
            region: self.s3_region.clone(),
            bucket: self.s3_bucket.clone().ok_or_else(|| missing("RAT_S3_BUCKET"))?,
            access_key: access.expose_secret().to_owned(),
            secret_key: secret_key.expose_secret().to_owned(),
            path_style: self.s3_path_style,
            create_bucket: self.s3_create_bucket,
            request_timeout: Duration::from_secs(self.s3_timeout_secs.max(1)),
        };
        let store = rat_versioning::s3::S3Store::connect(config)
            .await
            .context("connecting to the S3 store")?;
        Ok(Arc::new(store))
    }
}

/// Resolves when the process receives SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// A stop flag that turns true on SIGTERM or SIGINT. Keep the sender alive
/// as long as the receiver is used (a dropped sender means "never").
pub fn stop_on_signal() -> (
    Arc<tokio::sync::watch::Sender<bool>>,
    tokio::sync::watch::Receiver<bool>,
) {
    let (sender, stop) = tokio::sync::watch::channel(false);
    let sender = Arc::new(sender);
    let signal_sender = sender.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signal_sender.send_replace(true);
    });
    (sender, stop)
}

/// Resolves once `stop` turns true (never, if its sender is gone).
pub use rat_service::stopped;

/// A background loop's wake-up by Postgres: a dedicated connection
/// (`application_name`) `LISTEN`ing on `channels` ([`rat_service::listen`]),
/// notifying `wake` on every notification (a burst wakes it once) and after every (re)connection
/// (notifications sent meanwhile were not heard, so the loop must look
/// again). Reconnects with a capped exponential backoff; returns once `stop`
/// turns true. `what` names what is listened for in the log.
pub async fn wake_on_notify(
    database: Database,
    application_name: &'static str,
    channels: &'static [&'static str],
    what: &'static str,
    wake: Arc<tokio::sync::Notify>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    // A burst wakes the loop once: `Notify` keeps at most one permit.
    rat_service::listen::listen_until(&database, application_name, channels, what, stop, |event| {
        if matches!(event, ListenEvent::Connected | ListenEvent::Notification(_)) {
            wake.notify_one();
        }
        ControlFlow::Continue(())
    })
    .await;
}
