//! Connection pooling (deadpool-postgres) and dedicated, non-pooled connections.

use std::time::Duration;

use deadpool_postgres::Hook;
use deadpool_postgres::{ClientWrapper, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::DaoError;
use crate::connect::{Database, Endpoint, PoolerMode, check_schema, search_path_option};

/// How to reach the database and size the pool. Library code never reads the
/// environment: binaries fill this from their flags.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Where the database is, its schema and pooler ([`Database`]).
    pub database: Database,
    /// Most connections the pool opens.
    pub max_size: usize,
    /// How long a caller waits for a free connection before `Unavailable`.
    pub wait_timeout: Duration,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// Server-side limit per statement; `None` leaves the server default.
    /// Through a transaction pooler it cannot be sent (no startup options):
    /// set it on the role (`ALTER ROLE … SET statement_timeout`).
    pub statement_timeout: Option<Duration>,
    /// Shown in `pg_stat_activity`.
    pub application_name: String,
}

impl PoolSettings {
    /// Settings with the defaults for `database` (a connection string, or a
    /// [`Database`]).
    pub fn new(database: impl Into<Database>) -> Self {
        PoolSettings {
            database: database.into(),
            max_size: 16,
            wait_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(30)),
            application_name: "rat".to_owned(),
        }
    }

    /// The driver settings of a pooled connection: through a transaction
    /// pooler no startup option can be sent, so the schema and statement
    /// timeout come from the role and are only checked.
    fn pg_config(&self, endpoint: &Endpoint) -> tokio_postgres::Config {
        let mut config = endpoint.config().clone();
        config.connect_timeout(self.connect_timeout);
        config.application_name(&self.application_name);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if self.database.pooler == PoolerMode::Session {
            let mut options = search_path_option(&self.database.schema);
            if let Some(timeout) = self.statement_timeout {
                options.push_str(&format!(" -c statement_timeout={}", timeout.as_millis()));
            }
            config.options(options);
        }
        config
    }

    /// Opens one connection as the pool would, and checks it is in the
    /// configured schema: at start, so a wrong URL, certificate, role or
    /// schema is reported as such instead of as "database unavailable" on
    /// the first request.
    pub async fn check_connection(&self) -> Result<(), DaoError> {
        self.database.validate()?;
        let endpoint = Endpoint::parse(&self.database.url)?;
        let client = endpoint.connect_with(&self.pg_config(&endpoint)).await?;
        check_schema(&client, &self.database.schema).await
    }
}

/// Parses a connection string without echoing it (it may hold a password).
pub fn parse_database_url(url: &str) -> Result<tokio_postgres::Config, DaoError> {
    Ok(Endpoint::parse(url)?.config().clone())
}

/// Builds the pool. No connection is opened until the first `get`; each new
/// connection is checked to be in the configured schema. Through a
/// transaction pooler, every statement of the process is sent unnamed from
/// now on ([`crate::use_unnamed_statements`]).
pub fn create_pool(settings: &PoolSettings) -> Result<Pool, DaoError> {
    if settings.max_size == 0 {
        return Err(DaoError::Config {
            reason: "pool size must be at least 1".to_owned(),
        });
    }
    settings.database.validate()?;
    if settings.database.pooler == PoolerMode::Transaction {
        crate::use_unnamed_statements();
    }
    let endpoint = Endpoint::parse(&settings.database.url)?;
    let config = settings.pg_config(&endpoint);
    let manager_config = ManagerConfig {
        // A quick `is_closed` check; broken connections surface as
        // `Unavailable` on use and are dropped by the pool.
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match endpoint.tls()? {
        None => Manager::from_config(config, NoTls, manager_config),
        Some(tls) => Manager::from_config(config, tls, manager_config),
    };
    let schema = settings.database.schema.clone();
    Pool::builder(manager)
        .max_size(settings.max_size)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .runtime(Runtime::Tokio1)
        .post_create(Hook::async_fn(move |client: &mut ClientWrapper, _| {
            let schema = schema.clone();
            Box::pin(async move {
                check_schema(client, &schema)
                    .await
                    .map_err(|e| HookError::message(e.to_string()))
            })
        }))
        .build()
        .map_err(|e| DaoError::Config {
            reason: format!("pool: {e}"),
        })
}

/// Opens one session straight to Postgres (the direct URL when there is
/// one), outside any pool, in `database`'s schema, for work that must own its
/// session: session advisory locks and `LISTEN` (a pooled connection can be
/// recycled under a lock, which silently releases it). The connection task
/// ends when the returned client is dropped.
pub async fn connect_dedicated(
    database: &Database,
    application_name: &str,
) -> Result<tokio_postgres::Client, DaoError> {
    database.connect_session(application_name).await
}
