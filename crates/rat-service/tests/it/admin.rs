//! Retention settings and per-pipeline overrides against a real database.

use rat_service::identity::Caller;
use rat_service::retention;
use serde_json::json;

#[tokio::test]
async fn concurrent_override_sets_leave_one_whole_set() {
    let world = crate::common::fs_world().await;
    let client = world.db.client().await;
    rat_testkit::fixtures::pipeline(&client, "default", "silver", "orders").await;
    let address = crate::common::address("default", "silver", "orders");
    // Each writer sends a whole set of two keys; what is stored must be
    // exactly one writer's set, never a mix of two.
    let sets: Vec<serde_json::Value> = (0..8)
        .map(|i| json!({"runs_max_per_pipeline": 10 + i, "logs_max_age_days": 20 + i}))
        .collect();
    let writes = sets.iter().map(|set| {
        let services = world.services.clone();
        let address = address.clone();
        let set = set.clone();
        async move { retention::set_pipeline_retention(&services, &Caller::community(), &address, &set).await }
    });
    for result in futures_util::future::join_all(writes).await {
        result.unwrap();
    }
    let stored = retention::pipeline_retention(&world.services, &Caller::community(), &address)
        .await
        .unwrap();
    let stored = stored.overrides.to_json().expect("overrides are set");
    assert!(sets.contains(&stored), "stored {stored} is not one writer's set");
}

#[tokio::test]
async fn a_run_request_is_pending_until_a_pass_ends_after_it() {
    let world = crate::common::fs_world().await;
    let client = world.db.client().await;
    let requested = time::macros::datetime!(2026-03-01 12:00:00 UTC);
    let status = retention::request_run(&world.services, &Caller::community(), requested)
        .await
        .unwrap();
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
