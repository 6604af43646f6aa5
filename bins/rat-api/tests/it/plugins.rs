//! Plugins (seed 000, `plugins`): registration and health reports on the
//! runner listener, marked down by the reaper's pass when silent, listed at
//! `/plugins` and `/features`, removed by admins.

use std::time::Duration;

use crate::common::TestApp;
use crate::oidc::{Issuer, SigningKey, app_with, call};
use rat_service::reaper::{PassPolicy, run_pass};
use reqwest::Method;
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::watch;

const REGISTER: &str = "/api/v1/internal/plugins/register";

async fn listed(app: &TestApp) -> serde_json::Value {
    let answer = app.get("/api/v1/plugins?status=enabled").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json
}

async fn pass_at(app: &TestApp, now: OffsetDateTime, window: Duration) -> u64 {
    let (_tx, lost) = watch::channel(false);
    let policy = PassPolicy {
        plugin_report_window: window,
        ..PassPolicy::default()
    };
    let report = run_pass(&app.state.services, now, &policy, &lost).await.unwrap();
    let task = report
        .tasks
        .iter()
        .find(|t| t.task == "plugins")
        .expect("a plugins task");
    assert!(task.error.is_none(), "{task:?}");
    task.rows
}

#[tokio::test]
async fn plugins_register_report_health_and_go_down_when_silent() {
    let app = TestApp::builder().internal_listener(None).start().await;
    assert_eq!(listed(&app).await, json!([]));
    let registered = app
        .internal_post(
            REGISTER,
            json!({"name": "acl", "slot": "auth", "image": "rat/acl:1", "config": {"mode": "strict"}}),
        )
        .await;
    assert_eq!(registered.status, 200, "{}", registered.text);
    assert_eq!(registered.json["status"], "unknown");
    assert_eq!(registered.json["config"], json!({"mode": "strict"}));
    let healthy = app
        .internal_post("/api/v1/internal/plugins/acl/health", json!({"status": "healthy"}))
        .await;
    assert_eq!(healthy.status, 200, "{}", healthy.text);
    assert_eq!(healthy.json["status"], "healthy");
    let reported_at = OffsetDateTime::parse(
        healthy.json["last_health"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();

    // Re-registering is an upsert: new image and config, same status and report.
    let again = app
        .internal_post(REGISTER, json!({"name": "acl", "slot": "auth", "image": "rat/acl:2"}))
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    let plugins = listed(&app).await;
    assert_eq!(plugins.as_array().unwrap().len(), 1, "{plugins}");
    assert_eq!(plugins[0]["image"], "rat/acl:2");
    assert_eq!(plugins[0]["config"], json!({}));
    assert_eq!(plugins[0]["status"], "healthy");
    let features = app.get("/api/v1/features").await;
    assert_eq!(
        features.json["plugins"]["acl"],
        json!({"enabled": true, "type": "auth", "status": "healthy"}),
        "{}",
        features.text
    );

    // Malformed reports change nothing.
    for (path, body) in [
        (REGISTER, json!({"name": "Bad Name", "slot": "auth", "image": "x"})),
        (REGISTER, json!({"name": "acl", "slot": "", "image": "x"})),
        (
            REGISTER,
            json!({"name": "acl", "slot": "auth", "image": "x", "config": [1]}),
        ),
        (
            REGISTER,
            json!({"name": "acl", "slot": "a-slot-longer-than-twenty", "image": "x"}),
        ),
        ("/api/v1/internal/plugins/acl/health", json!({"status": "unknown"})),
        ("/api/v1/internal/plugins/acl/health", json!({"status": "fine"})),
    ] {
        app.internal_post(path, body)
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
    app.internal_post("/api/v1/internal/plugins/ghost/health", json!({"status": "healthy"}))
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(listed(&app).await, plugins);

    // The reaper's pass, with an injected clock: within the window nothing
    // changes; past it the plugin is down, once.
    let window = Duration::from_secs(300);
    assert_eq!(
        pass_at(&app, reported_at + time::Duration::seconds(299), window).await,
        0
    );
    assert_eq!(listed(&app).await[0]["status"], "healthy");
    assert_eq!(
        pass_at(&app, reported_at + time::Duration::seconds(301), window).await,
        1
    );
    assert_eq!(listed(&app).await[0]["status"], "down");
    assert_eq!(
        app.get("/api/v1/features").await.json["plugins"]["acl"]["status"],
        "down"
    );
    assert_eq!(
        pass_at(&app, reported_at + time::Duration::seconds(900), window).await,
        0
    );
    // A new report brings it back.
    let back = app
        .internal_post("/api/v1/internal/plugins/acl/health", json!({"status": "degraded"}))
        .await;
    assert_eq!(back.json["status"], "degraded", "{}", back.text);

    // The admin (Community mode's user) removes it; audited.
    assert_eq!(app.delete("/api/v1/plugins/acl").await.status, 204);
    assert_eq!(listed(&app).await, json!([]));
    app.delete("/api/v1/plugins/acl").await.assert_error(404, "NOT_FOUND");
    let audit = app.audit_rows().await;
    assert!(audit.iter().any(|e| e.action == "plugin.delete"), "{audit:#?}");
}

#[tokio::test]
async fn only_admins_remove_plugins() {
    let key = SigningKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let app = app_with(&issuer, Duration::from_secs(30)).await;
    let client = app.db.client().await;
    rat_testkit::dao::plugins::register(
        &client,
        &rat_domain::PluginName::parse("acl").unwrap(),
        "auth",
        "rat/acl:1",
        &json!({}),
    )
    .await
    .unwrap();
    let erin = key.mint(&issuer.claims("erin", &[]));
    let root = key.mint(&issuer.claims("root", &["rat-admin"]));
    call(&app, Method::DELETE, "/api/v1/plugins/acl", &erin, None)
        .await
        .assert_error(403, "FORBIDDEN");
    let still = call(&app, Method::GET, "/api/v1/plugins", &erin, None).await;
    assert_eq!(still.json.as_array().map(Vec::len), Some(1), "{}", still.text);
    let removed = call(&app, Method::DELETE, "/api/v1/plugins/acl", &root, None).await;
    assert_eq!(removed.status, 204, "{}", removed.text);
}
