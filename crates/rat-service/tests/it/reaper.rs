//! One reaper pass against real Postgres and the filesystem store, with an
//! injected clock: what each task deletes, and — as important — what it keeps.

use crate::common::{World, fs_world};
use rat_dao::{pipelines, runs};
use rat_domain::{Pipeline, RetentionSettings, RunStatus};
use rat_service::reaper::{PassPolicy, run_pass};
use rat_testkit::fixtures;
use time::{Duration, OffsetDateTime};
use tokio::sync::watch;
use uuid::Uuid;

fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-06-01 12:00:00 UTC)
}

fn policy() -> PassPolicy {
    PassPolicy {
        // Small batches, so every loop runs more than once.
        batch_size: 2,
        ..PassPolicy::default()
    }
}

fn not_lost() -> watch::Receiver<bool> {
    watch::channel(false).1
}

async fn set_retention(world: &World, change: impl FnOnce(&mut RetentionSettings)) {
    let client = world.db.client().await;
    let mut settings = RetentionSettings::default();
    change(&mut settings);
    rat_dao::settings::put_retention(&client, &settings).await.unwrap();
}

async fn finished_run(world: &World, pipeline: &Pipeline, age: Duration) -> Uuid {
    let client = world.db.client().await;
    let at = now() - age;
    let run = fixtures::run_at(&client, pipeline, at).await;
    runs::transition(&client, run.id, RunStatus::Running, &Default::default(), at)
        .await
        .unwrap();
    runs::transition(&client, run.id, RunStatus::Success, &Default::default(), at)
        .await
        .unwrap();
    run.id.into()
}

async fn exists(world: &World, table: &str, id: Uuid) -> bool {
    let client = world.db.client().await;
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1)");
    client.query_one(sql.as_str(), &[&id]).await.unwrap().get(0)
}

#[tokio::test]
async fn runs_beyond_the_count_and_past_the_age_go_active_runs_never() {
    let world = fs_world().await;
    set_retention(&world, |s| {
        s.runs_max_per_pipeline = 3;
        s.runs_max_age_days = 30;
    })
    .await;
    let client = world.db.client().await;
    let busy = fixtures::published_pipeline(&client, "default", "silver", "busy").await;
    let quiet = fixtures::published_pipeline(&client, "default", "silver", "quiet").await;
    // busy: five finished runs one day apart, plus an active pair.
    let mut finished = Vec::new();
    for day in 1..=5 {
        finished.push(finished_run(&world, &busy, Duration::days(day)).await);
    }
    let pending = fixtures::run_at(&client, &busy, now() - Duration::days(60)).await.id;
    let running = fixtures::run_at(&client, &busy, now() - Duration::hours(1)).await.id;
    runs::transition(&client, running, RunStatus::Running, &Default::default(), now())
        .await
        .unwrap();
    // quiet: one recent and one old finished run.
    let recent = finished_run(&world, &quiet, Duration::days(2)).await;
    let old = finished_run(&world, &quiet, Duration::days(40)).await;

    let report = run_pass(&world.services, now(), &policy(), &not_lost()).await.unwrap();
    assert!(report.tasks.iter().all(|t| t.error.is_none()), "{report:#?}");

    for (i, id) in finished.iter().enumerate() {
        assert_eq!(
            exists(&world, "runs", *id).await,
            i < 3,
            "busy run {i}: the newest three stay"
        );
    }
    assert!(
        exists(&world, "runs", pending.into()).await,
        "pending runs are never deleted, however old"
    );
    assert!(
        exists(&world, "runs", running.into()).await,
        "running runs are never deleted"
    );
    assert!(exists(&world, "runs", recent).await);
    assert!(!exists(&world, "runs", old).await, "past runs_max_age_days");
    assert_eq!(report.counters.runs_pruned, 3);
    assert_eq!(report.status.counters.runs_pruned, 3, "added to reaper_status");
}

#[tokio::test]
async fn per_pipeline_overrides_are_honoured() {
    let world = fs_world().await;
    set_retention(&world, |s| s.runs_max_per_pipeline = 10).await;
    let client = world.db.client().await;
    let strict = fixtures::published_pipeline(&client, "default", "gold", "strict").await;
    let normal = fixtures::published_pipeline(&client, "default", "gold", "normal").await;
    pipelines::set_retention_config(
        &client,
        strict.id,
        Some(&serde_json::json!({"runs_max_per_pipeline": 1})),
    )
    .await
    .unwrap();
    let mut strict_runs = Vec::new();
    let mut normal_runs = Vec::new();
    for day in 1..=3 {
        strict_runs.push(finished_run(&world, &strict, Duration::days(day)).await);
        normal_runs.push(finished_run(&world, &normal, Duration::days(day)).await);
    }
    run_pass(&world.services, now(), &policy(), &not_lost()).await.unwrap();
    assert!(exists(&world, "runs", strict_runs[0]).await);
    assert!(!exists(&world, "runs", strict_runs[1]).await);
    assert!(!exists(&world, "runs", strict_runs[2]).await);
    for id in normal_runs {
        assert!(
            exists(&world, "runs", id).await,
            "other pipelines keep the system setting"
        );
    }
}

#[tokio::test]
async fn old_logs_are_cleared_and_their_runs_stay() {
    let world = fs_world().await;
    set_retention(&world, |s| s.logs_max_age_days = 30).await;
    let client = world.db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "chatty").await;
    let old = finished_run(&world, &pipeline, Duration::days(40)).await;
    let young = finished_run(&world, &pipeline, Duration::days(5)).await;
    let entry = rat_domain::LogEntry::new(now(), rat_domain::LogLevel::Info, "hello").unwrap();
    for id in [old, young] {
        runs::append_log_entries(&client, id.into(), &[entry.clone(), entry.clone()])
            .await
            .unwrap();
        client
            .execute(
                "UPDATE runs SET logs = '[{\"message\":\"legacy\"}]' WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
    }
    let report = run_pass(&world.services, now(), &policy(), &not_lost()).await.unwrap();
    assert!(exists(&world, "runs", old).await, "the run row stays");
    assert!(
        runs::log_entries_after(&client, old.into(), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        runs::legacy_logs(&client, old.into()).await.unwrap().0,
        serde_json::json!([])
    );
    assert_eq!(
        runs::log_entries_after(&client, young.into(), 0, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_ne!(
        runs::legacy_logs(&client, young.into()).await.unwrap().0,
        serde_json::json!([])
    );
    assert!(report.counters.logs_pruned >= 1);
}

#[tokio::test]
async fn quality_results_beyond_the_count_go_newest_stay() {
    let world = fs_world().await;
    set_retention(&world, |s| s.quality_results_max_per_test = 2).await;
    let client = world.db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "checked").await;
    let mut tests = Vec::new();
    for name in ["not_null", "unique"] {
        let id: Uuid = client
            .query_one(
                "INSERT INTO quality_tests (pipeline_id, name, s3_path) VALUES ($1, $2, 'k') RETURNING id",
                &[&pipeline.id, &name],
            )
            .await
            .unwrap()
            .get(0);
        tests.push(id);
    }
    for minute in 0..5 {
        client
            .execute(
                "INSERT INTO quality_results (test_id, status, ran_at) VALUES ($1, 'passed', $2)",
                &[&tests[0], &(now() - Duration::minutes(minute))],
            )
            .await
            .unwrap();
    }
    client
        .execute(
            "INSERT INTO quality_results (test_id, status, ran_at) VALUES ($1, 'passed', $2)",
            &[&tests[1], &now()],
        )
        .await
        .unwrap();
    let report = run_pass(&world.services, now(), &policy(), &not_lost()).await.unwrap();
    let kept: Vec<OffsetDateTime> = client
        .query(
            "SELECT ran_at FROM quality_results WHERE test_id = $1 ORDER BY ran_at DESC",
            &[&tests[0]],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kept, [now(), now() - Duration::minutes(1)], "the newest two stay");
    let other: i64 = client
        .query_one("SELECT count(*) FROM quality_results WHERE test_id = $1", &[&tests[1]])
        .await
        .unwrap()
        .get(0);
    assert_eq!(other, 1);
    assert_eq!(report.counters.quality_pruned, 3);
}

#[tokio::test]
async fn runs_that_cannot_finish_are_failed_with_the_reason() {
    let world = fs_world().await;
    set_retention(&world, |s| s.stuck_run_timeout_minutes = 120).await;
    let client = world.db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "flaky").await;
    let patient = fixtures::published_pipeline(&client, "default", "silver", "patient").await;
    pipelines::set_retention_config(
        &client,
        patient.id,
        Some(&serde_json::json!({"stuck_run_timeout_minutes": 600})),
    )
    .await
    .unwrap();
    let claim = |runner: &'static str, lease_until: OffsetDateTime, started: OffsetDateTime| {
        let client = &client;
        async move {
            let claimed = runs::claim(client, runner, 1, lease_until, started).await.unwrap();
            claimed[0].id
        }
    };
    // Claimed oldest first: create and claim one at a time.
    let lease_lost = fixtures::run_at(&client, &pipeline, now() - Duration::hours(1))
        .await
        .id;
    assert_eq!(
        claim("r1", now() - Duration::minutes(1), now() - Duration::minutes(30)).await,
        lease_lost
    );
    let too_long = fixtures::run_at(&client, &pipeline, now() - Duration::hours(4))
        .await
        .id;
    assert_eq!(
        claim("r2", now() + Duration::hours(1), now() - Duration::hours(3)).await,
        too_long
    );
    let healthy = fixtures::run_at(&client, &pipeline, now() - Duration::hours(1))
        .await
        .id;
    assert_eq!(
        claim("r3", now() + Duration::minutes(5), now() - Duration::minutes(50)).await,
        healthy
    );
    let long_but_allowed = fixtures::run_at(&client, &patient, now() - Duration::hours(4)).await.id;
    assert_eq!(
        claim("r4", now() + Duration::hours(1), now() - Duration::hours(3)).await,
        long_but_allowed
    );
    let forgotten = fixtures::run_at(&client, &pipeline, now() - Duration::hours(25))
        .await
        .id;
    let waiting = fixtures::run_at(&client, &pipeline, now() - Duration::hours(2))
        .await
        .id;
    let done = finished_run(&world, &pipeline, Duration::hours(30)).await;

    let report = run_pass(&world.services, now(), &policy(), &not_lost()).await.unwrap();
    let status = |id: Uuid| {
        let client = &client;
        async move { runs::get(client, id.into()).await.unwrap() }
    };
    let lost = status(lease_lost.into()).await;
    assert_eq!(lost.status, RunStatus::Failed);
    assert!(
        lost.error.as_deref().unwrap().contains("runner lost"),
        "{:?}",
        lost.error
    );
    let stuck = status(too_long.into()).await;
    assert_eq!(stuck.status, RunStatus::Failed);
    assert!(
        stuck.error.as_deref().unwrap().contains("longer than 120 minutes"),
        "{:?}",
        stuck.error
    );
    let unclaimed = status(forgotten.into()).await;
    assert_eq!(unclaimed.status, RunStatus::Failed);
    assert!(
        unclaimed.error.as_deref().unwrap().contains("not claimed"),
        "{:?}",
        unclaimed.error
    );
    assert_eq!(status(healthy.into()).await.status, RunStatus::Running);
    assert_eq!(
        status(long_but_allowed.into()).await.status,
        RunStatus::Running,
        "its pipeline allows 600 minutes"
    );
    assert_eq!(status(waiting.into()).await.status, RunStatus::Pending);
    assert_eq!(status(done).await.status, RunStatus::Success);
    assert_eq!(report.counters.runs_failed, 3);
    // The old holder can no longer report: the run is failed already (an
    // unreaped run would be refused too, but as LeaseExpired).
    let late = runs::complete_held(
        &client,
        lease_lost,
        "r1",
        RunStatus::Success,
        &Default::default(),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(late, Err(runs::NotHeld::Finished(RunStatus::Failed)));
    assert_eq!(status(lease_lost.into()).await.status, RunStatus::Failed);
}

async fn write(world: &World, key: &str, body: &str) -> rat_versioning::VersionId {
    let key = rat_versioning::ObjectKey::parse(key).unwrap();
    world
        .services
        .store
        .put(&key, body.as_bytes().to_vec(), "text/plain")
        .await
        .unwrap()
}

async fn versions_under(world: &World, prefix: &str) -> usize {
    let prefix = rat_versioning::KeyPrefix::parse(prefix).unwrap();
    world
        .services
        .store
        .list_versions(&prefix, None, 1000)
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn deleted_pipelines_are_purged_files_first_and_a_live_successor_keeps_its_files() {
    let world = fs_world().await;
    set_retention(&world, |s| s.soft_delete_purge_days = 30).await;
    let client = world.db.client().await;
    // An old deletion with two versions of a file.
    let gone = fixtures::pipeline(&client, "default", "bronze", "gone").await;
    write(&world, "default/pipelines/bronze/gone/pipeline.sql", "v1").await;
    write(&world, "default/pipelines/bronze/gone/pipeline.sql", "v2").await;
    pipelines::soft_delete(&client, &gone.address, now() - Duration::days(40))
        .await
        .unwrap();
    // A recent deletion stays.
    let recent = fixtures::pipeline(&client, "default", "bronze", "recent").await;
    write(&world, "default/pipelines/bronze/recent/pipeline.sql", "x").await;
    pipelines::soft_delete(&client, &recent.address, now() - Duration::days(5))
        .await
        .unwrap();
    // An old deletion whose name was reused: the successor's files survive.
    let reused = fixtures::pipeline(&client, "default", "bronze", "reused").await;
    write(&world, "default/pipelines/bronze/reused/old.sql", "old").await;
    pipelines::soft_delete(&client, &reused.address, now() - Duration::days(40))
        .await
        .unwrap();
    client
        .execute(
            "UPDATE pipelines SET created_at = $2 WHERE id = $1",
            &[&reused.id, &(now() - Duration::days(50))],
        )
        .await
        .unwrap();
    // The successor is created after the old files were written.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let successor = fixtures::pipeline(&client, "default", "bronze", "reused").await;
    let head = write(&world, "default/pipelines/bronze/reused/pipeline.sql", "new").await;

    let report = run_pass(&world.services, now(), &policy(), &not_lost()).await.unwrap();
    assert!(report.tasks.iter().all(|t| t.error.is_none()), "{report:#?}");
    assert!(!exists(&world, "pipelines", gone.id.into()).await);
    assert_eq!(
        versions_under(&world, "default/pipelines/bronze/gone/").await,
        0,
        "every version deleted"
    );
    assert!(exists(&world, "pipelines", recent.id.into()).await);
    assert_eq!(versions_under(&world, "default/pipelines/bronze/recent/").await, 1);
    assert!(!exists(&world, "pipelines", reused.id.into()).await);
    assert!(exists(&world, "pipelines", successor.id.into()).await);
    let key = rat_versioning::ObjectKey::parse("default/pipelines/bronze/reused/pipeline.sql").unwrap();
    let still = world.services.store.get(&key, Some(&head)).await.unwrap();
    assert_eq!(still.body, b"new");
    assert_eq!(report.counters.pipelines_purged, 2);
}

#[tokio::test]
async fn processed_files_of_auto_purge_zones_go_objects_first() {
    let world = fs_world().await;
    let client = world.db.client().await;
    let zone_id = |name: &'static str, auto: bool, age: Option<i32>| {
        let client = &client;
        async move {
            let id: Uuid = client
                .query_one(
                    "INSERT INTO landing_zones (namespace, name, auto_purge, processed_max_age_days) \
                     VALUES ('default', $1, $2, $3) RETURNING id",
                    &[&name, &auto, &age],
                )
                .await
                .unwrap()
                .get(0);
            id
        }
    };
    let purged_zone = zone_id("purged", true, Some(10)).await;
    let kept_zone = zone_id("kept", false, Some(10)).await;
    let mut files = Vec::new();
    for (zone, zone_name, days_old) in [
        (purged_zone, "purged", 20),
        (purged_zone, "purged", 2),
        (kept_zone, "kept", 20),
    ] {
        let key = format!("default/landing/{zone_name}/f{days_old}.csv");
        write(&world, &key, "a,b").await;
        let id: Uuid = client
            .query_one(
                "INSERT INTO landing_files (zone_id, filename, s3_path, uploaded_at) VALUES ($1, 'f.csv', $2, $3) RETURNING id",
                &[&zone, &key, &(now() - Duration::days(days_old))],
            )
            .await
            .unwrap()
            .get(0);
        files.push((id, key));
    }
    let report = run_pass(&world.services, now(), &policy(), &not_lost()).await.unwrap();
    assert!(!exists(&world, "landing_files", files[0].0).await);
    assert_eq!(
        versions_under(&world, "default/landing/purged/").await,
        1,
        "only the young file's version is left"
    );
    assert!(exists(&world, "landing_files", files[1].0).await);
    assert!(
        exists(&world, "landing_files", files[2].0).await,
        "zones without auto_purge keep everything"
    );
    assert_eq!(report.counters.lz_files_cleaned, 1);
}

#[tokio::test]
async fn old_audit_entries_go() {
    let world = fs_world().await;
    set_retention(&world, |s| s.audit_log_max_age_days = 30).await;
    let client = world.db.client().await;
    for days_old in [1, 10, 40, 50, 400] {
        client
            .execute(
                "INSERT INTO audit_log (actor, action, timestamp) VALUES ('a', 'x', $1)",
                &[&(now() - Duration::days(days_old))],
            )
            .await
            .unwrap();
    }
    let report = run_pass(&world.services, now(), &policy(), &not_lost()).await.unwrap();
    let left: i64 = client
        .query_one("SELECT count(*) FROM audit_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 2);
    assert_eq!(report.counters.audit_pruned, 3);
}

#[tokio::test]
async fn failed_merges_go_with_the_audit_age() {
    let world = fs_world().await;
    set_retention(&world, |s| s.audit_log_max_age_days = 30).await;
    let client = world.db.client().await;
    for (days_old, branch) in [
        (1, "run-a"),
        (10, "run-b"),
        (40, "run-c"),
        (50, "run-d"),
        (400, "run-e"),
    ] {
        let report = rat_dao::failed_merges::NewFailedMerge {
            run_id: "r".into(),
            branch_name: branch.into(),
            source_hash: None,
            target_hash: None,
            error_kind: "conflict".into(),
            error_message: "boom".into(),
        };
        rat_dao::failed_merges::insert(&client, &report, now() - Duration::days(days_old))
            .await
            .unwrap();
    }
    let report = run_pass(&world.services, now(), &policy(), &not_lost()).await.unwrap();
    let left: Vec<String> = client
        .query("SELECT branch_name FROM failed_merges ORDER BY branch_name", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["run-a", "run-b"]);
    let task = report.tasks.iter().find(|t| t.task == "failed_merges").unwrap();
    assert_eq!((task.rows, task.error.as_deref()), (3, None));
}

#[tokio::test]
async fn a_lost_lock_stops_every_task_and_the_pass_stays_owed() {
    let world = fs_world().await;
    let pipeline = fixtures::published_pipeline(&world.db.client().await, "default", "silver", "p").await;
    let old = finished_run(&world, &pipeline, Duration::days(400)).await;
    let (tx, lost) = watch::channel(false);
    tx.send(true).unwrap();
    let report = run_pass(&world.services, now(), &policy(), &lost).await.unwrap();
    assert!(report.interrupted);
    assert!(
        report
            .tasks
            .iter()
            .all(|t| t.error.as_deref().is_some_and(|e| e.contains("lost its lock")))
    );
    assert_eq!(
        report.status.last_run_at, None,
        "an interrupted pass is not a pass done"
    );
    assert!(exists(&world, "runs", old).await, "nothing ran after the lock was lost");

    let report = run_pass(&world.services, now(), &policy(), &not_lost()).await.unwrap();
    assert!(!report.interrupted);
    assert!(report.status.last_run_at.is_some());
    assert!(!exists(&world, "runs", old).await);
}

#[tokio::test]
async fn stored_zeros_never_delete_everything() {
    let world = fs_world().await;
    let client = world.db.client().await;
    // ratd stored missing keys as 0; such values are read as the defaults.
    rat_dao::settings::put(&client, "retention", &serde_json::json!({"audit_log_max_age_days": 0}))
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO audit_log (actor, action, timestamp) VALUES ('a', 'x', $1)",
            &[&(now() - Duration::days(1))],
        )
        .await
        .unwrap();
    let report = run_pass(&world.services, now(), &policy(), &not_lost()).await.unwrap();
    assert_eq!(report.counters.audit_pruned, 0);
    assert!(!report.settings_problems.is_empty());
}

#[tokio::test]
async fn one_exclusive_pass_at_a_time_and_none_that_is_no_longer_owed() {
    use rat_service::reaper::{Attempt, run_exclusive};
    let world = fs_world().await;
    let url = world.db.database();
    let stop = not_lost();
    // Another process holds the reaper lock: this one does not run a pass.
    let holder = rat_dao::connect_dedicated(&url, "holder").await.unwrap();
    assert!(rat_dao::reaper_status::try_lock(&holder).await.unwrap());
    let attempt = run_exclusive(&world.services, &url, &policy(), &stop, false, now())
        .await
        .unwrap();
    assert!(matches!(attempt, Attempt::Busy), "{attempt:?}");
    drop(holder);
    // Two at once: exactly one runs it, the other finds the lock taken, or
    // (if it came second) the pass no longer owed.
    let policy = policy();
    let (a, b) = tokio::join!(
        run_exclusive(&world.services, &url, &policy, &stop, true, now()),
        run_exclusive(&world.services, &url, &policy, &stop, true, now()),
    );
    let attempts = [a.unwrap(), b.unwrap()];
    let done = attempts.iter().filter(|a| matches!(a, Attempt::Done(_))).count();
    assert_eq!(done, 1, "{attempts:?}");
    // Just run: no longer owed.
    let again = run_exclusive(&world.services, &url, &policy, &stop, true, now())
        .await
        .unwrap();
    assert!(matches!(again, Attempt::NotDue), "{again:?}");
    // Asked for on the command line: runs all the same.
    let forced = run_exclusive(&world.services, &url, &policy, &stop, false, now())
        .await
        .unwrap();
    assert!(matches!(forced, Attempt::Done(_)), "{forced:?}");
}
