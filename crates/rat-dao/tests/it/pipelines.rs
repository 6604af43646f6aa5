//! `pipelines` repository against a real PostgreSQL.

use rat_dao::{DaoError, access, pipelines};
use rat_domain::{Layer, PageRequest, PipelineRef, PipelineSortField, PipelineType, PublishedVersions, Sort};
use rat_testkit::{TestDatabase, fixtures};
use time::OffsetDateTime;
use time::macros::datetime;

fn address(ns: &str, layer: &str, name: &str) -> PipelineRef {
    PipelineRef::parse(ns, layer, name).unwrap()
}

fn new_pipeline(ns: &str, layer: &str, name: &str) -> pipelines::NewPipeline {
    pipelines::NewPipeline {
        address: address(ns, layer, name),
        pipeline_type: PipelineType::Python,
        description: "Cleans orders".to_owned(),
        owner: Some("alice".to_owned()),
        max_versions: Some(7),
    }
}

#[tokio::test]
async fn every_column_round_trips() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let created = pipelines::create(&client, &new_pipeline("default", "silver", "clean_orders"))
        .await
        .unwrap();
    assert_eq!(created.address, address("default", "silver", "clean_orders"));
    assert_eq!(created.pipeline_type, PipelineType::Python);
    assert_eq!(created.s3_path, "default/pipelines/silver/clean_orders/");
    assert_eq!(created.description, "Cleans orders");
    assert_eq!(created.owner.as_deref(), Some("alice"));
    assert_eq!(created.max_versions, 7);
    assert!(!created.draft_dirty);
    assert!(created.published_at.is_none() && created.published_versions.is_empty());
    assert!(created.retention_config.is_none() && created.deleted_at.is_none());

    let versions =
        PublishedVersions::from_pairs([("default/pipelines/silver/clean_orders/pipeline.py", "v1")]).unwrap();
    let at = datetime!(2026-05-01 12:00:00 UTC);
    let published = pipelines::set_published(&client, created.id, &versions, at, true)
        .await
        .unwrap();
    assert_eq!(published.published_versions, versions);
    assert_eq!(published.published_at, Some(at));
    assert!(published.draft_dirty);
    assert!(published.is_published());

    let overrides = serde_json::json!({"runs_max_per_pipeline": 5});
    let with_retention = pipelines::set_retention_config(&client, created.id, Some(&overrides))
        .await
        .unwrap();
    assert_eq!(with_retention.retention_config, Some(overrides));

    pipelines::set_draft_dirty(&client, created.id, false).await.unwrap();
    let fetched = pipelines::get_by_ref(&client, &created.address).await.unwrap();
    assert_eq!(fetched.id, created.id);
    assert!(!fetched.draft_dirty);
    assert_eq!(pipelines::get(&client, created.id).await.unwrap(), fetched);
    assert!(fetched.updated_at >= created.updated_at);
}

#[tokio::test]
async fn update_keeps_absent_fields() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let created = pipelines::create(&client, &new_pipeline("default", "gold", "sales"))
        .await
        .unwrap();
    let updated = pipelines::update(
        &client,
        &created.address,
        &pipelines::PipelineUpdate {
            description: Some("Daily sales".to_owned()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(updated.description, "Daily sales");
    assert_eq!(updated.pipeline_type, PipelineType::Python);
    assert_eq!(updated.owner.as_deref(), Some("alice"));
    assert_eq!(updated.max_versions, 7);
}

#[tokio::test]
async fn updated_at_is_maintained_by_the_database() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let created = pipelines::create(&client, &new_pipeline("default", "gold", "sales"))
        .await
        .unwrap();
    // Force an old updated_at with the trigger off, then change something else
    // with it on: the trigger must move updated_at to the present.
    client
        .batch_execute("ALTER TABLE pipelines DISABLE TRIGGER trg_pipelines_updated_at")
        .await
        .unwrap();
    client
        .execute(
            "UPDATE pipelines SET updated_at = '2000-01-01T00:00:00Z' WHERE id = $1",
            &[&created.id],
        )
        .await
        .unwrap();
    client
        .batch_execute("ALTER TABLE pipelines ENABLE TRIGGER trg_pipelines_updated_at")
        .await
        .unwrap();
    let before = pipelines::get(&client, created.id).await.unwrap();
    assert_eq!(before.updated_at, datetime!(2000-01-01 00:00:00 UTC));
    pipelines::set_draft_dirty(&client, created.id, true).await.unwrap();
    let after = pipelines::get(&client, created.id).await.unwrap();
    assert!(
        after.updated_at > datetime!(2020-01-01 00:00:00 UTC),
        "{}",
        after.updated_at
    );
}

#[tokio::test]
async fn live_duplicate_is_a_conflict_but_a_deleted_name_can_be_reused() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let first = pipelines::create(&client, &new_pipeline("default", "silver", "orders"))
        .await
        .unwrap();
    let err = pipelines::create(&client, &new_pipeline("default", "silver", "orders"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::Conflict { constraint } if constraint == "uq_pipelines_namespace_layer_name"),
        "{err:?}"
    );
    // Same name in another layer is a different pipeline.
    pipelines::create(&client, &new_pipeline("default", "gold", "orders"))
        .await
        .unwrap();

    let deleted = pipelines::soft_delete(&client, &first.address, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(deleted.deleted_at.is_some());
    assert!(matches!(
        pipelines::get_by_ref(&client, &first.address).await.unwrap_err(),
        DaoError::NotFound { entity: "pipeline" }
    ));
    let second = pipelines::create(&client, &new_pipeline("default", "silver", "orders"))
        .await
        .unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(
        pipelines::get_by_ref(&client, &first.address).await.unwrap().id,
        second.id
    );
    // The deleted row is still there for the reaper.
    assert!(pipelines::get(&client, first.id).await.unwrap().deleted_at.is_some());
}

#[tokio::test]
async fn unknown_namespace_is_a_missing_reference() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let err = pipelines::create(&client, &new_pipeline("nowhere", "silver", "orders"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "namespace", constraint } if constraint == "fk_pipelines_namespace"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "namespace not found");
}

#[tokio::test]
async fn check_constraints_are_invalid_input() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let mut zero = new_pipeline("default", "silver", "orders");
    zero.max_versions = Some(0);
    let err = pipelines::create(&client, &zero).await.unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "ck_pipelines_max_versions"),
        "{err:?}"
    );
    // Checks that the domain types make unreachable still hold in SQL.
    for (sql, constraint) in [
        (
            "INSERT INTO pipelines (namespace, layer, name, s3_path) VALUES ('default', 'platinum', 'x', 'p/')",
            "ck_pipelines_layer",
        ),
        (
            "INSERT INTO pipelines (namespace, layer, name, type, s3_path) VALUES ('default', 'gold', 'x', 'r', 'p/')",
            "ck_pipelines_type",
        ),
        (
            "INSERT INTO pipelines (namespace, layer, name, s3_path, published_versions) \
             VALUES ('default', 'gold', 'x', 'p/', '[]')",
            "ck_pipelines_published_versions_object",
        ),
    ] {
        let err = DaoError::from(client.execute(sql, &[]).await.unwrap_err());
        assert!(
            matches!(&err, DaoError::Invalid { constraint: c } if c == constraint),
            "{sql}: {err:?}"
        );
    }
}

#[tokio::test]
async fn missing_pipelines_are_not_found() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let ghost = address("default", "gold", "ghost");
    let now = OffsetDateTime::now_utc();
    for err in [
        pipelines::get_by_ref(&client, &ghost).await.unwrap_err(),
        pipelines::update(&client, &ghost, &Default::default())
            .await
            .unwrap_err(),
        pipelines::soft_delete(&client, &ghost, now).await.unwrap_err(),
        pipelines::get(&client, uuid::Uuid::new_v4().into()).await.unwrap_err(),
        pipelines::purge(&client, uuid::Uuid::new_v4().into())
            .await
            .unwrap_err(),
        pipelines::set_draft_dirty(&client, uuid::Uuid::new_v4().into(), true)
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, DaoError::NotFound { entity: "pipeline" }), "{err:?}");
    }
}

#[tokio::test]
async fn list_filters_searches_sorts_and_counts_in_sql() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    fixtures::namespace(&client, "ecommerce").await;
    let specs = [
        ("default", "bronze", "raw_orders", "Orders as landed"),
        ("default", "silver", "clean_orders", "Deduplicated ORDERS"),
        ("default", "gold", "revenue", "Revenue by day"),
        ("ecommerce", "silver", "customers", "50%_discount customers"),
        ("ecommerce", "gold", "orders_summary", ""),
    ];
    for (ns, layer, name, description) in specs {
        let mut new = new_pipeline(ns, layer, name);
        new.description = description.to_owned();
        pipelines::create(&client, &new).await.unwrap();
    }
    let deleted = pipelines::create(&client, &new_pipeline("default", "silver", "old_orders"))
        .await
        .unwrap();
    pipelines::soft_delete(&client, &deleted.address, OffsetDateTime::now_utc())
        .await
        .unwrap();

    let by_name = Sort {
        field: PipelineSortField::Name,
        descending: false,
    };
    let names = |page: &rat_domain::Page<rat_domain::Pipeline>| -> Vec<String> {
        page.items.iter().map(|p| p.address.name.to_string()).collect()
    };

    let all = pipelines::list(&client, &Default::default(), by_name, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(all.total, 5, "soft-deleted pipelines are not listed");

    let filter = pipelines::PipelineFilter {
        namespace: Some(rat_domain::NamespaceName::parse("default").unwrap()),
        ..Default::default()
    };
    let page = pipelines::list(&client, &filter, by_name, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(names(&page), ["clean_orders", "raw_orders", "revenue"]);
    assert_eq!(page.total, 3);

    let filter = pipelines::PipelineFilter {
        layer: Some(Layer::Silver),
        ..Default::default()
    };
    let page = pipelines::list(&client, &filter, by_name, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(names(&page), ["clean_orders", "customers"]);

    // Case-insensitive substring of name or description.
    let filter = pipelines::PipelineFilter {
        search: Some("orders".to_owned()),
        ..Default::default()
    };
    let page = pipelines::list(&client, &filter, by_name, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(names(&page), ["clean_orders", "orders_summary", "raw_orders"]);

    // LIKE wildcards in the search are literal.
    let filter = pipelines::PipelineFilter {
        search: Some("50%_".to_owned()),
        ..Default::default()
    };
    let page = pipelines::list(&client, &filter, by_name, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(names(&page), ["customers"]);
    let filter = pipelines::PipelineFilter {
        search: Some("%".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        pipelines::list(&client, &filter, by_name, PageRequest::default())
            .await
            .unwrap()
            .total,
        1
    );

    // Descending sort, paging with a total over the filtered set.
    let desc = Sort {
        field: PipelineSortField::Name,
        descending: true,
    };
    let filter = pipelines::PipelineFilter {
        search: Some("orders".to_owned()),
        ..Default::default()
    };
    let page = pipelines::list(&client, &filter, desc, PageRequest::new(Some(2), Some(0)).unwrap())
        .await
        .unwrap();
    assert_eq!(names(&page), ["raw_orders", "orders_summary"]);
    assert_eq!(page.total, 3);
    let page = pipelines::list(&client, &filter, desc, PageRequest::new(Some(2), Some(2)).unwrap())
        .await
        .unwrap();
    assert_eq!(names(&page), ["clean_orders"]);
    assert_eq!(page.total, 3);

    // Default sort: newest first.
    let page = pipelines::list(
        &client,
        &Default::default(),
        pipelines::DEFAULT_SORT,
        PageRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!(page.items.first().unwrap().address.name.as_str(), "orders_summary");
}

#[tokio::test]
async fn soft_deleted_before_finds_only_old_deletions() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let old = fixtures::pipeline(&client, "default", "bronze", "old").await;
    let recent = fixtures::pipeline(&client, "default", "bronze", "recent").await;
    fixtures::pipeline(&client, "default", "bronze", "live").await;
    pipelines::soft_delete(&client, &old.address, datetime!(2026-01-01 00:00:00 UTC))
        .await
        .unwrap();
    pipelines::soft_delete(&client, &recent.address, datetime!(2026-03-01 00:00:00 UTC))
        .await
        .unwrap();
    let found = pipelines::soft_deleted_before(&client, datetime!(2026-02-01 00:00:00 UTC), 10)
        .await
        .unwrap();
    assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), [old.id]);
    pipelines::purge(&client, old.id).await.unwrap();
    assert!(matches!(
        pipelines::get(&client, old.id).await.unwrap_err(),
        DaoError::NotFound { .. }
    ));
}

#[tokio::test]
async fn lock_for_update_blocks_a_second_locker_until_commit() {
    let db = TestDatabase::new().await;
    let mut first = db.client().await;
    let mut second = db.client().await;
    let p = fixtures::pipeline(&first, "default", "gold", "locked").await;

    let tx1 = first.transaction().await.unwrap();
    pipelines::get_by_ref_for_update(&tx1, &p.address).await.unwrap();
    let tx2 = second.transaction().await.unwrap();
    tx2.batch_execute("SET LOCAL lock_timeout = '200ms'").await.unwrap();
    let blocked = pipelines::get_by_ref_for_update(&tx2, &p.address).await.unwrap_err();
    assert!(blocked.is_retryable(), "a lock timeout is retryable: {blocked:?}");
    tx2.rollback().await.unwrap();
    tx1.commit().await.unwrap();
    let tx2 = second.transaction().await.unwrap();
    pipelines::get_by_ref_for_update(&tx2, &p.address).await.unwrap();
    tx2.commit().await.unwrap();
}

#[tokio::test]
async fn batched_reads_return_the_live_pipelines_and_skip_missing_and_deleted_addresses() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let silver = pipelines::create(&client, &new_pipeline("default", "silver", "orders"))
        .await
        .unwrap();
    let gold = pipelines::create(&client, &new_pipeline("default", "gold", "orders"))
        .await
        .unwrap();
    let gone = pipelines::create(&client, &new_pipeline("default", "silver", "gone"))
        .await
        .unwrap();
    pipelines::soft_delete(&client, &gone.address, OffsetDateTime::now_utc())
        .await
        .unwrap();

    let asked = [
        gold.address.clone(),
        address("default", "bronze", "orders"),
        gone.address.clone(),
        silver.address.clone(),
    ];
    let found = pipelines::get_by_refs(&client, &asked).await.unwrap();
    let generation = access::access_generation(&client).await.unwrap();
    assert!(found.iter().all(|(_, at)| *at == generation), "{found:?}");
    let mut found: Vec<_> = found.into_iter().map(|(p, _)| p).collect();
    found.sort_by_key(|p| p.address.layer.as_str().to_owned());
    assert_eq!(
        found,
        vec![
            pipelines::get_by_ref(&client, &gold.address).await.unwrap(),
            pipelines::get_by_ref(&client, &silver.address).await.unwrap(),
        ]
    );
    assert!(pipelines::get_by_refs(&client, &[]).await.unwrap().is_empty());

    let too_many = vec![silver.address.clone(); pipelines::MAX_BATCH_READ + 1];
    assert!(matches!(
        pipelines::get_by_refs(&client, &too_many).await.unwrap_err(),
        DaoError::Internal { .. }
    ));
    // The arrays are parallel; the function refuses ones that are not.
    let err = client
        .query(
            "SELECT id FROM pipelines_at($1, $2, $3)",
            &[&vec!["default", "default"], &vec!["silver"], &vec!["orders", "gone"]],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE)
    );
}
