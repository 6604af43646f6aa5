//! What an outside probe found left behind or let through, closed: a deleted
//! namespace's objects read by whoever takes the name next, landing uploads
//! replacing each other, owners changed without the transfer's check, crons
//! that can never fire, and deleted pipelines whose runs were still handed
//! out.

use crate::common::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

async fn upload(app: &TestApp, path: &str, filename: &str, body: &[u8]) -> Value {
    let answer = app.upload_part(path, filename, body).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json
}

#[tokio::test]
async fn a_deleted_namespace_leaves_nothing_for_whoever_takes_its_name() {
    let app = TestApp::new().await;
    app.pipeline("shop", "silver", "orders").await;
    let file = "/api/v1/files/shop/pipelines/silver/orders/pipeline.sql";
    assert_eq!(app.put(file, json!({"content": "SELECT 'secret'"})).await.status, 200);
    assert_eq!(
        app.post("/api/v1/landing-zones", json!({"namespace": "shop", "name": "z"}))
            .await
            .status,
        201
    );
    upload(&app, "/api/v1/landing-zones/shop/z/files", "orders.csv", b"secret").await;
    upload(&app, "/api/v1/landing-zones/shop/z/samples", "sample.csv", b"secret").await;
    let metadata = "/api/v1/tables/shop/gold/sales/metadata";
    assert_eq!(app.put(metadata, json!({"description": "secret"})).await.status, 200);
    assert!(!app.keys_under("shop/").await.is_empty());

    assert_eq!(app.delete("/api/v1/namespaces/shop").await.status, 204);
    assert!(
        app.keys_under("shop/").await.is_empty(),
        "every object is delete-marked"
    );
    app.namespace("shop").await;
    app.get(file).await.assert_error(404, "NOT_FOUND");
    let listed = app.get("/api/v1/files?prefix=shop/").await;
    assert_eq!(listed.json["files"], json!([]), "{}", listed.text);
    app.get(metadata).await.assert_error(404, "NOT_FOUND");

    // Objects left by a namespace deleted before deletes removed them (or
    // written behind the api's back) are removed when the name is taken.
    let left = rat_versioning::ObjectKey::parse("old/pipelines/silver/x/pipeline.sql").unwrap();
    app.services
        .store
        .put(&left, b"left".to_vec(), "application/sql")
        .await
        .unwrap();
    app.namespace("old").await;
    assert!(app.keys_under("old/").await.is_empty());
}

#[tokio::test]
async fn two_uploads_of_one_name_at_once_keep_their_own_content() {
    let app = TestApp::new().await;
    assert_eq!(
        app.post("/api/v1/landing-zones", json!({"namespace": "default", "name": "z"}))
            .await
            .status,
        201
    );
    let files = "/api/v1/landing-zones/default/z/files";
    let (first, second) = tokio::join!(
        upload(&app, files, "orders.csv", b"first"),
        upload(&app, files, "orders.csv", b"second")
    );
    assert_ne!(first["s3_path"], second["s3_path"], "one key per upload");
    for (row, content) in [(&first, &b"first"[..]), (&second, &b"second"[..])] {
        let key = rat_versioning::ObjectKey::parse(row["s3_path"].as_str().unwrap()).unwrap();
        let version = rat_versioning::VersionId::new(row["s3_version_id"].as_str().unwrap()).unwrap();
        let object = app.services.store.get(&key, Some(&version)).await.unwrap();
        assert_eq!(object.body, content);
        assert_eq!(row["size_bytes"], content.len());
    }
    // Deleting one leaves the other whole.
    let id = first["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("{files}/{id}")).await.status, 204);
    let key = rat_versioning::ObjectKey::parse(second["s3_path"].as_str().unwrap()).unwrap();
    assert_eq!(app.services.store.get(&key, None).await.unwrap().body, b"second");
}

#[tokio::test]
async fn an_owner_is_changed_by_put_on_every_route_that_has_one() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let pipeline = "/api/v1/pipelines/default/silver/orders";
    let metadata = "/api/v1/tables/default/silver/orders/metadata";
    assert_eq!(app.put(metadata, json!({"description": "d"})).await.status, 200);
    assert_eq!(
        app.post("/api/v1/landing-zones", json!({"namespace": "default", "name": "z"}))
            .await
            .status,
        201
    );
    let zone = "/api/v1/landing-zones/default/z";
    // The caller (community, an admin) may hand them over and take them
    // back; that only an owner may do so is tested with signed-in users
    // (access.rs).
    for path in [pipeline, metadata, zone] {
        let handed = app.put(path, json!({"owner": "bob"})).await;
        assert_eq!(handed.status, 200, "{path}: {}", handed.text);
        assert_eq!(handed.json["owner"], "bob");
        let back = app.put(path, json!({"owner": "community"})).await;
        assert_eq!(back.status, 200, "{path}: {}", back.text);
        assert_eq!(back.json["owner"], "community");
        assert_eq!(app.put(path, json!({"description": "x"})).await.status, 200);
    }
    assert_eq!(app.get(pipeline).await.json["owner"], "community");
}

#[tokio::test]
async fn a_cron_that_can_never_fire_is_refused() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let body = |cron: &str| json!({"namespace": "default", "layer": "silver", "pipeline": "orders", "cron": cron});
    let message = app
        .post("/api/v1/schedules", body("0 0 30 2 *"))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    assert!(message.contains("never fire"), "{message}");
    let created = app.post("/api/v1/schedules", body("0 0 29 2 *")).await;
    assert_eq!(created.status, 201, "leap days do come: {}", created.text);
    let id = created.json["id"].as_str().unwrap();
    app.put(&format!("/api/v1/schedules/{id}"), json!({"cron": "0 0 31 4 *"}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.post(
        "/api/v1/pipelines/default/silver/orders/triggers",
        json!({"type": "cron", "config": {"cron_expr": "0 0 30 2 *"}}),
    )
    .await
    .assert_error(400, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn a_deleted_pipeline_stops_running_and_firing() {
    let app = TestApp::builder().internal_listener(None).start().await;
    app.pipeline("default", "silver", "orders").await;
    let pipeline = "/api/v1/pipelines/default/silver/orders";
    assert_eq!(app.post(&format!("{pipeline}/publish"), json!({})).await.status, 200);
    let run_body = json!({"namespace": "default", "layer": "silver", "pipeline": "orders"});
    let running = app.post("/api/v1/runs", run_body.clone()).await.json["run_id"].clone();
    let claimed = app
        .internal_post("/internal/v1/runs/claim", json!({"runner_id": "r1"}))
        .await;
    assert_eq!(claimed.json["runs"][0]["run_id"], running);
    let pending = app.post("/api/v1/runs", run_body).await.json["run_id"].clone();
    let schedule = app
        .post(
            "/api/v1/schedules",
            json!({"namespace": "default", "layer": "silver", "pipeline": "orders", "cron": "* * * * *"}),
        )
        .await;
    let schedule_id = schedule.json["id"].as_str().unwrap().to_owned();
    let trigger = app
        .post(&format!("{pipeline}/triggers"), json!({"type": "webhook"}))
        .await;
    let token = trigger.json["webhook_token"].as_str().unwrap().to_owned();

    assert_eq!(app.delete(pipeline).await.status, 204);

    for id in [&running, &pending] {
        let run = app.get(&format!("/api/v1/runs/{}", id.as_str().unwrap())).await;
        assert_eq!(run.json["status"], "cancelled", "{}", run.text);
    }
    let claimed = app
        .internal_post("/internal/v1/runs/claim", json!({"runner_id": "r2"}))
        .await;
    assert_eq!(claimed.json["runs"], json!([]), "nothing of it is handed out");
    let heartbeat = app
        .internal_post(
            &format!("/internal/v1/runs/{}/heartbeat", running.as_str().unwrap()),
            json!({"runner_id": "r1"}),
        )
        .await;
    assert!(
        heartbeat.text.contains("cancel"),
        "the runner holding it learns to stop: {}",
        heartbeat.text
    );
    let client = app.db.client().await;
    let id: uuid::Uuid = schedule_id.parse().unwrap();
    let schedule = rat_testkit::dao::schedules::get(&client, id.into()).await.unwrap();
    assert!(!schedule.enabled && schedule.next_run_at.is_none(), "{schedule:?}");
    let fired = app.request(Method::POST, "/api/v1/webhooks", None).await;
    assert_eq!(fired.status, 401, "{}", fired.text);
    let fired = app
        .http
        .post(format!("{}/api/v1/webhooks", app.base))
        .header("x-webhook-token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(fired.status(), 404, "its webhook no longer fires");
}

#[tokio::test]
async fn the_files_api_writes_only_inside_existing_pipelines() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    assert_eq!(
        app.post("/api/v1/landing-zones", json!({"namespace": "default", "name": "z"}))
            .await
            .status,
        201
    );
    let sample = upload(&app, "/api/v1/landing-zones/default/z/samples", "s.csv", b"kept").await;
    let sample_key = sample["path"].as_str().unwrap().to_owned();
    for key in [
        sample_key.as_str(),
        "default/landing/z/new.csv",
        "default/notes.md",
        "elsewhere/anything.txt",
    ] {
        let url = format!("/api/v1/files/{key}");
        let message = app
            .put(&url, json!({"content": "x"}))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
        assert!(message.contains("pipeline"), "{key}: {message}");
        app.delete(&url).await.assert_error(400, "INVALID_ARGUMENT");
        app.upload_file(key, b"x").await.assert_error(400, "INVALID_ARGUMENT");
    }
    let key = rat_versioning::ObjectKey::parse(&sample_key).unwrap();
    assert_eq!(app.services.store.get(&key, None).await.unwrap().body, b"kept");
    // Inside the directory of a pipeline that does not exist: 404.
    app.put(
        "/api/v1/files/default/pipelines/silver/ghost/pipeline.sql",
        json!({"content": "x"}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    // Reading stays open (the portal shows processed landing files).
    assert_eq!(app.get(&format!("/api/v1/files/{sample_key}")).await.status, 200);
}
