//! Runs through the service layer against real PostgreSQL and a real
//! versioned store: a run pins the published snapshot in force when it is
//! created, even while a publish is in flight, and cancel refuses finished runs.

use rat_service::identity::Caller;
use std::time::Duration;

use crate::common::{address, create, fs_world};
use rat_dao::{pipeline_versions, pipelines, runs};
use rat_domain::{PublishedVersions, RunStatus, trigger_label};
use rat_service::ServiceError;
use time::OffsetDateTime;
use time::macros::datetime;

#[tokio::test]
async fn a_run_pins_the_latest_published_version() {
    let world = fs_world().await;
    create(&world.services, "orders").await;
    let orders = address("default", "silver", "orders");
    let now = datetime!(2026-06-01 10:00:00 UTC);

    let err = rat_service::runs::create(
        &world.services,
        &Caller::community(),
        &orders,
        trigger_label::MANUAL,
        now,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ServiceError::FailedPrecondition { message } if message.contains("never been published")),
        "{err:?}"
    );
    let err = rat_service::runs::create(
        &world.services,
        &Caller::community(),
        &address("default", "silver", "ghost"),
        "manual",
        now,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound { entity: "pipeline" }), "{err:?}");

    let published = rat_service::versions::publish(&world.services, &Caller::community(), &orders, "v1", now)
        .await
        .unwrap();
    let run = rat_service::runs::create(&world.services, &Caller::community(), &orders, "ci", now)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Pending);
    assert_eq!(run.trigger, "ci");
    assert_eq!(run.created_at, now, "the injected clock is the creation time");
    assert_eq!(run.version_number, 1);
    assert_eq!(run.published_versions, published.version.published_versions);
    assert_eq!((run.schedule_id, run.trigger_id, run.scheduled_for), (None, None, None));
    assert_eq!(
        rat_service::runs::get(&world.services, &Caller::community(), run.id)
            .await
            .unwrap(),
        run
    );
}

#[tokio::test]
async fn a_run_created_during_a_publish_waits_for_it_and_pins_the_new_version() {
    let world = fs_world().await;
    create(&world.services, "orders").await;
    let orders = address("default", "silver", "orders");
    let now = OffsetDateTime::now_utc();
    rat_service::versions::publish(&world.services, &Caller::community(), &orders, "v1", now)
        .await
        .unwrap();

    // Play a publish by hand: lock the pipeline row as publish does, and
    // record version 2 before committing.
    let mut client = world.db.client().await;
    let transaction = client.transaction().await.unwrap();
    let locked = pipelines::get_by_ref_for_update(&transaction, &orders).await.unwrap();
    let services = world.services.clone();
    let creating = {
        let orders = orders.clone();
        tokio::spawn(
            async move { rat_service::runs::create(&services, &Caller::community(), &orders, "manual", now).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !creating.is_finished(),
        "the run waits for the publish holding the pipeline"
    );
    let pins =
        PublishedVersions::from_pairs([(format!("{}pipeline.sql", locked.s3_path), "v-new".to_owned())]).unwrap();
    let v2 = pipeline_versions::insert_next(&transaction, locked.id, "v2", &pins, now)
        .await
        .unwrap();
    transaction.commit().await.unwrap();

    let run = creating.await.unwrap().unwrap();
    assert_eq!(run.version_number, v2.version_number);
    assert_eq!(run.published_versions, pins);
}

#[tokio::test]
async fn cancel_refuses_finished_runs_and_names_their_status() {
    let world = fs_world().await;
    create(&world.services, "orders").await;
    let orders = address("default", "silver", "orders");
    let now = datetime!(2026-06-01 10:00:00 UTC);
    rat_service::versions::publish(&world.services, &Caller::community(), &orders, "v1", now)
        .await
        .unwrap();
    let run = rat_service::runs::create(&world.services, &Caller::community(), &orders, "manual", now)
        .await
        .unwrap();
    let later = datetime!(2026-06-01 10:05:00 UTC);
    let cancelled = rat_service::runs::cancel(&world.services, &Caller::community(), run.id, later)
        .await
        .unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(cancelled.finished_at, Some(later));
    let err = rat_service::runs::cancel(&world.services, &Caller::community(), run.id, later)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::FailedPrecondition { message } if message == "run is already cancelled"),
        "{err:?}"
    );
    let client = world.db.client().await;
    let failed = rat_service::runs::create(&world.services, &Caller::community(), &orders, "manual", now)
        .await
        .unwrap();
    runs::transition(&client, failed.id, RunStatus::Failed, &Default::default(), later)
        .await
        .unwrap();
    let err = rat_service::runs::cancel(&world.services, &Caller::community(), failed.id, later)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "run is already failed");
    let err = rat_service::runs::cancel(
        &world.services,
        &Caller::community(),
        uuid::Uuid::new_v4().into(),
        later,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound { entity: "run" }), "{err:?}");

    let logs = rat_service::runs::logs(&world.services, &Caller::community(), failed.id)
        .await
        .unwrap();
    assert!(logs.entries.is_empty());
    assert_eq!(logs.status, RunStatus::Failed);
}

#[tokio::test]
async fn a_log_tail_reads_the_status_then_the_entries_after_a_cursor() {
    let world = fs_world().await;
    create(&world.services, "orders").await;
    let orders = address("default", "silver", "orders");
    let now = datetime!(2026-06-01 10:00:00 UTC);
    rat_service::versions::publish(&world.services, &Caller::community(), &orders, "v1", now)
        .await
        .unwrap();
    let run = rat_service::runs::create(&world.services, &Caller::community(), &orders, "manual", now)
        .await
        .unwrap();
    let client = world.db.client().await;
    client
        .execute(
            "UPDATE runs SET logs = $2 WHERE id = $1",
            &[&run.id, &serde_json::json!([{"message": "imported"}])],
        )
        .await
        .unwrap();
    let entry = |message: &str| rat_domain::LogEntry::new(now, rat_domain::LogLevel::Info, message).unwrap();
    let first = runs::append_log_entries(&client, run.id, &[entry("a"), entry("b")])
        .await
        .unwrap();
    let last = runs::append_log_entries(&client, run.id, &[entry("c")]).await.unwrap();

    let legacy = rat_service::runs::legacy_log_entries(&world.services, &Caller::community(), run.id)
        .await
        .unwrap();
    assert_eq!(legacy.entries, vec![serde_json::json!({"message": "imported"})]);
    assert_eq!(legacy.status, RunStatus::Pending);

    let messages = |tail: &rat_service::runs::LogTail| -> Vec<String> {
        tail.entries.iter().map(|(_, e)| e.message.clone()).collect()
    };
    let all = rat_service::runs::log_tail(&world.services, &Caller::community(), run.id, 0, 500)
        .await
        .unwrap();
    assert_eq!(all.status, RunStatus::Pending);
    assert_eq!(messages(&all), ["a", "b", "c"]);
    assert_eq!(all.entries.last().unwrap().0, last);
    let page = rat_service::runs::log_tail(&world.services, &Caller::community(), run.id, 0, 1)
        .await
        .unwrap();
    assert_eq!(messages(&page), ["a"]);
    let after = rat_service::runs::log_tail(&world.services, &Caller::community(), run.id, first, 500)
        .await
        .unwrap();
    assert_eq!(messages(&after), ["c"]);
    let none = rat_service::runs::log_tail(&world.services, &Caller::community(), run.id, last, 500)
        .await
        .unwrap();
    assert!(none.entries.is_empty());

    rat_service::runs::cancel(&world.services, &Caller::community(), run.id, now)
        .await
        .unwrap();
    let ended = rat_service::runs::log_tail(&world.services, &Caller::community(), run.id, last, 500)
        .await
        .unwrap();
    assert_eq!(ended.status, RunStatus::Cancelled);

    for err in [
        rat_service::runs::log_tail(
            &world.services,
            &Caller::community(),
            uuid::Uuid::new_v4().into(),
            0,
            500,
        )
        .await
        .unwrap_err(),
        rat_service::runs::legacy_log_entries(&world.services, &Caller::community(), uuid::Uuid::new_v4().into())
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, ServiceError::NotFound { entity: "run" }), "{err:?}");
    }
}
