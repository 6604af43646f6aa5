//! `/api/v1/runs` (contract §7): create with the published snapshot, list
//! with every filter and sort in SQL, get, cancel, logs.

use crate::common::TestApp;
use rat_domain::{PipelineRef, RunStatus};
use rat_service::identity::Caller;
use rat_testkit::dao::{pipeline_versions, pipelines, runs};
use rat_testkit::fixtures;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

const RUN_FIELDS: [&str; 12] = [
    "id",
    "pipeline_id",
    "status",
    "trigger",
    "started_at",
    "finished_at",
    "duration_ms",
    "rows_written",
    "error",
    "logs_s3_path",
    "created_at",
    "version_number",
];

fn address(ns: &str, layer: &str, name: &str) -> PipelineRef {
    PipelineRef::parse(ns, layer, name).unwrap()
}

/// Creates `default/silver/<name>` through the API and publishes it.
async fn published(app: &TestApp, name: &str) -> Value {
    let created = app.pipeline("default", "silver", name).await;
    rat_service::versions::publish(
        &app.services,
        &Caller::community(),
        &address("default", "silver", name),
        "first",
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    created
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted(fields: &[&str]) -> Vec<String> {
    let mut fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    fields.sort();
    fields
}

fn run_id(answer: &crate::common::Answer) -> Uuid {
    answer.json["run_id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn create_records_the_published_snapshot_and_answers_202() {
    let app = TestApp::new().await;
    published(&app, "orders").await;
    let body = json!({"namespace": "default", "layer": "silver", "pipeline": "orders"});
    let created = app.post("/api/v1/runs", body.clone()).await;
    assert_eq!(created.status, 202, "{}", created.text);
    assert_eq!(keys(&created.json), ["run_id", "status"]);
    assert_eq!(created.json["status"], "pending");
    let id = run_id(&created);

    let got = app.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(keys(&got.json), sorted(&RUN_FIELDS));
    let client = app.db.client().await;
    let pipeline = pipelines::get_by_ref(&client, &address("default", "silver", "orders"))
        .await
        .unwrap();
    assert_eq!(got.json["id"], id.to_string());
    assert_eq!(got.json["pipeline_id"], pipeline.id.to_string());
    assert_eq!(got.json["status"], "pending");
    assert_eq!(got.json["trigger"], "manual", "the default label");
    assert_eq!(got.json["version_number"], 1);
    for absent in [
        "started_at",
        "finished_at",
        "duration_ms",
        "rows_written",
        "error",
        "logs_s3_path",
    ] {
        assert_eq!(got.json[absent], Value::Null, "{absent}");
    }
    let created_at = OffsetDateTime::parse(
        got.json["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((OffsetDateTime::now_utc() - created_at).whole_seconds().abs() < 60);

    // The run pins exactly what version 1 pinned.
    let stored = runs::get(&client, id.into()).await.unwrap();
    let v1 = pipeline_versions::get(&client, pipeline.id, rat_domain::VersionNumber::parse(1).unwrap())
        .await
        .unwrap();
    assert_eq!(stored.published_versions, v1.published_versions);
    assert!(!stored.published_versions.is_empty());

    // A later publish is what later runs execute; the first run keeps its pins.
    let key = "default/pipelines/silver/orders/pipeline.sql";
    app.services
        .store
        .put(
            &rat_versioning::ObjectKey::parse(key).unwrap(),
            b"SELECT 2 AS id".to_vec(),
            "application/sql",
        )
        .await
        .unwrap();
    rat_service::versions::publish(
        &app.services,
        &Caller::community(),
        &address("default", "silver", "orders"),
        "second",
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    let mut labelled = body.clone();
    labelled["trigger"] = json!("ci:deploy-42");
    let second = app.post("/api/v1/runs", labelled).await;
    assert_eq!(second.status, 202, "{}", second.text);
    let second = runs::get(&client, run_id(&second).into()).await.unwrap();
    assert_eq!(second.version_number, 2);
    assert_eq!(second.trigger, "ci:deploy-42");
    let v2 = pipeline_versions::get(&client, pipeline.id, rat_domain::VersionNumber::parse(2).unwrap())
        .await
        .unwrap();
    assert_eq!(second.published_versions, v2.published_versions);
    assert_ne!(second.published_versions.get(key), stored.published_versions.get(key));
    assert_eq!(
        runs::get(&client, id.into()).await.unwrap().published_versions,
        stored.published_versions
    );

    let audit = app.audit_rows().await;
    let row = audit.iter().find(|r| r.action == "run.create").expect("audited");
    assert_eq!(row.object_type.as_deref(), Some("run"));
    assert_eq!(row.object_id, Some(second.id.into()));
}

#[tokio::test]
async fn create_errors() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "draft").await;
    let message = app
        .post(
            "/api/v1/runs",
            json!({"namespace": "default", "layer": "silver", "pipeline": "draft"}),
        )
        .await
        .assert_error(409, "FAILED_PRECONDITION");
    assert!(message.contains("never been published"), "{message}");
    app.post(
        "/api/v1/runs",
        json!({"namespace": "default", "layer": "silver", "pipeline": "ghost"}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    app.post(
        "/api/v1/runs",
        json!({"namespace": "ghost", "layer": "silver", "pipeline": "draft"}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    published(&app, "orders").await;
    for bad in [
        json!({"namespace": "default", "layer": "platinum", "pipeline": "orders"}),
        json!({"namespace": "default", "layer": "silver", "pipeline": "Orders"}),
        json!({"namespace": "default", "layer": "silver"}),
        json!({"namespace": "default", "layer": "silver", "pipeline": "orders", "surprise": 1}),
        json!({"namespace": "default", "layer": "silver", "pipeline": "orders", "trigger": "a\nb"}),
        json!({"namespace": "default", "layer": "silver", "pipeline": "orders", "trigger": "x".repeat(513)}),
        json!({"namespace": "default", "layer": "silver", "pipeline": "orders", "trigger": 5}),
    ] {
        app.post("/api/v1/runs", bad.clone())
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
    let client = app.db.client().await;
    let count: i64 = client.query_one("SELECT count(*) FROM runs", &[]).await.unwrap().get(0);
    assert_eq!(count, 0, "no refused request created a run");
}

#[tokio::test]
async fn get_unknown_or_malformed_id_is_404() {
    let app = TestApp::new().await;
    for path in [
        format!("/api/v1/runs/{}", Uuid::new_v4()),
        "/api/v1/runs/not-a-uuid".to_owned(),
        "/api/v1/runs/123".to_owned(),
    ] {
        // A malformed id reads as an unknown run, message included.
        assert_eq!(app.get(&path).await.assert_error(404, "NOT_FOUND"), "run not found");
        app.get(&format!("{path}/logs")).await.assert_error(404, "NOT_FOUND");
        app.post(&format!("{path}/cancel"), json!({}))
            .await
            .assert_error(404, "NOT_FOUND");
    }
}

#[tokio::test]
async fn cancel_moves_live_runs_and_refuses_terminal_ones() {
    let app = TestApp::new().await;
    published(&app, "orders").await;
    let body = json!({"namespace": "default", "layer": "silver", "pipeline": "orders"});
    let pending = run_id(&app.post("/api/v1/runs", body.clone()).await);
    let cancelled = app.post(&format!("/api/v1/runs/{pending}/cancel"), json!({})).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(
        cancelled.json,
        json!({"run_id": pending.to_string(), "status": "cancelled"})
    );
    let got = app.get(&format!("/api/v1/runs/{pending}")).await;
    assert_eq!(got.json["status"], "cancelled");
    assert!(got.json["finished_at"].is_string(), "a terminal run has finished_at");
    let message = app
        .post(&format!("/api/v1/runs/{pending}/cancel"), json!({}))
        .await
        .assert_error(409, "FAILED_PRECONDITION");
    assert_eq!(message, "run is already cancelled");

    // A running run can be cancelled; a successful one cannot and stays as it is.
    let client = app.db.client().await;
    let now = OffsetDateTime::now_utc();
    let running = run_id(&app.post("/api/v1/runs", body.clone()).await);
    runs::transition(&client, running.into(), RunStatus::Running, &Default::default(), now)
        .await
        .unwrap();
    let answer = app.post(&format!("/api/v1/runs/{running}/cancel"), json!({})).await;
    assert_eq!(answer.json["status"], "cancelled", "{}", answer.text);

    let done = run_id(&app.post("/api/v1/runs", body).await);
    runs::transition(&client, done.into(), RunStatus::Running, &Default::default(), now)
        .await
        .unwrap();
    let report = runs::RunReport {
        duration_ms: Some(10),
        ..Default::default()
    };
    let before = runs::transition(&client, done.into(), RunStatus::Success, &report, now)
        .await
        .unwrap();
    let message = app
        .post(&format!("/api/v1/runs/{done}/cancel"), json!({}))
        .await
        .assert_error(409, "FAILED_PRECONDITION");
    assert_eq!(message, "run is already success");
    assert_eq!(
        runs::get(&client, done.into()).await.unwrap(),
        before,
        "a terminal run never changes"
    );

    let audit = app.audit_rows().await;
    let cancels: Vec<_> = audit.iter().filter(|r| r.action == "run.cancel").collect();
    assert_eq!(cancels.len(), 2, "the two successful cancels name their run");
    assert!(cancels.iter().any(|r| r.object_id == Some(pending)));
    assert!(cancels.iter().any(|r| r.object_id == Some(running)));
}

#[tokio::test]
async fn logs_answer_entries_in_order_with_the_status() {
    let app = TestApp::new().await;
    published(&app, "orders").await;
    let id = run_id(
        &app.post(
            "/api/v1/runs",
            json!({"namespace": "default", "layer": "silver", "pipeline": "orders"}),
        )
        .await,
    );
    let empty = app.get(&format!("/api/v1/runs/{id}/logs")).await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.json, json!({"logs": [], "status": "pending"}));

    let client = app.db.client().await;
    let entry = |at: &str, level: rat_domain::LogLevel, message: &str| {
        let at = OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap();
        rat_domain::LogEntry::new(at, level, message).unwrap()
    };
    runs::append_log_entries(
        &client,
        id.into(),
        &[
            entry("2026-06-01T10:00:00Z", rat_domain::LogLevel::Info, "reading"),
            entry("2026-06-01T10:00:01Z", rat_domain::LogLevel::Warn, "slow"),
        ],
    )
    .await
    .unwrap();
    runs::append_log_entries(
        &client,
        id.into(),
        &[entry("2026-06-01T10:00:02Z", rat_domain::LogLevel::Error, "boom")],
    )
    .await
    .unwrap();
    runs::transition(
        &client,
        id.into(),
        RunStatus::Failed,
        &Default::default(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    let expected = json!({
        "logs": [
            {"timestamp": "2026-06-01T10:00:00Z", "level": "info", "message": "reading"},
            {"timestamp": "2026-06-01T10:00:01Z", "level": "warn", "message": "slow"},
            {"timestamp": "2026-06-01T10:00:02Z", "level": "error", "message": "boom"}
        ],
        "status": "failed"
    });
    let logs = app.get(&format!("/api/v1/runs/{id}/logs")).await;
    assert_eq!(logs.json, expected);

    // Only an explicit `text/event-stream` gets the live stream (`logs_stream`).
    let response = app
        .http
        .get(format!("{}/api/v1/runs/{id}/logs", app.base))
        .header("accept", "application/json, */*")
        .send()
        .await
        .unwrap();
    let answer = TestApp::answer(response).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(answer.json, expected);

    // Entries kept in the seed's shape (`runs.logs`) come first; those not in
    // the runner's shape are still shown, whole, as messages.
    client
        .execute(
            "UPDATE runs SET logs = $2 WHERE id = $1",
            &[&id, &json!(["plain text", {"message": "no level"}, 42])],
        )
        .await
        .unwrap();
    let logs = app.get(&format!("/api/v1/runs/{id}/logs")).await;
    assert_eq!(
        logs.json["logs"].as_array().unwrap()[..3],
        [
            json!({"timestamp": "", "level": "info", "message": "plain text"}),
            json!({"timestamp": "", "level": "info", "message": "no level"}),
            json!({"timestamp": "", "level": "info", "message": "42"}),
        ]
    );
}

#[tokio::test]
async fn list_filters_sorts_and_pages_in_sql() {
    let app = TestApp::new().await;
    let client = app.db.client().await;
    let silver = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let gold = fixtures::pipeline(&client, "default", "gold", "orders").await;
    let sales = fixtures::pipeline(&client, "shop", "silver", "sales").await;
    let t0 = datetime!(2026-06-01 10:00:00 UTC);
    let hours = |h: i64| t0 + time::Duration::hours(h);
    let minutes = |m: i64| t0 + time::Duration::minutes(m);
    let report = |ms: i32| runs::RunReport {
        duration_ms: Some(ms),
        ..Default::default()
    };

    let r1 = fixtures::run_at(&client, &silver, t0).await.id;
    runs::transition(&client, r1, RunStatus::Running, &Default::default(), minutes(1))
        .await
        .unwrap();
    runs::transition(&client, r1, RunStatus::Success, &report(100), minutes(2))
        .await
        .unwrap();
    let r2 = fixtures::run_at(&client, &gold, hours(1)).await.id;
    runs::transition(&client, r2, RunStatus::Running, &Default::default(), hours(1))
        .await
        .unwrap();
    runs::transition(&client, r2, RunStatus::Failed, &report(50), hours(1))
        .await
        .unwrap();
    let r3 = fixtures::run_at(&client, &sales, hours(2)).await.id;
    let r4 = fixtures::run_at(&client, &silver, hours(3)).await.id;
    runs::transition(&client, r4, RunStatus::Running, &Default::default(), hours(3))
        .await
        .unwrap();

    let ids = |answer: &crate::common::Answer| -> Vec<rat_domain::RunId> {
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    let all = app.get("/api/v1/runs").await;
    assert_eq!(ids(&all), [r4, r3, r2, r1], "default sort is -created_at");
    assert_eq!(all.json["total"], 4);
    assert_eq!(keys(&all.json), ["runs", "total"]);
    assert_eq!(keys(&all.json["runs"][0]), sorted(&RUN_FIELDS));

    for (query, expected) in [
        ("namespace=default", vec![r4, r2, r1]),
        ("layer=silver", vec![r4, r3, r1]),
        ("pipeline=orders", vec![r4, r2, r1]),
        ("namespace=default&layer=silver&pipeline=orders", vec![r4, r1]),
        ("status=failed", vec![r2]),
        ("status=pending", vec![r3]),
        ("started_after=2026-06-01T10:30:00Z", vec![r4, r2]),
        ("started_before=2026-06-01T12:00:00Z", vec![r2, r1]),
        (
            "started_after=2026-06-01T10:01:00Z&started_before=2026-06-01T11:00:00Z",
            vec![r1],
        ),
        // An offset other than Z, with its '+' percent-encoded.
        ("started_after=2026-06-01T13:00:00%2B02:00", vec![r4, r2]),
        ("sort=created_at", vec![r1, r2, r3, r4]),
        ("sort=-started_at&status=running", vec![r4]),
        ("sort=status", vec![r2, r3, r4, r1]),
    ] {
        let answer = app.get(&format!("/api/v1/runs?{query}")).await;
        assert_eq!(ids(&answer), expected, "{query}");
        assert_eq!(answer.json["total"], expected.len(), "{query}");
    }
    let by_finish = app.get("/api/v1/runs?sort=finished_at&limit=2").await;
    assert_eq!(ids(&by_finish), [r1, r2], "earliest finish first, unfinished last");
    assert_eq!(by_finish.json["total"], 4);
    let by_duration = ids(&app.get("/api/v1/runs?sort=duration_ms").await);
    assert_eq!(by_duration[..2], [r2, r1], "shortest first");
    let paged = app.get("/api/v1/runs?limit=2&offset=1").await;
    assert_eq!(ids(&paged), [r3, r2]);
    assert_eq!(paged.json["total"], 4, "total counts the filtered set, not the page");
    let past_the_end = app.get("/api/v1/runs?status=running&offset=5").await;
    assert!(ids(&past_the_end).is_empty());
    assert_eq!(past_the_end.json["total"], 1);
    assert_eq!(app.get("/api/v1/runs?limit=5000").await.status, 200, "clamped");

    for bad in [
        "status=done",
        "started_after=yesterday",
        "started_after=2026-06-01",
        "started_before=2026-13-01T00:00:00Z",
        "sort=name",
        "sort=--created_at",
        "layer=platinum",
        "namespace=Bad",
        "pipeline=Bad",
        "limit=x",
        "limit=0",
        "offset=-1",
    ] {
        app.get(&format!("/api/v1/runs?{bad}"))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
}

#[tokio::test]
async fn lists_that_grow_page_by_cursor() {
    let app = TestApp::new().await;
    let client = app.db.client().await;
    let silver = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let t0 = datetime!(2026-06-01 10:00:00 UTC);
    // Seven runs, two of them created at the same instant.
    let mut made = Vec::new();
    for i in 0..7_i64 {
        made.push(
            fixtures::run_at(&client, &silver, t0 + time::Duration::minutes(i.min(5)))
                .await
                .id,
        );
    }
    let walk = |first: String| {
        let app = &app;
        async move {
            let (mut ids, mut next) = (Vec::<String>::new(), Some(first.clone()));
            let mut pages = 0;
            while let Some(url) = next.take() {
                let page = app.get(&url).await;
                assert_eq!(page.status, 200, "{url}: {}", page.text);
                assert_eq!(page.json["total"], 7, "{url}");
                ids.extend(
                    page.json["runs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["id"].as_str().unwrap().to_owned()),
                );
                next = page.json.get("next_cursor").map(|cursor| {
                    let base = first.split("&cursor=").next().unwrap();
                    format!("{base}&cursor={}", cursor.as_str().unwrap())
                });
                pages += 1;
                assert!(pages < 10);
            }
            (ids, pages)
        }
    };
    for sort in ["-created_at", "created_at"] {
        let everything = app.get(&format!("/api/v1/runs?sort={sort}")).await;
        assert!(everything.json.get("next_cursor").is_none(), "the last page has none");
        let expected: Vec<String> = everything.json["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        let (ids, pages) = walk(format!("/api/v1/runs?sort={sort}&limit=2")).await;
        assert_eq!(ids, expected, "{sort}");
        assert_eq!(pages, 4, "no empty last page");
    }

    let first = app.get("/api/v1/runs?limit=2").await;
    let cursor = first.json["next_cursor"].as_str().unwrap().to_owned();
    let second = app.get(&format!("/api/v1/runs?limit=2&cursor={cursor}")).await;
    assert_eq!(
        second.json["runs"][0]["id"],
        made[4].to_string(),
        "after the second newest"
    );
    for bad in [
        // Another order than the cursor's, an order without keyset, an
        // offset beside it, and tokens that are no cursor.
        format!("sort=created_at&cursor={cursor}"),
        format!("sort=status&cursor={cursor}"),
        format!("offset=2&cursor={cursor}"),
        "cursor=abc".to_owned(),
        "cursor=not%20base64".to_owned(),
        format!("cursor={}", &cursor[..cursor.len() - 3]),
    ] {
        app.get(&format!("/api/v1/runs?{bad}"))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
    // A cursor of another list is refused too.
    app.get(&format!("/api/v1/audit?cursor={cursor}"))
        .await
        .assert_error(400, "INVALID_ARGUMENT");

    // Run logs: pages of `limit` entries after the cursor.
    let id = made[0];
    let entries: Vec<rat_domain::LogEntry> = (0..5)
        .map(|i| rat_domain::LogEntry::new(t0, rat_domain::LogLevel::Info, format!("line {i}")).unwrap())
        .collect();
    runs::append_log_entries(&client, id, &entries).await.unwrap();
    let whole = app.get(&format!("/api/v1/runs/{id}/logs")).await;
    assert_eq!(whole.json["logs"].as_array().unwrap().len(), 5);
    assert!(whole.json.get("next_cursor").is_none());
    let (mut messages, mut url) = (Vec::new(), Some(format!("/api/v1/runs/{id}/logs?limit=2")));
    while let Some(next) = url.take() {
        let page = app.get(&next).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(page.json["status"], "pending");
        messages.extend(
            page.json["logs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["message"].as_str().unwrap().to_owned()),
        );
        url = page
            .json
            .get("next_cursor")
            .map(|c| format!("/api/v1/runs/{id}/logs?limit=2&cursor={}", c.as_str().unwrap()));
    }
    assert_eq!(messages, ["line 0", "line 1", "line 2", "line 3", "line 4"]);
    for bad in [format!("cursor={cursor}"), "limit=0".to_owned(), "limit=x".to_owned()] {
        app.get(&format!("/api/v1/runs/{id}/logs?{bad}"))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
}
