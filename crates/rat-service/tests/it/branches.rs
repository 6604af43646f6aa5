//! The reaper's orphan-branch task against a stand-in Nessie
//! (`rat_testkit::nessie`: Nessie's REST API v2 routes, in memory).

use crate::common::{World, fs_world};
use rat_dao::failed_merges::NewFailedMerge;
use rat_dao::runs;
use rat_domain::{Pipeline, RunStatus};
use rat_service::nessie::NessieClient;
use rat_service::reaper::{PassPolicy, PassReport, run_pass};
use rat_testkit::fixtures;
use rat_testkit::nessie::NessieStandIn;
use time::{Duration, OffsetDateTime};
use tokio::sync::watch;

fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-06-01 12:00:00 UTC)
}

async fn pass(world: &World, nessie: &NessieStandIn) -> PassReport {
    let policy = PassPolicy {
        nessie: Some(NessieClient::new(&nessie.url()).unwrap()),
        ..PassPolicy::default()
    };
    run_pass(&world.services, now(), &policy, &watch::channel(false).1)
        .await
        .unwrap()
}

/// A run created `age` before [`now`], moved to `status`.
async fn run(world: &World, pipeline: &Pipeline, age: Duration, status: RunStatus) -> String {
    let client = world.db.client().await;
    let at = now() - age;
    let run = fixtures::run_at(&client, pipeline, at).await;
    let path: &[RunStatus] = match status {
        RunStatus::Pending => &[],
        RunStatus::Running => &[RunStatus::Running],
        RunStatus::Cancelled => &[RunStatus::Cancelled],
        done => &[RunStatus::Running, done],
    };
    for next in path {
        runs::transition(&client, run.id, *next, &Default::default(), at)
            .await
            .unwrap();
    }
    format!("run-{}", run.id)
}

#[tokio::test]
async fn orphan_run_branches_are_deleted_and_live_or_inspected_ones_kept() {
    let world = fs_world().await;
    let nessie = NessieStandIn::start().await;
    let client = world.db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    // The default `nessie_orphan_branch_max_age_hours` is 6.
    let succeeded = run(&world, &pipeline, Duration::hours(1), RunStatus::Success).await;
    let failed = run(&world, &pipeline, Duration::hours(1), RunStatus::Failed).await;
    let cancelled = run(&world, &pipeline, Duration::hours(1), RunStatus::Cancelled).await;
    let old_pending = run(&world, &pipeline, Duration::hours(7), RunStatus::Pending).await;
    let young_pending = run(&world, &pipeline, Duration::hours(5), RunStatus::Pending).await;
    let running = run(&world, &pipeline, Duration::hours(1), RunStatus::Running).await;
    let gone = format!("run-{}", uuid::Uuid::new_v4());
    // Failed to merge 3 days ago: kept for a person to look at; 8 days ago: not.
    let inspected = run(&world, &pipeline, Duration::hours(1), RunStatus::Failed).await;
    let stale_report = run(&world, &pipeline, Duration::hours(1), RunStatus::Failed).await;
    for (branch, age) in [(&inspected, Duration::days(3)), (&stale_report, Duration::days(8))] {
        let report = NewFailedMerge {
            run_id: branch.trim_start_matches("run-").to_owned(),
            branch_name: branch.clone(),
            source_hash: None,
            target_hash: None,
            error_kind: "conflict".to_owned(),
            error_message: "x".to_owned(),
        };
        rat_dao::failed_merges::insert(&client, &report, now() - age)
            .await
            .unwrap();
    }
    let orphans = [&succeeded, &failed, &cancelled, &old_pending, &gone, &stale_report];
    let kept = [&young_pending, &running, &inspected];
    for branch in orphans.iter().chain(kept.iter()) {
        nessie.add_branch(branch);
    }
    // Not run branches, or not branches: never touched.
    nessie.add_branch("feature-x");
    nessie.add_branch("run-not-a-uuid");
    nessie.add_tag(&format!("run-{}", uuid::Uuid::new_v4()));

    let report = pass(&world, &nessie).await;
    let task = report
        .tasks
        .iter()
        .find(|t| t.task == "branches")
        .expect("the branches task");
    assert!(task.error.is_none(), "{task:?}");
    assert_eq!(report.counters.branches_cleaned, orphans.len() as i64, "{report:#?}");
    assert_eq!(report.status.last_pass.branches_cleaned, orphans.len() as i64);
    let mut deleted = nessie.deleted();
    deleted.sort();
    let mut expected: Vec<String> = orphans.iter().map(|b| (*b).clone()).collect();
    expected.sort();
    assert_eq!(deleted, expected);
    let left = nessie.references();
    for branch in kept {
        assert!(left.contains(branch), "{branch} was kept: {left:?}");
    }
    assert!(left.contains(&"main".to_owned()) && left.contains(&"feature-x".to_owned()));
    assert_eq!(left.len(), 3 + 3 + 1, "{left:?}");

    // The next pass finds nothing more to do.
    assert_eq!(pass(&world, &nessie).await.counters.branches_cleaned, 0);
}

#[tokio::test]
async fn a_branch_that_moved_since_the_listing_is_left_for_the_next_pass() {
    let world = fs_world().await;
    let nessie = NessieStandIn::start().await;
    let client = world.db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let done = run(&world, &pipeline, Duration::hours(1), RunStatus::Success).await;
    nessie.add_branch(&done);
    // Someone commits to it between the listing and the delete: Nessie
    // answers 409, the branch stays, the task does not fail.
    nessie.move_after_listing(&done);
    let report = pass(&world, &nessie).await;
    let task = report.tasks.iter().find(|t| t.task == "branches").unwrap();
    assert!(task.error.is_none(), "{task:?}");
    assert_eq!(report.counters.branches_cleaned, 0);
    assert!(nessie.references().contains(&done));
    // At its new hash, the next pass deletes it.
    assert_eq!(pass(&world, &nessie).await.counters.branches_cleaned, 1);
    assert!(!nessie.references().contains(&done));
}

#[tokio::test]
async fn a_nessie_outage_fails_that_task_only() {
    let world = fs_world().await;
    let nessie = NessieStandIn::start().await;
    let client = world.db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let done = run(&world, &pipeline, Duration::hours(1), RunStatus::Success).await;
    nessie.add_branch(&done);
    // An audit row old enough for the audit task, to see the others go on.
    client
        .execute(
            "INSERT INTO audit_log (actor, action, timestamp) VALUES ('x', 'y', $1)",
            &[&(now() - Duration::days(400))],
        )
        .await
        .unwrap();
    nessie.set_down(true);
    let report = pass(&world, &nessie).await;
    let task = report.tasks.iter().find(|t| t.task == "branches").unwrap();
    let error = task.error.as_deref().expect("the branches task failed");
    assert!(error.contains("Nessie"), "{error}");
    assert_eq!(report.counters.branches_cleaned, 0);
    assert_eq!(report.counters.audit_pruned, 1, "the other tasks ran: {report:#?}");
    assert!(
        report
            .tasks
            .iter()
            .filter(|t| t.task != "branches")
            .all(|t| t.error.is_none()),
        "{report:#?}"
    );
    assert!(nessie.references().contains(&done));

    // Nessie unreachable altogether (nothing listens): the same.
    drop(nessie);
    let policy = PassPolicy {
        nessie: Some(NessieClient::new("http://127.0.0.1:9/api/v2").unwrap()),
        ..PassPolicy::default()
    };
    let report = run_pass(&world.services, now(), &policy, &watch::channel(false).1)
        .await
        .unwrap();
    let task = report.tasks.iter().find(|t| t.task == "branches").unwrap();
    assert!(task.error.is_some(), "{task:?}");

    // Without RAT_NESSIE_URL the task does not run at all.
    let report = run_pass(&world.services, now(), &PassPolicy::default(), &watch::channel(false).1)
        .await
        .unwrap();
    assert!(report.tasks.iter().all(|t| t.task != "branches"));
}
