//! What `rat-api`, `rat-scheduler` and `rat-reaper` share: the database flags,
//! logging setup and the `migrate` subcommand. Only binaries depend on this
//! crate; library crates take typed config and never read the environment.
//!
//! Variables (each also a flag, `RAT_DATABASE_URL` = `--database-url`):
//! - `RAT_DATABASE_URL`: Postgres connection string (`postgres://…` or `host=/path …`)
//! - `RAT_DB_POOL_SIZE`: pool size (default 16)
//! - `RAT_LOG_FORMAT`: `text` (default) or `json`

use anyhow::Context;
use clap::{Args, ValueEnum};

/// Database flags every binary takes.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Postgres connection string (`postgres://user@host:port/db` or `host=/socket/dir dbname=rat`).
    #[arg(long, env = "RAT_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Most pooled connections this process opens.
    #[arg(long, env = "RAT_DB_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub db_pool_size: u16,
    /// Do not apply pending migrations at start.
    #[arg(long)]
    pub no_migrate: bool,
}

impl DatabaseArgs {
    /// Pool settings for this process.
    pub fn pool_settings(&self, application_name: &str) -> rat_dao::PoolSettings {
        let mut settings = rat_dao::PoolSettings::new(self.database_url.clone());
        settings.max_size = usize::from(self.db_pool_size);
        settings.application_name = application_name.to_owned();
        settings
    }

    /// Applies pending migrations unless `--no-migrate` was given.
    pub async fn migrate_unless_disabled(&self) -> anyhow::Result<()> {
        if self.no_migrate {
            tracing::info!("--no-migrate: schema migrations skipped");
            return Ok(());
        }
        migrate(&self.database_url).await
    }
}

/// Applies pending migrations (under the migration advisory lock) and logs what was applied.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    let report = rat_dao::migrate(database_url)
        .await
        .context("applying schema migrations")?;
    tracing::info!(applied = report.applied.len(), "schema is up to date");
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
    /// Installs the global tracing subscriber; `RUST_LOG` filters (default `info`).
    pub fn init(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        match self.log_format {
            LogFormat::Text => builder.init(),
            LogFormat::Json => builder.json().init(),
        }
    }
}
