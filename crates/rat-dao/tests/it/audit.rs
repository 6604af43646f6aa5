//! `audit` repository against a real PostgreSQL.

use rat_dao::audit::{self, AuditFilter, NewAuditEntry};
use rat_dao::{DaoError, GenericClient};
use rat_domain::PageRequest;
use rat_testkit::TestDatabase;
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const BASE: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

fn entry(actor: &str, action: &str, object_type: Option<&str>) -> NewAuditEntry {
    NewAuditEntry {
        actor: actor.to_owned(),
        action: action.to_owned(),
        object_type: object_type.map(str::to_owned),
        object_id: None,
        details: None,
    }
}

/// Six entries an hour apart (hour 0 to 5):
/// alice/create/pipeline, bob/create/pipeline, alice/delete/pipeline,
/// alice/create/namespace, bob/update/-, carol/delete/pipeline.
async fn seed(client: &impl GenericClient) {
    let specs = [
        ("alice", "pipeline.create", Some("pipeline")),
        ("bob", "pipeline.create", Some("pipeline")),
        ("alice", "pipeline.delete", Some("pipeline")),
        ("alice", "namespace.create", Some("namespace")),
        ("bob", "settings.update", None),
        ("carol", "pipeline.delete", Some("pipeline")),
    ];
    for (hour, (actor, action, object_type)) in specs.into_iter().enumerate() {
        audit::insert(
            client,
            &entry(actor, action, object_type),
            BASE + Duration::hours(hour as i64),
        )
        .await
        .unwrap();
    }
}

/// The hours (since BASE) of the listed entries, in list order, and the total.
async fn hours(client: &impl GenericClient, filter: &AuditFilter) -> (Vec<i64>, i64) {
    let page = audit::list(client, filter, PageRequest::default(), None).await.unwrap();
    let hours = page.items.iter().map(|e| (e.timestamp - BASE).whole_hours()).collect();
    (hours, page.total)
}

#[tokio::test]
async fn entry_round_trips_every_column() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let object_id = Uuid::new_v4();
    let details = json!({"method": "DELETE", "path": "/api/v1/pipelines/default/silver/orders", "status": 204});
    let at = datetime!(2026-05-06 07:08:09.123456 UTC);
    let new = NewAuditEntry {
        actor: "alice".to_owned(),
        action: "pipeline.delete".to_owned(),
        object_type: Some("pipeline".to_owned()),
        object_id: Some(object_id),
        details: Some(details.clone()),
    };
    let inserted = audit::insert(&client, &new, at).await.unwrap();
    assert_eq!(inserted.actor, "alice");
    assert_eq!(inserted.action, "pipeline.delete");
    assert_eq!(inserted.object_type.as_deref(), Some("pipeline"));
    assert_eq!(inserted.object_id, Some(object_id));
    assert_eq!(inserted.details, Some(details));
    assert_eq!(inserted.timestamp, at);

    let bare = audit::insert(&client, &entry("bob", "login", None), at).await.unwrap();
    assert_eq!((bare.object_type, bare.object_id, bare.details), (None, None, None));

    let listed = audit::list(&client, &AuditFilter::default(), PageRequest::default(), None)
        .await
        .unwrap();
    assert_eq!(listed.total, 2);
    assert!(listed.items.contains(&inserted));
}

#[tokio::test]
async fn each_filter_alone_and_combined_with_totals() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    seed(&client).await;
    let f = |actor: Option<&str>, action: Option<&str>, object_type: Option<&str>| AuditFilter {
        actor: actor.map(str::to_owned),
        action: action.map(str::to_owned),
        object_type: object_type.map(str::to_owned),
        ..Default::default()
    };
    assert_eq!(
        hours(&client, &AuditFilter::default()).await,
        (vec![5, 4, 3, 2, 1, 0], 6)
    );
    assert_eq!(hours(&client, &f(Some("alice"), None, None)).await, (vec![3, 2, 0], 3));
    assert_eq!(
        hours(&client, &f(None, Some("pipeline.delete"), None)).await,
        (vec![5, 2], 2)
    );
    assert_eq!(
        hours(&client, &f(None, None, Some("pipeline"))).await,
        (vec![5, 2, 1, 0], 4)
    );
    assert_eq!(
        hours(&client, &f(Some("alice"), None, Some("pipeline"))).await,
        (vec![2, 0], 2)
    );
    assert_eq!(
        hours(&client, &f(Some("bob"), Some("pipeline.create"), Some("pipeline"))).await,
        (vec![1], 1)
    );
    assert_eq!(
        hours(&client, &f(Some("carol"), Some("pipeline.create"), None)).await,
        (vec![], 0)
    );
    // Filters are exact matches, not patterns.
    assert_eq!(hours(&client, &f(Some("ali%"), None, None)).await, (vec![], 0));

    let combined = AuditFilter {
        since: Some(BASE + Duration::hours(1)),
        ..f(Some("alice"), None, None)
    };
    assert_eq!(hours(&client, &combined).await, (vec![3, 2], 2));
}

#[tokio::test]
async fn since_is_inclusive_and_until_exclusive() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    seed(&client).await;
    let window = |since: Option<i64>, until: Option<i64>| AuditFilter {
        since: since.map(|h| BASE + Duration::hours(h)),
        until: until.map(|h| BASE + Duration::hours(h)),
        ..Default::default()
    };
    assert_eq!(hours(&client, &window(Some(2), None)).await, (vec![5, 4, 3, 2], 4));
    assert_eq!(hours(&client, &window(None, Some(2))).await, (vec![1, 0], 2));
    assert_eq!(hours(&client, &window(Some(1), Some(4))).await, (vec![3, 2, 1], 3));
    assert_eq!(hours(&client, &window(Some(3), Some(3))).await, (vec![], 0));
    // Consecutive windows never count an entry twice.
    let (first, _) = hours(&client, &window(Some(0), Some(3))).await;
    let (second, _) = hours(&client, &window(Some(3), Some(6))).await;
    assert_eq!(first.len() + second.len(), 6);
}

#[tokio::test]
async fn list_pages_newest_first_with_ties_broken_by_id() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    // Five entries at the same instant: paging must neither repeat nor skip.
    for i in 0..5 {
        audit::insert(&client, &entry(&format!("user{i}"), "x", None), BASE)
            .await
            .unwrap();
    }
    audit::insert(&client, &entry("later", "x", None), BASE + Duration::seconds(1))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for offset in [0, 2, 4] {
        let page = audit::list(
            &client,
            &AuditFilter::default(),
            PageRequest::new(Some(2), Some(offset)).unwrap(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(page.total, 6);
        seen.extend(page.items);
    }
    assert_eq!(seen[0].actor, "later");
    let tied: Vec<Uuid> = seen[1..].iter().map(|e| e.id).collect();
    let mut expected = tied.clone();
    expected.sort_by(|a, b| b.cmp(a));
    expected.dedup();
    assert_eq!(tied, expected, "ties in descending id order, none repeated");
    assert_eq!(tied.len(), 5);
}

#[tokio::test]
async fn delete_older_than_respects_cutoff_and_batch() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    seed(&client).await;
    let cutoff = BASE + Duration::hours(4);
    let (deleted, next) = audit::delete_older_than(&client, cutoff, None, 3).await.unwrap();
    assert_eq!(deleted, 3);
    assert_eq!(
        next,
        Some(BASE + Duration::hours(2)),
        "a full batch: go on from its last timestamp"
    );
    // The oldest went first.
    assert_eq!(hours(&client, &AuditFilter::default()).await, (vec![5, 4, 3], 3));
    assert_eq!(
        audit::delete_older_than(&client, cutoff, next, 3).await.unwrap(),
        (1, None)
    );
    // The cutoff is exclusive: the entry at hour 4 stays.
    assert_eq!(
        audit::delete_older_than(&client, cutoff, None, 3).await.unwrap(),
        (0, None)
    );
    assert_eq!(hours(&client, &AuditFilter::default()).await, (vec![5, 4], 2));
}

#[tokio::test]
async fn values_longer_than_their_columns_are_invalid() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let long_actor = "a".repeat(256);
    let long_action = "b".repeat(101);
    let long_type = "c".repeat(21);
    for new in [
        entry(&long_actor, "x", None),
        entry("alice", &long_action, None),
        entry("alice", "x", Some(&long_type)),
    ] {
        let err = audit::insert(&client, &new, BASE).await.unwrap_err();
        assert!(
            matches!(&err, DaoError::Invalid { constraint } if constraint == "value"),
            "{err:?}"
        );
    }
    audit::insert(&client, &entry(&"a".repeat(255), "x", None), BASE)
        .await
        .unwrap();
}
