//! `/api/v1/pipelines/{…}/triggers` (contract §9): typed configs validated on
//! create and update, webhook tokens generated and stored hashed, triggers
//! reachable only through their own pipeline, the feature flag.

use crate::common::{Answer, TestApp};
use rat_domain::FeatureFlags;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const BASE: &str = "/api/v1/pipelines/default/silver/orders/triggers";

const TRIGGER_FIELDS: [&str; 10] = [
    "config",
    "cooldown_seconds",
    "created_at",
    "enabled",
    "id",
    "last_run_id",
    "last_triggered_at",
    "pipeline_id",
    "type",
    "updated_at",
];

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn with(extra: &[&str]) -> Vec<String> {
    let mut fields: Vec<String> = TRIGGER_FIELDS.iter().chain(extra).map(|f| (*f).to_owned()).collect();
    fields.sort();
    fields
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn stored_config(app: &TestApp, id: &str) -> Value {
    let client = app.db.client().await;
    let id: Uuid = id.parse().unwrap();
    client
        .query_one("SELECT config FROM pipeline_triggers WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

async fn create(app: &TestApp, base: &str, body: Value) -> Answer {
    let answer = app.post(base, body).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer
}

fn id_of(answer: &Answer) -> String {
    answer.json["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_type_is_created_with_the_contract_shape() {
    let app = TestApp::new().await;
    let pipeline = app.pipeline("default", "silver", "orders").await;
    let _ = pipeline;
    let configs = [
        (
            "pipeline_success",
            json!({"namespace": "default", "layer": "bronze", "pipeline": "raw_orders"}),
        ),
        (
            "landing_zone_upload",
            json!({"namespace": "default", "zone_name": "uploads"}),
        ),
        (
            "file_pattern",
            json!({"namespace": "default", "zone_name": "uploads", "pattern": "orders_*.csv"}),
        ),
        ("cron", json!({"cron_expr": "0 * * * *"})),
        (
            "cron_dependency",
            json!({"cron_expr": "30 0 6 * * *", "dependencies": ["default.bronze.raw", "shop.silver.clean"]}),
        ),
    ];
    let client = app.db.client().await;
    let pipeline_id: Uuid = client
        .query_one("SELECT id FROM pipelines WHERE name = 'orders'", &[])
        .await
        .unwrap()
        .get(0);
    for (ty, config) in &configs {
        let created = create(&app, BASE, json!({"type": ty, "config": config})).await;
        assert_eq!(keys(&created.json), TRIGGER_FIELDS, "{ty}: no webhook fields");
        assert_eq!(created.json["type"], *ty);
        assert_eq!(created.json["config"], *config);
        assert_eq!(created.json["pipeline_id"], pipeline_id.to_string());
        assert_eq!(created.json["enabled"], true, "enabled by default");
        assert_eq!(created.json["cooldown_seconds"], 0);
        assert_eq!(created.json["last_triggered_at"], Value::Null);
        assert_eq!(created.json["last_run_id"], Value::Null);
        let got = app.get(&format!("{BASE}/{}", id_of(&created))).await;
        assert_eq!(got.status, 200, "{}", got.text);
        assert_eq!(got.json, created.json, "{ty}");
    }
    let listed = app.get(BASE).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(keys(&listed.json), ["total", "triggers"]);
    assert_eq!(listed.json["total"], configs.len());
    let types: Vec<&str> = listed.json["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, configs.map(|(ty, _)| ty), "oldest first");

    let disabled = create(
        &app,
        BASE,
        json!({"type": "cron", "config": {"cron_expr": "* * * * *"}, "enabled": false, "cooldown_seconds": 2592000}),
    )
    .await;
    assert_eq!(disabled.json["enabled"], false);
    assert_eq!(disabled.json["cooldown_seconds"], 2_592_000);

    let audit = app.audit_rows().await;
    let row = audit.iter().find(|r| r.action == "trigger.create").expect("audited");
    assert_eq!(row.object_type.as_deref(), Some("trigger"));
    assert_eq!(row.object_id.map(|u| u.to_string()), Some(id_of(&disabled)));
}

#[tokio::test]
async fn webhook_tokens_are_generated_shown_once_and_stored_hashed() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let created = create(&app, BASE, json!({"type": "webhook"})).await;
    assert_eq!(keys(&created.json), with(&["webhook_token", "webhook_url"]));
    assert_eq!(created.json["config"], json!({}), "the hash is never shown");
    assert_eq!(created.json["webhook_url"], format!("{}/api/v1/webhooks", app.base));
    let token = created.json["webhook_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    assert!(
        token.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{token}"
    );
    let id = id_of(&created);
    assert_eq!(
        stored_config(&app, &id).await,
        json!({"token_hash": sha256_hex(&token)}),
        "only the SHA-256 of the token is stored"
    );

    // Reads show the URL, never the token or its hash again.
    let got = app.get(&format!("{BASE}/{id}")).await;
    assert_eq!(keys(&got.json), with(&["webhook_url"]));
    assert_eq!(got.json["webhook_url"], created.json["webhook_url"]);
    assert_eq!(got.json["config"], json!({}));
    let listed = app.get(BASE).await;
    let updated = app.put(&format!("{BASE}/{id}"), json!({"enabled": false})).await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(keys(&updated.json), with(&["webhook_url"]));
    for answer in [&got, &listed, &updated] {
        assert!(!answer.text.contains(&token), "{}", answer.text);
        assert!(!answer.text.contains(&sha256_hex(&token)), "{}", answer.text);
    }

    // An explicit empty config is the same; every webhook gets its own token.
    let second = create(&app, BASE, json!({"type": "webhook", "config": {}})).await;
    assert_ne!(second.json["webhook_token"], created.json["webhook_token"]);

    // A client can never set the hash, on create or update.
    let forced = json!({"type": "webhook", "config": {"token_hash": "ab".repeat(32)}});
    app.post(BASE, forced).await.assert_error(400, "INVALID_ARGUMENT");
    app.put(
        &format!("{BASE}/{id}"),
        json!({"config": {"token_hash": "ab".repeat(32)}}),
    )
    .await
    .assert_error(400, "INVALID_ARGUMENT");
    // `{}` on update changes nothing: the token stays valid.
    let kept = app.put(&format!("{BASE}/{id}"), json!({"config": {}})).await;
    assert_eq!(kept.status, 200, "{}", kept.text);
    assert_eq!(
        stored_config(&app, &id).await,
        json!({"token_hash": sha256_hex(&token)})
    );
}

#[tokio::test]
async fn create_validates_type_config_and_cooldown() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    for bad in [
        json!({"type": "telepathy", "config": {}}),
        json!({"config": {"cron_expr": "* * * * *"}}),
        json!({"type": "pipeline_success", "config": {"namespace": "default", "layer": "platinum", "pipeline": "x"}}),
        json!({"type": "pipeline_success", "config": {"namespace": "default", "layer": "bronze"}}),
        json!({"type": "pipeline_success", "config": {"namespace": "default", "layer": "bronze", "pipeline": "x", "y": 1}}),
        json!({"type": "pipeline_success"}),
        json!({"type": "landing_zone_upload", "config": {"namespace": "Default", "zone_name": "uploads"}}),
        json!({"type": "file_pattern", "config": {"namespace": "default", "zone_name": "uploads", "pattern": ""}}),
        json!({"type": "file_pattern", "config": {"namespace": "default", "zone_name": "uploads", "pattern": "a/b"}}),
        json!({"type": "cron", "config": {"cron_expr": "every minute"}}),
        json!({"type": "cron_dependency", "config": {"cron_expr": "* * * * *", "dependencies": []}}),
        json!({"type": "cron_dependency", "config": {"cron_expr": "* * * * *", "dependencies": ["a.b"]}}),
        json!({"type": "cron", "config": {"cron_expr": "* * * * *"}, "cooldown_seconds": -1}),
        json!({"type": "cron", "config": {"cron_expr": "* * * * *"}, "cooldown_seconds": 2592001}),
        json!({"type": "cron", "config": {"cron_expr": "* * * * *"}, "cooldown_seconds": "1"}),
        json!({"type": "cron", "config": {"cron_expr": "* * * * *"}, "surprise": true}),
        json!({"type": "cron", "config": [1]}),
    ] {
        app.post(BASE, bad.clone()).await.assert_error(400, "INVALID_ARGUMENT");
    }
    // Every success of a pipeline starting itself again would never end.
    let message = app
        .post(
            BASE,
            json!({"type": "pipeline_success", "config": {"namespace": "default", "layer": "silver", "pipeline": "orders"}}),
        )
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    assert!(message.contains("own pipeline"), "{message}");
    let listed = app.get(BASE).await;
    assert_eq!(listed.json["total"], 0, "nothing refused was stored");
}

#[tokio::test]
async fn update_validates_and_never_changes_the_type() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let created = create(
        &app,
        BASE,
        json!({"type": "file_pattern", "config": {"namespace": "default", "zone_name": "uploads", "pattern": "*.csv"}}),
    )
    .await;
    let path = format!("{BASE}/{}", id_of(&created));

    let updated = app
        .put(
            &path,
            json!({"config": {"namespace": "default", "zone_name": "drops", "pattern": "*.json"}, "cooldown_seconds": 60}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(keys(&updated.json), TRIGGER_FIELDS);
    assert_eq!(
        updated.json["config"],
        json!({"namespace": "default", "zone_name": "drops", "pattern": "*.json"})
    );
    assert_eq!(updated.json["cooldown_seconds"], 60);
    assert_eq!(updated.json["enabled"], true, "absent fields are kept");
    let toggled = app
        .put(&path, json!({"enabled": false, "config": null, "type": "file_pattern"}))
        .await;
    assert_eq!(toggled.status, 200, "{}", toggled.text);
    assert_eq!(toggled.json["enabled"], false);
    assert_eq!(toggled.json["config"], updated.json["config"], "null keeps the config");
    assert_eq!(toggled.json["cooldown_seconds"], 60);

    let message = app
        .put(&path, json!({"type": "cron", "config": {"cron_expr": "* * * * *"}}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    assert!(message.contains("type"), "{message}");
    for bad in [
        json!({"type": "telepathy"}),
        json!({"config": {"cron_expr": "* * * * *"}}),
        json!({"config": {"namespace": "default", "zone_name": "drops", "pattern": "a/b"}}),
        json!({"config": {"namespace": "default", "zone_name": "drops"}}),
        json!({"cooldown_seconds": -5}),
        json!({"cooldown_seconds": 2592001}),
        json!({"pipeline_id": Uuid::new_v4()}),
    ] {
        app.put(&path, bad.clone()).await.assert_error(400, "INVALID_ARGUMENT");
    }
    assert_eq!(
        app.get(&path).await.json,
        toggled.json,
        "refused updates change nothing"
    );

    // A pipeline_success trigger cannot be turned onto its own pipeline either.
    let watcher = create(
        &app,
        BASE,
        json!({"type": "pipeline_success", "config": {"namespace": "default", "layer": "bronze", "pipeline": "raw"}}),
    )
    .await;
    app.put(
        &format!("{BASE}/{}", id_of(&watcher)),
        json!({"config": {"namespace": "default", "layer": "silver", "pipeline": "orders"}}),
    )
    .await
    .assert_error(400, "INVALID_ARGUMENT");

    let audit = app.audit_rows().await;
    let updates = audit
        .iter()
        .filter(|r| r.action == "trigger.update" && r.object_id.map(|u| u.to_string()) == Some(id_of(&created)));
    assert_eq!(updates.count(), 2);
}

#[tokio::test]
async fn a_trigger_is_only_reachable_through_its_own_pipeline() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    app.pipeline("default", "silver", "other").await;
    let created = create(
        &app,
        BASE,
        json!({"type": "cron", "config": {"cron_expr": "* * * * *"}}),
    )
    .await;
    let id = id_of(&created);
    let foreign = format!("/api/v1/pipelines/default/silver/other/triggers/{id}");
    app.get(&foreign).await.assert_error(404, "NOT_FOUND");
    app.put(&foreign, json!({"enabled": false}))
        .await
        .assert_error(404, "NOT_FOUND");
    app.delete(&foreign).await.assert_error(404, "NOT_FOUND");
    assert_eq!(
        app.get("/api/v1/pipelines/default/silver/other/triggers").await.json["total"],
        0
    );
    let own = app.get(&format!("{BASE}/{id}")).await;
    assert_eq!(own.json, created.json, "the foreign calls changed nothing");

    for missing in [
        format!("{BASE}/{}", Uuid::new_v4()),
        format!("{BASE}/not-a-uuid"),
        format!("/api/v1/pipelines/default/silver/ghost/triggers/{id}"),
    ] {
        app.get(&missing).await.assert_error(404, "NOT_FOUND");
        app.put(&missing, json!({})).await.assert_error(404, "NOT_FOUND");
        app.delete(&missing).await.assert_error(404, "NOT_FOUND");
    }
    app.get("/api/v1/pipelines/default/silver/ghost/triggers")
        .await
        .assert_error(404, "NOT_FOUND");
    app.post(
        "/api/v1/pipelines/default/silver/ghost/triggers",
        json!({"type": "webhook"}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    for bad in [
        "/api/v1/pipelines/default/platinum/orders/triggers".to_owned(),
        format!("/api/v1/pipelines/Default/silver/orders/triggers/{id}"),
    ] {
        app.get(&bad).await.assert_error(400, "INVALID_ARGUMENT");
    }
}

#[tokio::test]
async fn delete_list_paging_and_totals() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let mut ids = Vec::new();
    for minute in 0..5 {
        let created = create(
            &app,
            BASE,
            json!({"type": "cron", "config": {"cron_expr": format!("{minute} * * * *")}}),
        )
        .await;
        ids.push(id_of(&created));
    }
    let page = app.get(&format!("{BASE}?limit=2&offset=1")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let got: Vec<&str> = page.json["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[1].as_str(), ids[2].as_str()]);
    assert_eq!(page.json["total"], 5);
    for bad in ["limit=x", "limit=0", "offset=-1"] {
        app.get(&format!("{BASE}?{bad}"))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }

    let deleted = app.delete(&format!("{BASE}/{}", ids[0])).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    app.get(&format!("{BASE}/{}", ids[0]))
        .await
        .assert_error(404, "NOT_FOUND");
    app.delete(&format!("{BASE}/{}", ids[0]))
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(app.get(BASE).await.json["total"], 4);
    let audit = app.audit_rows().await;
    let row = audit.iter().find(|r| r.action == "trigger.delete").expect("audited");
    assert_eq!(row.object_id.map(|u| u.to_string()), Some(ids[0].clone()));
}

#[tokio::test]
async fn the_routes_are_gone_while_the_feature_is_off() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let created = create(&app, BASE, json!({"type": "webhook"})).await;
    let path = format!("{BASE}/{}", id_of(&created));
    let client = app.db.client().await;
    let off = FeatureFlags {
        pipeline_triggers: false,
        ..FeatureFlags::default()
    };
    rat_testkit::dao::settings::put_feature_flags(&client, &off)
        .await
        .unwrap();
    app.get(BASE).await.assert_error(404, "NOT_FOUND");
    app.post(BASE, json!({"type": "webhook"}))
        .await
        .assert_error(404, "NOT_FOUND");
    app.get(&path).await.assert_error(404, "NOT_FOUND");
    app.put(&path, json!({"enabled": false}))
        .await
        .assert_error(404, "NOT_FOUND");
    let message = app.delete(&path).await.assert_error(404, "NOT_FOUND");
    assert!(message.contains("pipeline_triggers"), "{message}");

    rat_testkit::dao::settings::put_feature_flags(&client, &FeatureFlags::default())
        .await
        .unwrap();
    let back = app.get(&path).await;
    assert_eq!(back.status, 200, "nothing was changed while the feature was off");
    assert_eq!(back.json["enabled"], true);
}
