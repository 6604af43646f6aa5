//! `tables` (table metadata) repository against a real PostgreSQL.

use std::collections::BTreeMap;

use rat_dao::{DaoError, tables};
use rat_domain::{Layer, NamespaceName, PageRequest, TableName};
use rat_testkit::TestDatabase;

fn ns(s: &str) -> NamespaceName {
    NamespaceName::parse(s).unwrap()
}

fn table(s: &str) -> TableName {
    TableName::parse(s).unwrap()
}

fn columns(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test]
async fn upsert_creates_with_defaults_then_round_trips_every_column() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let bare = tables::upsert(&client, &ns("sales"), Layer::Gold, &table("revenue"), None, None, None)
        .await
        .unwrap();
    assert_eq!(
        bare.namespace.as_str(),
        "sales",
        "no foreign key: any namespace is accepted"
    );
    assert_eq!(bare.layer, Layer::Gold);
    assert_eq!(bare.name.as_str(), "revenue");
    assert_eq!(bare.description, "");
    assert_eq!(bare.owner, None);
    assert!(bare.column_descriptions.is_empty());

    let descriptions = columns(&[
        ("amount", "Net amount in EUR"),
        ("day", "Calendar day, UTC"),
        ("ünï", "\"quoted\""),
    ]);
    let full = tables::upsert(
        &client,
        &ns("default"),
        Layer::Silver,
        &table("orders"),
        Some("Clean orders"),
        Some("alice"),
        Some(&descriptions),
    )
    .await
    .unwrap();
    assert_eq!(full.description, "Clean orders");
    assert_eq!(full.owner.as_deref(), Some("alice"));
    assert_eq!(full.column_descriptions, descriptions);
    let fetched = tables::get(&client, &ns("default"), Layer::Silver, &table("orders"))
        .await
        .unwrap();
    assert_eq!(fetched, full);
}

#[tokio::test]
async fn upsert_updates_only_the_given_fields() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let (n, t) = (ns("default"), table("orders"));
    let original = columns(&[("id", "Order id")]);
    let created = tables::upsert(
        &client,
        &n,
        Layer::Silver,
        &t,
        Some("Orders"),
        Some("alice"),
        Some(&original),
    )
    .await
    .unwrap();

    let updated = tables::upsert(&client, &n, Layer::Silver, &t, Some("Clean orders"), None, None)
        .await
        .unwrap();
    assert_eq!(updated.id, created.id, "the same row is updated");
    assert_eq!(updated.description, "Clean orders");
    assert_eq!(updated.owner.as_deref(), Some("alice"));
    assert_eq!(updated.column_descriptions, original);
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at > created.updated_at, "the trigger moves updated_at");

    // Column descriptions are replaced as a whole, not merged.
    let replacement = columns(&[("amount", "Total")]);
    let updated = tables::upsert(&client, &n, Layer::Silver, &t, None, Some("bob"), Some(&replacement))
        .await
        .unwrap();
    assert_eq!(updated.description, "Clean orders");
    assert_eq!(updated.owner.as_deref(), Some("bob"));
    assert_eq!(updated.column_descriptions, replacement);

    // An empty map clears them.
    let updated = tables::upsert(&client, &n, Layer::Silver, &t, None, None, Some(&BTreeMap::new()))
        .await
        .unwrap();
    assert!(updated.column_descriptions.is_empty());
    assert_eq!(updated.owner.as_deref(), Some("bob"));

    // The same name in another layer is another table.
    let gold = tables::upsert(&client, &n, Layer::Gold, &t, None, None, None)
        .await
        .unwrap();
    assert_ne!(gold.id, created.id);
    assert_eq!(gold.description, "");
}

#[tokio::test]
async fn missing_metadata_is_not_found_and_delete_removes_it() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let (n, t) = (ns("default"), table("orders"));
    tables::upsert(&client, &n, Layer::Silver, &t, None, None, None)
        .await
        .unwrap();
    for err in [
        tables::get(&client, &n, Layer::Gold, &t).await.unwrap_err(),
        tables::get(&client, &ns("other"), Layer::Silver, &t).await.unwrap_err(),
        tables::delete(&client, &n, Layer::Bronze, &t).await.unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                DaoError::NotFound {
                    entity: "table metadata"
                }
            ),
            "{err:?}"
        );
    }
    tables::delete(&client, &n, Layer::Silver, &t).await.unwrap();
    assert!(matches!(
        tables::get(&client, &n, Layer::Silver, &t).await.unwrap_err(),
        DaoError::NotFound {
            entity: "table metadata"
        }
    ));
    assert!(matches!(
        tables::delete(&client, &n, Layer::Silver, &t).await.unwrap_err(),
        DaoError::NotFound {
            entity: "table metadata"
        }
    ));
}

#[tokio::test]
async fn schema_checks_are_invalid_input() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    for (sql, constraint) in [
        (
            "INSERT INTO table_metadata (namespace, layer, name) VALUES ('default', 'platinum', 'x')",
            "ck_table_metadata_layer",
        ),
        (
            "INSERT INTO table_metadata (namespace, layer, name, column_descriptions) \
             VALUES ('default', 'gold', 'x', '[]')",
            "ck_table_metadata_column_descriptions_object",
        ),
    ] {
        let err = DaoError::from(client.execute(sql, &[]).await.unwrap_err());
        assert!(
            matches!(&err, DaoError::Invalid { constraint: c } if c == constraint),
            "{sql}: {err:?}"
        );
    }
    let long_owner = "a".repeat(256);
    let err = tables::upsert(
        &client,
        &ns("default"),
        Layer::Gold,
        &table("x"),
        None,
        Some(&long_owner),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "value"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_stored_non_string_description_is_corrupt() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO table_metadata (namespace, layer, name, column_descriptions) \
             VALUES ('default', 'gold', 'x', '{\"a\": 1}')",
            &[],
        )
        .await
        .unwrap();
    let err = tables::get(&client, &ns("default"), Layer::Gold, &table("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DaoError::Corrupt {
                column: "column_descriptions",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn list_is_ordered_by_namespace_layer_name_with_total() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    for (n, layer, t) in [
        ("sales", Layer::Bronze, "b"),
        ("default", Layer::Silver, "a"),
        ("default", Layer::Bronze, "z"),
        ("default", Layer::Bronze, "c"),
        ("analytics", Layer::Gold, "m"),
    ] {
        tables::upsert(&client, &ns(n), layer, &table(t), None, None, None)
            .await
            .unwrap();
    }
    let key = |page: &rat_domain::Page<rat_domain::TableMetadata>| -> Vec<String> {
        page.items
            .iter()
            .map(|m| format!("{}.{}.{}", m.namespace, m.layer, m.name))
            .collect()
    };
    let all = tables::list(&client, None, PageRequest::default()).await.unwrap();
    assert_eq!(
        key(&all),
        [
            "analytics.gold.m",
            "default.bronze.c",
            "default.bronze.z",
            "default.silver.a",
            "sales.bronze.b"
        ]
    );
    assert_eq!(all.total, 5);

    let default = tables::list(
        &client,
        Some(&ns("default")),
        PageRequest::new(Some(2), Some(1)).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(key(&default), ["default.bronze.z", "default.silver.a"]);
    assert_eq!(default.total, 3);

    let none = tables::list(&client, Some(&ns("nowhere")), PageRequest::default())
        .await
        .unwrap();
    assert!(none.items.is_empty());
    assert_eq!(none.total, 0);
}

#[tokio::test]
async fn get_by_id_reads_the_row_or_is_not_found() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let created = tables::upsert(
        &client,
        &ns("default"),
        Layer::Gold,
        &table("revenue"),
        Some("Revenue"),
        Some("alice"),
        Some(&columns(&[("amount", "in cents")])),
    )
    .await
    .unwrap();
    assert_eq!(tables::get_by_id(&client, created.id).await.unwrap(), created);
    let err = tables::get_by_id(&client, uuid::Uuid::new_v4()).await.unwrap_err();
    assert!(
        matches!(
            err,
            DaoError::NotFound {
                entity: "table metadata"
            }
        ),
        "{err:?}"
    );
}

fn names(page: &rat_domain::Page<rat_domain::KnownTable>) -> Vec<String> {
    page.items
        .iter()
        .map(|t| format!("{}.{}.{}", t.namespace.as_str(), t.layer.as_str(), t.name.as_str()))
        .collect()
}

#[tokio::test]
async fn known_tables_join_live_pipelines_and_metadata_filtered_in_sql() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    rat_testkit::fixtures::pipeline(&client, "sales", "silver", "orders").await;
    let gone = rat_testkit::fixtures::pipeline(&client, "sales", "bronze", "gone").await;
    rat_dao::pipelines::soft_delete(&client, &gone.address, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    // Metadata on the pipeline's address (owned by alice), and alice's own table.
    let described = columns(&[("id", "order id")]);
    tables::upsert(
        &client,
        &ns("sales"),
        Layer::Silver,
        &table("orders"),
        Some("Orders"),
        Some("alice"),
        Some(&described),
    )
    .await
    .unwrap();
    tables::upsert(
        &client,
        &ns("sales"),
        Layer::Gold,
        &table("private"),
        None,
        Some("alice"),
        None,
    )
    .await
    .unwrap();

    let all = tables::list_known(&client, &tables::KnownTableFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        names(&all),
        ["sales.gold.private", "sales.silver.orders"],
        "a deleted pipeline's table is gone"
    );
    assert_eq!(all.total, 2);
    let orders = &all.items[1];
    assert_eq!(
        (orders.description.as_str(), orders.owner.as_deref()),
        ("Orders", Some("alice"))
    );
    assert_eq!(orders.column_descriptions, described);

    // bob reads the pipeline (no owner) but not alice's table; alice both.
    let as_user = |user: &str| tables::KnownTableFilter {
        readable_by: Some(vec![user.to_owned()]),
        ..Default::default()
    };
    let bob = tables::list_known(&client, &as_user("bob"), PageRequest::default())
        .await
        .unwrap();
    assert_eq!((names(&bob), bob.total), (vec!["sales.silver.orders".to_owned()], 1));
    let alice = tables::list_known(&client, &as_user("alice"), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(alice.total, 2);
    let gold = tables::KnownTableFilter {
        layer: Some(Layer::Gold),
        ..as_user("alice")
    };
    assert_eq!(
        names(
            &tables::list_known(&client, &gold, PageRequest::default())
                .await
                .unwrap()
        ),
        ["sales.gold.private"]
    );
    // A page of one still counts the whole readable set.
    let page = tables::list_known(&client, &as_user("alice"), PageRequest::new(Some(1), Some(1)).unwrap())
        .await
        .unwrap();
    assert_eq!((names(&page), page.total), (vec!["sales.silver.orders".to_owned()], 2));

    let private = tables::get_known(
        &client,
        &ns("sales"),
        Layer::Gold,
        &table("private"),
        &Some(vec!["bob".into()]),
    )
    .await;
    assert!(matches!(private, Err(DaoError::NotFound { .. })), "{private:?}");
    let private = tables::get_known(&client, &ns("sales"), Layer::Gold, &table("private"), &None)
        .await
        .unwrap();
    assert_eq!(private.owner.as_deref(), Some("alice"));
}
