//! Safe concurrent edits (seed 004, optimistic locking): reads answer an
//! `ETag`; a `PUT` or `DELETE` whose `If-Match` no longer matches answers 412
//! with the envelope and changes nothing; without `If-Match`, as before.

use crate::common::{Answer, TestApp};
use reqwest::Method;
use serde_json::{Value, json};

const ORDERS: &str = "/api/v1/pipelines/default/silver/orders";
const SOURCE: &str = "/api/v1/files/default/pipelines/silver/orders/pipeline.sql";

async fn with_if_match(app: &TestApp, method: Method, path: &str, tag: &str, body: Option<Value>) -> Answer {
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.base))
        .header("if-match", tag);
    if let Some(body) = body {
        request = request.json(&body);
    }
    TestApp::answer(request.send().await.unwrap()).await
}

fn etag_of(answer: &Answer) -> String {
    answer
        .headers
        .get("etag")
        .unwrap_or_else(|| panic!("no ETag on {}", answer.text))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_stale_pipeline_write_or_delete_is_412_and_changes_nothing() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let read = app.get(ORDERS).await;
    let first = etag_of(&read);
    assert!(first.starts_with('"') && first.ends_with('"'), "{first}");

    // Alice writes with the ETag she read: accepted, a new ETag.
    let alice = with_if_match(&app, Method::PUT, ORDERS, &first, Some(json!({"description": "alice"}))).await;
    assert_eq!(alice.status, 200, "{}", alice.text);
    let second = etag_of(&alice);
    assert_ne!(second, first);
    assert_eq!(
        etag_of(&app.get(ORDERS).await),
        second,
        "the read shows the new version"
    );

    // Bob read before Alice's write: refused, and the row is unchanged.
    let stored = app.get(ORDERS).await.json;
    let bob = with_if_match(&app, Method::PUT, ORDERS, &first, Some(json!({"description": "bob"}))).await;
    let message = bob.assert_error(412, "ABORTED");
    assert!(message.contains("changed"), "{message}");
    with_if_match(&app, Method::DELETE, ORDERS, &first, None)
        .await
        .assert_error(412, "ABORTED");
    assert_eq!(app.get(ORDERS).await.json, stored, "nothing changed");

    // A list naming the current version, and `*`, match; weak tags never do.
    let list = format!("\"nope\", {second}");
    let listed = with_if_match(&app, Method::PUT, ORDERS, &list, Some(json!({"description": "listed"}))).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let third = etag_of(&listed);
    let weak = format!("W/{third}");
    with_if_match(&app, Method::PUT, ORDERS, &weak, Some(json!({"description": "weak"})))
        .await
        .assert_error(412, "ABORTED");
    let any = with_if_match(&app, Method::PUT, ORDERS, "*", Some(json!({"description": "any"}))).await;
    assert_eq!(any.status, 200, "{}", any.text);
    with_if_match(
        &app,
        Method::PUT,
        ORDERS,
        "\"a\"b\"",
        Some(json!({"description": "bad"})),
    )
    .await
    .assert_error(400, "INVALID_ARGUMENT");

    // Without If-Match, as before.
    let plain = app.put(ORDERS, json!({"description": "plain"})).await;
    assert_eq!(plain.status, 200, "{}", plain.text);
    let current = etag_of(&app.get(ORDERS).await);
    // A delete with the current version goes through.
    let deleted = with_if_match(&app, Method::DELETE, ORDERS, &current, None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    app.get(ORDERS).await.assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_stale_file_write_or_delete_is_412_and_the_file_is_unchanged() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let read = app.get(SOURCE).await;
    assert_eq!(read.status, 200, "{}", read.text);
    let first = etag_of(&read);
    // The file's ETag is its S3 version id.
    let written = with_if_match(&app, Method::PUT, SOURCE, &first, Some(json!({"content": "SELECT 1"}))).await;
    assert_eq!(written.status, 200, "{}", written.text);
    let version = written.json["version_id"].as_str().unwrap().to_owned();
    assert_eq!(etag_of(&written), format!("\"{version}\""));
    assert_eq!(etag_of(&app.get(SOURCE).await), format!("\"{version}\""));

    // A write based on the first read is stale: 412, content unchanged.
    with_if_match(&app, Method::PUT, SOURCE, &first, Some(json!({"content": "SELECT 2"})))
        .await
        .assert_error(412, "ABORTED");
    with_if_match(&app, Method::DELETE, SOURCE, &first, None)
        .await
        .assert_error(412, "ABORTED");
    let now = app.get(SOURCE).await;
    assert_eq!(now.json["content"], "SELECT 1");
    assert_eq!(etag_of(&now), format!("\"{version}\""));
    // A file that does not exist matches no tag, not even `*`.
    with_if_match(
        &app,
        Method::PUT,
        "/api/v1/files/default/pipelines/silver/orders/new.sql",
        "*",
        Some(json!({"content": "x"})),
    )
    .await
    .assert_error(412, "ABORTED");
    // The download carries it too.
    let download = app.get(&format!("{SOURCE}?download=true")).await;
    assert_eq!(etag_of(&download), format!("\"{version}\""));
    // Without If-Match, as before; with the current version, accepted.
    assert_eq!(app.put(SOURCE, json!({"content": "SELECT 3"})).await.status, 200);
    let current = etag_of(&app.get(SOURCE).await);
    let deleted = with_if_match(&app, Method::DELETE, SOURCE, &current, None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
}

#[tokio::test]
async fn a_stale_landing_zone_write_or_delete_is_412_and_changes_nothing() {
    let app = TestApp::new().await;
    let zone = "/api/v1/landing-zones/default/drop";
    let created = app
        .post("/api/v1/landing-zones", json!({"namespace": "default", "name": "drop"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let first = etag_of(&app.get(zone).await);
    let changed = with_if_match(&app, Method::PUT, zone, &first, Some(json!({"description": "a"}))).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let second = etag_of(&changed);
    assert_ne!(first, second);
    let stored = app.get(zone).await.json;
    with_if_match(&app, Method::PUT, zone, &first, Some(json!({"description": "b"})))
        .await
        .assert_error(412, "ABORTED");
    with_if_match(&app, Method::DELETE, zone, &first, None)
        .await
        .assert_error(412, "ABORTED");
    assert_eq!(app.get(zone).await.json, stored, "nothing changed");
    assert_eq!(app.put(zone, json!({"description": "plain"})).await.status, 200);
    let current = etag_of(&app.get(zone).await);
    assert_eq!(
        with_if_match(&app, Method::DELETE, zone, &current, None).await.status,
        204
    );
    app.get(zone).await.assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_stale_table_metadata_write_is_412_and_changes_nothing() {
    let app = TestApp::new().await;
    let metadata = "/api/v1/tables/default/silver/orders/metadata";
    // Metadata never written matches no tag.
    with_if_match(&app, Method::PUT, metadata, "*", Some(json!({"description": "x"})))
        .await
        .assert_error(412, "ABORTED");
    let created = app.put(metadata, json!({"description": "first"})).await;
    assert_eq!(created.status, 200, "{}", created.text);
    let first = etag_of(&app.get(metadata).await);
    assert_eq!(etag_of(&created), first);
    let changed = with_if_match(
        &app,
        Method::PUT,
        metadata,
        &first,
        Some(json!({"column_descriptions": {"id": "key"}})),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let stored = app.get(metadata).await.json;
    with_if_match(
        &app,
        Method::PUT,
        metadata,
        &first,
        Some(json!({"description": "stale"})),
    )
    .await
    .assert_error(412, "ABORTED");
    assert_eq!(app.get(metadata).await.json, stored, "nothing changed");
    assert_eq!(stored["description"], "first");
    assert_eq!(stored["column_descriptions"], json!({"id": "key"}));
}
