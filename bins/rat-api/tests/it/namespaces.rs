//! `/api/v1/namespaces` (contract §3).

use crate::common::TestApp;
use serde_json::json;

#[tokio::test]
async fn create_list_update_delete() {
    let app = TestApp::new().await;
    let created = app
        .post(
            "/api/v1/namespaces",
            json!({"name": "sales", "description": "Sales data"}),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.json["id"].as_str().expect("the id to share it by").to_owned();
    assert_eq!(created.json, json!({"id": id, "name": "sales"}));

    let list = app.get("/api/v1/namespaces").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json["total"], 2);
    let names: Vec<&str> = list.json["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "sales"], "ordered by created_at");
    let sales = &list.json["namespaces"][1];
    assert_eq!(sales["description"], "Sales data");
    assert_eq!(sales["created_by"], "community");
    assert_eq!(sales["id"], id.as_str());
    assert!(
        sales["created_at"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 UTC: {}",
        sales["created_at"]
    );

    let updated = app
        .put("/api/v1/namespaces/sales", json!({"description": "Orders"}))
        .await;
    assert_eq!(updated.status, 204, "{}", updated.text);
    assert_eq!(
        app.get("/api/v1/namespaces").await.json["namespaces"][1]["description"],
        "Orders"
    );

    assert_eq!(app.delete("/api/v1/namespaces/sales").await.status, 204);
    assert_eq!(app.get("/api/v1/namespaces").await.json["total"], 1);
}

#[tokio::test]
async fn errors_of_the_contract() {
    let app = TestApp::new().await;
    for bad in ["Sales", "9x", "a b", "", &"a".repeat(64)] {
        app.post("/api/v1/namespaces", json!({"name": bad}))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
    app.post("/api/v1/namespaces", json!({}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.namespace("sales").await;
    app.post("/api/v1/namespaces", json!({"name": "sales"}))
        .await
        .assert_error(409, "ALREADY_EXISTS");
    // ratd answers 204 for an unknown namespace; we answer 404.
    app.put("/api/v1/namespaces/ghost", json!({"description": "x"}))
        .await
        .assert_error(404, "NOT_FOUND");
    app.delete("/api/v1/namespaces/ghost")
        .await
        .assert_error(404, "NOT_FOUND");
    app.delete("/api/v1/namespaces/Bad%20Name")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    let message = app
        .delete("/api/v1/namespaces/default")
        .await
        .assert_error(403, "FORBIDDEN");
    assert!(message.contains("default"));
}

#[tokio::test]
async fn concurrent_creates_of_one_name_give_one_201_and_409s() {
    let app = TestApp::new().await;
    let attempts = (0..8).map(|_| app.post("/api/v1/namespaces", json!({"name": "race"})));
    let answers = futures_util::future::join_all(attempts).await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(created, 1, "{answers:#?}");
    for answer in answers.iter().filter(|a| a.status != 201) {
        answer.assert_error(409, "ALREADY_EXISTS");
    }
}

#[tokio::test]
async fn deleting_a_namespace_cascades_through_every_child() {
    let app = TestApp::new().await;
    app.namespace("doomed").await;
    app.pipeline("doomed", "silver", "orders").await;
    app.pipeline("doomed", "gold", "revenue").await;
    app.pipeline("default", "gold", "kept").await;
    assert_eq!(app.get("/api/v1/pipelines?namespace=doomed").await.json["total"], 2);
    assert_eq!(app.delete("/api/v1/namespaces/doomed").await.status, 204);
    assert_eq!(app.get("/api/v1/pipelines?namespace=doomed").await.json["total"], 0);
    app.get("/api/v1/pipelines/doomed/silver/orders")
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(app.get("/api/v1/pipelines/default/gold/kept").await.status, 200);
    let client = app.db.client().await;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM pipelines WHERE namespace = 'doomed'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "hard-deleted, not soft-deleted");
}
