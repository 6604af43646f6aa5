//! `/api/v1/admin/retention/*` and `/api/v1/pipelines/{…}/retention`
//! (contract §12): partial, range-checked settings (ratd stored missing keys
//! as 0 and wiped the audit log), the reaper status, on-demand passes asked
//! through Postgres, and per-pipeline overrides that are read back.

use crate::common::TestApp;
use serde_json::{Value, json};

const CONFIG: &str = "/api/v1/admin/retention/config";

fn defaults() -> Value {
    json!({
        "runs_max_per_pipeline": 100, "runs_max_age_days": 90, "logs_max_age_days": 30,
        "quality_results_max_per_test": 100, "soft_delete_purge_days": 30,
        "stuck_run_timeout_minutes": 120, "audit_log_max_age_days": 365,
        "nessie_orphan_branch_max_age_hours": 6, "reaper_interval_minutes": 60,
        "iceberg_snapshot_max_age_days": 7, "iceberg_orphan_file_max_age_days": 3
    })
}

#[tokio::test]
async fn config_is_read_and_partially_updated_in_both_body_shapes() {
    let app = TestApp::new().await;
    let read = app.get(CONFIG).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json, json!({"config": defaults()}));

    // The bare keys, as ratd's SDK sends them; missing keys keep their value.
    let bare = app.put(CONFIG, json!({"runs_max_age_days": 10})).await;
    assert_eq!(bare.status, 200, "{}", bare.text);
    let mut expected = defaults();
    expected["runs_max_age_days"] = json!(10);
    assert_eq!(bare.json, json!({"config": expected}));

    // The answer's shape, `{config:{…}}`.
    let wrapped = app
        .put(
            CONFIG,
            json!({"config": {"audit_log_max_age_days": 30, "reaper_interval_minutes": 5}}),
        )
        .await;
    assert_eq!(wrapped.status, 200, "{}", wrapped.text);
    expected["audit_log_max_age_days"] = json!(30);
    expected["reaper_interval_minutes"] = json!(5);
    assert_eq!(wrapped.json, json!({"config": expected}));
    assert_eq!(app.get(CONFIG).await.json, wrapped.json);

    let client = app.db.client().await;
    let stored = rat_testkit::dao::settings::get(&client, "retention")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, expected, "stored complete, never with a missing key");
    assert_eq!(app.audit_rows().await[0].action, "retention.update");
}

#[tokio::test]
async fn values_that_would_delete_everything_or_mean_nothing_are_refused() {
    let app = TestApp::new().await;
    for body in [
        json!({"audit_log_max_age_days": 0}),
        json!({"runs_max_per_pipeline": -1}),
        json!({"reaper_interval_minutes": 10_081}),
        json!({"runs_max_age_days": "10"}),
        json!({"runs_max_age_days": 1.5}),
        json!({"runs_max_age_days": null}),
        json!({"no_such_key": 1}),
        json!({"config": {"audit_log_max_age_days": 0}}),
        json!({"config": {"runs_max_age_days": 10}, "logs_max_age_days": 5}),
        json!([1]),
        json!(7),
    ] {
        app.put(CONFIG, body.clone())
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
    // A valid key next to an invalid one is not applied either.
    app.put(CONFIG, json!({"runs_max_age_days": 10, "audit_log_max_age_days": 0}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    assert_eq!(app.get(CONFIG).await.json, json!({"config": defaults()}));
}

#[tokio::test]
async fn status_is_the_reaper_row_and_run_asks_the_reaper_through_postgres() {
    let app = TestApp::new().await;
    let status = app.get("/api/v1/admin/retention/status").await;
    assert_eq!(status.status, 200, "{}", status.text);
    let s = &status.json;
    let mut fields: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "audit_pruned",
            "branches_cleaned",
            "last_pass",
            "last_run_at",
            "logs_pruned",
            "lz_files_cleaned",
            "pipelines_purged",
            "quality_pruned",
            "run_requested_at",
            "runs_failed",
            "runs_pruned",
            "updated_at"
        ]
    );
    assert_eq!(s["last_run_at"], Value::Null);
    assert_eq!(s["run_requested_at"], Value::Null);
    assert_eq!(s["runs_pruned"], 0);
    assert!(s["updated_at"].is_string());

    let client = app.db.client().await;
    let finished = time::macros::datetime!(2026-03-01 00:00:00 UTC);
    let pass = rat_domain::ReaperCounters {
        runs_pruned: 4,
        audit_pruned: 9,
        ..Default::default()
    };
    rat_testkit::dao::reaper_status::record_pass(&client, &pass, finished)
        .await
        .unwrap();
    let status = app.get("/api/v1/admin/retention/status").await.json;
    assert_eq!(status["last_run_at"], "2026-03-01T00:00:00Z");
    assert_eq!(
        (status["runs_pruned"].clone(), status["audit_pruned"].clone()),
        (json!(4), json!(9))
    );
    // A second pass: the counters add up, `last_pass` is its own.
    let second = rat_domain::ReaperCounters {
        runs_pruned: 1,
        ..Default::default()
    };
    rat_testkit::dao::reaper_status::record_pass(&client, &second, finished)
        .await
        .unwrap();
    let status = app.get("/api/v1/admin/retention/status").await.json;
    assert_eq!(status["runs_pruned"], 5);
    assert_eq!(
        status["last_pass"],
        json!({"runs_pruned": 1, "logs_pruned": 0, "quality_pruned": 0, "pipelines_purged": 0,
               "runs_failed": 0, "branches_cleaned": 0, "lz_files_cleaned": 0, "audit_pruned": 0})
    );

    let before = time::OffsetDateTime::now_utc();
    let run = app.post("/api/v1/admin/retention/run", json!({})).await;
    assert_eq!(run.status, 202, "{}", run.text);
    let requested = time::OffsetDateTime::parse(
        run.json["run_requested_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(requested >= before - time::Duration::seconds(1), "{requested}");
    assert_eq!(run.json["runs_pruned"], 5, "the current status, not a pass");
    assert_eq!(run.json["last_run_at"], "2026-03-01T00:00:00Z");
    let stored = rat_testkit::dao::reaper_status::get(&client).await.unwrap();
    assert!(stored.run_requested(), "the reaper owes a pass");
    assert_eq!(
        app.get("/api/v1/admin/retention/status").await.json["run_requested_at"],
        run.json["run_requested_at"]
    );
    assert_eq!(app.audit_rows().await[0].action, "retention.run");

    // ratd's SDK posts no body at all.
    let response = app
        .http
        .post(format!("{}/api/v1/admin/retention/run", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn pipeline_overrides_are_replaced_read_back_and_laid_over_the_system() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let path = "/api/v1/pipelines/default/silver/orders/retention";
    let read = app.get(path).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(
        read.json,
        json!({"system": defaults(), "overrides": null, "effective": defaults()})
    );

    let set = app.put(path, json!({"runs_max_per_pipeline": 5})).await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json["overrides"], json!({"runs_max_per_pipeline": 5}));
    assert_eq!(set.json["effective"]["runs_max_per_pipeline"], 5);
    assert_eq!(set.json["system"], defaults());

    // The portal's form: every field with a value, the Iceberg ones included.
    let form = json!({"runs_max_per_pipeline": 5, "logs_max_age_days": 7, "iceberg_snapshot_max_age_days": 14});
    let replaced = app.put(path, form.clone()).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(replaced.json["overrides"], form);
    assert_eq!(replaced.json["effective"]["iceberg_snapshot_max_age_days"], 14);
    assert_eq!(app.get(path).await.json, replaced.json, "read back (ratd never does)");
    let pipeline = app.get("/api/v1/pipelines/default/silver/orders").await.json;
    assert_eq!(pipeline["retention_config"], form);

    // A system change shows through every key the pipeline does not override.
    app.put(CONFIG, json!({"logs_max_age_days": 60, "runs_max_age_days": 20}))
        .await;
    let now = app.get(path).await.json;
    assert_eq!(now["system"]["logs_max_age_days"], 60);
    assert_eq!(now["effective"]["logs_max_age_days"], 7);
    assert_eq!(now["effective"]["runs_max_age_days"], 20);

    // "Reset to system default" in the portal leaves the field out; `null`
    // says the same.
    let reset = app
        .put(
            path,
            json!({"logs_max_age_days": 7, "iceberg_snapshot_max_age_days": null}),
        )
        .await;
    assert_eq!(reset.json["overrides"], json!({"logs_max_age_days": 7}));
    assert_eq!(reset.json["effective"]["runs_max_per_pipeline"], 100);
    assert_eq!(reset.json["effective"]["iceberg_snapshot_max_age_days"], 7);
    let none = app.put(path, json!({})).await;
    assert_eq!(none.json["overrides"], Value::Null);
    assert_eq!(none.json["effective"], now["system"]);
    let pipeline = app.get("/api/v1/pipelines/default/silver/orders").await.json;
    assert_eq!(pipeline["retention_config"], Value::Null);
    assert_eq!(app.audit_rows().await[0].action, "pipeline.retention");
}

#[tokio::test]
async fn pipeline_override_errors() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let path = "/api/v1/pipelines/default/silver/orders/retention";
    app.put(path, json!({"runs_max_per_pipeline": 5})).await;
    for body in [
        json!({"audit_log_max_age_days": 5}),
        json!({"audit_log_max_age_days": null}),
        json!({"runs_max_per_pipeline": 0}),
        json!({"runs_max_age_days": 36_501}),
        json!({"runs_max_age_days": "5"}),
        json!({"no_such_key": 1}),
        json!({"logs_max_age_days": 7, "runs_max_per_pipeline": -1}),
        json!([1]),
    ] {
        app.put(path, body).await.assert_error(400, "INVALID_ARGUMENT");
    }
    assert_eq!(
        app.get(path).await.json["overrides"],
        json!({"runs_max_per_pipeline": 5}),
        "refused updates change nothing"
    );
    for ghost in [
        "/api/v1/pipelines/default/silver/ghost/retention",
        "/api/v1/pipelines/ghost/silver/orders/retention",
    ] {
        app.get(ghost).await.assert_error(404, "NOT_FOUND");
        app.put(ghost, json!({"runs_max_per_pipeline": 5}))
            .await
            .assert_error(404, "NOT_FOUND");
    }
    app.get("/api/v1/pipelines/default/platinum/orders/retention")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn retention_routes_require_the_api_key_when_one_is_set() {
    let app = TestApp::builder().api_key("secret").start().await;
    let without_key = rat_client::Builder::new(&app.base).api().unwrap();
    let orders = rat_client::PipelineAddress::new("default", "silver", "orders");
    let answers = [
        without_key.retention_config().await.map(drop),
        without_key.update_retention_config(&json!({})).await.map(drop),
        without_key.retention_status().await.map(drop),
        without_key.request_reaper_pass().await.map(drop),
        without_key.pipeline_retention(orders).await.map(drop),
        without_key.set_pipeline_retention(orders, &json!({})).await.map(drop),
    ];
    for answer in answers {
        let refused = answer.expect_err("no key");
        assert_eq!((refused.status(), refused.code()), (Some(401), Some("UNAUTHENTICATED")));
    }
    let client = app.db.client().await;
    assert_eq!(
        rat_testkit::dao::reaper_status::get(&client)
            .await
            .unwrap()
            .run_requested_at,
        None,
        "a refused run request asks nothing"
    );
}
