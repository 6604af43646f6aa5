//! Shared fixtures of the service tests: a fresh database and a file store of
//! either backend, bundled as [`Services`].

use rat_service::identity::Caller;
use std::sync::Arc;

use rat_dao::pipelines::NewPipeline;
use rat_domain::{PipelineRef, PipelineType};
use rat_service::{Services, pipelines};
use rat_testkit::TestDatabase;
use rat_versioning::VersionedStore;

/// A test's world: its database (dropped at the end) and the services on it.
pub struct World {
    /// Kept alive for the test's duration.
    pub db: TestDatabase,
    /// The pool and store under test.
    pub services: Services,
    /// Keeps a temporary store directory alive.
    pub _dir: Option<tempfile::TempDir>,
}

/// A world on the filesystem store.
pub async fn fs_world() -> World {
    let db = TestDatabase::new().await;
    let dir = tempfile::Builder::new()
        .prefix("rat-service-test-")
        .tempdir()
        .expect("temporary directory");
    let store = rat_versioning::fs::FsStore::open(dir.path().to_path_buf())
        .await
        .expect("fs store");
    let services = Services::new(db.pool().clone(), Arc::new(store) as Arc<dyn VersionedStore>);
    World {
        db,
        services,
        _dir: Some(dir),
    }
}

/// A world on S3 (the test process's shared moto, a fresh bucket).
pub async fn s3_world() -> World {
    let db = TestDatabase::new().await;
    let store = rat_testkit::s3::test_store().await;
    let services = Services::new(db.pool().clone(), Arc::new(store) as Arc<dyn VersionedStore>);
    World {
        db,
        services,
        _dir: None,
    }
}

/// Services on a moto server of the test's own, so the test can kill it; the
/// store's short request timeout makes a call to a dead server fail quickly
/// instead of hanging.
pub async fn world_with_own_moto() -> (TestDatabase, Services, rat_testkit::s3::MotoServer) {
    let db = TestDatabase::new().await;
    let moto = tokio::task::spawn_blocking(rat_testkit::s3::MotoServer::start)
        .await
        .unwrap();
    let mut config = moto.new_bucket_config();
    config.request_timeout = std::time::Duration::from_secs(2);
    let store = rat_versioning::s3::S3Store::connect(config).await.unwrap();
    let services = Services::new(db.pool().clone(), Arc::new(store) as Arc<dyn VersionedStore>);
    (db, services, moto)
}

/// The address `ns/layer/name`.
pub fn address(ns: &str, layer: &str, name: &str) -> PipelineRef {
    PipelineRef::parse(ns, layer, name).unwrap()
}

/// Creates a SQL pipeline at `default/silver/<name>` through the service.
pub async fn create(services: &Services, name: &str) -> pipelines::CreatedPipeline {
    pipelines::create_pipeline(
        services,
        &Caller::community(),
        NewPipeline {
            address: address("default", "silver", name),
            pipeline_type: PipelineType::Sql,
            description: String::new(),
            owner: None,
            max_versions: None,
        },
    )
    .await
    .expect("create pipeline")
}
