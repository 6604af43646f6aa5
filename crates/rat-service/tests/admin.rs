//! Retention settings and per-pipeline overrides against a real database.

#[allow(dead_code, reason = "each test binary uses a different subset of the shared helpers")]
mod common;

use rat_service::retention;
use serde_json::json;

#[tokio::test]
async fn concurrent_partial_override_updates_keep_each_others_keys() {
    let world = common::fs_world().await;
    let client = world.db.client().await;
    rat_testkit::fixtures::pipeline(&client, "default", "silver", "orders").await;
    let address = common::address("default", "silver", "orders");
    let keys = [
        "runs_max_per_pipeline",
        "runs_max_age_days",
        "logs_max_age_days",
        "quality_results_max_per_test",
        "stuck_run_timeout_minutes",
    ];
    let updates = keys.iter().enumerate().map(|(i, key)| {
        let services = world.services.clone();
        let address = address.clone();
        let patch = json!({ *key: i as i64 + 2 });
        async move { retention::update_pipeline_retention(&services, &address, &patch).await }
    });
    for result in futures_util::future::join_all(updates).await {
        result.unwrap();
    }
    let stored = retention::pipeline_retention(&world.services, &address).await.unwrap();
    let overrides: Vec<(&str, i64)> = stored.overrides.iter().collect();
    assert_eq!(
        overrides.len(),
        keys.len(),
        "no update lost another's key: {overrides:?}"
    );
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(stored.effective.get(key), Some(i as i64 + 2));
    }
}

#[tokio::test]
async fn a_run_request_is_pending_until_a_pass_ends_after_it() {
    let world = common::fs_world().await;
    let client = world.db.client().await;
    let requested = time::macros::datetime!(2026-03-01 12:00:00 UTC);
    let status = retention::request_run(&world.services, requested).await.unwrap();
    assert!(status.run_requested());
    rat_dao::reaper_status::record_pass(
        &client,
        &rat_domain::ReaperCounters::default(),
        time::macros::datetime!(2026-03-01 12:01:00 UTC),
    )
    .await
    .unwrap();
    let status = retention::status(&world.services).await.unwrap();
    assert!(!status.run_requested());
    assert_eq!(status.run_requested_at, Some(requested));
}
