//! Managers of the RAT metadata plane: the business rules and the
//! transaction boundaries above the repositories (`rat-dao`) and the
//! versioned file store (`rat-versioning`).
//!
//! Each operation is a plain `async fn` taking [`Services`] (the pool and the
//! store) and, where time matters, `now`. Binaries call these; they hold no
//! state of their own beyond what Postgres and the store hold, so any number
//! of replicas may call them at once.

pub mod audit;
mod error;
pub mod files;
pub mod firing;
pub mod landing;
pub mod namespaces;
pub mod pipelines;
pub mod platform;
pub mod quality;
pub mod reaper;
pub mod retention;
pub mod runner;
pub mod runs;
pub mod scheduler;
pub mod schedules;
pub mod sharing;
pub mod tables;
pub mod triggers;
pub mod versions;

use std::sync::Arc;

pub use error::ServiceError;
use rat_dao::Pool;
use rat_versioning::VersionedStore;

/// What every operation needs: the database pool and the file store.
#[derive(Clone, Debug)]
pub struct Services {
    /// Pooled connections to the metadata database.
    pub pool: Pool,
    /// The versioned file store holding pipeline code.
    pub store: Arc<dyn VersionedStore>,
}

impl Services {
    /// Bundles a pool and a store.
    pub fn new(pool: Pool, store: Arc<dyn VersionedStore>) -> Self {
        Services { pool, store }
    }
}
