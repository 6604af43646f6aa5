//! `/api/v1/pipelines` (contract §4).

use crate::common::TestApp;
use serde_json::json;

#[tokio::test]
async fn create_returns_the_contract_shape_and_writes_starter_files() {
    let app = TestApp::new().await;
    let created = app
        .post(
            "/api/v1/pipelines",
            json!({"namespace": "default", "layer": "silver", "name": "orders", "description": "Clean orders"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json["id"].as_str().expect("the id to share it by").to_owned();
    assert_eq!(
        created.json,
        json!({
            "id": id,
            "namespace": "default", "layer": "silver", "name": "orders",
            "s3_path": "default/pipelines/silver/orders/",
            "files_created": ["pipeline.sql", "config.yaml"]
        })
    );
    let python = app
        .post(
            "/api/v1/pipelines",
            json!({"namespace": "default", "layer": "gold", "name": "model", "type": "python"}),
        )
        .await;
    assert_eq!(python.json["files_created"], json!(["pipeline.py", "config.yaml"]));

    let got = app.get("/api/v1/pipelines/default/silver/orders").await;
    assert_eq!(got.status, 200);
    let p = &got.json;
    for field in [
        "id",
        "namespace",
        "layer",
        "name",
        "type",
        "s3_path",
        "description",
        "owner",
        "published_at",
        "published_versions",
        "draft_dirty",
        "max_versions",
        "retention_config",
        "created_at",
        "updated_at",
    ] {
        assert!(p.get(field).is_some(), "missing {field}: {p}");
    }
    assert_eq!(p["type"], "sql");
    assert_eq!(p["description"], "Clean orders");
    assert_eq!(p["owner"], "community", "owner recorded from the identity");
    assert_eq!(p["published_at"], json!(null));
    assert_eq!(p["published_versions"], json!({}));
    assert_eq!(p["draft_dirty"], false);
    assert_eq!(p["max_versions"], 50);
}

#[tokio::test]
async fn create_errors() {
    let app = TestApp::new().await;
    let base = json!({"namespace": "default", "layer": "silver", "name": "orders"});
    let mut bad_type = base.clone();
    bad_type["type"] = json!("rust");
    app.post("/api/v1/pipelines", bad_type)
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    let mut bad_layer = base.clone();
    bad_layer["layer"] = json!("platinum");
    app.post("/api/v1/pipelines", bad_layer)
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    let mut bad_name = base.clone();
    bad_name["name"] = json!("Orders");
    app.post("/api/v1/pipelines", bad_name)
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    let mut ghost_ns = base.clone();
    ghost_ns["namespace"] = json!("ghost");
    app.post("/api/v1/pipelines", ghost_ns)
        .await
        .assert_error(404, "NOT_FOUND");
    let mut unknown_field = base.clone();
    unknown_field["color"] = json!("red");
    app.post("/api/v1/pipelines", unknown_field)
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    assert_eq!(app.post("/api/v1/pipelines", base.clone()).await.status, 201);
    app.post("/api/v1/pipelines", base)
        .await
        .assert_error(409, "ALREADY_EXISTS");
}

/// RAT's SDK may send `source` and `unique_key` (its `CreatePipelineRequest`):
/// accepted, and ignored as ratd ignores them.
#[tokio::test]
async fn create_accepts_the_sdk_fields() {
    let app = TestApp::new().await;
    let created = app
        .post(
            "/api/v1/pipelines",
            json!({"namespace": "default", "layer": "bronze", "name": "events", "source": "s3://raw/events",
                   "unique_key": "event_id"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["files_created"], json!(["pipeline.sql", "config.yaml"]));
}

#[tokio::test]
async fn update_keeps_absent_and_null_fields() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let path = "/api/v1/pipelines/default/silver/orders";
    let updated = app.put(path, json!({"description": "New", "max_versions": 5})).await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.json["description"], "New");
    assert_eq!(updated.json["max_versions"], 5);
    let updated = app
        .put(path, json!({"description": null, "type": "python", "owner": "alice"}))
        .await;
    assert_eq!(updated.json["description"], "New");
    assert_eq!(updated.json["type"], "python");
    assert_eq!(updated.json["owner"], "alice");
    assert_eq!(updated.json["max_versions"], 5);
    // The portal's settings form sends `owner: ""` for "no owner": no change.
    let updated = app.put(path, json!({"description": "Newer", "owner": ""})).await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.json["description"], "Newer");
    assert_eq!(updated.json["owner"], "alice");
    app.put(path, json!({"owner": " "}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.put(path, json!({"max_versions": 0}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.put(path, json!({"type": "rust"}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.put("/api/v1/pipelines/default/silver/ghost", json!({}))
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn delete_is_soft_and_frees_the_name() {
    let app = TestApp::new().await;
    let first = app.pipeline("default", "silver", "orders").await;
    let _ = first;
    let path = "/api/v1/pipelines/default/silver/orders";
    let before = app.get(path).await.json["id"].clone();
    assert_eq!(app.delete(path).await.status, 204);
    app.get(path).await.assert_error(404, "NOT_FOUND");
    app.delete(path).await.assert_error(404, "NOT_FOUND");
    app.pipeline("default", "silver", "orders").await;
    let after = app.get(path).await.json["id"].clone();
    assert_ne!(before, after);
    let client = app.db.client().await;
    let deleted: i64 = client
        .query_one(
            "SELECT count(*) FROM pipelines WHERE name = 'orders' AND deleted_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(deleted, 1, "the old row waits for the reaper");
}

#[tokio::test]
async fn list_filters_searches_sorts_and_pages_in_sql() {
    let app = TestApp::new().await;
    app.namespace("shop").await;
    for (ns, layer, name) in [
        ("default", "bronze", "raw_orders"),
        ("default", "silver", "clean_orders"),
        ("default", "gold", "revenue"),
        ("shop", "silver", "customers"),
    ] {
        app.pipeline(ns, layer, name).await;
    }
    let names = |answer: &crate::common::Answer| -> Vec<String> {
        answer.json["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = app.get("/api/v1/pipelines").await;
    assert_eq!(all.json["total"], 4);
    assert_eq!(names(&all)[0], "customers", "default sort is -created_at");
    let filtered = app.get("/api/v1/pipelines?namespace=default&sort=name").await;
    assert_eq!(names(&filtered), ["clean_orders", "raw_orders", "revenue"]);
    let layered = app.get("/api/v1/pipelines?layer=silver&sort=-name").await;
    assert_eq!(names(&layered), ["customers", "clean_orders"]);
    let searched = app.get("/api/v1/pipelines?search=ORDERS&sort=name").await;
    assert_eq!(names(&searched), ["clean_orders", "raw_orders"]);
    let paged = app.get("/api/v1/pipelines?sort=name&limit=2&offset=1").await;
    assert_eq!(names(&paged), ["customers", "raw_orders"]);
    assert_eq!(paged.json["total"], 4, "total counts the filtered set");
    let clamped = app.get("/api/v1/pipelines?limit=5000").await;
    assert_eq!(clamped.status, 200, "limits above 200 are clamped");
    for bad in [
        "limit=abc",
        "limit=0",
        "limit=-1",
        "offset=-5",
        "offset=x",
        "sort=owner",
        "sort=--name",
        "layer=platinum",
        "namespace=Bad",
    ] {
        app.get(&format!("/api/v1/pipelines?{bad}"))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
}

#[tokio::test]
async fn bad_path_segments_are_400_before_any_database_call() {
    let app = TestApp::new().await;
    app.get("/api/v1/pipelines/default/platinum/x")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.get("/api/v1/pipelines/Default/gold/x")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.get("/api/v1/pipelines/default/gold/X")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.get(&format!("/api/v1/pipelines/default/gold/{}", "a".repeat(129)))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
}
