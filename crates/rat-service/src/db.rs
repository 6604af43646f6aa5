//! What binaries need of the database layer, and nothing more: the pool and
//! its settings, migrations, the `LISTEN` connection and the channels they
//! wake on. Everything else they reach through the managers of this crate,
//! so no rule of the service layer can be gone around (no binary depends on
//! `rat-dao`; `tests/tests/it/policy.rs` checks).

pub use rat_dao::listen::Listener;
pub use rat_dao::runs::{LOG_CHANNEL, RunEvent, RunEvents, STATUS_CHANNEL};
pub use rat_dao::{
    DEFAULT_SCHEMA, Database, Pool, PoolSettings, PoolerMode, SchemaName, SchemaState, SslMode, create_pool, migrate,
    schema_state, use_unnamed_statements,
};

/// The channel schedule and cron-trigger changes are announced on
/// (`rat-scheduler` wakes on it).
pub const SCHEDULES_CHANNEL: &str = rat_dao::schedules::CHANGED_CHANNEL;

/// The channel on-demand reaper passes are requested on (`rat-reaper`
/// wakes on it).
pub const REAPER_CHANNEL: &str = rat_dao::reaper_status::RUN_CHANNEL;
