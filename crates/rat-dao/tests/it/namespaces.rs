//! `namespaces` repository against a real PostgreSQL.

use rat_dao::{DaoError, namespaces};
use rat_domain::{NamespaceName, PageRequest};
use rat_testkit::TestDatabase;

fn name(s: &str) -> NamespaceName {
    NamespaceName::parse(s).unwrap()
}

#[tokio::test]
async fn create_get_update_round_trip_every_column() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let created = namespaces::create(&client, &name("sales"), "Sales data", Some("alice"))
        .await
        .unwrap();
    assert_eq!(created.name.as_str(), "sales");
    assert_eq!(created.description, "Sales data");
    assert_eq!(created.created_by.as_deref(), Some("alice"));

    let fetched = namespaces::get(&client, &name("sales")).await.unwrap();
    assert_eq!(fetched, created);

    let updated = namespaces::update_description(&client, &name("sales"), "Orders and invoices")
        .await
        .unwrap();
    assert_eq!(updated.description, "Orders and invoices");
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.created_at, created.created_at);
}

#[tokio::test]
async fn duplicate_name_is_a_conflict_naming_the_constraint() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    namespaces::create(&client, &name("sales"), "", None).await.unwrap();
    let err = namespaces::create(&client, &name("sales"), "", None).await.unwrap_err();
    assert!(
        matches!(&err, DaoError::Conflict { constraint } if constraint == "uq_namespaces_name"),
        "{err:?}"
    );
}

#[tokio::test]
async fn unknown_namespace_is_not_found() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    for err in [
        namespaces::get(&client, &name("nope")).await.unwrap_err(),
        namespaces::update_description(&client, &name("nope"), "x")
            .await
            .unwrap_err(),
        namespaces::delete(&client, &name("nope")).await.unwrap_err(),
    ] {
        assert!(matches!(err, DaoError::NotFound { entity: "namespace" }), "{err:?}");
    }
    assert!(!namespaces::exists(&client, &name("nope")).await.unwrap());
}

#[tokio::test]
async fn list_is_ordered_by_creation_with_full_total() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    for n in ["b-second", "a-third", "c-fourth"] {
        namespaces::create(&client, &name(n), "", None).await.unwrap();
    }
    let all = namespaces::list(&client, None, PageRequest::default()).await.unwrap();
    let names: Vec<&str> = all.items.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["default", "b-second", "a-third", "c-fourth"]);
    assert_eq!(all.total, 4);

    let page = namespaces::list(&client, None, PageRequest::new(Some(2), Some(1)).unwrap())
        .await
        .unwrap();
    let names: Vec<&str> = page.items.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["b-second", "a-third"]);
    assert_eq!(page.total, 4, "total counts the whole set, not the page");

    let beyond = namespaces::list(&client, None, PageRequest::new(Some(2), Some(10)).unwrap())
        .await
        .unwrap();
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, 4);
}
