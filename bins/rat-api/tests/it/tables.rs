//! `/api/v1/tables/{ns}/{layer}/{name}/metadata` (contract §12).

use crate::common::TestApp;
use rat_domain::ObjectType;
use serde_json::json;

const ORDERS: &str = "/api/v1/tables/default/silver/orders/metadata";

#[tokio::test]
async fn put_creates_the_row_owned_by_the_caller_and_get_reads_it_back() {
    let app = TestApp::new().await;
    app.get(ORDERS).await.assert_error(404, "NOT_FOUND");
    let created = app
        .put(
            ORDERS,
            json!({"description": "Clean orders", "column_descriptions": {"id": "order id", "amount": "in cents"}}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let t = &created.json;
    let mut fields: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "column_descriptions",
            "created_at",
            "description",
            "id",
            "layer",
            "name",
            "namespace",
            "owner",
            "updated_at"
        ]
    );
    assert_eq!(
        (t["namespace"].as_str(), t["layer"].as_str(), t["name"].as_str()),
        (Some("default"), Some("silver"), Some("orders"))
    );
    assert_eq!(t["description"], "Clean orders");
    assert_eq!(t["owner"], "community", "the owner defaults to the caller on creation");
    assert_eq!(
        t["column_descriptions"],
        json!({"amount": "in cents", "id": "order id"})
    );

    let read = app.get(ORDERS).await;
    assert_eq!(read.status, 200);
    assert_eq!(&read.json, t);

    let id: uuid::Uuid = t["id"].as_str().unwrap().parse().unwrap();
    let client = app.db.client().await;
    let ownership = rat_testkit::dao::access::get_owner(&client, ObjectType::Table, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ownership.owner, "community",
        "an ownership row makes the table transferable"
    );
    let audit = app.audit_rows().await;
    assert_eq!(audit[0].action, "table.metadata");
    assert_eq!(audit[0].object_id, Some(id));
}

#[tokio::test]
async fn put_keeps_absent_fields_and_replaces_the_column_map() {
    let app = TestApp::new().await;
    app.put(
        ORDERS,
        json!({"description": "Orders", "column_descriptions": {"id": "order id"}}),
    )
    .await;
    let updated = app
        .put(
            ORDERS,
            json!({"owner": "alice", "column_descriptions": {"amount": "in cents"}}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.json["description"], "Orders", "absent keeps");
    assert_eq!(updated.json["owner"], "alice");
    assert_eq!(
        updated.json["column_descriptions"],
        json!({"amount": "in cents"}),
        "the map is replaced"
    );
    let kept = app.put(ORDERS, json!({"description": null})).await;
    assert_eq!(kept.json["description"], "Orders", "null keeps");
    assert_eq!(
        kept.json["owner"], "alice",
        "the caller does not take over an existing table"
    );
    // Empty body (ratd's clients may send none): nothing changes.
    let response = app.http.put(format!("{}{ORDERS}", app.base)).send().await.unwrap();
    let empty = TestApp::answer(response).await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.json["column_descriptions"], json!({"amount": "in cents"}));
    // Other layers and names are other tables.
    app.get("/api/v1/tables/default/gold/orders/metadata")
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn bad_paths_and_bodies_are_400() {
    let app = TestApp::new().await;
    for path in [
        "/api/v1/tables/default/platinum/orders/metadata",
        "/api/v1/tables/Default/silver/orders/metadata",
        "/api/v1/tables/default/silver/Orders/metadata",
    ] {
        app.get(path).await.assert_error(400, "INVALID_ARGUMENT");
        app.put(path, json!({})).await.assert_error(400, "INVALID_ARGUMENT");
    }
    for body in [
        json!({"column_descriptions": {"id": 1}}),
        json!({"column_descriptions": ["id"]}),
        json!({"column_descriptions": {"": "nameless"}}),
        json!({"owner": " "}),
        json!({"owner": "a".repeat(256)}),
        json!({"description": 5}),
        json!({"tags": ["x"]}),
    ] {
        app.put(ORDERS, body.clone())
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
    app.get(ORDERS).await.assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn metadata_routes_require_the_api_key_when_one_is_set() {
    let app = TestApp::builder().api_key("secret").start().await;
    for method in [reqwest::Method::GET, reqwest::Method::PUT] {
        let response = app
            .http
            .request(method, format!("{}{ORDERS}", app.base))
            .send()
            .await
            .unwrap();
        TestApp::answer(response).await.assert_error(401, "UNAUTHENTICATED");
    }
    let created = app.put(ORDERS, json!({})).await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.json["owner"], "api-key");
}

#[tokio::test]
async fn tables_list_pipeline_outputs_and_metadata_in_the_sdk_shapes() {
    let app = TestApp::new().await;
    assert_eq!(app.get("/api/v1/tables").await.json, json!({"tables": [], "total": 0}));
    app.pipeline("default", "silver", "orders").await;
    app.pipeline("default", "bronze", "raw").await;
    // Metadata of the pipeline's table, and of a table outside RAT.
    app.put(
        ORDERS,
        json!({"description": "Clean orders", "owner": "alice", "column_descriptions": {"id": "order id"}}),
    )
    .await;
    app.put(
        "/api/v1/tables/default/gold/external/metadata",
        json!({"description": "Outside"}),
    )
    .await;

    let list = app.get("/api/v1/tables").await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.json["total"], 3);
    let tables = list.json["tables"].as_array().unwrap();
    let addresses: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "{}.{}.{}",
                t["namespace"].as_str().unwrap(),
                t["layer"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        addresses,
        ["default.bronze.raw", "default.gold.external", "default.silver.orders"]
    );
    assert_eq!(
        tables[2],
        json!({"namespace": "default", "layer": "silver", "name": "orders", "row_count": 0, "size_bytes": 0, "description": "Clean orders"})
    );

    let filtered = app.get("/api/v1/tables?namespace=default&layer=silver").await.json;
    assert_eq!(filtered["total"], 1);
    let page = app.get("/api/v1/tables?limit=1&offset=1").await.json;
    assert_eq!(page["total"], 3);
    assert_eq!(page["tables"][0]["name"], "external");
    app.get("/api/v1/tables?layer=platinum")
        .await
        .assert_error(400, "INVALID_ARGUMENT");

    let detail = app.get("/api/v1/tables/default/silver/orders").await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    assert_eq!(
        detail.json,
        json!({"namespace": "default", "layer": "silver", "name": "orders", "row_count": 0, "size_bytes": 0,
               "description": "Clean orders", "owner": "alice",
               "columns": [{"name": "id", "type": "unknown", "description": "order id"}]})
    );
    let raw = app.get("/api/v1/tables/default/bronze/raw").await;
    assert_eq!(raw.json["columns"], json!([]));
    app.get("/api/v1/tables/default/bronze/missing")
        .await
        .assert_error(404, "NOT_FOUND");

    // A deleted pipeline's table is gone with it.
    assert_eq!(app.delete("/api/v1/pipelines/default/bronze/raw").await.status, 204);
    app.get("/api/v1/tables/default/bronze/raw")
        .await
        .assert_error(404, "NOT_FOUND");

    let schema = app.get("/api/v1/schema?layer=silver").await;
    assert_eq!(schema.status, 200, "{}", schema.text);
    assert_eq!(
        schema.json,
        json!({"tables": [{"namespace": "default", "layer": "silver", "name": "orders",
               "columns": [{"name": "id", "type": "unknown", "description": "order id"}]}]})
    );
}
