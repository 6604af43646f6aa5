//! Quality test definitions through the service layer, against real
//! PostgreSQL and both store backends: the row and its SQL file change
//! together, invalid SQL is refused before any write, and a store outage
//! leaves no half-created or half-deleted test.

use crate::common::{World, address, create};
use rat_dao::{pipelines, quality};
use rat_domain::{PageRequest, Severity, TestName};
use rat_service::identity::Caller;
use rat_service::quality::{MAX_TEST_SQL_BYTES, NewTest, create_test, delete_test, list_tests};
use rat_service::{ServiceError, files, versions};
use time::OffsetDateTime;

const SQL_KEY: &str = "default/pipelines/silver/orders/tests/quality/not_null.sql";

fn name(text: &str) -> TestName {
    TestName::parse(text).unwrap()
}

fn new_test(test: &str, sql: &str) -> NewTest {
    NewTest {
        name: name(test),
        sql: sql.to_owned(),
        severity: Severity::Warn,
        description: "ids are never null".to_owned(),
    }
}

async fn dirty(world: &World) -> bool {
    let client = world.db.client().await;
    pipelines::get_by_ref(&client, &address("default", "silver", "orders"))
        .await
        .unwrap()
        .draft_dirty
}

async fn rows(world: &World) -> i64 {
    let client = world.db.client().await;
    client
        .query_one("SELECT count(*) FROM quality_tests", &[])
        .await
        .unwrap()
        .get(0)
}

async fn create_list_publish_delete_round_trip(world: World) {
    let s = &world.services;
    let orders = address("default", "silver", "orders");
    create(s, "orders").await;
    let created = create_test(
        s,
        &Caller::community(),
        &orders,
        new_test("not_null", "select count(*) from t where id is null"),
    )
    .await
    .unwrap();
    assert_eq!(created.s3_path, SQL_KEY);
    assert_eq!(created.severity, Severity::Warn);
    assert_eq!(created.description, "ids are never null");
    assert_eq!(
        files::read_file(s, &Caller::community(), SQL_KEY, None)
            .await
            .unwrap()
            .body,
        b"select count(*) from t where id is null"
    );
    assert!(dirty(&world).await);

    let listed = list_tests(s, &Caller::community(), &orders, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.total, 1);
    assert_eq!(listed.items[0].test, created);
    assert_eq!(listed.items[0].sql, "select count(*) from t where id is null");
    assert!(!listed.items[0].published);
    versions::publish(
        s,
        &Caller::community(),
        &orders,
        "with the test",
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert!(
        list_tests(s, &Caller::community(), &orders, PageRequest::default())
            .await
            .unwrap()
            .items[0]
            .published
    );

    let deleted = delete_test(s, &Caller::community(), &orders, &name("not_null"))
        .await
        .unwrap();
    assert_eq!(deleted, created);
    assert_eq!(rows(&world).await, 0);
    assert!(matches!(
        files::read_file(s, &Caller::community(), SQL_KEY, None).await,
        Err(ServiceError::NotFound { .. })
    ));
    assert!(dirty(&world).await, "the deleted file dirties the draft");
    let err = delete_test(s, &Caller::community(), &orders, &name("not_null"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::NotFound { entity: "quality test" }),
        "{err:?}"
    );
}

async fn invalid_tests_are_refused_before_any_write(world: World) {
    let s = &world.services;
    let orders = address("default", "silver", "orders");
    create(s, "orders").await;
    let too_long = "x".repeat(MAX_TEST_SQL_BYTES + 1);
    let long_description = NewTest {
        description: "d".repeat(5001),
        ..new_test("not_null", "select 0")
    };
    for (new, why) in [
        (new_test("not_null", ""), "empty"),
        (new_test("not_null", " \n "), "empty"),
        (new_test("not_null", &too_long), "at most"),
        (long_description, "description"),
    ] {
        let err = create_test(s, &Caller::community(), &orders, new).await.unwrap_err();
        assert!(
            matches!(&err, ServiceError::InvalidInput { message } if message.contains(why)),
            "{why}: {err:?}"
        );
    }
    assert_eq!(rows(&world).await, 0, "no refused row");
    assert!(!dirty(&world).await, "no refused write dirties the draft");
    // Exactly the limit is accepted.
    create_test(
        s,
        &Caller::community(),
        &orders,
        new_test("at_limit", &"x".repeat(MAX_TEST_SQL_BYTES)),
    )
    .await
    .unwrap();
    assert_eq!(rows(&world).await, 1);
    assert!(matches!(
        files::read_file(s, &Caller::community(), SQL_KEY, None).await,
        Err(ServiceError::NotFound { .. })
    ));

    let err = create_test(
        s,
        &Caller::community(),
        &address("default", "silver", "ghost"),
        new_test("t", "select 0"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound { entity: "pipeline" }), "{err:?}");
}

async fn a_duplicate_never_touches_the_existing_sql(world: World) {
    let s = &world.services;
    let orders = address("default", "silver", "orders");
    create(s, "orders").await;
    create_test(s, &Caller::community(), &orders, new_test("not_null", "select 1"))
        .await
        .unwrap();
    let before = files::read_file(s, &Caller::community(), SQL_KEY, None).await.unwrap();
    let err = create_test(s, &Caller::community(), &orders, new_test("not_null", "select 2"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::AlreadyExists { entity: "quality test" }),
        "{err:?}"
    );
    let after = files::read_file(s, &Caller::community(), SQL_KEY, None).await.unwrap();
    assert_eq!(after.version_id, before.version_id, "no new version of the file");
    let client = world.db.client().await;
    let pipeline = pipelines::get_by_ref(&client, &orders).await.unwrap();
    assert_eq!(
        quality::list_for_pipeline(&client, pipeline.id, PageRequest::default())
            .await
            .unwrap()
            .total,
        1
    );
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
            create_list_publish_delete_round_trip,
            invalid_tests_are_refused_before_any_write,
            a_duplicate_never_touches_the_existing_sql,
        );
    };
}

mod fs {
    every_behaviour!(crate::common::fs_world);
}

mod s3 {
    every_behaviour!(crate::common::s3_world);
}

/// A store outage leaves no half-created and no half-deleted test.
mod s3_outage {
    use rat_domain::PageRequest;
    use rat_service::ServiceError;
    use rat_service::quality::{create_test, delete_test};
    use rat_testkit::TestDatabase;

    use super::{name, new_test};
    use crate::common::{address, create, world_with_own_moto};

    async fn test_names(db: &TestDatabase) -> Vec<String> {
        let client = db.client().await;
        let pipeline = rat_dao::pipelines::get_by_ref(&client, &address("default", "silver", "orders"))
            .await
            .unwrap();
        rat_dao::quality::list_for_pipeline(&client, pipeline.id, PageRequest::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|t| t.name.into_string())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_and_delete_with_the_store_down_change_nothing() {
        let (db, services, moto) = world_with_own_moto().await;
        let orders = address("default", "silver", "orders");
        create(&services, "orders").await;
        create_test(
            &services,
            &rat_service::identity::Caller::community(),
            &orders,
            new_test("kept", "select 0"),
        )
        .await
        .unwrap();
        moto.kill();

        let err = create_test(
            &services,
            &rat_service::identity::Caller::community(),
            &orders,
            new_test("not_null", "select 0"),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ServiceError::Unavailable { .. }), "{err:?}");
        assert_eq!(test_names(&db).await, ["kept"], "no row without its file");

        let err = delete_test(
            &services,
            &rat_service::identity::Caller::community(),
            &orders,
            &name("kept"),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ServiceError::Unavailable { .. }), "{err:?}");
        assert_eq!(
            test_names(&db).await,
            ["kept"],
            "the row stays while its file cannot be deleted"
        );
    }
}
