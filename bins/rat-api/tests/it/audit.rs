//! `GET /api/v1/audit` (contract §12): the seed's columns, filters in SQL,
//! newest first, the full total.

use crate::common::TestApp;
use rat_domain::FeatureFlags;
use rat_testkit::dao::audit::NewAuditEntry;
use serde_json::json;
use time::macros::datetime;

#[tokio::test]
async fn entries_have_the_seed_columns_newest_first_with_the_total() {
    let app = TestApp::new().await;
    app.namespace("shop").await;
    app.pipeline("shop", "silver", "orders").await;
    app.post("/api/v1/namespaces", json!({"name": "Bad"})).await;

    let answer = app.get("/api/v1/audit").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["total"], 3);
    let entries = answer.json["entries"].as_array().unwrap();
    let mut fields: Vec<&str> = entries[0].as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "action",
            "actor",
            "details",
            "id",
            "object_id",
            "object_type",
            "timestamp"
        ]
    );
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["POST /api/v1/namespaces", "pipeline.create", "namespace.create"],
        "newest first; the refused request is recorded too"
    );
    assert_eq!(entries[0]["details"]["status"], 400);
    assert_eq!(entries[1]["actor"], "community");
    assert_eq!(entries[1]["object_type"], "pipeline");
    assert_eq!(
        entries[1]["object_id"],
        app.get("/api/v1/pipelines/shop/silver/orders").await.json["id"]
    );
    assert!(
        time::OffsetDateTime::parse(
            entries[0]["timestamp"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );

    let paged = app.get("/api/v1/audit?limit=1&offset=1").await;
    assert_eq!(paged.json["total"], 3);
    assert_eq!(paged.json["entries"].as_array().unwrap().len(), 1);
    assert_eq!(paged.json["entries"][0]["action"], "pipeline.create");
}

#[tokio::test]
async fn filters_and_time_windows_are_applied_in_sql() {
    let app = TestApp::new().await;
    let client = app.db.client().await;
    for (actor, action, object_type, at) in [
        (
            "alice",
            "pipeline.create",
            Some("pipeline"),
            datetime!(2026-01-01 10:00:00 UTC),
        ),
        (
            "alice",
            "pipeline.delete",
            Some("pipeline"),
            datetime!(2026-01-02 10:00:00 UTC),
        ),
        (
            "bob",
            "pipeline.create",
            Some("pipeline"),
            datetime!(2026-01-03 10:00:00 UTC),
        ),
        (
            "bob",
            "namespace.create",
            Some("namespace"),
            datetime!(2026-01-04 10:00:00 UTC),
        ),
    ] {
        let entry = NewAuditEntry {
            actor: actor.to_owned(),
            action: action.to_owned(),
            object_type: object_type.map(str::to_owned),
            object_id: None,
            details: None,
        };
        rat_testkit::dao::audit::insert(&client, &entry, at).await.unwrap();
    }
    let count = |query: &'static str| {
        let app = &app;
        async move {
            let answer = app.get(&format!("/api/v1/audit?{query}")).await;
            assert_eq!(answer.status, 200, "{query}: {}", answer.text);
            (
                answer.json["total"].as_i64().unwrap(),
                answer.json["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["timestamp"].as_str().unwrap()[..10].to_owned())
                    .collect::<Vec<_>>(),
            )
        }
    };
    assert_eq!(count("actor=alice").await.0, 2);
    assert_eq!(count("action=pipeline.create").await.0, 2);
    assert_eq!(count("object_type=namespace").await.0, 1);
    assert_eq!(count("actor=bob&action=pipeline.create").await.0, 1);
    assert_eq!(count("actor=nobody").await, (0, vec![]));
    assert_eq!(
        count("since=2026-01-02T10:00:00Z&until=2026-01-04T10:00:00Z").await,
        (2, vec!["2026-01-03".to_owned(), "2026-01-02".to_owned()]),
        "since inclusive, until exclusive, newest first"
    );
    assert_eq!(
        count("since=2026-01-03T11:00:00%2B01:00").await.0,
        2,
        "10:00 UTC, inclusive"
    );
    assert_eq!(
        count("since=2026-01-03T12:00:00%2B01:00").await.0,
        1,
        "offsets are honoured"
    );
    assert_eq!(count("until=2026-01-01T10:00:01Z&actor=alice").await.0, 1);
}

#[tokio::test]
async fn bad_parameters_are_400() {
    let app = TestApp::new().await;
    for bad in [
        "since=yesterday",
        "until=2026-01-01",
        "since=2026-13-01T00:00:00Z",
        "limit=abc",
        "limit=0",
        "offset=-1",
    ] {
        app.get(&format!("/api/v1/audit?{bad}"))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
}

#[tokio::test]
async fn the_route_answers_404_while_the_audit_log_is_off() {
    let app = TestApp::new().await;
    let client = app.db.client().await;
    rat_testkit::dao::settings::put_feature_flags(
        &client,
        &FeatureFlags {
            audit_log: false,
            ..FeatureFlags::default()
        },
    )
    .await
    .unwrap();
    let message = app.get("/api/v1/audit").await.assert_error(404, "NOT_FOUND");
    assert!(message.contains("FEATURE_DISABLED"), "{message}");
}

#[tokio::test]
async fn the_audit_log_requires_the_api_key_when_one_is_set() {
    let app = TestApp::builder().api_key("secret").start().await;
    let response = app.http.get(format!("{}/api/v1/audit", app.base)).send().await.unwrap();
    TestApp::answer(response).await.assert_error(401, "UNAUTHENTICATED");
    let entries = app.get("/api/v1/audit").await;
    assert_eq!(entries.status, 200);
    assert_eq!(entries.json["total"], 0, "reads are not audited");
}
