//! The runner protocol through rat-api's internal listener: the whole life of
//! a run (claim with presigned or served file URLs, heartbeat, logs,
//! complete with quality results), ratd's callback, the runner token kept
//! apart from user keys on both listeners, and refused reports (409, nothing
//! changes).

use crate::common::{Answer, TestApp};
use rat_domain::{PipelineRef, Severity, TestName};
use rat_testkit::dao::quality::{self, NewQualityTest};
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

const RUNNER_TOKEN: &str = "runner-secret-token";
const API_KEY: &str = "user-api-key";

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().expect("an object").keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted(fields: &[&str]) -> Vec<String> {
    let mut fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    fields.sort();
    fields
}

/// An app with an API key and a runner listener requiring [`RUNNER_TOKEN`].
async fn app() -> TestApp {
    TestApp::builder()
        .api_key(API_KEY)
        .internal_listener(Some(RUNNER_TOKEN))
        .start()
        .await
}

/// Creates, publishes and runs `default/silver/<name>` through the public
/// API (with the typed client); returns the pipeline's JSON and the run id.
async fn published_run(app: &TestApp, name: &str) -> (Value, Uuid) {
    let pipeline = app.pipeline("default", "silver", name).await;
    let client = app.client();
    client
        .publish(
            rat_client::PipelineAddress::new("default", "silver", name),
            &rat_wire::versions::PublishBody {
                message: Some("v1".to_owned()),
            },
        )
        .await
        .expect("published");
    let run = client
        .create_run(&rat_wire::runs::CreateRun {
            namespace: "default".to_owned(),
            layer: "silver".to_owned(),
            pipeline: name.to_owned(),
            trigger: None,
        })
        .await
        .expect("run created");
    (pipeline, run.run_id)
}

/// Overwrites a file at HEAD through the public API.
async fn overwrite(app: &TestApp, key: &str, content: &str) {
    let answer = app
        .put(&format!("/api/v1/files/{key}"), json!({"content": content}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

async fn claim(app: &TestApp, runner: &str) -> Answer {
    app.internal_post(
        "/internal/v1/runs/claim",
        json!({"runner_id": runner, "max_runs": 10, "lease_seconds": 120}),
    )
    .await
}

async fn quality_test(app: &TestApp, name: &str, severity: Severity) {
    let client = app.db.client().await;
    let pipeline =
        rat_testkit::dao::pipelines::get_by_ref(&client, &PipelineRef::parse("default", "silver", "orders").unwrap())
            .await
            .unwrap();
    quality::create(
        &client,
        &NewQualityTest {
            pipeline_id: pipeline.id,
            name: TestName::parse(name).unwrap(),
            description: String::new(),
            severity,
            s3_path: format!("{}tests/quality/{name}.sql", pipeline.s3_path),
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_whole_life_of_a_run_through_the_internal_listener_on_s3() {
    let app = app().await;
    let (pipeline, run_id) = published_run(&app, "orders").await;
    quality_test(&app, "no_nulls", Severity::Error).await;
    quality_test(&app, "few_dupes", Severity::Warn).await;
    let prefix = pipeline["s3_path"].as_str().unwrap().to_owned();
    let source_key = format!("{prefix}pipeline.sql");
    let pinned_source = app.get(&format!("/api/v1/files/{source_key}")).await.json["content"]
        .as_str()
        .unwrap()
        .to_owned();
    // HEAD moves on after the run was created; the run still gets what it pinned.
    overwrite(&app, &source_key, "SELECT 'draft, not published'").await;

    let claimed = claim(&app, "runner-1").await;
    assert_eq!(claimed.status, 200, "{}", claimed.text);
    assert_eq!(keys(&claimed.json), ["runs"]);
    let runs = claimed.json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        keys(run),
        sorted(&[
            "run_id",
            "namespace",
            "layer",
            "pipeline",
            "type",
            "trigger",
            "version_number",
            "lease_expires_at",
            "files",
            "iceberg"
        ])
    );
    assert_eq!(run["run_id"], run_id.to_string());
    assert_eq!(
        (&run["namespace"], &run["layer"], &run["pipeline"], &run["type"]),
        (&json!("default"), &json!("silver"), &json!("orders"), &json!("sql"))
    );
    assert_eq!(run["trigger"], "manual");
    assert_eq!(run["version_number"], 1);
    let lease = OffsetDateTime::parse(
        run["lease_expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let from_now = lease - OffsetDateTime::now_utc();
    assert!(
        from_now > time::Duration::seconds(100) && from_now <= time::Duration::seconds(120),
        "{from_now}"
    );

    let files = run["files"].as_array().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["config.yaml", "pipeline.sql"]);
    for file in files {
        assert_eq!(keys(file), sorted(&["key", "path", "version_id", "url"]));
        assert_eq!(file["key"], format!("{prefix}{}", file["path"].as_str().unwrap()));
        let url = file["url"].as_str().unwrap();
        assert!(
            url.contains("versionId="),
            "a presigned URL for the exact version: {url}"
        );
        // A plain GET, no credentials: the pinned version, not HEAD.
        let fetched = reqwest::get(url).await.unwrap();
        assert_eq!(fetched.status(), 200);
        assert_eq!(
            fetched.headers()["x-amz-version-id"].to_str().unwrap(),
            file["version_id"].as_str().unwrap()
        );
        let body = fetched.text().await.unwrap();
        if file["path"] == "pipeline.sql" {
            assert_eq!(body, pinned_source);
            assert_ne!(body, "SELECT 'draft, not published'");
        }
    }
    // The public view agrees: running, started.
    let public = app.get(&format!("/api/v1/runs/{run_id}")).await.json;
    assert_eq!(public["status"], "running");
    assert!(public["started_at"].is_string());
    // Nothing else is pending.
    assert_eq!(claim(&app, "runner-2").await.json, json!({"runs": []}));

    let beat = app
        .internal_post(
            &format!("/internal/v1/runs/{run_id}/heartbeat"),
            json!({"runner_id": "runner-1", "lease_seconds": 300}),
        )
        .await;
    assert_eq!(beat.status, 200, "{}", beat.text);
    assert_eq!(
        keys(&beat.json),
        sorted(&["run_id", "status", "lease_expires_at", "stop"])
    );
    assert_eq!(
        (&beat.json["run_id"], &beat.json["status"], &beat.json["stop"]),
        (&json!(run_id.to_string()), &json!("running"), &json!(false))
    );
    // Without lease_seconds, the lease is renewed for as long as the last one (300 s).
    let renewed = app
        .internal_post(
            &format!("/internal/v1/runs/{run_id}/heartbeat"),
            json!({"runner_id": "runner-1"}),
        )
        .await;
    assert_eq!(renewed.status, 200, "{}", renewed.text);
    let until = OffsetDateTime::parse(
        renewed.json["lease_expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let from_now = until - OffsetDateTime::now_utc();
    assert!(
        from_now > time::Duration::seconds(280) && from_now <= time::Duration::seconds(300),
        "{from_now}"
    );

    let logs = app
        .internal_post(
            &format!("/internal/v1/runs/{run_id}/logs"),
            json!({"runner_id": "runner-1", "entries": [
                {"timestamp": "2026-05-01T10:00:00Z", "level": "INFO", "message": "reading"},
                {"timestamp": "2026-05-01T10:00:01.5Z", "level": "warning", "message": "slow"}
            ]}),
        )
        .await;
    assert_eq!(logs.status, 204, "{}", logs.text);
    assert!(logs.text.is_empty());
    let shown = app.get(&format!("/api/v1/runs/{run_id}/logs")).await.json;
    assert_eq!(
        shown["logs"],
        json!([
            {"timestamp": "2026-05-01T10:00:00Z", "level": "info", "message": "reading"},
            {"timestamp": "2026-05-01T10:00:01.5Z", "level": "warn", "message": "slow"}
        ])
    );

    let complete = app
        .internal_post(
            &format!("/internal/v1/runs/{run_id}/complete"),
            json!({
                "runner_id": "runner-1",
                "status": "success",
                "duration_ms": 1234,
                "rows_written": 99,
                "phase_profiles": [{"name": "write", "duration_ms": 1000}],
                "quality_results": [
                    {"test": "no_nulls", "value": 0, "expected": 0, "duration_ms": 3},
                    {"test": "few_dupes", "value": 2}
                ]
            }),
        )
        .await;
    assert_eq!(complete.status, 200, "{}", complete.text);
    assert_eq!(
        complete.json,
        json!({"run_id": run_id.to_string(), "status": "success"})
    );
    let done = app.get(&format!("/api/v1/runs/{run_id}")).await.json;
    assert_eq!(
        (
            &done["status"],
            &done["duration_ms"],
            &done["rows_written"],
            &done["error"]
        ),
        (&json!("success"), &json!(1234), &json!(99), &Value::Null)
    );
    assert!(done["finished_at"].is_string());
    let client = app.db.client().await;
    let results = quality::results_for_run(&client, run_id.into(), 10).await.unwrap();
    let mut statuses: Vec<&str> = results.iter().map(|r| r.status.as_str()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["passed", "warned"]);

    // Late reports: 409, nothing changes.
    for (path, body) in [
        ("heartbeat", json!({"runner_id": "runner-1"})),
        (
            "logs",
            json!({"runner_id": "runner-1", "entries": [
            {"timestamp": "2026-05-01T10:00:02Z", "level": "info", "message": "late"}]}),
        ),
        (
            "complete",
            json!({"runner_id": "runner-1", "status": "failed", "error": "late"}),
        ),
    ] {
        let late = app
            .internal_post(&format!("/internal/v1/runs/{run_id}/{path}"), body)
            .await;
        let message = late.assert_error(409, "FAILED_PRECONDITION");
        assert!(message.contains("already success"), "{path}: {message}");
    }
    assert_eq!(app.get(&format!("/api/v1/runs/{run_id}")).await.json, done);
    assert_eq!(
        app.get(&format!("/api/v1/runs/{run_id}/logs")).await.json["logs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        quality::results_for_run(&client, run_id.into(), 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn on_the_filesystem_store_files_are_served_by_the_internal_file_route() {
    let app = TestApp::builder()
        .internal_listener(Some(RUNNER_TOKEN))
        .fs_store()
        .start()
        .await;
    let (pipeline, run_id) = published_run(&app, "orders").await;
    let prefix = pipeline["s3_path"].as_str().unwrap().to_owned();
    let source_key = format!("{prefix}pipeline.sql");
    let pinned_source = app.get(&format!("/api/v1/files/{source_key}")).await.json["content"]
        .as_str()
        .unwrap()
        .to_owned();
    overwrite(&app, &source_key, "SELECT 2").await;

    let claimed = claim(&app, "runner-1").await;
    assert_eq!(claimed.status, 200, "{}", claimed.text);
    let run = &claimed.json["runs"][0];
    assert_eq!(run["run_id"], run_id.to_string());
    let internal_base = app.internal_base.clone().unwrap();
    for file in run["files"].as_array().unwrap() {
        let url = file["url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{internal_base}/internal/v1/files?key=")),
            "{url}"
        );
        assert!(url.contains("&version="), "{url}");
        // The route needs the runner token.
        let anonymous = TestApp::answer(app.http.get(url).send().await.unwrap()).await;
        anonymous.assert_error(401, "UNAUTHENTICATED");
        let fetched = app.http.get(url).bearer_auth(RUNNER_TOKEN).send().await.unwrap();
        assert_eq!(fetched.status(), 200);
        assert_eq!(fetched.headers()["content-type"], "application/octet-stream");
        assert_eq!(
            fetched.headers()["x-amz-version-id"].to_str().unwrap(),
            file["version_id"].as_str().unwrap()
        );
        let body = fetched.text().await.unwrap();
        if file["path"] == "pipeline.sql" {
            assert_eq!(body, pinned_source, "the pinned version, not HEAD");
        }
    }
    let missing = app
        .internal_get(&format!("/internal/v1/files?key={source_key}&version=no-such-version"))
        .await;
    missing.assert_error(404, "NOT_FOUND");
    let bad = app
        .internal_get("/internal/v1/files?key=../etc/passwd&version=v1")
        .await;
    bad.assert_error(400, "INVALID_ARGUMENT");
    let incomplete = app.internal_get(&format!("/internal/v1/files?key={source_key}")).await;
    incomplete.assert_error(400, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn the_runner_token_and_user_keys_never_cross_listeners() {
    let app = app().await;
    let (_, run_id) = published_run(&app, "orders").await;
    let routes = [
        (Method::POST, "/internal/v1/runs/claim".to_owned()),
        (Method::POST, format!("/internal/v1/runs/{run_id}/heartbeat")),
        (Method::POST, format!("/internal/v1/runs/{run_id}/logs")),
        (Method::POST, format!("/internal/v1/runs/{run_id}/complete")),
        (Method::POST, format!("/api/v1/internal/runs/{run_id}/status")),
        (Method::GET, "/internal/v1/files?key=a/b&version=v".to_owned()),
        (Method::GET, "/internal/v1/openapi.json".to_owned()),
        (Method::GET, "/no/such/route".to_owned()),
    ];
    for (method, path) in &routes {
        for token in [None, Some("wrong-token"), Some(API_KEY)] {
            let answer = app
                .internal_request_with(method.clone(), path, Some(json!({"runner_id": "r"})), token)
                .await;
            answer.assert_error(401, "UNAUTHENTICATED");
            assert_eq!(answer.headers["www-authenticate"], "Bearer", "{method} {path}");
        }
    }
    // Nothing was claimed by the refused requests.
    assert_eq!(
        app.get(&format!("/api/v1/runs/{run_id}")).await.json["status"],
        "pending"
    );

    // The runner token opens nothing on the public listener...
    let public = app
        .http
        .get(format!("{}/api/v1/namespaces", app.base))
        .bearer_auth(RUNNER_TOKEN)
        .send()
        .await
        .unwrap();
    TestApp::answer(public).await.assert_error(401, "UNAUTHENTICATED");
    // ...which does not serve the runner routes at all.
    for (path, token) in [
        ("/internal/v1/runs/claim", RUNNER_TOKEN),
        ("/internal/v1/runs/claim", API_KEY),
        (&format!("/api/v1/internal/runs/{run_id}/status") as &str, API_KEY),
    ] {
        let answer = app
            .http
            .post(format!("{}{path}", app.base))
            .bearer_auth(token)
            .json(&json!({"runner_id": "r", "run_id": run_id.to_string(), "status": "success"}))
            .send()
            .await
            .unwrap();
        TestApp::answer(answer).await.assert_error(404, "NOT_FOUND");
    }
    assert_eq!(
        app.get(&format!("/api/v1/runs/{run_id}")).await.json["status"],
        "pending"
    );

    // The right token works, and the listener documents itself.
    let spec = app.internal_get("/internal/v1/openapi.json").await;
    assert_eq!(spec.status, 200);
    for path in [
        "/internal/v1/runs/claim",
        "/internal/v1/runs/{id}/heartbeat",
        "/internal/v1/runs/{id}/logs",
        "/internal/v1/runs/{id}/complete",
        "/api/v1/internal/runs/{id}/status",
        "/api/v1/internal/failed-merges",
        "/api/v1/internal/plugins/register",
        "/api/v1/internal/plugins/{name}/health",
        "/internal/v1/files",
    ] {
        assert!(spec.json["paths"][path].is_object(), "{path} is not documented");
    }
    let claim_body = &spec.json["components"]["schemas"]["ClaimBody"]["properties"];
    assert!(
        claim_body["plugins"].is_object(),
        "the claim documents plugins: {claim_body}"
    );
    // The public document does not list them.
    let public_spec = app.get("/api/v1/openapi.json").await.json;
    let public_paths: Vec<&String> = public_spec["paths"].as_object().unwrap().keys().collect();
    assert!(public_paths.iter().all(|p| !p.contains("internal")), "{public_paths:?}");
}

#[tokio::test]
async fn the_runner_listener_answers_like_the_public_one_outside_its_routes() {
    let app = app().await;
    let unknown = app.internal_get("/internal/v1/no/such/route").await;
    assert_eq!(unknown.assert_error(404, "NOT_FOUND"), "route not found");
    let wrong_method = app.internal_get("/internal/v1/runs/claim").await;
    assert_eq!(
        wrong_method.assert_error(405, "INVALID_ARGUMENT"),
        "method not allowed on this route"
    );
    let refused = app
        .internal_request_with(Method::GET, "/internal/v1/openapi.json", None, None)
        .await;
    refused.assert_error(401, "UNAUTHENTICATED");
    let served = app.internal_get("/internal/v1/openapi.json").await;
    assert_eq!(served.status, 200);
    // The same outer layers as the public listener: security headers and a
    // request id on every answer, errors and refusals included.
    for answer in [&served, &unknown, &wrong_method, &refused] {
        assert_eq!(answer.headers["x-content-type-options"], "nosniff", "{}", answer.text);
        assert_eq!(answer.headers["x-frame-options"], "DENY", "{}", answer.text);
        assert_eq!(answer.headers["referrer-policy"], "no-referrer", "{}", answer.text);
        assert!(answer.headers.contains_key("x-request-id"), "{}", answer.text);
    }
}

#[tokio::test]
async fn without_a_runner_token_the_listener_is_open_only_in_community_mode() {
    // Community mode (no API key), loopback: runners need no token.
    let community = TestApp::builder().internal_listener(None).start().await;
    let (_, run_id) = published_run(&community, "orders").await;
    let claimed = community
        .internal_request_with(
            Method::POST,
            "/internal/v1/runs/claim",
            Some(json!({"runner_id": "local"})),
            None,
        )
        .await;
    assert_eq!(claimed.status, 200, "{}", claimed.text);
    assert_eq!(claimed.json["runs"][0]["run_id"], run_id.to_string());

    // With an API key but no runner token, the listener refuses everything.
    let closed = TestApp::builder()
        .api_key(API_KEY)
        .internal_listener(None)
        .start()
        .await;
    for token in [None, Some(API_KEY), Some("anything")] {
        let answer = closed
            .internal_request_with(
                Method::POST,
                "/internal/v1/runs/claim",
                Some(json!({"runner_id": "local"})),
                token,
            )
            .await;
        let message = answer.assert_error(401, "UNAUTHENTICATED");
        assert!(message.contains("RAT_RUNNER_TOKEN"), "{message}");
    }
}

#[tokio::test]
async fn reports_about_runs_the_runner_does_not_hold_are_refused_with_409() {
    let app = app().await;
    let (_, held) = published_run(&app, "orders").await;
    let claimed = claim(&app, "runner-1").await;
    assert_eq!(claimed.json["runs"][0]["run_id"], held.to_string());
    let pending = app
        .post(
            "/api/v1/runs",
            json!({"namespace": "default", "layer": "silver", "pipeline": "orders"}),
        )
        .await
        .json["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = app.get(&format!("/api/v1/runs/{held}")).await.json;

    let entries = json!([{"timestamp": "2026-05-01T10:00:00Z", "level": "info", "message": "x"}]);
    for id in [held.to_string(), pending.clone()] {
        for (path, body) in [
            ("heartbeat", json!({"runner_id": "runner-2"})),
            ("logs", json!({"runner_id": "runner-2", "entries": entries})),
            ("complete", json!({"runner_id": "runner-2", "status": "success"})),
        ] {
            let answer = app.internal_post(&format!("/internal/v1/runs/{id}/{path}"), body).await;
            let message = answer.assert_error(409, "FAILED_PRECONDITION");
            assert!(message.contains("not held"), "{path}: {message}");
        }
    }
    assert_eq!(app.get(&format!("/api/v1/runs/{held}")).await.json, before);
    assert_eq!(
        app.get(&format!("/api/v1/runs/{pending}")).await.json["status"],
        "pending"
    );
    assert!(
        app.get(&format!("/api/v1/runs/{held}/logs")).await.json["logs"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Unknown and malformed run ids name no run.
    for id in [Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let answer = app
            .internal_post(
                &format!("/internal/v1/runs/{id}/heartbeat"),
                json!({"runner_id": "runner-1"}),
            )
            .await;
        answer.assert_error(404, "NOT_FOUND");
    }

    // An unknown quality test is a 400 and records nothing: the run stays running.
    let unknown_test = app
        .internal_post(
            &format!("/internal/v1/runs/{held}/complete"),
            json!({"runner_id": "runner-1", "status": "success",
                   "quality_results": [{"test": "ghost", "value": 0}]}),
        )
        .await;
    let message = unknown_test.assert_error(400, "INVALID_ARGUMENT");
    assert!(message.contains("ghost"), "{message}");
    assert_eq!(app.get(&format!("/api/v1/runs/{held}")).await.json, before);

    // A cancelled run: the holder's heartbeat says stop, its completion is refused.
    let cancel = app.post(&format!("/api/v1/runs/{held}/cancel"), json!({})).await;
    assert_eq!(cancel.status, 200, "{}", cancel.text);
    let beat = app
        .internal_post(
            &format!("/internal/v1/runs/{held}/heartbeat"),
            json!({"runner_id": "runner-1"}),
        )
        .await;
    assert_eq!(beat.status, 200, "{}", beat.text);
    assert_eq!(
        (&beat.json["status"], &beat.json["stop"]),
        (&json!("cancelled"), &json!(true))
    );
    let complete = app
        .internal_post(
            &format!("/internal/v1/runs/{held}/complete"),
            json!({"runner_id": "runner-1", "status": "success"}),
        )
        .await;
    complete.assert_error(409, "FAILED_PRECONDITION");
    assert_eq!(
        app.get(&format!("/api/v1/runs/{held}")).await.json["status"],
        "cancelled"
    );
}

#[tokio::test]
async fn malformed_runner_requests_are_400_before_anything_changes() {
    let app = app().await;
    let (_, run_id) = published_run(&app, "orders").await;
    let long_id = "r".repeat(256);
    for body in [
        json!({}),
        json!({"runner_id": ""}),
        json!({"runner_id": long_id}),
        json!({"runner_id": "r", "max_runs": 0}),
        json!({"runner_id": "r", "max_runs": 101}),
        json!({"runner_id": "r", "lease_seconds": 9}),
        json!({"runner_id": "r", "lease_seconds": 3601}),
        json!({"runner_id": "r", "surprise": true}),
    ] {
        let answer = app.internal_post("/internal/v1/runs/claim", body.clone()).await;
        answer.assert_error(400, "INVALID_ARGUMENT");
    }
    assert_eq!(
        app.get(&format!("/api/v1/runs/{run_id}")).await.json["status"],
        "pending"
    );
    let claimed = claim(&app, "r").await;
    assert_eq!(claimed.json["runs"][0]["run_id"], run_id.to_string());

    let entry = |timestamp: &str, level: &str| json!({"timestamp": timestamp, "level": level, "message": "m"});
    let too_many: Vec<Value> = (0..1001).map(|_| entry("2026-05-01T10:00:00Z", "info")).collect();
    for body in [
        json!({"runner_id": "r", "entries": [entry("yesterday", "info")]}),
        json!({"runner_id": "r", "entries": [entry("2026-05-01T10:00:00Z", "loud")]}),
        json!({"runner_id": "r", "entries": [{"timestamp": "2026-05-01T10:00:00Z", "level": "info",
                                                "message": "x".repeat(65_537)}]}),
        json!({"runner_id": "r", "entries": too_many}),
        json!({"runner_id": "r"}),
    ] {
        let answer = app
            .internal_post(&format!("/internal/v1/runs/{run_id}/logs"), body)
            .await;
        answer.assert_error(400, "INVALID_ARGUMENT");
    }
    for body in [
        json!({"runner_id": "r", "status": "running"}),
        json!({"runner_id": "r", "status": "done"}),
        json!({"runner_id": "r", "status": "success", "rows_written": -1}),
        json!({"runner_id": "r", "status": "success", "duration_ms": 3_000_000_000_i64}),
        json!({"runner_id": "r", "status": "success", "quality_results": [{"test": "Bad Name", "value": 0}]}),
        json!({"runner_id": "r", "status": "success", "quality_results": [{"test": "t"}]}),
    ] {
        let answer = app
            .internal_post(&format!("/internal/v1/runs/{run_id}/complete"), body.clone())
            .await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
    }
    for body in [json!({"runner_id": "r", "lease_seconds": 1}), json!({"runner_id": ""})] {
        let answer = app
            .internal_post(&format!("/internal/v1/runs/{run_id}/heartbeat"), body)
            .await;
        answer.assert_error(400, "INVALID_ARGUMENT");
    }
    let run = app.get(&format!("/api/v1/runs/{run_id}")).await.json;
    assert_eq!(run["status"], "running");
    assert!(
        app.get(&format!("/api/v1/runs/{run_id}/logs")).await.json["logs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_ratd_callback_is_accepted_on_the_internal_listener() {
    let app = app().await;
    let (_, run_id) = published_run(&app, "orders").await;
    let path = format!("/api/v1/internal/runs/{run_id}/status");
    // Exactly what ratd's runner sends: an empty error, extra fields.
    let ratd_body = json!({
        "run_id": run_id.to_string(),
        "status": "success",
        "error": "",
        "duration_ms": 5000,
        "rows_written": 42,
        "archived_landing_zones": ["default/raw-uploads"]
    });
    // success straight from pending is not a move the state machine allows.
    let refused = app.internal_post(&path, ratd_body.clone()).await;
    refused.assert_error(409, "FAILED_PRECONDITION");
    assert_eq!(
        app.get(&format!("/api/v1/runs/{run_id}")).await.json["status"],
        "pending"
    );

    let running = app
        .internal_post(&path, json!({"run_id": run_id.to_string(), "status": "running"}))
        .await;
    assert_eq!(running.status, 200, "{}", running.text);
    assert_eq!(running.json, json!({"run_id": run_id.to_string(), "status": "running"}));
    let done = app.internal_post(&path, ratd_body.clone()).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.json, json!({"run_id": run_id.to_string(), "status": "success"}));
    let run = app.get(&format!("/api/v1/runs/{run_id}")).await.json;
    assert_eq!(
        (&run["status"], &run["duration_ms"], &run["rows_written"], &run["error"]),
        (&json!("success"), &json!(5000), &json!(42), &Value::Null)
    );

    // Late: 409, nothing changes.
    let late = app
        .internal_post(
            &path,
            json!({"run_id": run_id.to_string(), "status": "failed", "error": "late"}),
        )
        .await;
    late.assert_error(409, "FAILED_PRECONDITION");
    assert_eq!(app.get(&format!("/api/v1/runs/{run_id}")).await.json, run);

    let other = Uuid::new_v4();
    let mismatch = app
        .internal_post(&path, json!({"run_id": other.to_string(), "status": "failed"}))
        .await;
    mismatch.assert_error(400, "INVALID_ARGUMENT");
    for status in ["pending", "bogus"] {
        let answer = app
            .internal_post(&path, json!({"run_id": run_id.to_string(), "status": status}))
            .await;
        answer.assert_error(400, "INVALID_ARGUMENT");
    }
    let unknown = app
        .internal_post(
            &format!("/api/v1/internal/runs/{other}/status"),
            json!({"run_id": other.to_string(), "status": "failed"}),
        )
        .await;
    unknown.assert_error(404, "NOT_FOUND");
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child process on drop (a failed assertion must not leak it).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_both_listeners_and_stops_both_on_sigterm() {
    let db = rat_testkit::TestDatabase::new().await;
    let dir = tempfile::Builder::new().prefix("rat-api-runner-").tempdir().unwrap();
    let (public_port, internal_port) = (free_port(), free_port());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_rat-api"))
        .env("RAT_DATABASE_URL", db.url())
        .env("RAT_STORE", format!("fs:{}", dir.path().display()))
        .env("RAT_LISTEN_ADDR", format!("127.0.0.1:{public_port}"))
        .env("RAT_INTERNAL_LISTEN_ADDR", format!("127.0.0.1:{internal_port}"))
        .env("RAT_API_KEY", API_KEY)
        .env("RAT_RUNNER_TOKEN", RUNNER_TOKEN)
        .env_remove("RAT_INTERNAL_PUBLIC_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Child(child);
    let public = format!("http://127.0.0.1:{public_port}");
    let internal = format!("http://127.0.0.1:{internal_port}");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !http
        .get(format!("{public}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(std::time::Instant::now() < deadline, "rat-api did not start");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let claim = |token: &'static str| {
        http.post(format!("{internal}/internal/v1/runs/claim"))
            .bearer_auth(token)
            .json(&json!({"runner_id": "bin-runner"}))
            .send()
    };
    let refused = TestApp::answer(claim(API_KEY).await.unwrap()).await;
    refused.assert_error(401, "UNAUTHENTICATED");
    let answered = TestApp::answer(claim(RUNNER_TOKEN).await.unwrap()).await;
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert_eq!(answered.json, json!({"runs": []}));
    assert!(answered.headers.contains_key("x-request-id"));

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rat-api did not stop after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "clean exit");
    assert!(
        http.get(format!("{internal}/internal/v1/openapi.json"))
            .send()
            .await
            .is_err(),
        "the runner listener is closed too"
    );
}

#[tokio::test]
async fn runners_report_their_plugins_and_the_portal_lists_the_live_ones() {
    let app = app().await;
    assert_eq!(listed(&app).await, json!([]), "no runner reported");
    // A claim without the field (older runners) works and reports nothing.
    assert_eq!(claim(&app, "old-runner").await.status, 200);
    assert_eq!(listed(&app).await, json!([]));

    let soft_delete = json!({"name": "soft_delete", "group": "rat.merge_strategies", "version": "1.0", "package_name": "rat-plugins"});
    let hook = json!({"name": "notify", "group": "rat.hooks", "version": "0.2", "package_name": "rat-hooks"});
    for (runner, plugins) in [("r1", json!([soft_delete, hook])), ("r2", json!([soft_delete]))] {
        let answer = app
            .internal_post(
                "/internal/v1/runs/claim",
                json!({"runner_id": runner, "plugins": plugins}),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    assert_eq!(
        listed(&app).await,
        json!([hook, soft_delete]),
        "de-duplicated, by group then name"
    );

    // A new report replaces the runner's previous one.
    assert_eq!(
        app.internal_post("/internal/v1/runs/claim", json!({"runner_id": "r1", "plugins": []}))
            .await
            .status,
        200
    );
    assert_eq!(listed(&app).await, json!([soft_delete]));

    // A heartbeat reports them too.
    let (_, run_id) = published_run(&app, "orders").await;
    assert_eq!(claim(&app, "r3").await.status, 200);
    let beat = app
        .internal_post(
            &format!("/internal/v1/runs/{run_id}/heartbeat"),
            json!({"runner_id": "r3", "plugins": [hook]}),
        )
        .await;
    assert_eq!(beat.status, 200, "{}", beat.text);
    assert_eq!(listed(&app).await, json!([hook, soft_delete]));

    // A runner not seen for longer than the longest lease is not live.
    let client = app.db.client().await;
    let old = OffsetDateTime::now_utc() - time::Duration::hours(2);
    let stale = rat_testkit::dao::runner_plugins::RunnerPlugin {
        name: "stale".into(),
        group: "rat.hooks".into(),
        version: "9".into(),
        package_name: "gone".into(),
    };
    rat_testkit::dao::runner_plugins::report(&client, "dead-runner", &[stale], old)
        .await
        .unwrap();
    assert_eq!(listed(&app).await, json!([hook, soft_delete]));

    // A plugin without a name is refused, and nothing changes.
    let refused = app
        .internal_post(
            "/internal/v1/runs/claim",
            json!({"runner_id": "r2", "plugins": [{"name": "", "group": "g"}]}),
        )
        .await;
    refused.assert_error(400, "INVALID_ARGUMENT");
    assert_eq!(listed(&app).await, json!([hook, soft_delete]));
}

/// `GET /api/v1/runner/plugins`, which must answer 200.
async fn listed(app: &TestApp) -> Value {
    let answer = app.get("/api/v1/runner/plugins").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json
}

#[tokio::test]
async fn merge_failures_are_accepted_stored_and_listed_to_admins() {
    let app = app().await;
    let path = "/api/v1/internal/failed-merges";
    let full = json!({"run_id": "7d3c", "branch_name": "run-7d3c", "source_hash": "abc", "target_hash": "def",
                      "error_kind": "conflict", "error_message": "both changed orders"});
    let accepted = app.internal_post(path, full.clone()).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(accepted.json, json!({"status": "accepted"}));
    // The hashes are optional.
    let minimal =
        json!({"run_id": "8e4d", "branch_name": "run-8e4d", "error_kind": "network", "error_message": "timeout"});
    assert_eq!(app.internal_post(path, minimal).await.status, 200);
    // Every required field missing is a 400, and nothing is stored.
    for field in ["run_id", "branch_name", "error_kind", "error_message"] {
        let mut body = full.clone();
        body.as_object_mut().unwrap().remove(field);
        let refused = app.internal_post(path, body).await;
        assert_eq!(refused.status, 400, "without {field}: {}", refused.text);
        assert!(refused.json["error"]["code"].is_string());
    }
    let mut blank = full.clone();
    blank["branch_name"] = json!(" ");
    assert_eq!(app.internal_post(path, blank).await.status, 400);
    // Without the runner token: refused.
    let anonymous = app
        .internal_request_with(Method::POST, path, Some(full.clone()), None)
        .await;
    assert_eq!(anonymous.status, 401);

    let listed = app.get("/api/v1/admin/failed-merges").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["total"], 2);
    let newest = &listed.json["failed_merges"][0];
    assert_eq!(
        (&newest["branch_name"], &newest["source_hash"]),
        (&json!("run-8e4d"), &Value::Null)
    );
    let oldest = &listed.json["failed_merges"][1];
    assert_eq!(
        keys(oldest),
        sorted(&[
            "branch_name",
            "created_at",
            "error_kind",
            "error_message",
            "id",
            "run_id",
            "source_hash",
            "target_hash"
        ])
    );
    for field in [
        "run_id",
        "branch_name",
        "source_hash",
        "target_hash",
        "error_kind",
        "error_message",
    ] {
        assert_eq!(oldest[field], full[field], "{field}");
    }
    let page = app.get("/api/v1/admin/failed-merges?limit=1&offset=1").await.json;
    assert_eq!(
        (page["total"].as_i64(), page["failed_merges"][0]["run_id"].as_str()),
        (Some(2), Some("7d3c"))
    );
}

/// The claim answer carries the Iceberg maintenance settings of each run's
/// pipeline: the system values, or the pipeline's overrides.
#[tokio::test]
async fn claimed_runs_carry_the_iceberg_maintenance_settings() {
    let app = app().await;
    let (_, defaulted) = published_run(&app, "orders").await;
    let (_, overridden) = published_run(&app, "customers").await;
    let system = app
        .put(
            "/api/v1/admin/retention/config",
            json!({"iceberg_snapshot_max_age_days": 11, "iceberg_orphan_file_max_age_days": 4}),
        )
        .await;
    assert_eq!(system.status, 200, "{}", system.text);
    let pipeline = app
        .put(
            "/api/v1/pipelines/default/silver/customers/retention",
            json!({"iceberg_orphan_file_max_age_days": 9}),
        )
        .await;
    assert_eq!(pipeline.status, 200, "{}", pipeline.text);

    let claimed = claim(&app, "runner-1").await;
    assert_eq!(claimed.status, 200, "{}", claimed.text);
    let runs = claimed.json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{}", claimed.text);
    let iceberg_of = |id: Uuid| {
        runs.iter()
            .find(|r| r["run_id"] == id.to_string())
            .map(|r| r["iceberg"].clone())
            .expect("the run was claimed")
    };
    assert_eq!(
        iceberg_of(defaulted),
        json!({"snapshot_max_age_days": 11, "orphan_file_max_age_days": 4})
    );
    assert_eq!(
        iceberg_of(overridden),
        json!({"snapshot_max_age_days": 11, "orphan_file_max_age_days": 9})
    );
}
