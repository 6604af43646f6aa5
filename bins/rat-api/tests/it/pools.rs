//! No request waits for a second pooled connection while it holds one.
//!
//! A request that did would, under load, leave every connection held by a
//! request waiting for another: the whole api stalls until the pool's wait
//! times out, then answers 503 (seen with 16 concurrent quality-test
//! creates). Every write route of both listeners is called here, first one
//! at a time on a pool of one connection (a request needing two can never
//! get them: it answers 503), then 4N at once on a pool of N, with an
//! unrelated read beside them. The list of calls is checked against both
//! OpenAPI documents, so a new write route cannot be left out.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{Answer, TestApp};
use reqwest::Method;
use serde_json::{Value, json};

const ORDERS: &str = "/api/v1/pipelines/default/silver/orders";
const ZONE: &str = "/api/v1/landing-zones/default/zone";
const RUNNER: &str = "runner-1";

/// The body of a call.
#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    /// A multipart form: an optional `path` field and a `file` part.
    Upload {
        path: Option<String>,
        filename: String,
    },
}

/// One write call: its route as the OpenAPI documents name it, and how to make it.
#[derive(Clone)]
struct Call {
    method: Method,
    route: &'static str,
    path: String,
    body: Body,
    internal: bool,
    headers: Vec<(&'static str, String)>,
}

fn call(method: Method, route: &'static str, path: impl Into<String>, body: Body) -> Call {
    Call {
        method,
        route,
        path: path.into(),
        body,
        internal: false,
        headers: Vec::new(),
    }
}

fn internal(route: &'static str, path: impl Into<String>, body: Value) -> Call {
    Call {
        internal: true,
        ..call(Method::POST, route, path, Body::Json(body))
    }
}

async fn send(app: &TestApp, call: &Call) -> Answer {
    let base = if call.internal {
        app.internal_base.clone().expect("an internal listener")
    } else {
        app.base.clone()
    };
    let mut request = app.http.request(call.method.clone(), format!("{base}{}", call.path));
    for (name, value) in &call.headers {
        request = request.header(*name, value);
    }
    request = match &call.body {
        Body::None => request,
        Body::Json(value) => request.json(value),
        Body::Upload { path, filename } => {
            let part = reqwest::multipart::Part::bytes(b"id,amount\n1,2\n".to_vec())
                .file_name(filename.clone())
                .mime_str("text/csv")
                .unwrap();
            let mut form = reqwest::multipart::Form::new().part("file", part);
            if let Some(path) = path {
                form = form.text("path", path.clone());
            }
            request.multipart(form)
        }
    };
    TestApp::answer(request.send().await.expect("request sent")).await
}

fn id_of(answer: &Answer, field: &str) -> String {
    assert!(answer.status.is_success(), "{}", answer.text);
    answer.json[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {}", answer.text))
        .to_owned()
}

/// Arranges what the calls act on and returns them, writes before deletes.
async fn arrange(app: &TestApp) -> Vec<Call> {
    app.namespace("tmp").await;
    app.pipeline("default", "silver", "orders").await;
    // A deleted pipeline, for the restore.
    app.pipeline("default", "silver", "gone").await;
    assert_eq!(app.delete("/api/v1/pipelines/default/silver/gone").await.status, 204);
    let published = app.post(&format!("{ORDERS}/publish"), json!({"message": "v1"})).await;
    assert!(published.status.is_success(), "{}", published.text);
    let test = app
        .post(&format!("{ORDERS}/tests"), json!({"name": "t1", "sql": "select 0"}))
        .await;
    assert_eq!(test.status, 201, "{}", test.text);
    let trigger = app
        .post(&format!("{ORDERS}/triggers"), json!({"type": "webhook"}))
        .await;
    let trigger_id = id_of(&trigger, "id");
    let token = id_of(&trigger, "webhook_token");
    let run = app
        .post(
            "/api/v1/runs",
            json!({"namespace": "default", "layer": "silver", "pipeline": "orders"}),
        )
        .await;
    let run_id = id_of(&run, "run_id");
    let schedule = app
        .post(
            "/api/v1/schedules",
            json!({"namespace": "default", "layer": "silver", "pipeline": "orders", "cron": "0 * * * *"}),
        )
        .await;
    let schedule_id = id_of(&schedule, "id");
    let zone = app
        .post("/api/v1/landing-zones", json!({"namespace": "default", "name": "zone"}))
        .await;
    let zone_id = id_of(&zone, "id");
    let uploaded = send(
        app,
        &call(
            Method::POST,
            "",
            format!("{ZONE}/files"),
            Body::Upload {
                path: None,
                filename: "a.csv".to_owned(),
            },
        ),
    )
    .await;
    let file_id = id_of(&uploaded, "id");
    let pipeline_id = app.get(ORDERS).await.json["id"].as_str().unwrap().to_owned();
    let project = app.post("/api/v1/projects", json!({"name": "tmp"})).await;
    let project_id = id_of(&project, "id");
    // A run held by the runner, for the runner protocol's reports.
    let held = app
        .post(
            "/api/v1/runs",
            json!({"namespace": "default", "layer": "silver", "pipeline": "orders"}),
        )
        .await;
    let held_id = id_of(&held, "run_id");
    app.post(&format!("/api/v1/runs/{run_id}/cancel"), json!({})).await;
    let claimed = app
        .internal_post("/internal/v1/runs/claim", json!({"runner_id": RUNNER, "max_runs": 1}))
        .await;
    assert_eq!(claimed.json["runs"][0]["run_id"], held_id.as_str(), "{}", claimed.text);
    let _ = zone_id;

    let file = "/api/v1/files/default/pipelines/silver/orders/extra.sql";
    let mut webhook = call(Method::POST, "/api/v1/webhooks", "/api/v1/webhooks", Body::None);
    webhook.headers.push(("x-webhook-token", token));
    vec![
        call(
            Method::POST,
            "/api/v1/namespaces",
            "/api/v1/namespaces",
            Body::Json(json!({"name": "fresh"})),
        ),
        call(
            Method::PUT,
            "/api/v1/namespaces/{name}",
            "/api/v1/namespaces/tmp",
            Body::Json(json!({"description": "d"})),
        ),
        call(
            Method::POST,
            "/api/v1/pipelines",
            "/api/v1/pipelines",
            Body::Json(json!({"namespace": "default", "layer": "silver", "name": "fresh"})),
        ),
        call(
            Method::PUT,
            "/api/v1/pipelines/{namespace}/{layer}/{name}",
            ORDERS,
            Body::Json(json!({"description": "d"})),
        ),
        call(
            Method::POST,
            "/api/v1/pipelines/{namespace}/{layer}/{name}/restore",
            "/api/v1/pipelines/default/silver/gone/restore",
            Body::None,
        ),
        call(
            Method::PUT,
            "/api/v1/pipelines/{namespace}/{layer}/{name}/retention",
            format!("{ORDERS}/retention"),
            Body::Json(json!({"runs_max_per_pipeline": 5})),
        ),
        call(
            Method::PUT,
            "/api/v1/files/{path}",
            file,
            Body::Json(json!({"content": "select 1"})),
        ),
        call(
            Method::POST,
            "/api/v1/files/upload",
            "/api/v1/files/upload",
            Body::Upload {
                path: Some("default/pipelines/silver/orders/up.sql".to_owned()),
                filename: "up.sql".to_owned(),
            },
        ),
        call(
            Method::POST,
            "/api/v1/pipelines/{namespace}/{layer}/{name}/publish",
            format!("{ORDERS}/publish"),
            Body::Json(json!({"message": "m"})),
        ),
        call(
            Method::POST,
            "/api/v1/pipelines/{namespace}/{layer}/{name}/rollback",
            format!("{ORDERS}/rollback"),
            Body::Json(json!({"version": 1})),
        ),
        call(
            Method::POST,
            "/api/v1/pipelines/{namespace}/{layer}/{name}/tests",
            format!("{ORDERS}/tests"),
            Body::Json(json!({"name": "t2", "sql": "select 0"})),
        ),
        call(
            Method::POST,
            "/api/v1/pipelines/{namespace}/{layer}/{name}/tests/run",
            format!("{ORDERS}/tests/run"),
            Body::None,
        ),
        call(
            Method::POST,
            "/api/v1/tests/{namespace}/{layer}/{name}",
            "/api/v1/tests/default/silver/orders",
            Body::Json(json!({"name": "t3", "sql": "select 0"})),
        ),
        call(
            Method::POST,
            "/api/v1/tests/{namespace}/{layer}/{name}/run",
            "/api/v1/tests/default/silver/orders/run",
            Body::None,
        ),
        call(
            Method::POST,
            "/api/v1/pipelines/{namespace}/{layer}/{name}/triggers",
            format!("{ORDERS}/triggers"),
            Body::Json(json!({"type": "webhook"})),
        ),
        call(
            Method::PUT,
            "/api/v1/pipelines/{namespace}/{layer}/{name}/triggers/{id}",
            format!("{ORDERS}/triggers/{trigger_id}"),
            Body::Json(json!({"enabled": true})),
        ),
        webhook,
        call(
            Method::POST,
            "/api/v1/runs",
            "/api/v1/runs",
            Body::Json(json!({"namespace": "default", "layer": "silver", "pipeline": "orders"})),
        ),
        call(
            Method::POST,
            "/api/v1/runs/{id}/cancel",
            format!("/api/v1/runs/{run_id}/cancel"),
            Body::None,
        ),
        call(
            Method::POST,
            "/api/v1/schedules",
            "/api/v1/schedules",
            Body::Json(json!({"namespace": "default", "layer": "silver", "pipeline": "orders", "cron": "5 * * * *"})),
        ),
        call(
            Method::PUT,
            "/api/v1/schedules/{id}",
            format!("/api/v1/schedules/{schedule_id}"),
            Body::Json(json!({"enabled": false})),
        ),
        call(
            Method::POST,
            "/api/v1/sharing",
            "/api/v1/sharing",
            Body::Json(
                json!({"object_type": "pipeline", "object_id": pipeline_id, "shared_with": "role:analysts", "access_level": "read"}),
            ),
        ),
        call(
            Method::DELETE,
            "/api/v1/sharing/{id}",
            format!("/api/v1/sharing/{}", uuid::Uuid::new_v4()),
            Body::None,
        ),
        call(
            Method::POST,
            "/api/v1/sharing/transfer",
            "/api/v1/sharing/transfer",
            Body::Json(json!({"resource_type": "pipeline", "resource_id": pipeline_id, "to_user_id": "community"})),
        ),
        call(
            Method::POST,
            "/api/v1/projects",
            "/api/v1/projects",
            Body::Json(json!({"name": "fresh"})),
        ),
        call(
            Method::PUT,
            "/api/v1/projects/{id}",
            format!("/api/v1/projects/{project_id}"),
            Body::Json(json!({"description": "d"})),
        ),
        call(
            Method::POST,
            "/api/v1/projects/{id}/members",
            format!("/api/v1/projects/{project_id}/members"),
            Body::Json(json!({"object_type": "pipeline", "object_id": pipeline_id})),
        ),
        call(
            Method::POST,
            "/api/v1/admin/retention/run",
            "/api/v1/admin/retention/run",
            Body::None,
        ),
        // Without an issuer these answer 409 before any connection is taken
        // (tokens need multi-user mode); `oidc.rs` covers them signed in.
        call(
            Method::POST,
            "/api/v1/me/tokens",
            "/api/v1/me/tokens",
            Body::Json(json!({"name": "pools"})),
        ),
        call(
            Method::DELETE,
            "/api/v1/me/tokens/{id}",
            format!("/api/v1/me/tokens/{}", uuid::Uuid::new_v4()),
            Body::None,
        ),
        call(
            Method::PUT,
            "/api/v1/admin/retention/config",
            "/api/v1/admin/retention/config",
            Body::Json(json!({"runs_max_age_days": 10})),
        ),
        call(
            Method::PUT,
            "/api/v1/tables/{namespace}/{layer}/{name}/metadata",
            "/api/v1/tables/default/silver/orders/metadata",
            Body::Json(json!({"description": "d"})),
        ),
        call(
            Method::POST,
            "/api/v1/landing-zones",
            "/api/v1/landing-zones",
            Body::Json(json!({"namespace": "default", "name": "fresh"})),
        ),
        call(
            Method::PUT,
            "/api/v1/landing-zones/{namespace}/{name}",
            ZONE,
            Body::Json(json!({"description": "d"})),
        ),
        call(
            Method::PUT,
            "/api/v1/landing-zones/{namespace}/{name}/lifecycle",
            format!("{ZONE}/lifecycle"),
            Body::Json(json!({"auto_purge": true})),
        ),
        call(
            Method::POST,
            "/api/v1/landing-zones/{namespace}/{name}/files",
            format!("{ZONE}/files"),
            Body::Upload {
                path: None,
                filename: "b.csv".to_owned(),
            },
        ),
        call(
            Method::POST,
            "/api/v1/landing-zones/{namespace}/{name}/samples",
            format!("{ZONE}/samples"),
            Body::Upload {
                path: None,
                filename: "s.csv".to_owned(),
            },
        ),
        internal(
            "/internal/v1/runs/{id}/heartbeat",
            format!("/internal/v1/runs/{held_id}/heartbeat"),
            json!({"runner_id": RUNNER}),
        ),
        internal(
            "/internal/v1/runs/{id}/logs",
            format!("/internal/v1/runs/{held_id}/logs"),
            json!({"runner_id": RUNNER, "entries": [{"timestamp": "2026-01-01T00:00:00Z", "level": "info", "message": "x"}]}),
        ),
        internal(
            "/internal/v1/runs/{id}/complete",
            format!("/internal/v1/runs/{held_id}/complete"),
            json!({"runner_id": RUNNER, "status": "success"}),
        ),
        internal(
            "/api/v1/internal/runs/{id}/status",
            format!("/api/v1/internal/runs/{held_id}/status"),
            json!({"run_id": held_id, "status": "failed", "error": "x"}),
        ),
        internal(
            "/internal/v1/runs/claim",
            "/internal/v1/runs/claim",
            json!({"runner_id": RUNNER, "max_runs": 2}),
        ),
        internal(
            "/api/v1/internal/failed-merges",
            "/api/v1/internal/failed-merges",
            json!({"run_id": held_id, "branch_name": format!("run-{held_id}"), "error_kind": "conflict", "error_message": "x"}),
        ),
        internal(
            "/api/v1/internal/plugins/register",
            "/api/v1/internal/plugins/register",
            json!({"name": "acl", "slot": "auth", "image": "rat/acl:1"}),
        ),
        internal(
            "/api/v1/internal/plugins/{name}/health",
            "/api/v1/internal/plugins/acl/health",
            json!({"status": "healthy"}),
        ),
        // Deletes last, the pipeline and namespaces after what is inside them.
        call(
            Method::DELETE,
            "/api/v1/plugins/{name}",
            "/api/v1/plugins/acl",
            Body::None,
        ),
        call(
            Method::DELETE,
            "/api/v1/landing-zones/{namespace}/{name}/samples/{filename}",
            format!("{ZONE}/samples/s.csv"),
            Body::None,
        ),
        call(
            Method::DELETE,
            "/api/v1/landing-zones/{namespace}/{name}/files/{id}",
            format!("{ZONE}/files/{file_id}"),
            Body::None,
        ),
        call(
            Method::DELETE,
            "/api/v1/landing-zones/{namespace}/{name}",
            ZONE,
            Body::None,
        ),
        call(
            Method::DELETE,
            "/api/v1/pipelines/{namespace}/{layer}/{name}/tests/{test}",
            format!("{ORDERS}/tests/t1"),
            Body::None,
        ),
        call(
            Method::DELETE,
            "/api/v1/tests/{namespace}/{layer}/{name}/{test}",
            "/api/v1/tests/default/silver/orders/t2",
            Body::None,
        ),
        call(
            Method::DELETE,
            "/api/v1/pipelines/{namespace}/{layer}/{name}/triggers/{id}",
            format!("{ORDERS}/triggers/{trigger_id}"),
            Body::None,
        ),
        call(
            Method::DELETE,
            "/api/v1/schedules/{id}",
            format!("/api/v1/schedules/{schedule_id}"),
            Body::None,
        ),
        call(Method::DELETE, "/api/v1/files/{path}", file, Body::None),
        call(
            Method::DELETE,
            "/api/v1/projects/{id}/members/{object_type}/{object_id}",
            format!("/api/v1/projects/{project_id}/members/pipeline/{pipeline_id}"),
            Body::None,
        ),
        call(
            Method::DELETE,
            "/api/v1/projects/{id}",
            format!("/api/v1/projects/{project_id}"),
            Body::None,
        ),
        call(
            Method::DELETE,
            "/api/v1/pipelines/{namespace}/{layer}/{name}",
            ORDERS,
            Body::None,
        ),
        call(
            Method::DELETE,
            "/api/v1/namespaces/{name}",
            "/api/v1/namespaces/tmp",
            Body::None,
        ),
    ]
}

/// Every write operation of both listeners' OpenAPI documents.
fn documented_writes(app: &TestApp) -> BTreeSet<(String, String)> {
    let (_, public) = rat_api::app::router_and_openapi(app.state.clone());
    let (_, internal) = rat_api::internal::router_and_openapi(app.state.clone());
    let mut writes = BTreeSet::new();
    for document in [public, internal] {
        let document = serde_json::to_value(&document).unwrap();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in ["post", "put", "delete", "patch"] {
                if item.get(method).is_some() {
                    writes.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    writes
}

fn assert_covers_every_write_route(app: &TestApp, calls: &[Call]) {
    let called: BTreeSet<(String, String)> = calls
        .iter()
        .map(|c| (c.method.as_str().to_owned(), c.route.to_owned()))
        .collect();
    assert_eq!(called, documented_writes(app), "the calls must cover every write route");
}

fn assert_no_pool_exhaustion(call: &Call, answer: &Answer) {
    assert!(
        answer.status != 503 && answer.status != 500,
        "{} {} answered {}: {}",
        call.method,
        call.path,
        answer.status,
        answer.text
    );
}

#[tokio::test]
async fn every_write_route_works_on_a_pool_of_one_connection() {
    let app = TestApp::builder()
        .internal_listener(None)
        .pool(1, Duration::from_secs(3))
        .start()
        .await;
    let calls = arrange(&app).await;
    assert_covers_every_write_route(&app, &calls);
    for call in &calls {
        let answer = send(&app, call).await;
        assert_no_pool_exhaustion(call, &answer);
    }
}

#[tokio::test]
async fn four_n_concurrent_writes_on_a_pool_of_n_answer_and_leave_reads_answering() {
    const POOL: usize = 2;
    let app = TestApp::builder()
        .internal_listener(None)
        .pool(POOL, Duration::from_secs(5))
        .start()
        .await;
    let calls = arrange(&app).await;
    for call in &calls {
        let writes = (0..4 * POOL).map(|_| send(&app, call));
        let (answers, read) = tokio::join!(futures_util::future::join_all(writes), app.get("/api/v1/namespaces"));
        for answer in &answers {
            assert_no_pool_exhaustion(call, answer);
        }
        assert_eq!(
            read.status, 200,
            "a read beside {} {}: {}",
            call.method, call.path, read.text
        );
    }
}
