//! `POST /api/v1/webhooks` (contract §9): a webhook trigger's token fires it
//! (201 `{run_id}`), from `X-Webhook-Token` or `Authorization: Bearer`; no
//! token 401, unknown or disabled 404, cooldown 429, never-published pipeline
//! 409; a per-client rate limit; no API key needed even when one is set;
//! every call audited, the token never.

use crate::common::{Answer, TestApp};
use rat_domain::{FeatureFlags, PipelineRef};
use rat_service::identity::Caller;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

const WEBHOOKS: &str = "/api/v1/webhooks";

/// A webhook trigger of `default/silver/<name>` (published when `publish`):
/// its id and its token.
async fn hook(app: &TestApp, name: &str, publish: bool, cooldown_seconds: i64) -> (String, String) {
    app.pipeline("default", "silver", name).await;
    if publish {
        rat_service::versions::publish(
            &app.services,
            &Caller::community(),
            &PipelineRef::parse("default", "silver", name).unwrap(),
            "first",
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    }
    let created = app
        .post(
            &format!("/api/v1/pipelines/default/silver/{name}/triggers"),
            json!({"type": "webhook", "cooldown_seconds": cooldown_seconds}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    (
        created.json["id"].as_str().unwrap().to_owned(),
        created.json["webhook_token"].as_str().unwrap().to_owned(),
    )
}

/// Calls the webhook route with `header` (name, value) and never an API key.
async fn call(app: &TestApp, header: Option<(&str, &str)>) -> Answer {
    let mut request = app.http.post(format!("{}{WEBHOOKS}", app.base));
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    TestApp::answer(request.send().await.unwrap()).await
}

async fn with_token(app: &TestApp, token: &str) -> Answer {
    call(app, Some(("X-Webhook-Token", token))).await
}

fn hash_prefix(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_token_fires_its_trigger_and_answers_201_with_the_run_id() {
    let app = TestApp::new().await;
    let (id, token) = hook(&app, "orders", true, 0).await;

    let fired = with_token(&app, &token).await;
    assert_eq!(fired.status, 201, "{}", fired.text);
    assert_eq!(keys(&fired.json), ["run_id"]);
    let run_id = fired.json["run_id"].as_str().unwrap();
    let run = app.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run.status, 200);
    assert_eq!(run.json["trigger"], format!("trigger:webhook:{}", hash_prefix(&token)));
    assert_eq!(run.json["status"], "pending");
    let trigger = app
        .get(&format!("/api/v1/pipelines/default/silver/orders/triggers/{id}"))
        .await;
    assert_eq!(trigger.json["last_run_id"], run_id);
    assert!(trigger.json["last_triggered_at"].is_string());

    // The bearer form works the same.
    let bearer = call(&app, Some(("Authorization", &format!("Bearer {token}")))).await;
    assert_eq!(bearer.status, 201, "{}", bearer.text);
    assert_ne!(bearer.json["run_id"], fired.json["run_id"]);
}

#[tokio::test]
async fn a_call_without_a_valid_token_is_refused() {
    let app = TestApp::new().await;
    let (id, token) = hook(&app, "orders", true, 0).await;

    let message = call(&app, None).await.assert_error(401, "UNAUTHENTICATED");
    assert!(message.contains("X-Webhook-Token"), "{message}");
    call(&app, Some(("Authorization", "Basic abc")))
        .await
        .assert_error(401, "UNAUTHENTICATED");
    with_token(&app, &"0".repeat(64)).await.assert_error(404, "NOT_FOUND");
    // The stored hash is no token.
    let hash: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    with_token(&app, &hash).await.assert_error(404, "NOT_FOUND");

    let disabled = app
        .put(
            &format!("/api/v1/pipelines/default/silver/orders/triggers/{id}"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(disabled.status, 200);
    with_token(&app, &token).await.assert_error(404, "NOT_FOUND");
    let client = app.db.client().await;
    let runs: i64 = client.query_one("SELECT count(*) FROM runs", &[]).await.unwrap().get(0);
    assert_eq!(runs, 0);
}

#[tokio::test]
async fn a_call_within_the_cooldown_answers_429() {
    let app = TestApp::new().await;
    let (_, token) = hook(&app, "orders", true, 3600).await;
    assert_eq!(with_token(&app, &token).await.status, 201);
    let message = with_token(&app, &token).await.assert_error(429, "RESOURCE_EXHAUSTED");
    assert!(message.contains("cooldown"), "{message}");
}

#[tokio::test]
async fn a_never_published_pipeline_answers_409() {
    let app = TestApp::new().await;
    let (id, token) = hook(&app, "draft", false, 0).await;
    let message = with_token(&app, &token).await.assert_error(409, "FAILED_PRECONDITION");
    assert!(message.contains("never been published"), "{message}");
    let trigger = app
        .get(&format!("/api/v1/pipelines/default/silver/draft/triggers/{id}"))
        .await;
    assert_eq!(
        trigger.json["last_triggered_at"],
        Value::Null,
        "the cooldown claim was undone"
    );
}

#[tokio::test]
async fn each_client_has_its_own_rate_limit() {
    let app = TestApp::builder()
        .settings(|settings| {
            settings.webhook_burst = 3;
            settings.webhook_rate_per_second = 0.01;
        })
        .start()
        .await;
    let (_, token) = hook(&app, "orders", true, 0).await;
    assert_eq!(with_token(&app, &token).await.status, 201);
    with_token(&app, &"0".repeat(64)).await.assert_error(404, "NOT_FOUND");
    call(&app, None).await.assert_error(401, "UNAUTHENTICATED");
    // The burst is spent, whatever the calls were: even a valid token waits.
    let limited = with_token(&app, &token).await;
    let message = limited.assert_error(429, "RESOURCE_EXHAUSTED");
    assert!(message.contains("too many"), "{message}");
    assert_eq!(limited.headers["retry-after"], "1");
    // The rest of the api is not limited.
    assert_eq!(app.get("/api/v1/pipelines").await.status, 200);
}

#[tokio::test]
async fn no_api_key_is_needed_even_when_one_is_set_and_every_call_is_audited() {
    let app = TestApp::builder().api_key("the-api-key").start().await;
    let (id, token) = hook(&app, "orders", true, 3600).await;

    let fired = with_token(&app, &token).await;
    assert_eq!(fired.status, 201, "{}", fired.text);
    with_token(&app, &token).await.assert_error(429, "RESOURCE_EXHAUSTED");
    with_token(&app, "wrong").await.assert_error(404, "NOT_FOUND");
    // Exactly this route: the others still need the key.
    let anonymous = app
        .http
        .get(format!("{}/api/v1/pipelines", app.base))
        .send()
        .await
        .unwrap();
    TestApp::answer(anonymous).await.assert_error(401, "UNAUTHENTICATED");

    let audit = app.audit_rows().await;
    let calls: Vec<_> = audit
        .iter()
        .filter(|row| {
            row.details
                .as_ref()
                .is_some_and(|d| d["path"] == WEBHOOKS && d["method"] == "POST")
        })
        .collect();
    assert_eq!(calls.len(), 3, "{audit:#?}");
    assert!(calls.iter().all(|row| row.actor == "webhook"));
    let statuses: Vec<u64> = calls
        .iter()
        .rev()
        .map(|row| row.details.as_ref().unwrap()["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 429, 404], "oldest first");
    let fire = calls
        .iter()
        .find(|row| row.action == "webhook.fire")
        .expect("named action");
    assert_eq!(fire.object_type.as_deref(), Some("trigger"));
    assert_eq!(fire.object_id.map(|u| u.to_string()), Some(id));
    let every_row = serde_json::to_string(&audit.iter().map(|r| &r.details).collect::<Vec<_>>()).unwrap();
    assert!(!every_row.contains(&token), "the token is never audited");
}

#[tokio::test]
async fn the_route_is_gone_while_the_feature_is_off() {
    let app = TestApp::new().await;
    let (_, token) = hook(&app, "orders", true, 0).await;
    let client = app.db.client().await;
    let off = FeatureFlags {
        pipeline_triggers: false,
        ..FeatureFlags::default()
    };
    rat_testkit::dao::settings::put_feature_flags(&client, &off)
        .await
        .unwrap();
    let message = with_token(&app, &token).await.assert_error(404, "NOT_FOUND");
    assert!(message.contains("pipeline_triggers"), "{message}");
    rat_testkit::dao::settings::put_feature_flags(&client, &FeatureFlags::default())
        .await
        .unwrap();
    assert_eq!(with_token(&app, &token).await.status, 201);
}
