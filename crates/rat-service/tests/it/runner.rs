//! The runner protocol through the service layer against a real PostgreSQL:
//! concurrent claims hand every run out exactly once, a cancel racing a
//! completion leaves exactly one terminal state, an expired lease refuses
//! every later report of its old holder, late reports change nothing, and
//! quality results are recorded with the outcome in one transaction.

use rat_service::identity::Caller;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use crate::common::{World, fs_world};
use rat_dao::quality::{self, NewQualityTest};
use rat_dao::runs::{self as run_rows, RunReport};
use rat_domain::{LogEntry, LogLevel, Pipeline, QualityStatus, Run, RunStatus, Severity, TestName};
use rat_service::ServiceError;
use rat_service::runner::{self, Completion, Lease, QualityReport, RunnerId};
use rat_testkit::fixtures;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2026-04-01 08:00:00 UTC);
const TTL: StdDuration = StdDuration::from_secs(900);

fn runner_id(name: &str) -> RunnerId {
    RunnerId::parse(name).unwrap()
}

fn lease(seconds: i64) -> Lease {
    Lease::parse(Some(seconds)).unwrap()
}

fn success() -> Completion {
    Completion {
        status: RunStatus::Success,
        report: RunReport::default(),
        quality_results: Vec::new(),
    }
}

fn log(message: &str) -> LogEntry {
    LogEntry::new(T0, LogLevel::Info, message).unwrap()
}

#[track_caller]
fn assert_refused(result: Result<impl std::fmt::Debug, ServiceError>, expected: &str) {
    match result {
        Err(ServiceError::FailedPrecondition { message }) => {
            assert!(message.contains(expected), "{message:?} does not say {expected:?}")
        }
        other => panic!("expected a refusal saying {expected:?}, got {other:?}"),
    }
}

/// A published pipeline and `n` pending runs of it, created a second apart before T0.
async fn pending_runs(world: &World, n: i64) -> (Pipeline, Vec<Run>) {
    let client = world.db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let mut created = Vec::new();
    for i in 0..n {
        created.push(fixtures::run_at(&client, &pipeline, T0 - Duration::seconds(n - i)).await);
    }
    (pipeline, created)
}

async fn stored(world: &World, id: Uuid) -> Run {
    run_rows::get(&world.db.client().await, id.into()).await.unwrap()
}

async fn log_count(world: &World, id: Uuid) -> usize {
    run_rows::log_entries_after(&world.db.client().await, id.into(), 0, 10_000)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_claim_answers_what_the_runner_needs_and_validates_its_arguments() {
    let world = fs_world().await;
    let (pipeline, created) = pending_runs(&world, 2).await;
    let claimed = runner::claim(&world.services, &runner_id("r1"), 1, lease(30), TTL, T0)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let first = &claimed[0];
    assert_eq!(first.run.id, created[0].id);
    assert_eq!(first.run.status, RunStatus::Running);
    assert_eq!(first.run.lease_expires_at, Some(T0 + Duration::seconds(30)));
    assert_eq!(first.pipeline, pipeline.address);
    assert_eq!(first.pipeline_type, pipeline.pipeline_type);
    let files: Vec<(&str, &str, &str)> = first
        .files
        .iter()
        .map(|f| (f.key.as_str(), f.path.as_str(), f.version_id.as_str()))
        .collect();
    let config = format!("{}config.yaml", pipeline.s3_path);
    let sql = format!("{}pipeline.sql", pipeline.s3_path);
    assert_eq!(
        files,
        vec![
            (config.as_str(), "config.yaml", "v-cfg-1"),
            (sql.as_str(), "pipeline.sql", "v-sql-1")
        ]
    );
    assert!(
        first.files.iter().all(|f| f.url.is_none()),
        "the filesystem store cannot presign"
    );

    for (max_runs, ok) in [(None, true), (Some(0), false), (Some(100), true), (Some(101), false)] {
        assert_eq!(runner::claim_size(max_runs).is_ok(), ok, "{max_runs:?}");
    }
    assert_eq!(runner::claim_size(None).unwrap(), 1);
    for (seconds, ok) in [
        (None, true),
        (Some(9), false),
        (Some(10), true),
        (Some(3600), true),
        (Some(3601), false),
    ] {
        assert_eq!(Lease::parse(seconds).is_ok(), ok, "{seconds:?}");
    }
    assert_eq!(Lease::parse(None).unwrap().until(T0), T0 + Duration::seconds(60));
    for bad in ["", "a\tb", &"x".repeat(256)] {
        assert!(
            matches!(
                RunnerId::parse(bad).map_err(ServiceError::from),
                Err(ServiceError::InvalidInput { .. })
            ),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn two_runners_claiming_a_thousand_runs_concurrently_get_each_exactly_once() {
    let world = fs_world().await;
    let client = world.db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    client
        .execute(
            "INSERT INTO runs (pipeline_id, trigger, version_number, published_versions, created_at) \
             SELECT $1, 'manual', 1, $2, $3::timestamptz + n * interval '1 millisecond' \
             FROM generate_series(1, 1000) AS n",
            &[&pipeline.id, &fixtures::snapshot(&pipeline).to_json(), &T0],
        )
        .await
        .unwrap();
    drop(client);

    let start = Arc::new(tokio::sync::Barrier::new(2));
    let claimers = ["runner-a", "runner-b"].map(|name| {
        let services = world.services.clone();
        let start = start.clone();
        // Different batch sizes, so the two loops interleave unevenly.
        let batch = if name == "runner-a" { 7 } else { 13 };
        tokio::spawn(async move {
            let runner = runner_id(name);
            let mut got: Vec<rat_domain::RunId> = Vec::new();
            start.wait().await;
            // Bounded: 1000 runs cannot take more than 1000 non-empty claims.
            for _ in 0..1000 {
                let claimed = runner::claim(&services, &runner, batch, lease(60), TTL, T0)
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    break;
                }
                assert!(claimed.len() <= batch as usize);
                got.extend(claimed.iter().map(|c| c.run.id));
            }
            got
        })
    });
    let [a, b] = claimers;
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both runners claimed: {} / {}",
        a.len(),
        b.len()
    );
    let mut all: HashSet<rat_domain::RunId> = HashSet::new();
    for id in a.iter().chain(&b) {
        assert!(all.insert(*id), "run {id} was handed out twice");
    }
    assert_eq!(all.len(), 1000, "every run was claimed");

    let client = world.db.client().await;
    let rows = client
        .query(
            "SELECT runner_id, count(*) AS n FROM runs WHERE status = 'running' GROUP BY runner_id ORDER BY runner_id",
            &[],
        )
        .await
        .unwrap();
    let per_runner: Vec<(String, i64)> = rows.iter().map(|r| (r.get("runner_id"), r.get("n"))).collect();
    assert_eq!(
        per_runner,
        vec![
            ("runner-a".to_owned(), a.len() as i64),
            ("runner-b".to_owned(), b.len() as i64)
        ]
    );
    let pending: i64 = client
        .query_one("SELECT count(*) FROM runs WHERE status = 'pending'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn a_cancel_racing_a_completion_ends_in_exactly_one_terminal_state() {
    let world = fs_world().await;
    let (_, created) = pending_runs(&world, 100).await;
    let runner = runner_id("racer");
    let claimed = runner::claim(&world.services, &runner, 100, lease(600), TTL, T0)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 100);
    let mut outcomes = (0, 0);
    let completion = success();
    let community = Caller::community();
    for run in &created {
        let now = T0 + Duration::seconds(1);
        let cancel = rat_service::runs::cancel(&world.services, &community, run.id, now);
        let complete = runner::complete(&world.services, run.id, &runner, &completion, now);
        let (cancel, complete) = tokio::join!(cancel, complete);
        let winner = match (&cancel, &complete) {
            (Ok(_), Err(ServiceError::FailedPrecondition { message })) => {
                assert!(message.contains("cancelled"), "{message}");
                outcomes.0 += 1;
                RunStatus::Cancelled
            }
            (Err(ServiceError::FailedPrecondition { message }), Ok(_)) => {
                assert!(message.contains("already success"), "{message}");
                outcomes.1 += 1;
                RunStatus::Success
            }
            other => panic!("exactly one writer must win: {other:?}"),
        };
        // Two readers on two connections agree with the winner.
        let through_service = rat_service::runs::get(&world.services, &Caller::community(), run.id)
            .await
            .unwrap();
        let direct = stored(&world, run.id.into()).await;
        assert_eq!(through_service.status, winner);
        assert_eq!(direct, through_service);
        assert_eq!(direct.finished_at, Some(now));
    }
    assert_eq!(outcomes.0 + outcomes.1, 100);
}

#[tokio::test]
async fn an_expired_lease_refuses_the_old_holder_and_the_run_is_never_claimed_again() {
    let world = fs_world().await;
    let (pipeline, _) = pending_runs(&world, 1).await;
    let old = runner_id("old-holder");
    let id = runner::claim(&world.services, &old, 1, lease(10), TTL, T0)
        .await
        .unwrap()[0]
        .run
        .id;
    // Within the lease, everything is accepted.
    let beat = runner::heartbeat(&world.services, id, &old, Some(lease(10)), T0 + Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!(beat.lease_expires_at, Some(T0 + Duration::seconds(15)));
    assert!(!beat.stop);
    runner::append_logs(&world.services, id, &old, &[log("working")], T0 + Duration::seconds(6))
        .await
        .unwrap();

    let after = T0 + Duration::seconds(16);
    let before = stored(&world, id.into()).await;
    assert_refused(
        runner::heartbeat(&world.services, id, &old, Some(lease(60)), after).await,
        "lease",
    );
    assert_refused(
        runner::append_logs(&world.services, id, &old, &[log("too late")], after).await,
        "lease",
    );
    assert_refused(
        runner::complete(&world.services, id, &old, &success(), after).await,
        "lease",
    );
    assert_eq!(stored(&world, id.into()).await, before, "nothing changed");
    assert_eq!(log_count(&world, id.into()).await, 1);

    // Another runner never gets it: it is not pending. A new run it does get.
    let client = world.db.client().await;
    let fresh = fixtures::run_at(&client, &pipeline, after).await;
    let other = runner::claim(&world.services, &runner_id("new-runner"), 100, lease(60), TTL, after)
        .await
        .unwrap();
    assert_eq!(other.iter().map(|c| c.run.id).collect::<Vec<_>>(), vec![fresh.id]);
    assert_eq!(stored(&world, id.into()).await, before);
}

#[tokio::test]
async fn late_reports_after_completion_are_refused_and_change_nothing() {
    let world = fs_world().await;
    pending_runs(&world, 1).await;
    let holder = runner_id("r1");
    let id = runner::claim(&world.services, &holder, 1, lease(60), TTL, T0)
        .await
        .unwrap()[0]
        .run
        .id;
    runner::append_logs(&world.services, id, &holder, &[log("one"), log("two")], T0)
        .await
        .unwrap();
    let report = Completion {
        status: RunStatus::Success,
        report: RunReport {
            error: None,
            duration_ms: Some(1200),
            rows_written: Some(10),
            phase_profiles: None,
        },
        quality_results: Vec::new(),
    };
    let done = runner::complete(&world.services, id, &holder, &report, T0 + Duration::seconds(2))
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Success);
    assert_eq!(done.rows_written, Some(10));

    let late = T0 + Duration::seconds(3);
    assert_refused(
        runner::heartbeat(&world.services, id, &holder, Some(lease(60)), late).await,
        "already success",
    );
    assert_refused(
        runner::append_logs(&world.services, id, &holder, &[log("late")], late).await,
        "already success",
    );
    let failed = Completion {
        status: RunStatus::Failed,
        report: RunReport {
            error: Some("late".to_owned()),
            ..Default::default()
        },
        quality_results: Vec::new(),
    };
    assert_refused(
        runner::complete(&world.services, id, &holder, &failed, late).await,
        "already success",
    );
    assert_refused(
        runner::complete(&world.services, id, &runner_id("r2"), &failed, late).await,
        "already success",
    );
    assert_eq!(stored(&world, id.into()).await, done);
    assert_eq!(log_count(&world, id.into()).await, 2);
    let err = runner::heartbeat(&world.services, Uuid::new_v4().into(), &holder, Some(lease(60)), late)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound { entity: "run" }), "{err:?}");
}

#[tokio::test]
async fn a_heartbeat_on_a_cancelled_run_tells_its_holder_to_stop() {
    let world = fs_world().await;
    pending_runs(&world, 1).await;
    let holder = runner_id("r1");
    let id = runner::claim(&world.services, &holder, 1, lease(60), TTL, T0)
        .await
        .unwrap()[0]
        .run
        .id;
    rat_service::runs::cancel(&world.services, &Caller::community(), id, T0 + Duration::seconds(1))
        .await
        .unwrap();
    let before = stored(&world, id.into()).await;
    let beat = runner::heartbeat(&world.services, id, &holder, Some(lease(60)), T0 + Duration::seconds(2))
        .await
        .unwrap();
    assert!(beat.stop);
    assert_eq!(beat.status, RunStatus::Cancelled);
    assert_eq!(
        beat.lease_expires_at, before.lease_expires_at,
        "the lease is not extended"
    );
    assert_eq!(stored(&world, id.into()).await, before);
    // Another runner is simply refused.
    assert_refused(
        runner::heartbeat(&world.services, id, &runner_id("r2"), None, T0 + Duration::seconds(2)).await,
        "already cancelled",
    );
    assert_refused(
        runner::complete(&world.services, id, &holder, &success(), T0 + Duration::seconds(3)).await,
        "cancelled",
    );
}

async fn quality_test(world: &World, pipeline: &Pipeline, name: &str, severity: Severity) {
    quality::create(
        &world.db.client().await,
        &NewQualityTest {
            pipeline_id: pipeline.id,
            name: TestName::parse(name).unwrap(),
            description: String::new(),
            severity,
            s3_path: format!("{}tests/quality/{name}.sql", pipeline.s3_path),
        },
    )
    .await
    .unwrap();
}

fn result(test: &str, value: Option<f64>, error: Option<&str>) -> QualityReport {
    QualityReport {
        test: TestName::parse(test).unwrap(),
        value,
        expected: Some(0.0),
        duration_ms: Some(7),
        error: error.map(str::to_owned),
    }
}

#[tokio::test]
async fn a_completion_records_one_quality_result_per_test_in_its_transaction() {
    let world = fs_world().await;
    let (pipeline, _) = pending_runs(&world, 2).await;
    quality_test(&world, &pipeline, "no_nulls", Severity::Error).await;
    quality_test(&world, &pipeline, "few_dupes", Severity::Warn).await;
    quality_test(&world, &pipeline, "positive", Severity::Error).await;
    quality_test(&world, &pipeline, "broken", Severity::Error).await;
    let holder = runner_id("r1");
    let claimed = runner::claim(&world.services, &holder, 2, lease(60), TTL, T0)
        .await
        .unwrap();
    let (first, second) = (claimed[0].run.id, claimed[1].run.id);

    // Refused before anything is written: the run stays running, no result is recorded.
    let mut refusals = vec![
        (
            vec![result("no_nulls", Some(0.0), None), result("ghost", Some(0.0), None)],
            "ghost",
        ),
        (
            vec![result("no_nulls", Some(0.0), None), result("no_nulls", Some(1.0), None)],
            "more than once",
        ),
        (vec![result("no_nulls", None, None)], "value is required"),
    ];
    for (results, expected) in refusals.drain(..) {
        let completion = Completion {
            quality_results: results,
            ..success()
        };
        let err = runner::complete(&world.services, first, &holder, &completion, T0 + Duration::seconds(1))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ServiceError::InvalidInput { message } if message.contains(expected)),
            "{err:?}"
        );
        assert_eq!(stored(&world, first.into()).await.status, RunStatus::Running);
        let client = world.db.client().await;
        assert!(quality::results_for_run(&client, first, 100).await.unwrap().is_empty());
    }

    let completion = Completion {
        quality_results: vec![
            result("no_nulls", Some(0.0), None),
            result("few_dupes", Some(3.0), None),
            result("positive", Some(2.0), None),
            result("broken", Some(5.0), Some("syntax error at or near SELCT")),
        ],
        ..success()
    };
    let now = T0 + Duration::seconds(2);
    let done = runner::complete(&world.services, first, &holder, &completion, now)
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Success);
    let client = world.db.client().await;
    let results = quality::results_for_run(&client, first, 100).await.unwrap();
    let mut by_test = Vec::new();
    for r in &results {
        let name: String = client
            .query_one("SELECT name FROM quality_tests WHERE id = $1", &[&r.test_id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(r.run_id, Some(first));
        assert_eq!(r.ran_at, now);
        assert_eq!(r.duration_ms, Some(7));
        assert_eq!(r.expected, Some(0.0));
        by_test.push((name, r.status, r.value));
    }
    by_test.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        by_test,
        vec![
            ("broken".to_owned(), QualityStatus::Error, Some(5.0)),
            ("few_dupes".to_owned(), QualityStatus::Warned, Some(3.0)),
            ("no_nulls".to_owned(), QualityStatus::Passed, Some(0.0)),
            ("positive".to_owned(), QualityStatus::Failed, Some(2.0)),
        ]
    );

    // A refused completion records no result either.
    let late = Completion {
        quality_results: vec![result("no_nulls", Some(0.0), None)],
        ..success()
    };
    assert_refused(
        runner::complete(&world.services, first, &holder, &late, now).await,
        "already success",
    );
    assert_refused(
        runner::complete(&world.services, second, &runner_id("intruder"), &late, now).await,
        "not held",
    );
    assert_eq!(quality::results_for_run(&client, first, 100).await.unwrap().len(), 4);
    assert!(quality::results_for_run(&client, second, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn logs_are_appended_in_order_by_the_holder_only() {
    let world = fs_world().await;
    let (_, created) = pending_runs(&world, 2).await;
    let holder = runner_id("r1");
    let id = runner::claim(&world.services, &holder, 1, lease(60), TTL, T0)
        .await
        .unwrap()[0]
        .run
        .id;
    runner::append_logs(&world.services, id, &holder, &[log("a"), log("b"), log("c")], T0)
        .await
        .unwrap();
    // An empty batch only checks the hold.
    runner::append_logs(&world.services, id, &holder, &[], T0)
        .await
        .unwrap();
    let client = world.db.client().await;
    let messages: Vec<String> = run_rows::log_entries_after(&client, id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.message)
        .collect();
    assert_eq!(messages, ["a", "b", "c"]);
    assert_refused(
        runner::append_logs(&world.services, id, &runner_id("r2"), &[log("x")], T0).await,
        "not held",
    );
    assert_refused(
        runner::append_logs(&world.services, created[1].id, &holder, &[log("x")], T0).await,
        "not held",
    );
    let too_many: Vec<LogEntry> = (0..=run_rows::MAX_LOG_BATCH).map(|_| log("x")).collect();
    assert!(matches!(
        runner::append_logs(&world.services, id, &holder, &too_many, T0).await,
        Err(ServiceError::InvalidInput { .. })
    ));
    assert_eq!(log_count(&world, id.into()).await, 3);
}

#[tokio::test]
async fn the_ratd_callback_moves_runs_through_the_state_machine_whoever_holds_them() {
    let world = fs_world().await;
    let (_, created) = pending_runs(&world, 3).await;
    let report = RunReport {
        error: None,
        duration_ms: Some(5000),
        rows_written: Some(42),
        phase_profiles: None,
    };
    let now = T0 + Duration::seconds(1);
    // pending -> running -> running (repeated) -> success; no lease involved.
    let running = runner::callback_status(
        &world.services,
        created[0].id,
        RunStatus::Running,
        &RunReport::default(),
        now,
    )
    .await
    .unwrap();
    assert_eq!(running.status, RunStatus::Running);
    assert_eq!(running.started_at, Some(now));
    let again = runner::callback_status(
        &world.services,
        created[0].id,
        RunStatus::Running,
        &RunReport::default(),
        now + Duration::seconds(1),
    )
    .await
    .unwrap();
    assert_eq!(again, running, "a repeated running changes nothing");
    let done = runner::callback_status(&world.services, created[0].id, RunStatus::Success, &report, now)
        .await
        .unwrap();
    assert_eq!(
        (done.status, done.duration_ms, done.rows_written),
        (RunStatus::Success, Some(5000), Some(42))
    );
    assert_refused(
        runner::callback_status(&world.services, created[0].id, RunStatus::Failed, &report, now).await,
        "already success",
    );
    assert_eq!(stored(&world, created[0].id.into()).await, done);

    // A run held by a lease-runner is completed all the same.
    let held = runner::claim(&world.services, &runner_id("r1"), 1, lease(60), TTL, now)
        .await
        .unwrap();
    assert_eq!(held[0].run.id, created[1].id);
    let failed = runner::callback_status(&world.services, created[1].id, RunStatus::Failed, &report, now)
        .await
        .unwrap();
    assert_eq!(failed.status, RunStatus::Failed);

    // A pending run can fail but not succeed.
    assert_refused(
        runner::callback_status(&world.services, created[2].id, RunStatus::Success, &report, now).await,
        "cannot move from pending to success",
    );
    assert_eq!(stored(&world, created[2].id.into()).await.status, RunStatus::Pending);
    let cancelled = runner::callback_status(&world.services, created[2].id, RunStatus::Cancelled, &report, now)
        .await
        .unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(matches!(
        runner::callback_status(&world.services, created[2].id, RunStatus::Pending, &report, now).await,
        Err(ServiceError::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn every_completion_path_announces_the_terminal_status_at_commit() {
    let world = fs_world().await;
    let (_, created) = pending_runs(&world, 2).await;
    let mut events = run_rows::RunEvents::connect(&world.db.database(), "rat-test-listener")
        .await
        .unwrap();
    let holder = runner_id("r1");
    runner::claim(&world.services, &holder, 1, lease(60), TTL, T0)
        .await
        .unwrap();
    runner::complete(&world.services, created[0].id, &holder, &success(), T0)
        .await
        .unwrap();
    runner::callback_status(
        &world.services,
        created[1].id,
        RunStatus::Failed,
        &RunReport::default(),
        T0,
    )
    .await
    .unwrap();
    let mut finished = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(StdDuration::from_secs(5), events.recv())
            .await
            .expect("an event within 5 s");
        finished.push(event);
    }
    assert_eq!(
        finished,
        vec![
            Some(run_rows::RunEvent::Finished(created[0].id)),
            Some(run_rows::RunEvent::Finished(created[1].id))
        ]
    );
}
