//! Managers of the RAT metadata plane: the business rules and the
//! transaction boundaries above the repositories (`rat-dao`) and the
//! versioned file store (`rat-versioning`).
//!
//! Each operation is a plain `async fn` taking [`Services`] (the pool and the
//! store) and, where time matters, `now`. Binaries call these; they hold no
//! state of their own beyond what Postgres and the store hold, so any number
//! of replicas may call them at once.
//!
//! This is the crate to embed when a Rust program should act on the metadata
//! plane in-process, with the same rules as the api (access, versioning,
//! transactions): `examples/src/bin/embed.rs` is a whole program.
//!
//! What it must never do: speak HTTP or parse flags and environment
//! variables (binaries do, and hand it typed settings), log its own failures
//! (whoever handles an error logs it), or call the store inside a database
//! transaction except where the transaction exists to undo it.
//!
//! ```no_run
//! use rat_domain::{PipelineRef, PipelineType};
//! use rat_service::Services;
//! use rat_service::identity::Caller;
//! use rat_service::pipelines::NewPipeline;
//! use time::OffsetDateTime;
//!
//! # async fn example(store: std::sync::Arc<dyn rat_versioning::VersionedStore>) -> Result<(), Box<dyn std::error::Error>> {
//! let settings = rat_service::db::PoolSettings::new("postgres://rat@localhost/rat");
//! let services = Services::new(rat_service::db::create_pool(&settings)?, store);
//! let caller = Caller::community();
//! let address = PipelineRef::parse("default", "silver", "orders")?;
//! let created = rat_service::pipelines::create_pipeline(
//!     &services,
//!     &caller,
//!     NewPipeline {
//!         address: address.clone(),
//!         pipeline_type: PipelineType::Sql,
//!         description: String::new(),
//!         owner: None,
//!         max_versions: None,
//!     },
//! )
//! .await?;
//! let key = format!("{}pipeline.sql", created.pipeline.s3_path);
//! rat_service::files::write_file(&services, &caller, &key, b"SELECT 1".to_vec()).await?;
//! let now = OffsetDateTime::now_utc();
//! rat_service::versions::publish(&services, &caller, &address, "first", now).await?;
//! let run = rat_service::runs::create(&services, &caller, &address, "manual", now).await?;
//! println!("{} {}", run.id, run.status.as_str());
//! # Ok(())
//! # }
//! ```

mod access_cache;
pub mod audit;
pub mod coalesce;
pub mod concurrency;
mod concurrent;
pub mod db;
mod error;
pub mod failed_merges;
pub mod files;
pub mod firing;
pub mod health;
pub mod identity;
pub mod landing;
pub mod listen;
pub mod namespaces;
pub mod nessie;
pub mod paging;
pub mod pipelines;
pub mod platform;
pub mod projects;
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

use coalesce::Coalescer;
pub use error::ServiceError;
use rat_dao::Pool;
use rat_dao::access::{AccessGeneration, Grants, GrantsQuestion};
use rat_domain::{Pipeline, PipelineRef};
use rat_versioning::VersionedStore;

/// Resolves once `stop` turns true (never, if its sender is gone): how a
/// long-running loop (the reaper's watchdog, the binaries' loops) hears a
/// shutdown.
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What every operation needs: the database pool and the file store.
#[derive(Clone, Debug)]
pub struct Services {
    /// Pooled connections to the metadata database.
    pub pool: Pool,
    /// The versioned file store holding pipeline code, failing fast while
    /// it is known down ([`health::GuardedStore`]).
    pub store: Arc<dyn VersionedStore>,
    /// Whether the database and the store are up, as the prober
    /// ([`health::watch`]) last saw them.
    pub dependencies: Arc<health::Dependencies>,
    /// Concurrent reads of live pipelines by address, sharing queries
    /// ([`pipelines::get`]).
    /// Each comes with the access generation of its snapshot.
    pipeline_reads: Coalescer<PipelineRef, (Pipeline, AccessGeneration)>,
    /// Concurrent reads of what the access rule needs (owner, shares) for a
    /// caller and an object, sharing queries ([`pipelines::get`] of a caller
    /// who is not an admin), each with the generation it was read at.
    access_reads: Coalescer<GrantsQuestion, (Grants, AccessGeneration)>,
    /// The answers of `access_reads`, kept while their generation is current
    /// ([`access_cache`]).
    grants_cache: Arc<access_cache::GrantsCache>,
}

/// Most addresses one coalesced pipeline read asks for.
const PIPELINE_READ_BATCH: usize = 256;
/// Coalesced pipeline reads running at once (each holds a connection). One
/// makes the largest batches; two measured ~10% fewer requests per second
/// under `cargo xtask bench api` (smaller batches, more round trips).
const PIPELINE_READS_IN_FLIGHT: usize = 1;
/// Most questions one coalesced read of the access rule's inputs asks.
const ACCESS_READ_BATCH: usize = 256;
/// Coalesced reads of the access rule's inputs running at once (each holds
/// a connection).
const ACCESS_READS_IN_FLIGHT: usize = 1;

impl Services {
    /// Bundles a pool and a store, with the default [`health::ProbeSettings`].
    pub fn new(pool: Pool, store: Arc<dyn VersionedStore>) -> Self {
        Services::with_probe_settings(pool, store, health::ProbeSettings::default())
    }

    /// Bundles a pool and a store; a store call waiting longer than
    /// `probe.timeout` has the store probed ([`health`]).
    pub fn with_probe_settings(pool: Pool, store: Arc<dyn VersionedStore>, probe: health::ProbeSettings) -> Self {
        let dependencies = Arc::new(health::Dependencies::default());
        let store: Arc<dyn VersionedStore> = Arc::new(health::GuardedStore::new(store, dependencies.clone(), probe));
        let reads_pool = pool.clone();
        let pipeline_reads = Coalescer::new(
            PIPELINE_READ_BATCH,
            PIPELINE_READS_IN_FLIGHT,
            Box::new(move |addresses: Vec<PipelineRef>| {
                let pool = reads_pool.clone();
                Box::pin(async move {
                    let client = pool.get().await?;
                    let found = rat_dao::pipelines::get_by_refs(&client, &addresses).await?;
                    Ok(found
                        .into_iter()
                        .map(|(p, generation)| (p.address.clone(), (p, generation)))
                        .collect())
                })
            }),
        );
        let access_pool = pool.clone();
        let access_reads = Coalescer::new(
            ACCESS_READ_BATCH,
            ACCESS_READS_IN_FLIGHT,
            Box::new(move |questions: Vec<GrantsQuestion>| {
                let pool = access_pool.clone();
                Box::pin(async move {
                    let client = pool.get().await?;
                    let (generation, answers) = rat_dao::access::grants_of_many_at(&client, &questions).await?;
                    Ok(questions
                        .into_iter()
                        .zip(answers.into_iter().map(|grants| (grants, generation)))
                        .collect())
                })
            }),
        );
        Services {
            pool,
            store,
            dependencies,
            pipeline_reads,
            access_reads,
            grants_cache: Arc::default(),
        }
    }
}
