//! Pipeline storage through the service layer against real PostgreSQL and a
//! real versioned store: create, files and draft_dirty, publish, history,
//! rollback, and what runs execute. Every behaviour runs on both backends.

use crate::common::{World, address, create};
use rat_dao::{pipeline_versions, pipelines};
use rat_domain::{PageRequest, PipelineType};
use rat_service::identity::Caller;
use rat_service::{ServiceError, files, versions};
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

async fn dirty(world: &World, name: &str) -> bool {
    let client = world.db.client().await;
    pipelines::get_by_ref(&client, &address("default", "silver", name))
        .await
        .unwrap()
        .draft_dirty
}

async fn version_rows(world: &World, name: &str) -> i64 {
    let client = world.db.client().await;
    let p = pipelines::get_by_ref(&client, &address("default", "silver", name))
        .await
        .unwrap();
    pipeline_versions::list(&client, p.id, PageRequest::default())
        .await
        .unwrap()
        .total
}

fn key(name: &str, file: &str) -> String {
    format!("default/pipelines/silver/{name}/{file}")
}

async fn read_head(world: &World, path: &str) -> Vec<u8> {
    files::read_file(&world.services, &Caller::community(), path, None)
        .await
        .unwrap()
        .body
}

async fn create_writes_the_row_and_starter_files(world: World) {
    let created = create(&world.services, "orders").await;
    assert_eq!(
        created.files_created,
        [key("orders", "pipeline.sql"), key("orders", "config.yaml")]
    );
    assert_eq!(created.pipeline.s3_path, "default/pipelines/silver/orders/");
    for path in &created.files_created {
        assert!(!read_head(&world, path).await.is_empty(), "{path} is written");
    }
    assert!(!created.pipeline.draft_dirty);

    // A python pipeline gets pipeline.py.
    let py = rat_service::pipelines::create_pipeline(
        &world.services,
        &Caller::community(),
        rat_dao::pipelines::NewPipeline {
            address: address("default", "gold", "model"),
            pipeline_type: PipelineType::Python,
            description: String::new(),
            owner: None,
            max_versions: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(py.files_created[0], "default/pipelines/gold/model/pipeline.py");

    // A duplicate is refused before any file is written.
    let before = files::read_file(
        &world.services,
        &Caller::community(),
        &key("orders", "pipeline.sql"),
        None,
    )
    .await
    .unwrap();
    let err = rat_service::pipelines::create_pipeline(
        &world.services,
        &Caller::community(),
        rat_dao::pipelines::NewPipeline {
            address: address("default", "silver", "orders"),
            pipeline_type: PipelineType::Sql,
            description: String::new(),
            owner: None,
            max_versions: None,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ServiceError::AlreadyExists { entity: "pipeline" }),
        "{err:?}"
    );
    let after = files::read_file(
        &world.services,
        &Caller::community(),
        &key("orders", "pipeline.sql"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        after.version_id, before.version_id,
        "no file rewritten by a refused create"
    );

    // An unknown namespace writes nothing.
    let err = rat_service::pipelines::create_pipeline(
        &world.services,
        &Caller::community(),
        rat_dao::pipelines::NewPipeline {
            address: address("nowhere", "silver", "orders"),
            pipeline_type: PipelineType::Sql,
            description: String::new(),
            owner: None,
            max_versions: None,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound { entity: "namespace" }), "{err:?}");
    let missing = files::read_file(
        &world.services,
        &Caller::community(),
        "nowhere/pipelines/silver/orders/pipeline.sql",
        None,
    )
    .await;
    assert!(matches!(missing, Err(ServiceError::NotFound { .. })));
}

async fn a_recreated_name_starts_from_its_starter_files(world: World) {
    create(&world.services, "orders").await;
    files::write_file(
        &world.services,
        &Caller::community(),
        &key("orders", "tests/quality/old.sql"),
        b"select 1".to_vec(),
    )
    .await
    .unwrap();
    let client = world.db.client().await;
    pipelines::soft_delete(&client, &address("default", "silver", "orders"), now())
        .await
        .unwrap();
    let again = create(&world.services, "orders").await;
    let prefix = again.pipeline.s3_path.clone();
    let heads = rat_versioning::list_all_latest(world.services.store.as_ref(), &prefix)
        .await
        .unwrap();
    let keys: Vec<&str> = heads.iter().map(|h| h.key.as_str()).collect();
    assert_eq!(keys, [key("orders", "config.yaml"), key("orders", "pipeline.sql")]);
}

async fn publish_edit_publish_rollback_pins_exact_contents(world: World) {
    let s = &world.services;
    create(s, "orders").await;
    let sql = key("orders", "pipeline.sql");
    let address = address("default", "silver", "orders");

    files::write_file(s, &Caller::community(), &sql, b"SELECT 1".to_vec())
        .await
        .unwrap();
    let v1 = versions::publish(s, &Caller::community(), &address, "first", now())
        .await
        .unwrap()
        .version;
    assert_eq!(v1.version_number, 1);
    assert_eq!(v1.message, "first");
    assert_eq!(v1.published_versions.len(), 2);

    files::write_file(s, &Caller::community(), &sql, b"SELECT 2".to_vec())
        .await
        .unwrap();
    // The pinned file of v1 still reads as v1 after the edit.
    let pinned_v1 = v1.published_versions.get(&sql).unwrap();
    assert_eq!(
        versions::read_pinned(s, &sql, pinned_v1.as_str()).await.unwrap().body,
        b"SELECT 1"
    );
    assert_eq!(read_head(&world, &sql).await, b"SELECT 2");

    let v2 = versions::publish(s, &Caller::community(), &address, "second", now())
        .await
        .unwrap()
        .version;
    assert_eq!(v2.version_number, 2);
    let pinned_v2 = v2.published_versions.get(&sql).unwrap();
    assert_ne!(pinned_v1, pinned_v2);
    assert_eq!(
        versions::read_pinned(s, &sql, pinned_v2.as_str()).await.unwrap().body,
        b"SELECT 2"
    );

    // Deleted at HEAD: both pins still read.
    files::delete_file(s, &Caller::community(), &sql).await.unwrap();
    assert!(matches!(
        files::read_file(s, &Caller::community(), &sql, None).await,
        Err(ServiceError::NotFound { .. })
    ));
    assert_eq!(
        versions::read_pinned(s, &sql, pinned_v1.as_str()).await.unwrap().body,
        b"SELECT 1"
    );
    assert_eq!(
        versions::read_pinned(s, &sql, pinned_v2.as_str()).await.unwrap().body,
        b"SELECT 2"
    );

    let rolled = versions::rollback(s, &Caller::community(), &address, 1, None, now())
        .await
        .unwrap();
    assert_eq!(rolled.from_version, 1);
    assert_eq!(rolled.version.version_number, 3);
    assert_eq!(rolled.version.message, "Rollback to v1");
    assert_eq!(
        rolled.version.published_versions, v1.published_versions,
        "re-pins v1's exact map"
    );

    // History is never rewritten.
    let history = versions::list_versions(s, &Caller::community(), &address, PageRequest::default())
        .await
        .unwrap();
    let numbers: Vec<i32> = history.items.iter().map(|v| v.version_number.get()).collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!(history.total, 3);
    assert_eq!(
        versions::get_version(s, &Caller::community(), &address, 2)
            .await
            .unwrap(),
        v2
    );

    // Runs execute the rolled-back snapshot.
    let client = world.db.client().await;
    let pipeline = pipelines::get_by_ref(&client, &address).await.unwrap();
    let snapshot = versions::run_snapshot(&client, &pipeline).await.unwrap();
    assert_eq!(snapshot.version_number, 3);
    assert_eq!(snapshot.published_versions, v1.published_versions);
    assert_eq!(pipeline.published_versions, v1.published_versions);

    // A custom rollback message is kept.
    let rolled = versions::rollback(s, &Caller::community(), &address, 2, Some("back to two"), now())
        .await
        .unwrap();
    assert_eq!(rolled.version.message, "back to two");
}

async fn draft_dirty_tells_the_truth_through_every_transition(world: World) {
    let s = &world.services;
    create(s, "orders").await;
    let address = address("default", "silver", "orders");
    let sql = key("orders", "pipeline.sql");
    assert!(!dirty(&world, "orders").await, "new pipeline");

    files::write_file(s, &Caller::community(), &sql, b"SELECT 1".to_vec())
        .await
        .unwrap();
    assert!(dirty(&world, "orders").await, "after a write");
    versions::publish(s, &Caller::community(), &address, "v1", now())
        .await
        .unwrap();
    assert!(!dirty(&world, "orders").await, "after publish");

    files::write_file(
        s,
        &Caller::community(),
        &key("orders", "tests/quality/not_null.sql"),
        b"select 0".to_vec(),
    )
    .await
    .unwrap();
    assert!(dirty(&world, "orders").await, "after adding a file");
    versions::publish(s, &Caller::community(), &address, "v2", now())
        .await
        .unwrap();
    assert!(!dirty(&world, "orders").await);

    files::delete_file(s, &Caller::community(), &key("orders", "tests/quality/not_null.sql"))
        .await
        .unwrap();
    assert!(dirty(&world, "orders").await, "after deleting a file");
    versions::publish(s, &Caller::community(), &address, "v3", now())
        .await
        .unwrap();
    assert!(!dirty(&world, "orders").await);

    // Rolling back to v2 (which has the test file): HEAD lacks it, so dirty.
    let rolled = versions::rollback(s, &Caller::community(), &address, 2, None, now())
        .await
        .unwrap();
    assert!(rolled.draft_dirty);
    assert!(dirty(&world, "orders").await, "HEAD differs from the re-pinned v2");
    // Rolling back to v3, whose map equals HEAD: clean.
    let rolled = versions::rollback(s, &Caller::community(), &address, 3, None, now())
        .await
        .unwrap();
    assert!(!rolled.draft_dirty);
    assert!(!dirty(&world, "orders").await, "HEAD equals the re-pinned v3");

    // Files outside any pipeline are refused, and touch no pipeline.
    let refused = files::write_file(s, &Caller::community(), "default/landing/uploads/a.csv", b"x".to_vec()).await;
    assert!(matches!(refused, Err(ServiceError::InvalidInput { .. })), "{refused:?}");
    let refused = files::write_file(
        s,
        &Caller::community(),
        "default/pipelines/silver/ghost/a.sql",
        b"x".to_vec(),
    )
    .await;
    assert!(
        matches!(refused, Err(ServiceError::NotFound { entity: "pipeline" })),
        "{refused:?}"
    );
    assert!(!dirty(&world, "orders").await);
}

async fn history_is_pruned_at_max_versions(world: World) {
    let s = &world.services;
    create(s, "orders").await;
    let address = address("default", "silver", "orders");
    let client = world.db.client().await;
    pipelines::update(
        &client,
        &address,
        &pipelines::PipelineUpdate {
            max_versions: Some(3),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for i in 1..=5 {
        files::write_file(
            s,
            &Caller::community(),
            &key("orders", "pipeline.sql"),
            format!("SELECT {i}").into_bytes(),
        )
        .await
        .unwrap();
        let v = versions::publish(s, &Caller::community(), &address, &format!("v{i}"), now())
            .await
            .unwrap()
            .version;
        assert_eq!(v.version_number, i);
    }
    let history = versions::list_versions(s, &Caller::community(), &address, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        history.items.iter().map(|v| v.version_number).collect::<Vec<_>>(),
        [5, 4, 3]
    );
    assert_eq!(version_rows(&world, "orders").await, 3);

    // Pruned, unknown and impossible versions.
    for (number, pruned) in [(1, true), (2, true), (99, false)] {
        let err = versions::rollback(s, &Caller::community(), &address, number, None, now())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ServiceError::NotFound {
                    entity: "pipeline version"
                }
            ),
            "{number} (pruned: {pruned}): {err:?}"
        );
    }
    for number in [0, -1] {
        let err = versions::rollback(s, &Caller::community(), &address, number, None, now())
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::InvalidInput { .. }), "{number}: {err:?}");
        let err = versions::get_version(s, &Caller::community(), &address, number)
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::InvalidInput { .. }), "{number}: {err:?}");
    }
    assert_eq!(
        version_rows(&world, "orders").await,
        3,
        "refused rollbacks record nothing"
    );
    // Rolling back to the oldest kept version prunes the next oldest.
    let rolled = versions::rollback(s, &Caller::community(), &address, 3, None, now())
        .await
        .unwrap();
    assert_eq!(rolled.version.version_number, 6);
    let history = versions::list_versions(s, &Caller::community(), &address, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        history.items.iter().map(|v| v.version_number).collect::<Vec<_>>(),
        [6, 5, 4]
    );
}

async fn concurrent_publishes_get_consecutive_numbers(world: World) {
    create(&world.services, "orders").await;
    let address = address("default", "silver", "orders");
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let services = world.services.clone();
            let address = address.clone();
            tokio::spawn(async move {
                versions::publish(&services, &Caller::community(), &address, &format!("p{i}"), now()).await
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap().expect("no publish fails").version.version_number);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=10).collect::<Vec<_>>());
}

async fn never_published_pipelines_cannot_run(world: World) {
    let created = create(&world.services, "orders").await;
    let client = world.db.client().await;
    let err = versions::run_snapshot(&client, &created.pipeline).await.unwrap_err();
    assert!(matches!(err, ServiceError::FailedPrecondition { .. }), "{err:?}");
    assert!(err.to_string().contains("never been published"));

    let address = address("default", "silver", "orders");
    versions::publish(&world.services, &Caller::community(), &address, "v1", now())
        .await
        .unwrap();
    files::write_file(
        &world.services,
        &Caller::community(),
        &key("orders", "pipeline.sql"),
        b"SELECT 42".to_vec(),
    )
    .await
    .unwrap();
    let pipeline = pipelines::get_by_ref(&client, &address).await.unwrap();
    let snapshot = versions::run_snapshot(&client, &pipeline).await.unwrap();
    assert_eq!(
        snapshot.version_number, 1,
        "edits after a publish do not change what runs execute"
    );
    let pinned = snapshot.published_versions.get(&key("orders", "pipeline.sql")).unwrap();
    let body = versions::read_pinned(&world.services, &key("orders", "pipeline.sql"), pinned.as_str())
        .await
        .unwrap()
        .body;
    assert_ne!(body, b"SELECT 42");
}

async fn publishing_an_unknown_or_empty_pipeline_records_nothing(world: World) {
    let s = &world.services;
    let err = versions::publish(
        s,
        &Caller::community(),
        &address("default", "silver", "ghost"),
        "x",
        now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound { entity: "pipeline" }), "{err:?}");

    create(s, "orders").await;
    files::delete_file(s, &Caller::community(), &key("orders", "pipeline.sql"))
        .await
        .unwrap();
    files::delete_file(s, &Caller::community(), &key("orders", "config.yaml"))
        .await
        .unwrap();
    let err = versions::publish(
        s,
        &Caller::community(),
        &address("default", "silver", "orders"),
        "x",
        now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ServiceError::FailedPrecondition { .. }), "{err:?}");
    assert_eq!(version_rows(&world, "orders").await, 0);
}

async fn traversal_and_forbidden_characters_are_refused(world: World) {
    let s = &world.services;
    create(s, "orders").await;
    for path in [
        "default/pipelines/silver/orders/../../gold/x/pipeline.sql",
        "../etc/passwd",
        "/default/pipelines/silver/orders/a.sql",
        "default/pipelines/silver/orders/a b.sql",
        "default/pipelines/silver/orders/a~b.sql",
        "default/pipelines/silver/orders/a*b.sql",
        "default/pipelines/silver/orders/a\\b.sql",
        "default/pipelines/silver/orders/a\0b.sql",
        "default/pipelines/silver/orders/./a.sql",
        "",
    ] {
        let err = files::write_file(s, &Caller::community(), path, b"x".to_vec())
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::InvalidInput { .. }), "{path:?}: {err:?}");
        assert!(matches!(
            files::read_file(s, &Caller::community(), path, None).await,
            Err(ServiceError::InvalidInput { .. })
        ));
        assert!(matches!(
            files::delete_file(s, &Caller::community(), path).await,
            Err(ServiceError::InvalidInput { .. })
        ));
    }
    assert!(!dirty(&world, "orders").await, "refused writes mark nothing dirty");
    let err = versions::read_pinned(s, &key("orders", "pipeline.sql"), "")
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::InvalidInput { .. }), "{err:?}");
}

async fn file_listings_are_bounded_and_exclude_whole_segments(world: World) {
    let s = &world.services;
    create(s, "orders").await;
    for file in ["data/a.csv", "data.md", "tests/quality/t.sql"] {
        files::write_file(s, &Caller::community(), &key("orders", file), b"x".to_vec())
            .await
            .unwrap();
    }
    let paths = |listing: &files::FileListing| -> Vec<String> {
        listing
            .files
            .iter()
            .map(|f| {
                f.key
                    .as_str()
                    .trim_start_matches("default/pipelines/silver/orders/")
                    .to_owned()
            })
            .collect()
    };
    // No trailing '/': still the directory, never `orders_old/`.
    create(s, "orders_old").await;
    let all = files::list_files(s, &Caller::community(), "default/pipelines/silver/orders", &[], 100)
        .await
        .unwrap();
    assert_eq!(
        paths(&all),
        [
            "config.yaml",
            "data.md",
            "data/a.csv",
            "pipeline.sql",
            "tests/quality/t.sql"
        ]
    );
    assert!(!all.truncated);
    let exact = files::list_files(s, &Caller::community(), "default/pipelines/silver/orders/", &[], 5)
        .await
        .unwrap();
    assert!(!exact.truncated, "exactly the limit is not truncated");
    let cut = files::list_files(s, &Caller::community(), "default/pipelines/silver/orders/", &[], 2)
        .await
        .unwrap();
    assert_eq!(paths(&cut), ["config.yaml", "data.md"]);
    assert!(cut.truncated);
    let excluded = files::list_files(
        s,
        &Caller::community(),
        "default/pipelines/silver/orders/",
        &["data".to_owned(), "/tests/quality/".to_owned(), String::new()],
        100,
    )
    .await
    .unwrap();
    assert_eq!(paths(&excluded), ["config.yaml", "data.md", "pipeline.sql"]);
    for bad in ["", "/abs", "a/../b", "a b"] {
        let err = files::list_files(s, &Caller::community(), bad, &[], 10)
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::InvalidInput { .. }), "{bad:?}: {err:?}");
    }
}

macro_rules! on_backend {
    ($world:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($world().await).await;
            }
        )+
    };
}

macro_rules! every_behaviour {
    ($world:path) => {
        on_backend!($world;
            create_writes_the_row_and_starter_files,
            a_recreated_name_starts_from_its_starter_files,
            publish_edit_publish_rollback_pins_exact_contents,
            draft_dirty_tells_the_truth_through_every_transition,
            history_is_pruned_at_max_versions,
            concurrent_publishes_get_consecutive_numbers,
            never_published_pipelines_cannot_run,
            publishing_an_unknown_or_empty_pipeline_records_nothing,
            traversal_and_forbidden_characters_are_refused,
            file_listings_are_bounded_and_exclude_whole_segments,
        );
    };
}

mod fs {
    every_behaviour!(crate::common::fs_world);
}

mod s3 {
    every_behaviour!(crate::common::s3_world);
}

/// What an S3 outage does to creates and publishes: a clean `Unavailable`
/// error, and nothing recorded in the database.
mod s3_outage {
    use std::time::Duration;

    use crate::common::{address, create, world_with_own_moto};
    use rat_dao::{pipeline_versions, pipelines};
    use rat_domain::{PageRequest, PipelineType};
    use rat_service::{ServiceError, files, versions};
    use rat_testkit::TestDatabase;
    use time::OffsetDateTime;

    async fn version_count(db: &TestDatabase, name: &str) -> i64 {
        let client = db.client().await;
        let pipeline = pipelines::get_by_ref(&client, &address("default", "silver", name))
            .await
            .unwrap();
        pipeline_versions::list(&client, pipeline.id, PageRequest::default())
            .await
            .unwrap()
            .total
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publish_with_s3_down_fails_cleanly_and_records_nothing() {
        let (db, services, moto) = world_with_own_moto().await;
        create(&services, "orders").await;
        moto.kill();
        let err = versions::publish(
            &services,
            &rat_service::identity::Caller::community(),
            &address("default", "silver", "orders"),
            "v1",
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ServiceError::Unavailable { .. }), "{err:?}");
        assert!(err.to_string().contains("unavailable"), "{err}");
        assert_eq!(version_count(&db, "orders").await, 0);
        let client = db.client().await;
        let pipeline = pipelines::get_by_ref(&client, &address("default", "silver", "orders"))
            .await
            .unwrap();
        assert!(pipeline.published_at.is_none() && pipeline.published_versions.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_dying_during_a_publish_leaves_no_version_or_a_complete_one() {
        let (db, services, moto) = world_with_own_moto().await;
        create(&services, "orders").await;
        // Enough files that listing them takes a while: the kill lands mid-publish.
        for i in 0..150 {
            let path = format!("default/pipelines/silver/orders/models/m{i:03}.sql");
            files::write_file(
                &services,
                &rat_service::identity::Caller::community(),
                &path,
                format!("select {i}").into_bytes(),
            )
            .await
            .unwrap();
        }
        let address = address("default", "silver", "orders");
        let publish = {
            let services = services.clone();
            let address = address.clone();
            tokio::spawn(async move {
                versions::publish(
                    &services,
                    &rat_service::identity::Caller::community(),
                    &address,
                    "v1",
                    OffsetDateTime::now_utc(),
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(15)).await;
        moto.kill();
        let outcome = publish.await.unwrap();
        let client = db.client().await;
        let pipeline = pipelines::get_by_ref(&client, &address).await.unwrap();
        match outcome {
            Err(err) => {
                assert!(matches!(err, ServiceError::Unavailable { .. }), "{err:?}");
                assert_eq!(
                    version_count(&db, "orders").await,
                    0,
                    "a failed publish records nothing"
                );
                assert!(pipeline.published_versions.is_empty());
            }
            Ok(published) => {
                // The publish finished before the kill: it must be whole.
                assert_eq!(published.version.published_versions.len(), 152);
                assert_eq!(pipeline.published_versions, published.version.published_versions);
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_with_s3_down_leaves_no_pipeline() {
        let (db, services, moto) = world_with_own_moto().await;
        moto.kill();
        let err = rat_service::pipelines::create_pipeline(
            &services,
            &rat_service::identity::Caller::community(),
            rat_dao::pipelines::NewPipeline {
                address: address("default", "silver", "orders"),
                pipeline_type: PipelineType::Sql,
                description: String::new(),
                owner: None,
                max_versions: None,
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ServiceError::Unavailable { .. }), "{err:?}");
        let client = db.client().await;
        let err = pipelines::get_by_ref(&client, &address("default", "silver", "orders"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, rat_dao::DaoError::NotFound { .. }),
            "no half-created pipeline: {err:?}"
        );
    }
}
