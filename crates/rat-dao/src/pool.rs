//! Connection pooling (deadpool-postgres) and dedicated, non-pooled connections.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::DaoError;

/// How to reach the database and size the pool. Library code never reads the
/// environment: binaries fill this from their flags.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// `postgres://user:pass@host:port/db` or `host=/socket/dir dbname=x ...`.
    pub database_url: String,
    /// Most connections the pool opens.
    pub max_size: usize,
    /// How long a caller waits for a free connection before `Unavailable`.
    pub wait_timeout: Duration,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// Server-side limit per statement; `None` leaves the server default.
    pub statement_timeout: Option<Duration>,
    /// Shown in `pg_stat_activity`.
    pub application_name: String,
}

impl PoolSettings {
    /// Settings with the defaults for `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        PoolSettings {
            database_url: database_url.into(),
            max_size: 16,
            wait_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(30)),
            application_name: "rat".to_owned(),
        }
    }

    fn pg_config(&self) -> Result<tokio_postgres::Config, DaoError> {
        let mut config = parse_database_url(&self.database_url)?;
        config.connect_timeout(self.connect_timeout);
        config.application_name(&self.application_name);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if let Some(timeout) = self.statement_timeout {
            config.options(format!("-c statement_timeout={}", timeout.as_millis()));
        }
        Ok(config)
    }
}

/// Parses a connection string without echoing it (it may hold a password).
pub fn parse_database_url(url: &str) -> Result<tokio_postgres::Config, DaoError> {
    tokio_postgres::Config::from_str(url).map_err(|e| DaoError::Config {
        reason: format!("database url does not parse: {e}"),
    })
}

/// Builds the pool. No connection is opened until the first `get`.
pub fn create_pool(settings: &PoolSettings) -> Result<Pool, DaoError> {
    if settings.max_size == 0 {
        return Err(DaoError::Config {
            reason: "pool size must be at least 1".to_owned(),
        });
    }
    let manager = Manager::from_config(
        settings.pg_config()?,
        NoTls,
        ManagerConfig {
            // A quick `is_closed` check; broken connections surface as
            // `Unavailable` on use and are dropped by the pool.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(settings.max_size)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DaoError::Config {
            reason: format!("pool: {e}"),
        })
}

/// Opens one connection outside any pool, for work that must own its session:
/// migrations and session advisory locks (a pooled connection can be recycled
/// under a lock, which silently releases it). The connection task ends when
/// the returned client is dropped.
pub async fn connect_dedicated(database_url: &str, application_name: &str) -> Result<tokio_postgres::Client, DaoError> {
    let mut config = parse_database_url(database_url)?;
    config.application_name(application_name);
    config.connect_timeout(Duration::from_secs(10));
    config.keepalives(true);
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "dedicated database connection ended with an error");
        }
    });
    Ok(client)
}
