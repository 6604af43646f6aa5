//! Contract §1 on every kind of failure: the envelope, request ids, security
//! headers, body limits, authentication, audit, panics, CORS.

use crate::common::TestApp;
use axum::routing::get;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_the_envelope() {
    let app = TestApp::new().await;
    app.get("/api/v1/nope").await.assert_error(404, "NOT_FOUND");
    app.get("/nope").await.assert_error(404, "NOT_FOUND");
    let answer = app.request(Method::PATCH, "/api/v1/namespaces", None).await;
    answer.assert_error(405, "INVALID_ARGUMENT");
    app.delete("/api/v1/namespaces")
        .await
        .assert_error(405, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn malformed_and_misshapen_json_are_400() {
    let app = TestApp::new().await;
    let response = app
        .http
        .post(format!("{}/api/v1/namespaces", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let answer = TestApp::answer(response).await;
    assert!(answer.assert_error(400, "INVALID_ARGUMENT").contains("malformed JSON"));
    let answer = app.post("/api/v1/namespaces", json!({"name": 42})).await;
    answer.assert_error(400, "INVALID_ARGUMENT");
    let answer = app
        .post("/api/v1/namespaces", json!({"name": "x", "surprise": true}))
        .await;
    assert!(answer.assert_error(400, "INVALID_ARGUMENT").contains("surprise"));
    // serde would read a struct from an array; every body is an object.
    let answer = app.post("/api/v1/namespaces", json!(["x", ""])).await;
    assert!(answer.assert_error(400, "INVALID_ARGUMENT").contains("JSON object"));
    let answer = app.post("/api/v1/namespaces", json!(0)).await;
    answer.assert_error(400, "INVALID_ARGUMENT");
}

/// JSON Schema (and so the OpenAPI document) counts `160.0` as an integer:
/// the server reads it as one, and still refuses `160.5`.
#[tokio::test]
async fn integral_numbers_written_with_a_fraction_are_integers() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let path = "/api/v1/pipelines/default/silver/orders";
    let answer = app.put(path, json!({"max_versions": 160.0})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(app.get(path).await.json["max_versions"], 160);
    let answer = app.put(path, json!({"max_versions": 160.5})).await;
    answer.assert_error(400, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = TestApp::builder().max_json_body(1024).start().await;
    let big = "x".repeat(4096);
    let answer = app
        .post("/api/v1/namespaces", json!({"name": "big", "description": big}))
        .await;
    answer.assert_error(413, "RESOURCE_EXHAUSTED");
    assert_eq!(
        app.get("/api/v1/namespaces").await.json["total"],
        1,
        "nothing was created"
    );
}

#[tokio::test]
async fn request_ids_are_accepted_validated_or_generated_and_echoed() {
    let app = TestApp::new().await;
    let echoed = app
        .http
        .get(format!("{}/health", app.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
    let too_long = "a".repeat(129);
    let replaced = app
        .http
        .get(format!("{}/health", app.base))
        .header("x-request-id", &too_long)
        .send()
        .await
        .unwrap();
    let id = replaced.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, too_long);
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    // Errors carry it too.
    let missing = app.get("/api/v1/nope").await;
    assert!(missing.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn security_headers_are_on_every_answer() {
    let app = TestApp::new().await;
    for answer in [app.get("/health").await, app.get("/api/v1/nope").await] {
        assert_eq!(answer.headers["x-content-type-options"], "nosniff");
        assert_eq!(answer.headers["x-frame-options"], "DENY");
        assert_eq!(answer.headers["referrer-policy"], "no-referrer");
    }
}

#[tokio::test]
async fn cors_allows_the_configured_origin_only() {
    let app = TestApp::new().await;
    let allowed = app
        .http
        .get(format!("{}/api/v1/namespaces", app.base))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let other = app
        .http
        .get(format!("{}/api/v1/namespaces", app.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // A browser's preflight for a webhook call from the portal's origin.
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/api/v1/webhooks", app.base))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-webhook-token,content-type,accept")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed_headers = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for header in [
        "x-webhook-token",
        "content-type",
        "accept",
        "authorization",
        "x-request-id",
        "if-match",
    ] {
        assert!(allowed_headers.contains(header), "{header} not in {allowed_headers}");
    }
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let extra = axum::Router::new().route(
        "/api/v1/__panic",
        get(|| async {
            if true {
                panic!("boom: SELECT secret FROM somewhere");
            }
            ""
        }),
    );
    let app = TestApp::builder().extra_routes(extra).start().await;
    let answer = app.get("/api/v1/__panic").await;
    assert_eq!(answer.assert_error(500, "INTERNAL"), "internal error");
    assert!(!answer.text.contains("SELECT"), "no internals leak: {}", answer.text);
    assert!(answer.headers.contains_key("x-request-id"));
    assert_eq!(app.get("/health").await.status, 200, "still serving");
}

#[tokio::test]
async fn an_api_key_is_required_when_configured() {
    let app = TestApp::builder().api_key("s3cret-key").start().await;
    // The app's helper sends the key.
    assert_eq!(app.get("/api/v1/namespaces").await.status, 200);
    let anonymous = reqwest::Client::new()
        .get(format!("{}/api/v1/namespaces", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    TestApp::answer(anonymous).await.assert_error(401, "UNAUTHENTICATED");
    let wrong = reqwest::Client::new()
        .get(format!("{}/api/v1/namespaces", app.base))
        .bearer_auth("s3cret-kez")
        .send()
        .await
        .unwrap();
    TestApp::answer(wrong).await.assert_error(401, "UNAUTHENTICATED");
    // Health stays open.
    let health = reqwest::Client::new()
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn mutations_are_audited_after_the_handler_with_their_outcome() {
    let app = TestApp::builder().api_key("k").start().await;
    let created = app.post("/api/v1/namespaces", json!({"name": "sales"})).await;
    assert_eq!(created.status, 201);
    let refused = app.post("/api/v1/namespaces", json!({"name": "sales"})).await;
    refused.assert_error(409, "ALREADY_EXISTS");
    let unauthenticated = reqwest::Client::new()
        .delete(format!("{}/api/v1/namespaces/sales", app.base))
        .header("x-request-id", "req-401")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    // Reads are not audited.
    app.get("/api/v1/namespaces").await;

    let rows = app.audit_rows().await;
    assert_eq!(rows.len(), 2, "a refused request is counted, not written: {rows:#?}");
    let (conflict, success) = (&rows[0], &rows[1]);
    assert_eq!(success.actor, "api-key");
    assert_eq!(success.action, "namespace.create");
    assert_eq!(success.object_type.as_deref(), Some("namespace"));
    assert!(success.object_id.is_some());
    let details = success.details.as_ref().unwrap();
    assert_eq!(details["status"], 201);
    assert_eq!(details["method"], "POST");
    assert_eq!(details["path"], "/api/v1/namespaces");
    assert!(details["request_id"].is_string());
    assert_eq!(details["client_ip"], "127.0.0.1");
    assert_eq!(conflict.details.as_ref().unwrap()["status"], 409);

    // Refusals are summed into one row per kind when flushed.
    assert_eq!(app.state.flush_refusals().await.unwrap(), 1);
    let rows = app.audit_rows().await;
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let denied = &rows[0];
    assert_eq!(denied.actor, "unauthenticated");
    assert_eq!(denied.action, "request.unauthenticated");
    let details = denied.details.as_ref().unwrap();
    assert_eq!(details["count"], 1);
    assert_eq!(details["clients"], json!([{"client_ip": "127.0.0.1", "count": 1}]));
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let app = TestApp::new().await;
    let health = app.get("/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json["status"], "ok");
    assert!(health.json["version"].is_string() && health.json["git_commit"].is_string());
    assert_eq!(app.get("/health/live").await.json["status"], "ok");
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.json["status"], "ready");
    assert_eq!(ready.json["checks"]["postgres"]["status"], "ok");
    assert_eq!(ready.json["checks"]["s3"]["status"], "ok");
    app.get("/api/v1/namespaces").await;
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("rat_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/api/v1/namespaces\""), "{metrics}");
    assert!(metrics.contains("rat_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("rat_db_pool_max_size"));
}

#[tokio::test]
async fn features_and_plugins_answer_what_the_portal_expects() {
    let app = TestApp::new().await;
    let features = app.get("/api/v1/features").await;
    assert_eq!(features.status, 200);
    assert_eq!(features.json["edition"], "community");
    assert_eq!(features.json["namespaces"], true);
    assert_eq!(features.json["landing_zones"], true);
    assert_eq!(features.json["plugins"], json!({}));
    let plugins = app.get("/api/v1/plugins?status=enabled").await;
    assert_eq!(plugins.status, 200);
    assert_eq!(plugins.json, json!([]), "a bare array");
    let client = app.db.client().await;
    let name = rat_domain::PluginName::parse("auth-oidc").unwrap();
    rat_testkit::dao::plugins::register(&client, &name, "auth", "ghcr.io/rat/auth:1", &json!({}))
        .await
        .unwrap();
    // ratd's `plugins` map: name → {enabled, type}.
    assert_eq!(
        app.get("/api/v1/features").await.json["plugins"],
        json!({"auth-oidc": {"enabled": true, "type": "auth", "status": "unknown"}})
    );
    let plugins = app.get("/api/v1/plugins?status=enabled").await;
    assert_eq!(plugins.json.as_array().map(Vec::len), Some(1), "{}", plugins.text);
    assert_eq!(plugins.json[0]["name"], "auth-oidc");
    app.get("/api/v1/plugins?status=purple")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn a_database_failure_answers_500_without_sql_or_driver_text() {
    let app = TestApp::new().await;
    let client = app.db.client().await;
    // Break the database under the api: the query now fails inside Postgres.
    client.batch_execute("DROP TABLE plugins").await.unwrap();
    let answer = app.get("/api/v1/plugins").await;
    assert_eq!(answer.assert_error(500, "INTERNAL"), "internal error");
    for leak in ["plugins", "relation", "SELECT", "does not exist", "42P01", "db error"] {
        assert!(!answer.text.contains(leak), "{leak} leaked: {}", answer.text);
    }
}

#[tokio::test]
async fn disabled_features_answer_404_feature_disabled_and_come_back_when_enabled() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let gated = [
        "/api/v1/pipelines/default/silver/orders/versions",
        "/api/v1/pipelines/default/silver/orders/triggers",
        "/api/v1/pipelines/default/silver/orders/tests",
        "/api/v1/landing-zones",
        "/api/v1/audit",
    ];
    for path in gated {
        assert_eq!(app.get(path).await.status, 200, "{path} works while enabled");
    }
    let client = app.db.client().await;
    let all_off = rat_domain::FeatureFlags {
        quality_tests: false,
        landing_zones: false,
        audit_log: false,
        pipeline_triggers: false,
        pipeline_versions: false,
    };
    rat_testkit::dao::settings::put_feature_flags(&client, &all_off)
        .await
        .unwrap();
    for path in gated {
        let message = app.get(path).await.assert_error(404, "NOT_FOUND");
        assert!(message.contains("FEATURE_DISABLED"), "{path}: {message}");
    }
    // The features route reports them off; ungated routes still work.
    let features = app.get("/api/v1/features").await;
    assert_eq!(features.json["landing_zones"], false);
    assert_eq!(app.get("/api/v1/pipelines").await.status, 200);
    // Every replica reads the flags from Postgres: turning them on takes effect at once.
    rat_testkit::dao::settings::put_feature_flags(&client, &rat_domain::FeatureFlags::default())
        .await
        .unwrap();
    for path in gated {
        assert_eq!(app.get(path).await.status, 200, "{path} works again");
    }
    // Each flag closes its own routes and no other: a gate reading the wrong
    // flag would fail here.
    let names = [
        "pipeline_versions",
        "pipeline_triggers",
        "quality_tests",
        "landing_zones",
        "audit_log",
    ];
    for (off, name) in names.iter().enumerate() {
        let flags = rat_domain::FeatureFlags {
            pipeline_versions: off != 0,
            pipeline_triggers: off != 1,
            quality_tests: off != 2,
            landing_zones: off != 3,
            audit_log: off != 4,
        };
        rat_testkit::dao::settings::put_feature_flags(&client, &flags)
            .await
            .unwrap();
        for (i, path) in gated.iter().enumerate() {
            let answer = app.get(path).await;
            if i == off {
                let message = answer.assert_error(404, "NOT_FOUND");
                assert_eq!(
                    message,
                    format!("FEATURE_DISABLED: the {name} feature is disabled"),
                    "{path}"
                );
            } else {
                assert_eq!(answer.status, 200, "{path} stays open while only {name} is off");
            }
        }
    }
}
