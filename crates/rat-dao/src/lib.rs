//! PostgreSQL repositories of the RAT metadata plane, the connection pool and
//! the embedded schema migrations.
//!
//! One module per aggregate. Every repository function takes
//! `&impl GenericClient`, which is a pooled connection or a transaction, so the
//! service layer decides where transactions begin and end. Functions that need
//! the current time take `now` so callers (and tests) control the clock.
//!
//! Architecture invariants:
//! - SQL text is made only of fixed strings of this crate; every value is a
//!   bind parameter.
//! - Every list is paged (`limit`/`offset`) with its `total` computed in SQL,
//!   and every bulk operation is batched with a caller-given bound.
//! - [`DaoError`]'s `Display` never contains SQL or driver text.
//!
//! What it must never do: decide who may do what (that is `rat-service`'s),
//! call the file store, or be used by a binary directly (binaries go through
//! `rat-service`; tests arrange rows through `rat_testkit::dao`).
//!
//! ```no_run
//! use rat_dao::{PoolSettings, create_pool};
//! use rat_domain::PageRequest;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = create_pool(&PoolSettings::new("postgres://rat@localhost/rat"))?;
//! let client = pool.get().await?;
//! // Every repository function takes a pooled client or a transaction.
//! let page = rat_dao::namespaces::list(&client, None, PageRequest::new(Some(50), None)?).await?;
//! println!("{} namespaces", page.total);
//! # Ok(())
//! # }
//! ```

#[macro_use]
mod sql;
mod client;
mod connect;
mod error;
mod migrate;
mod pool;

pub mod access;
pub mod audit;
pub mod failed_merges;
pub mod landing;
pub mod listen;
pub mod namespaces;
#[macro_use]
pub mod pipeline_versions;
pub mod pipelines;
pub mod plugins;
pub mod projects;
pub mod provision;
pub mod quality;
pub mod reaper_status;
pub mod reaping;
pub mod runner_plugins;
pub mod runs;
pub mod schedules;
pub mod settings;
pub mod tables;
pub mod tokens;
pub mod triggers;

pub use client::{Driver, GenericClient, SqlArrayElement, SqlParam, SqlType};
pub use connect::{
    DEFAULT_SCHEMA, Database, Endpoint, MAX_SCHEMA_LEN, PoolerMode, SchemaName, SslMode, use_unnamed_statements,
};
pub use deadpool_postgres::{Object as PooledClient, Pool, PoolError, Transaction};
pub use error::{DaoError, conflicting_entity};
pub use migrate::{
    MIGRATION_LOCK_KEY, MigrationReport, SchemaState, embedded_migrations, migrate, schema_fingerprint, schema_state,
};
pub use pool::{PoolSettings, connect_dedicated, create_pool, parse_database_url};
/// A connection of its own, outside the pool ([`connect_dedicated`]).
pub use tokio_postgres::Client as DedicatedConnection;
pub use tokio_postgres::Error as PgError;
