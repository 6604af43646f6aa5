//! `pipeline_versions` repository against a real PostgreSQL: number
//! allocation (also under concurrency), reads, paging, pruning, constraints
//! and the cascade from the pipeline.

use rat_dao::{DaoError, pipeline_versions, pipelines};
use rat_domain::{PageRequest, PublishedVersions};
use rat_testkit::{TestDatabase, fixtures};
use time::OffsetDateTime;
use time::macros::datetime;

fn pins(version: &str) -> PublishedVersions {
    PublishedVersions::from_pairs([
        ("default/pipelines/silver/orders/pipeline.sql", version),
        ("default/pipelines/silver/orders/config.yaml", "cfg-1"),
    ])
    .unwrap()
}

fn numbers(versions: &[rat_domain::PipelineVersion]) -> Vec<i32> {
    versions.iter().map(|v| v.version_number.get()).collect()
}

#[tokio::test]
async fn numbers_are_consecutive_per_pipeline_and_every_column_round_trips() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let orders = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let other = fixtures::pipeline(&client, "default", "gold", "other").await;
    assert_eq!(pipeline_versions::latest(&client, orders.id).await.unwrap(), None);

    let times = [
        datetime!(2026-05-01 10:00:00 UTC),
        datetime!(2026-05-02 10:00:00.5 UTC),
        datetime!(2026-05-03 10:00:00 UTC),
    ];
    let mut created = Vec::new();
    for (i, at) in times.into_iter().enumerate() {
        let version =
            pipeline_versions::insert_next(&client, orders.id, &format!("publish {i}"), &pins(&format!("v{i}")), at)
                .await
                .unwrap();
        created.push(version);
    }
    assert_eq!(numbers(&created), [1, 2, 3]);
    let second = &created[1];
    assert_eq!(second.pipeline_id, orders.id);
    assert_eq!(second.message, "publish 1");
    assert_eq!(second.published_versions, pins("v1"));
    assert_eq!(second.created_at, times[1]);

    // Another pipeline's history starts at 1 on its own.
    let first_other = pipeline_versions::insert_next(&client, other.id, "", &PublishedVersions::new(), times[0])
        .await
        .unwrap();
    assert_eq!(first_other.version_number, 1);
    assert!(first_other.published_versions.is_empty());

    assert_eq!(
        &pipeline_versions::get(&client, orders.id, rat_domain::VersionNumber::parse(2).unwrap())
            .await
            .unwrap(),
        second
    );
    assert_eq!(
        pipeline_versions::latest(&client, orders.id).await.unwrap().as_ref(),
        created.last()
    );
    for err in [
        pipeline_versions::get(&client, orders.id, rat_domain::VersionNumber::parse(4).unwrap())
            .await
            .unwrap_err(),
        pipeline_versions::get(
            &client,
            uuid::Uuid::new_v4().into(),
            rat_domain::VersionNumber::parse(1).unwrap(),
        )
        .await
        .unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                DaoError::NotFound {
                    entity: "pipeline version"
                }
            ),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn list_is_newest_first_with_a_total() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let orders = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let other = fixtures::pipeline(&client, "default", "gold", "other").await;
    let now = OffsetDateTime::now_utc();
    for _ in 0..3 {
        pipeline_versions::insert_next(&client, orders.id, "", &pins("v"), now)
            .await
            .unwrap();
    }
    pipeline_versions::insert_next(&client, other.id, "", &pins("v"), now)
        .await
        .unwrap();

    let page = pipeline_versions::list(&client, orders.id, PageRequest::new(Some(2), Some(0)).unwrap())
        .await
        .unwrap();
    assert_eq!(numbers(&page.items), [3, 2]);
    assert_eq!(page.total, 3);
    let page = pipeline_versions::list(&client, orders.id, PageRequest::new(Some(2), Some(2)).unwrap())
        .await
        .unwrap();
    assert_eq!(numbers(&page.items), [1]);
    assert_eq!(page.total, 3);
    let page = pipeline_versions::list(&client, uuid::Uuid::new_v4().into(), PageRequest::default())
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.total, 0);
}

#[tokio::test]
async fn concurrent_publishes_holding_the_pipeline_lock_get_one_to_ten() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    drop(client);

    // Ten publishes race; the pool has 8 connections, so each task takes its
    // own connection when one is free.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let pool = db.pool().clone();
            let address = pipeline.address.clone();
            tokio::spawn(async move {
                let mut client = pool.get().await.unwrap();
                let tx = client.transaction().await.unwrap();
                let locked = pipelines::get_by_ref_for_update(&tx, &address).await?;
                let version = pipeline_versions::insert_next(
                    &tx,
                    locked.id,
                    &format!("publish {i}"),
                    &PublishedVersions::new(),
                    OffsetDateTime::now_utc(),
                )
                .await?;
                tx.commit().await.unwrap();
                Ok::<_, DaoError>(version.version_number)
            })
        })
        .collect();
    let mut allocated = Vec::new();
    for task in tasks {
        allocated.push(task.await.unwrap().unwrap());
    }
    allocated.sort_unstable();
    assert_eq!(allocated, (1..=10).collect::<Vec<_>>());

    let client = db.client().await;
    let page = pipeline_versions::list(&client, pipeline.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.total, 10);
}

#[tokio::test]
async fn without_the_lock_a_racing_publish_is_a_conflict() {
    let db = TestDatabase::new().await;
    let mut first = db.client().await;
    let observer = db.client().await;
    let pipeline = fixtures::pipeline(&first, "default", "silver", "orders").await;
    let now = OffsetDateTime::now_utc();

    // A duplicate number is refused by the unique constraint.
    pipeline_versions::insert_next(&first, pipeline.id, "", &pins("v1"), now)
        .await
        .unwrap();
    let err = DaoError::from(
        first
            .execute(
                "INSERT INTO pipeline_versions (pipeline_id, version_number) VALUES ($1, 1)",
                &[&pipeline.id],
            )
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, DaoError::Conflict { constraint } if constraint == "uq_pipeline_versions_pipeline_version"),
        "{err:?}"
    );

    // Two transactions that skip the pipeline lock read the same maximum: the
    // second waits on the first one's uncommitted number 2, then fails.
    let tx1 = first.transaction().await.unwrap();
    let v2 = pipeline_versions::insert_next(&tx1, pipeline.id, "a", &pins("v2"), now)
        .await
        .unwrap();
    assert_eq!(v2.version_number, 2);

    let mut second = db.client().await;
    let second_pid: i32 = second.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let id = pipeline.id;
    let racer = tokio::spawn(async move {
        let tx2 = second.transaction().await.unwrap();
        let result = pipeline_versions::insert_next(&tx2, id, "b", &pins("v2b"), OffsetDateTime::now_utc()).await;
        tx2.rollback().await.unwrap();
        result
    });
    fixtures::wait_until_blocked(&observer, second_pid).await;
    tx1.commit().await.unwrap();
    let err = racer.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, DaoError::Conflict { constraint } if constraint == "uq_pipeline_versions_pipeline_version"),
        "{err:?}"
    );
}

#[tokio::test]
async fn prune_keeps_the_newest_versions() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let orders = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let other = fixtures::pipeline(&client, "default", "gold", "other").await;
    let now = OffsetDateTime::now_utc();
    for _ in 0..5 {
        pipeline_versions::insert_next(&client, orders.id, "", &pins("v"), now)
            .await
            .unwrap();
    }
    for _ in 0..2 {
        pipeline_versions::insert_next(&client, other.id, "", &pins("v"), now)
            .await
            .unwrap();
    }

    assert_eq!(pipeline_versions::prune(&client, orders.id, 10).await.unwrap(), 0);
    assert_eq!(pipeline_versions::prune(&client, orders.id, 5).await.unwrap(), 0);
    assert_eq!(pipeline_versions::prune(&client, orders.id, 2).await.unwrap(), 3);
    let kept = pipeline_versions::list(&client, orders.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(numbers(&kept.items), [5, 4]);
    assert_eq!(pipeline_versions::prune(&client, orders.id, 2).await.unwrap(), 0);
    // Numbering continues after the newest, not after the count.
    let next = pipeline_versions::insert_next(&client, orders.id, "", &pins("v"), now)
        .await
        .unwrap();
    assert_eq!(next.version_number, 6);

    // Other pipelines are untouched.
    let others = pipeline_versions::list(&client, other.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(numbers(&others.items), [2, 1]);

    assert_eq!(pipeline_versions::prune(&client, orders.id, 0).await.unwrap(), 3);
    assert_eq!(pipeline_versions::latest(&client, orders.id).await.unwrap(), None);
    let err = pipeline_versions::prune(&client, orders.id, -1).await.unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "keep"),
        "{err:?}"
    );
}

#[tokio::test]
async fn constraints_map_to_dao_errors() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let err = pipeline_versions::insert_next(
        &client,
        uuid::Uuid::new_v4().into(),
        "",
        &PublishedVersions::new(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "pipeline", constraint } if constraint == "fk_pipeline_versions_pipeline"),
        "{err:?}"
    );
    for (sql, constraint) in [
        (
            "INSERT INTO pipeline_versions (pipeline_id, version_number) VALUES ($1, 0)",
            "ck_pipeline_versions_version_number",
        ),
        (
            "INSERT INTO pipeline_versions (pipeline_id, version_number, published_versions) VALUES ($1, 1, '[]')",
            "ck_pipeline_versions_published_versions_object",
        ),
    ] {
        let err = DaoError::from(client.execute(sql, &[&pipeline.id]).await.unwrap_err());
        assert!(
            matches!(&err, DaoError::Invalid { constraint: c } if c == constraint),
            "{sql}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_stored_snapshot_that_does_not_parse_is_corrupt() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    client
        .execute(
            "INSERT INTO pipeline_versions (pipeline_id, version_number, published_versions) \
             VALUES ($1, 1, '{\"key\": 7}')",
            &[&pipeline.id],
        )
        .await
        .unwrap();
    let err = pipeline_versions::get(&client, pipeline.id, rat_domain::VersionNumber::parse(1).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DaoError::Corrupt {
                column: "published_versions",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn purging_the_pipeline_deletes_its_history() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let kept = fixtures::pipeline(&client, "default", "gold", "kept").await;
    let now = OffsetDateTime::now_utc();
    for _ in 0..3 {
        pipeline_versions::insert_next(&client, pipeline.id, "", &pins("v"), now)
            .await
            .unwrap();
    }
    pipeline_versions::insert_next(&client, kept.id, "", &pins("v"), now)
        .await
        .unwrap();

    pipelines::purge(&client, pipeline.id).await.unwrap();
    let remaining: i64 = client
        .query_one(
            "SELECT count(*) FROM pipeline_versions WHERE pipeline_id = $1",
            &[&pipeline.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(remaining, 0);
    assert_eq!(
        pipeline_versions::list(&client, kept.id, PageRequest::default())
            .await
            .unwrap()
            .total,
        1
    );
}
