//! `runner_plugins` and `failed_merges` repositories against a real PostgreSQL.

use rat_dao::failed_merges::{self, NewFailedMerge};
use rat_dao::runner_plugins::{self, RunnerPlugin};
use rat_domain::PageRequest;
use rat_testkit::TestDatabase;
use time::macros::datetime;

fn plugin(name: &str, group: &str) -> RunnerPlugin {
    RunnerPlugin {
        name: name.into(),
        group: group.into(),
        version: "1".into(),
        package_name: "pkg".into(),
    }
}

#[tokio::test]
async fn the_latest_report_per_runner_counts_and_old_reports_drop_out() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let at = datetime!(2026-06-01 12:00 UTC);
    let since = at - time::Duration::hours(1);
    assert!(runner_plugins::list_live(&client, since).await.unwrap().is_empty());

    runner_plugins::report(&client, "r1", &[plugin("b", "g"), plugin("a", "h")], at)
        .await
        .unwrap();
    runner_plugins::report(&client, "r2", &[plugin("b", "g")], at)
        .await
        .unwrap();
    runner_plugins::report(&client, "old", &[plugin("z", "a")], since - time::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        runner_plugins::list_live(&client, since).await.unwrap(),
        [plugin("b", "g"), plugin("a", "h")],
        "distinct, by group then name; the old report is left out"
    );
    // A new report replaces the runner's previous one.
    runner_plugins::report(&client, "r1", &[], at).await.unwrap();
    assert_eq!(
        runner_plugins::list_live(&client, since).await.unwrap(),
        [plugin("b", "g")]
    );
    let rows: i64 = client
        .query_one("SELECT count(*) FROM runner_plugins", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 3, "one row per runner");
}

fn report(branch: &str) -> NewFailedMerge {
    NewFailedMerge {
        run_id: "run-1".into(),
        branch_name: branch.into(),
        source_hash: Some("abc".into()),
        target_hash: None,
        error_kind: "conflict".into(),
        error_message: "both sides changed".into(),
    }
}

#[tokio::test]
async fn failed_merges_are_stored_listed_newest_first_and_deleted_by_age_in_batches() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let day = |d: u8| datetime!(2026-06-01 0:00 UTC) + time::Duration::days(d.into());
    for (d, branch) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
        let stored = failed_merges::insert(&client, &report(branch), day(d)).await.unwrap();
        assert_eq!((&stored.report, stored.created_at), (&report(branch), day(d)));
    }
    let page = failed_merges::list(&client, PageRequest::new(Some(2), None).unwrap())
        .await
        .unwrap();
    let branches: Vec<&str> = page.items.iter().map(|m| m.report.branch_name.as_str()).collect();
    assert_eq!((branches, page.total), (vec!["d", "c"], 4));

    // Before day 4: a, b, c; in batches of two.
    assert_eq!(failed_merges::delete_older_than(&client, day(4), 2).await.unwrap(), 2);
    assert_eq!(failed_merges::delete_older_than(&client, day(4), 2).await.unwrap(), 1);
    assert_eq!(failed_merges::delete_older_than(&client, day(4), 2).await.unwrap(), 0);
    let left = failed_merges::list(&client, PageRequest::default()).await.unwrap();
    assert_eq!(
        left.items
            .iter()
            .map(|m| m.report.branch_name.as_str())
            .collect::<Vec<_>>(),
        ["d"]
    );
}
