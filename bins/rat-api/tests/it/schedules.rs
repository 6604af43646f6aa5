//! `/api/v1/schedules` (contract §8): create, read, update, delete and list,
//! cron validated on create and update, `next_run_at` recomputed each time.

use crate::common::{Answer, TestApp};
use rat_domain::{CronExpr, ScheduleTimezone};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

const SCHEDULE_FIELDS: [&str; 10] = [
    "created_at",
    "cron",
    "enabled",
    "id",
    "last_run_at",
    "last_run_id",
    "next_run_at",
    "pipeline_id",
    "timezone",
    "updated_at",
];

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn time_of(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("a timestamp"), &Rfc3339).unwrap()
}

/// Sends a request between two clock readings; `next_run_at` must be the
/// first slot after one of them (the request's own `now` lies in between).
async fn timed<F: Future<Output = Answer>>(request: F) -> (Answer, OffsetDateTime, OffsetDateTime) {
    let before = OffsetDateTime::now_utc();
    let answer = request.await;
    let after = OffsetDateTime::now_utc();
    (answer, before, after)
}

#[track_caller]
fn assert_next_slot(answer: &Value, cron: &str, zone: &str, before: OffsetDateTime, after: OffsetDateTime) {
    let cron = CronExpr::parse(cron).unwrap();
    let zone = ScheduleTimezone::parse(zone).unwrap();
    let next = time_of(&answer["next_run_at"]);
    let candidates = [cron.next_after(before, &zone), cron.next_after(after, &zone)];
    assert!(candidates.contains(&Some(next)), "{next} not in {candidates:?}");
    assert!(next > before);
}

fn body(pipeline: &str, cron: &str) -> Value {
    json!({"namespace": "default", "layer": "silver", "pipeline": pipeline, "cron": cron})
}

async fn create(app: &TestApp, body: Value) -> Uuid {
    let answer = app.post("/api/v1/schedules", body).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn create_answers_the_contract_shape_and_computes_the_first_slot() {
    let app = TestApp::new().await;
    let pipeline = app.pipeline("default", "silver", "orders").await;
    let _ = pipeline;
    let (created, before, after) = timed(app.post("/api/v1/schedules", body("orders", "*/5 * * * *"))).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(keys(&created.json), ["cron", "enabled", "id"]);
    assert_eq!(created.json["cron"], "*/5 * * * *");
    assert_eq!(created.json["enabled"], true, "enabled by default");
    let id = created.json["id"].as_str().unwrap();

    let got = app.get(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(keys(&got.json), SCHEDULE_FIELDS);
    let client = app.db.client().await;
    let pipeline_id: Uuid = client
        .query_one("SELECT id FROM pipelines WHERE name = 'orders'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(got.json["id"], id);
    assert_eq!(got.json["pipeline_id"], pipeline_id.to_string());
    assert_eq!(got.json["cron"], "*/5 * * * *");
    assert_eq!(got.json["timezone"], "UTC", "the default zone");
    assert_eq!(got.json["enabled"], true);
    assert_eq!(got.json["last_run_id"], Value::Null);
    assert_eq!(got.json["last_run_at"], Value::Null);
    assert_next_slot(&got.json, "*/5 * * * *", "UTC", before, after);
    time_of(&got.json["created_at"]);
    time_of(&got.json["updated_at"]);

    let audit = app.audit_rows().await;
    let row = audit.iter().find(|r| r.action == "schedule.create").expect("audited");
    assert_eq!(row.object_type.as_deref(), Some("schedule"));
    assert_eq!(row.object_id.map(|u| u.to_string()).as_deref(), Some(id));
}

#[tokio::test]
async fn time_zones_six_fields_and_disabled_schedules() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let mut paris = body("orders", "30 0 9 * * *");
    paris["timezone"] = json!("Europe/Paris");
    let (created, before, after) = timed(app.post("/api/v1/schedules", paris)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let got = app
        .get(&format!("/api/v1/schedules/{}", created.json["id"].as_str().unwrap()))
        .await;
    assert_eq!(got.json["timezone"], "Europe/Paris");
    assert_eq!(got.json["cron"], "30 0 9 * * *");
    assert_next_slot(&got.json, "30 0 9 * * *", "Europe/Paris", before, after);
    let next = time_of(&got.json["next_run_at"]);
    assert!(
        matches!(next.hour(), 7 | 8) && next.minute() == 0 && next.second() == 30,
        "09:00:30 in Paris is 07:00:30 or 08:00:30 UTC, got {next}"
    );

    let mut off = body("orders", "0 * * * *");
    off["enabled"] = json!(false);
    let created = app.post("/api/v1/schedules", off).await;
    assert_eq!(created.json["enabled"], false);
    let got = app
        .get(&format!("/api/v1/schedules/{}", created.json["id"].as_str().unwrap()))
        .await;
    assert_eq!(got.json["enabled"], false);
    assert_eq!(
        got.json["next_run_at"],
        Value::Null,
        "a disabled schedule has no next slot"
    );
}

#[tokio::test]
async fn create_errors() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    for cron in ["", "* * * *", "* * * * * * *", "61 * * * *", "not a cron", "* * 32 * *"] {
        let message = app
            .post("/api/v1/schedules", body("orders", cron))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
        assert!(message.contains("cron"), "{cron:?}: {message}");
    }
    let mut bad_zone = body("orders", "* * * * *");
    bad_zone["timezone"] = json!("Mars/Olympus");
    app.post("/api/v1/schedules", bad_zone)
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    let mut bad_layer = body("orders", "* * * * *");
    bad_layer["layer"] = json!("platinum");
    app.post("/api/v1/schedules", bad_layer)
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    let mut unknown_field = body("orders", "* * * * *");
    unknown_field["cron_expr"] = json!("* * * * *");
    app.post("/api/v1/schedules", unknown_field)
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.post(
        "/api/v1/schedules",
        json!({"namespace": "default", "layer": "silver", "pipeline": "orders"}),
    )
    .await
    .assert_error(400, "INVALID_ARGUMENT");
    app.post("/api/v1/schedules", body("ghost", "* * * * *"))
        .await
        .assert_error(404, "NOT_FOUND");
    let client = app.db.client().await;
    let count: i64 = client
        .query_one("SELECT count(*) FROM schedules", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);

    // A pipeline that was never published may be scheduled; it fires once published.
    assert_eq!(
        app.post("/api/v1/schedules", body("orders", "* * * * *")).await.status,
        201
    );
}

#[tokio::test]
async fn update_validates_the_cron_and_recomputes_the_next_slot() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let id = create(&app, body("orders", "*/5 * * * *")).await;
    let path = format!("/api/v1/schedules/{id}");
    let client = app.db.client().await;
    let ancient = OffsetDateTime::UNIX_EPOCH;

    // ratd skips validation on update; we do not.
    let message = app
        .put(&path, json!({"cron": "every minute"}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    assert!(message.contains("cron"), "{message}");
    app.put(&path, json!({"cron": "61 * * * *"}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.put(&path, json!({"timezone": "Mars/Olympus"}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.put(&path, json!({"enabled": "yes"}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.put(&path, json!({"pipeline": "other"}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    assert_eq!(
        app.get(&path).await.json["cron"],
        "*/5 * * * *",
        "refused updates change nothing"
    );

    let (updated, before, after) = timed(app.put(&path, json!({"cron": "0 * * * *"}))).await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(keys(&updated.json), SCHEDULE_FIELDS);
    assert_eq!(updated.json["cron"], "0 * * * *");
    assert_next_slot(&updated.json, "0 * * * *", "UTC", before, after);
    assert_eq!(app.get(&path).await.json, updated.json);

    // Disabling clears the next slot; enabling computes it from now.
    let disabled = app.put(&path, json!({"enabled": false})).await;
    assert_eq!(disabled.json["enabled"], false);
    assert_eq!(disabled.json["next_run_at"], Value::Null);
    assert_eq!(disabled.json["cron"], "0 * * * *", "absent fields are kept");
    let (enabled, before, after) = timed(app.put(&path, json!({"enabled": true}))).await;
    assert_eq!(enabled.json["enabled"], true);
    assert_next_slot(&enabled.json, "0 * * * *", "UTC", before, after);

    // Every update recomputes, even one that changes nothing else.
    client
        .execute("UPDATE schedules SET next_run_at = $2 WHERE id = $1", &[&id, &ancient])
        .await
        .unwrap();
    let (same, before, after) = timed(app.put(&path, json!({"cron": null}))).await;
    assert_eq!(same.status, 200, "{}", same.text);
    assert_next_slot(&same.json, "0 * * * *", "UTC", before, after);

    // A new zone moves the slot into that zone.
    let (zoned, before, after) = timed(app.put(&path, json!({"timezone": "Asia/Kolkata", "cron": "0 9 * * *"}))).await;
    assert_eq!(zoned.json["timezone"], "Asia/Kolkata");
    assert_next_slot(&zoned.json, "0 9 * * *", "Asia/Kolkata", before, after);
    let next = time_of(&zoned.json["next_run_at"]);
    assert_eq!((next.hour(), next.minute()), (3, 30), "09:00 in Kolkata is 03:30 UTC");

    let audit = app.audit_rows().await;
    let updates = audit
        .iter()
        .filter(|r| r.action == "schedule.update" && r.object_id == Some(id));
    assert_eq!(
        updates.count(),
        5,
        "each successful update is audited with its schedule"
    );

    for missing in [
        format!("/api/v1/schedules/{}", Uuid::new_v4()),
        "/api/v1/schedules/nope".to_owned(),
    ] {
        app.put(&missing, json!({"enabled": false}))
            .await
            .assert_error(404, "NOT_FOUND");
    }
}

#[tokio::test]
async fn delete_and_missing_schedules() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let id = create(&app, body("orders", "* * * * *")).await;
    let path = format!("/api/v1/schedules/{id}");
    let deleted = app.delete(&path).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert!(deleted.text.is_empty());
    app.get(&path).await.assert_error(404, "NOT_FOUND");
    app.delete(&path).await.assert_error(404, "NOT_FOUND");
    for malformed in ["/api/v1/schedules/nope", "/api/v1/schedules/42"] {
        assert_eq!(
            app.get(malformed).await.assert_error(404, "NOT_FOUND"),
            "schedule not found"
        );
        app.delete(malformed).await.assert_error(404, "NOT_FOUND");
    }
    let audit = app.audit_rows().await;
    let row = audit.iter().find(|r| r.action == "schedule.delete").expect("audited");
    assert_eq!(row.object_id, Some(id));
}

#[tokio::test]
async fn list_filters_and_pages_in_sql() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    app.pipeline("default", "gold", "orders").await;
    app.pipeline("shop", "silver", "sales").await;
    let a = create(&app, body("orders", "* * * * *")).await;
    let mut gold = body("orders", "0 * * * *");
    gold["layer"] = json!("gold");
    let b = create(&app, gold).await;
    let mut shop = body("sales", "0 0 * * *");
    shop["namespace"] = json!("shop");
    shop["enabled"] = json!(false);
    let c = create(&app, shop).await;
    let d = create(&app, body("orders", "*/2 * * * *")).await;

    let ids = |answer: &Answer| -> Vec<Uuid> {
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    let all = app.get("/api/v1/schedules").await;
    assert_eq!(keys(&all.json), ["schedules", "total"]);
    assert_eq!(ids(&all), [a, b, c, d], "oldest first");
    assert_eq!(all.json["total"], 4);
    assert_eq!(keys(&all.json["schedules"][0]), SCHEDULE_FIELDS);
    for (query, expected) in [
        ("namespace=default", vec![a, b, d]),
        ("layer=silver", vec![a, c, d]),
        ("namespace=default&layer=silver&pipeline=orders", vec![a, d]),
        ("pipeline=sales", vec![c]),
        ("enabled=false", vec![c]),
        ("enabled=true&layer=gold", vec![b]),
        ("namespace=ghost", vec![]),
    ] {
        let answer = app.get(&format!("/api/v1/schedules?{query}")).await;
        assert_eq!(ids(&answer), expected, "{query}");
        assert_eq!(answer.json["total"], expected.len(), "{query}");
    }
    let paged = app.get("/api/v1/schedules?limit=2&offset=1").await;
    assert_eq!(ids(&paged), [b, c]);
    assert_eq!(paged.json["total"], 4);
    for bad in [
        "enabled=maybe",
        "namespace=Bad",
        "layer=platinum",
        "limit=x",
        "offset=-1",
        "limit=0",
    ] {
        app.get(&format!("/api/v1/schedules?{bad}"))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
}
