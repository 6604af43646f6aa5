//! Publish, version history and rollback (contract §6): the wire shapes,
//! concurrent publishes, the errors (404, 400, 409, 503 when the store is
//! down), rollback's honest `draft_dirty`, and the feature flag.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{Answer, OwnMotoApp, TestApp};
use rat_domain::FeatureFlags;
use serde_json::{Value, json};

const PIPELINE: &str = "/api/v1/pipelines/default/silver/orders";
const ORDERS: &str = "default/pipelines/silver/orders";

async fn publish(app: &TestApp, body: Value) -> Answer {
    app.post(&format!("{PIPELINE}/publish"), body).await
}

async fn write(app: &TestApp, relative: &str, content: &str) -> String {
    let answer = app
        .put(
            &format!("/api/v1/files/{ORDERS}/{relative}"),
            json!({ "content": content }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["version_id"].as_str().unwrap().to_owned()
}

/// Keys of every file at HEAD under the pipeline.
async fn head_keys(app: &TestApp) -> BTreeSet<String> {
    let listed = app.get(&format!("/api/v1/files?prefix={ORDERS}/")).await;
    listed.json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["path"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn publish_pins_the_head_version_of_every_file() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let sql_version = write(&app, "pipeline.sql", "SELECT 1").await;
    let test_version = write(&app, "tests/quality/not_null.sql", "select 0").await;

    // No body at all: the message is empty.
    let response = app
        .http
        .post(format!("{}{PIPELINE}/publish", app.base))
        .send()
        .await
        .unwrap();
    let first = TestApp::answer(response).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let pinned = first.json["versions"].as_object().unwrap().clone();
    assert_eq!(
        pinned.keys().cloned().collect::<BTreeSet<_>>(),
        head_keys(&app).await,
        "every file at HEAD is pinned"
    );
    assert_eq!(pinned.len(), 3, "pipeline.sql, config.yaml and the test");
    assert_eq!(pinned[&format!("{ORDERS}/pipeline.sql")], sql_version);
    assert_eq!(pinned[&format!("{ORDERS}/tests/quality/not_null.sql")], test_version);
    assert_eq!(
        first.json,
        json!({"status": "published", "version": 1, "message": "", "versions": pinned})
    );

    write(&app, "pipeline.sql", "SELECT 2").await;
    let second = publish(&app, json!({"message": "second"})).await;
    assert_eq!(second.json["version"], 2);
    assert_eq!(second.json["message"], "second");
    assert_ne!(second.json["versions"][format!("{ORDERS}/pipeline.sql")], sql_version);

    let pipeline = app.get(PIPELINE).await.json;
    assert_eq!(pipeline["published_versions"], second.json["versions"]);
    assert_eq!(pipeline["draft_dirty"], false);
    assert!(pipeline["published_at"].is_string());

    let audit = app.audit_rows().await;
    assert_eq!(audit[0].action, "pipeline.publish");
    assert_eq!(audit[0].object_type.as_deref(), Some("pipeline"));
    assert_eq!(
        audit[0].object_id.map(|id| id.to_string()).as_deref(),
        pipeline["id"].as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishes_get_versions_one_to_five() {
    let app = Arc::new(TestApp::new().await);
    app.pipeline("default", "silver", "orders").await;
    let publishes: Vec<_> = (0..5)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move { publish(&app, json!({"message": format!("p{i}")})).await })
        })
        .collect();
    let mut numbers = Vec::new();
    for publish in publishes {
        let answer = publish.await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text);
        numbers.push(answer.json["version"].as_i64().unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    let history = app.get(&format!("{PIPELINE}/versions")).await;
    assert_eq!(history.json["total"], 5);
}

#[tokio::test]
async fn publish_errors() {
    let app = TestApp::new().await;
    publish(&app, json!({})).await.assert_error(404, "NOT_FOUND");
    app.post("/api/v1/pipelines/default/platinum/orders/publish", json!({}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.pipeline("default", "silver", "orders").await;
    publish(&app, json!({"message": 5}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    publish(&app, json!({"note": "x"}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");

    // Nothing to pin: 409 with the envelope (ratd answers 422 with a bare string).
    for file in ["pipeline.sql", "config.yaml"] {
        assert_eq!(app.delete(&format!("/api/v1/files/{ORDERS}/{file}")).await.status, 204);
    }
    let message = publish(&app, json!({})).await.assert_error(409, "FAILED_PRECONDITION");
    assert!(message.contains("no files"), "{message}");
    assert_eq!(app.get(&format!("{PIPELINE}/versions")).await.json["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_the_store_down_is_503_and_records_nothing() {
    // A dead server must fail the call quickly.
    let app = OwnMotoApp::start(Duration::from_secs(2), None).await;
    let created = app
        .post(
            "/api/v1/pipelines",
            json!({"namespace": "default", "layer": "silver", "name": "orders"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    app.moto.kill();
    let answer = app.post(&format!("{PIPELINE}/publish"), json!({})).await;
    let message = answer.assert_error(503, "UNAVAILABLE");
    assert!(message.contains("unavailable"), "{message}");
    let client = app.db.client().await;
    let versions: i64 = client
        .query_one("SELECT count(*) FROM pipeline_versions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, 0, "a failed publish records nothing");
    let published: bool = client
        .query_one("SELECT published_at IS NOT NULL FROM pipelines", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!published);
}

#[tokio::test]
async fn history_is_newest_first_paged_and_pruned() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    for i in 1..=3 {
        write(&app, "pipeline.sql", &format!("SELECT {i}")).await;
        assert_eq!(publish(&app, json!({"message": format!("v{i}")})).await.status, 200);
    }
    let history = app.get(&format!("{PIPELINE}/versions")).await;
    assert_eq!(history.status, 200, "{}", history.text);
    assert_eq!(history.json["total"], 3);
    let versions = history.json["versions"].as_array().unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| v["version_number"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [3, 2, 1]
    );
    let newest = &versions[0];
    let keys: Vec<&String> = newest.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "created_at",
            "id",
            "message",
            "pipeline_id",
            "published_versions",
            "version_number"
        ]
    );
    assert_eq!(newest["message"], "v3");
    assert_eq!(newest["pipeline_id"], app.get(PIPELINE).await.json["id"]);
    assert_eq!(
        newest["published_versions"],
        app.get(PIPELINE).await.json["published_versions"]
    );

    let page = app.get(&format!("{PIPELINE}/versions?limit=1&offset=1")).await;
    assert_eq!(page.json["versions"][0]["version_number"], 2);
    assert_eq!(page.json["total"], 3);

    let one = app.get(&format!("{PIPELINE}/versions/2")).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.json, versions[1]);

    // Lowering max_versions prunes at the next publish: v1 and v2 are gone.
    app.put(PIPELINE, json!({"max_versions": 2})).await;
    publish(&app, json!({})).await;
    app.get(&format!("{PIPELINE}/versions/1"))
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(app.get(&format!("{PIPELINE}/versions")).await.json["total"], 2);
}

#[tokio::test]
async fn history_errors() {
    let app = TestApp::new().await;
    app.get(&format!("{PIPELINE}/versions"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.get(&format!("{PIPELINE}/versions/1"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.pipeline("default", "silver", "orders").await;
    let empty = app.get(&format!("{PIPELINE}/versions")).await;
    assert_eq!(empty.json, json!({"versions": [], "total": 0}));
    for bad in ["0", "-1", "abc", "1.5", "99999999999999999999", "4294967296"] {
        app.get(&format!("{PIPELINE}/versions/{bad}"))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
    app.get(&format!("{PIPELINE}/versions/7"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.get(&format!("{PIPELINE}/versions?limit=x"))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.get("/api/v1/pipelines/default/silver/Orders/versions")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn rollback_repins_the_target_as_a_new_version() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    write(&app, "pipeline.sql", "SELECT 1").await;
    let v1 = publish(&app, json!({"message": "one"})).await.json;
    write(&app, "pipeline.sql", "SELECT 2").await;
    publish(&app, json!({"message": "two"})).await;

    let rolled = app.post(&format!("{PIPELINE}/rollback"), json!({"version": 1})).await;
    assert_eq!(rolled.status, 200, "{}", rolled.text);
    assert_eq!(
        rolled.json,
        json!({"status": "rolled_back", "from_version": 1, "new_version": 3, "message": "Rollback to v1"})
    );
    let v3 = app.get(&format!("{PIPELINE}/versions/3")).await.json;
    assert_eq!(v3["published_versions"], v1["versions"], "v1's map, re-pinned");
    let pipeline = app.get(PIPELINE).await.json;
    assert_eq!(pipeline["published_versions"], v1["versions"]);
    assert_eq!(
        pipeline["draft_dirty"], true,
        "HEAD (SELECT 2) differs from the re-pinned v1 (ratd clears it)"
    );
    assert_eq!(
        app.get(&format!("/api/v1/files/{ORDERS}/pipeline.sql")).await.json["content"],
        "SELECT 2",
        "no content is copied back to HEAD"
    );

    // Back to v2, whose map equals HEAD: clean, with the caller's message.
    let rolled = app
        .post(
            &format!("{PIPELINE}/rollback"),
            json!({"version": 2, "message": "undo the undo"}),
        )
        .await;
    assert_eq!(rolled.json["new_version"], 4);
    assert_eq!(rolled.json["message"], "undo the undo");
    assert_eq!(app.get(PIPELINE).await.json["draft_dirty"], false);
    assert_eq!(
        app.get(&format!("{PIPELINE}/versions")).await.json["total"],
        4,
        "history is never rewritten"
    );

    let audit = app.audit_rows().await;
    assert_eq!(audit[0].action, "pipeline.rollback");
    assert_eq!(audit[0].object_type.as_deref(), Some("pipeline"));
}

#[tokio::test]
async fn rollback_errors() {
    let app = TestApp::new().await;
    let url = format!("{PIPELINE}/rollback");
    app.post(&url, json!({"version": 1}))
        .await
        .assert_error(404, "NOT_FOUND");
    app.pipeline("default", "silver", "orders").await;
    publish(&app, json!({})).await;
    for body in [
        json!({}),
        json!({"version": "1"}),
        json!({"version": 0}),
        json!({"version": -2}),
        json!({"version": 1, "force": true}),
    ] {
        app.post(&url, body).await.assert_error(400, "INVALID_ARGUMENT");
    }
    app.post(&url, json!({"version": 9}))
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(app.get(&format!("{PIPELINE}/versions")).await.json["total"], 1);
}

#[tokio::test]
async fn the_routes_are_gone_while_the_feature_is_off() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    assert_eq!(publish(&app, json!({})).await.status, 200);
    let client = app.db.client().await;
    let off = FeatureFlags {
        pipeline_versions: false,
        ..FeatureFlags::default()
    };
    rat_testkit::dao::settings::put_feature_flags(&client, &off)
        .await
        .unwrap();
    let message = publish(&app, json!({})).await.assert_error(404, "NOT_FOUND");
    assert!(message.contains("pipeline_versions"), "{message}");
    app.get(&format!("{PIPELINE}/versions"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.get(&format!("{PIPELINE}/versions/1"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.post(&format!("{PIPELINE}/rollback"), json!({"version": 1}))
        .await
        .assert_error(404, "NOT_FOUND");

    rat_testkit::dao::settings::put_feature_flags(&client, &FeatureFlags::default())
        .await
        .unwrap();
    assert_eq!(
        app.get(&format!("{PIPELINE}/versions")).await.json["total"],
        1,
        "nothing was published while the feature was off"
    );
}
