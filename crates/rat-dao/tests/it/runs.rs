//! `runs` repository against a real PostgreSQL: snapshot columns, the status
//! machine guard, logs and every list filter.

use rat_dao::{DaoError, runs};
use rat_domain::{Layer, NamespaceName, PageRequest, PipelineName, PublishedVersions, RunSortField, RunStatus, Sort};
use rat_testkit::{TestDatabase, fixtures};
use time::OffsetDateTime;
use time::macros::datetime;

#[tokio::test]
async fn every_column_round_trips() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let pins = PublishedVersions::from_pairs([("default/pipelines/silver/orders/pipeline.sql", "abc")]).unwrap();
    let slot = datetime!(2026-06-01 10:00:00 UTC);
    let created_at = datetime!(2026-06-01 10:00:00.25 UTC);
    let created = runs::create(
        &client,
        &runs::NewRun {
            pipeline_id: pipeline.id,
            trigger: "schedule:0 * * * *".to_owned(),
            version_number: rat_domain::VersionNumber::parse(3).unwrap(),
            published_versions: pins.clone(),
            schedule_id: None,
            trigger_id: None,
            scheduled_for: Some(slot),
        },
        created_at,
    )
    .await
    .unwrap();
    assert_eq!(created.status, RunStatus::Pending);
    assert_eq!(created.trigger, "schedule:0 * * * *");
    assert_eq!(created.version_number, 3);
    assert_eq!(created.published_versions, pins);
    assert_eq!(created.scheduled_for, Some(slot));
    assert_eq!(created.created_at, created_at);
    assert!(created.started_at.is_none() && created.finished_at.is_none() && created.runner_id.is_none());

    let started = runs::transition(&client, created.id, RunStatus::Running, &Default::default(), created_at)
        .await
        .unwrap();
    assert_eq!(started.started_at, Some(created_at));
    let report = runs::RunReport {
        error: None,
        duration_ms: Some(1234),
        rows_written: Some(5_000_000_000),
        phase_profiles: Some(serde_json::json!({"read": 10, "write": 20})),
    };
    let finished_at = datetime!(2026-06-01 10:00:02 UTC);
    let done = runs::transition(&client, created.id, RunStatus::Success, &report, finished_at)
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Success);
    assert_eq!(done.started_at, Some(created_at), "started_at is set once");
    assert_eq!(done.finished_at, Some(finished_at));
    assert_eq!(done.duration_ms, Some(1234));
    assert_eq!(done.rows_written, Some(5_000_000_000));
    assert_eq!(done.phase_profiles, report.phase_profiles);
    assert_eq!(runs::get(&client, created.id).await.unwrap(), done);
}

#[tokio::test]
async fn every_illegal_transition_is_refused_and_changes_nothing() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let now = OffsetDateTime::now_utc();
    // Drive a fresh run into each status, then try every target from there.
    let paths: &[&[RunStatus]] = &[
        &[],
        &[RunStatus::Running],
        &[RunStatus::Running, RunStatus::Success],
        &[RunStatus::Running, RunStatus::Failed],
        &[RunStatus::Cancelled],
    ];
    let mut refused = 0;
    for path in paths {
        for target in RunStatus::ALL {
            let run = fixtures::run(&client, &pipeline).await;
            for step in *path {
                runs::transition(&client, run.id, *step, &Default::default(), now)
                    .await
                    .unwrap();
            }
            let from = path.last().copied().unwrap_or(RunStatus::Pending);
            let before = runs::get(&client, run.id).await.unwrap();
            let report = runs::RunReport {
                error: Some("late report".to_owned()),
                ..Default::default()
            };
            let result = runs::transition(&client, run.id, *target, &report, now).await;
            if from.can_transition_to(*target) {
                assert_eq!(result.unwrap().status, *target, "{from} -> {target}");
            } else {
                refused += 1;
                let err = result.unwrap_err();
                assert!(
                    matches!(err, DaoError::InvalidTransition { from: f, to } if f == from && to == *target),
                    "{from} -> {target}: {err:?}"
                );
                assert_eq!(
                    runs::get(&client, run.id).await.unwrap(),
                    before,
                    "{from} -> {target} changed the run"
                );
            }
        }
    }
    // 5 statuses x 5 targets = 25 moves, 6 of them legal.
    assert_eq!(refused, 19);
}

#[tokio::test]
async fn cancel_racing_completion_ends_in_exactly_one_terminal_state() {
    let db = TestDatabase::new().await;
    let setup = db.client().await;
    let pipeline = fixtures::published_pipeline(&setup, "default", "silver", "orders").await;
    for _ in 0..20 {
        let run = fixtures::run(&setup, &pipeline).await;
        let now = OffsetDateTime::now_utc();
        runs::transition(&setup, run.id, RunStatus::Running, &Default::default(), now)
            .await
            .unwrap();
        let (a, b) = (db.client().await, db.client().await);
        let no_report = runs::RunReport::default();
        let cancel = runs::transition(&a, run.id, RunStatus::Cancelled, &no_report, now);
        let complete = runs::transition(&b, run.id, RunStatus::Success, &no_report, now);
        let (cancel, complete) = tokio::join!(cancel, complete);
        assert!(
            cancel.is_ok() != complete.is_ok(),
            "exactly one writer wins: {cancel:?} / {complete:?}"
        );
        let winner = if cancel.is_ok() {
            RunStatus::Cancelled
        } else {
            RunStatus::Success
        };
        assert_eq!(runs::get(&setup, run.id).await.unwrap().status, winner);
    }
}

#[tokio::test]
async fn unknown_run_is_not_found() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let id = uuid::Uuid::new_v4();
    let now = OffsetDateTime::now_utc();
    for err in [
        runs::get(&client, id.into()).await.unwrap_err(),
        runs::transition(&client, id.into(), RunStatus::Cancelled, &Default::default(), now)
            .await
            .unwrap_err(),
        runs::append_log_entries(&client, id.into(), &[entry(0, "x")])
            .await
            .unwrap_err(),
        runs::legacy_logs(&client, id.into()).await.unwrap_err(),
        runs::delete(&client, id.into()).await.unwrap_err(),
    ] {
        assert!(matches!(err, DaoError::NotFound { entity: "run" }), "{err:?}");
    }
}

#[tokio::test]
async fn unknown_pipeline_and_bad_snapshot_are_refused() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let mut new = runs::NewRun {
        pipeline_id: uuid::Uuid::new_v4().into(),
        trigger: "manual".to_owned(),
        version_number: rat_domain::VersionNumber::parse(1).unwrap(),
        published_versions: fixtures::snapshot(&pipeline),
        schedule_id: None,
        trigger_id: None,
        scheduled_for: None,
    };
    let now = OffsetDateTime::now_utc();
    let err = runs::create(&client, &new, now).await.unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "pipeline", constraint } if constraint == "fk_runs_pipeline"),
        "{err:?}"
    );
    new.pipeline_id = pipeline.id;
    // Version 0 cannot be built as a `VersionNumber` any more; the schema's
    // own check is exercised with the other constraints below.
    new.trigger = "x".repeat(513);
    let err = runs::create(&client, &new, now).await.unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "value"),
        "{err:?}"
    );
    for (sql, constraint) in [
        ("UPDATE runs SET version_number = 0", "ck_runs_version_number"),
        ("UPDATE runs SET status = 'paused'", "ck_runs_status"),
        ("UPDATE runs SET duration_ms = -1", "ck_runs_duration_ms"),
        ("UPDATE runs SET rows_written = -1", "ck_runs_rows_written"),
        (
            "UPDATE runs SET published_versions = '\"x\"'",
            "ck_runs_published_versions_object",
        ),
    ] {
        fixtures::run(&client, &pipeline).await;
        let err = DaoError::from(client.execute(sql, &[]).await.unwrap_err());
        assert!(
            matches!(&err, DaoError::Invalid { constraint: c } if c == constraint),
            "{sql}: {err:?}"
        );
    }
}

fn entry(second: i64, message: &str) -> rat_domain::LogEntry {
    rat_domain::LogEntry::new(
        datetime!(2026-01-01 00:00:00 UTC) + time::Duration::seconds(second),
        rat_domain::LogLevel::Info,
        message,
    )
    .unwrap()
}

#[tokio::test]
async fn log_entries_append_in_order_and_read_after_a_cursor() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let run = fixtures::run(&client, &pipeline).await;
    let other = fixtures::run(&client, &pipeline).await;
    assert!(
        runs::log_entries_after(&client, run.id, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let (legacy, status) = runs::legacy_logs(&client, run.id).await.unwrap();
    assert_eq!((legacy, status), (serde_json::json!([]), RunStatus::Pending));

    let first = runs::append_log_entries(&client, run.id, &[entry(0, "one")])
        .await
        .unwrap();
    runs::append_log_entries(&client, other.id, &[entry(0, "elsewhere")])
        .await
        .unwrap();
    let batch: Vec<_> = (1..=5).map(|i| entry(i, &format!("line {i}"))).collect();
    let last = runs::append_log_entries(&client, run.id, &batch).await.unwrap();
    assert!(last > first);

    let all = runs::log_entries_after(&client, run.id, 0, 100).await.unwrap();
    let messages: Vec<&str> = all.iter().map(|(_, e)| e.message.as_str()).collect();
    assert_eq!(messages, ["one", "line 1", "line 2", "line 3", "line 4", "line 5"]);
    assert_eq!(all.last().unwrap().0, last);
    assert_eq!(all[0].1, entry(0, "one"), "every field round-trips");
    // A cursor resumes after the last entry seen, and the limit bounds a read.
    let after_two = runs::log_entries_after(&client, run.id, all[1].0, 2).await.unwrap();
    let messages: Vec<&str> = after_two.iter().map(|(_, e)| e.message.as_str()).collect();
    assert_eq!(messages, ["line 2", "line 3"]);
    assert!(
        runs::log_entries_after(&client, run.id, last, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Batches are bounded, and entries go with their run.
    assert!(matches!(
        runs::append_log_entries(&client, run.id, &[]).await,
        Err(DaoError::Invalid { .. })
    ));
    let too_many: Vec<_> = (0..=runs::MAX_LOG_BATCH as i64).map(|i| entry(i, "x")).collect();
    assert!(matches!(
        runs::append_log_entries(&client, run.id, &too_many).await,
        Err(DaoError::Invalid { .. })
    ));
    runs::delete(&client, run.id).await.unwrap();
    let left: i64 = client
        .query_one("SELECT count(*) FROM run_logs WHERE run_id = $1", &[&run.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn active_run_detection() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    assert!(!runs::has_active_run(&client, pipeline.id).await.unwrap());
    let run = fixtures::run(&client, &pipeline).await;
    assert!(runs::has_active_run(&client, pipeline.id).await.unwrap());
    let now = OffsetDateTime::now_utc();
    runs::transition(&client, run.id, RunStatus::Running, &Default::default(), now)
        .await
        .unwrap();
    assert!(runs::has_active_run(&client, pipeline.id).await.unwrap());
    runs::transition(&client, run.id, RunStatus::Failed, &Default::default(), now)
        .await
        .unwrap();
    assert!(!runs::has_active_run(&client, pipeline.id).await.unwrap());
}

#[tokio::test]
async fn list_applies_every_filter_and_sort_in_sql() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let orders = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let revenue = fixtures::published_pipeline(&client, "default", "gold", "revenue").await;
    let other_ns_orders = fixtures::published_pipeline(&client, "shop", "silver", "orders").await;
    let t0 = datetime!(2026-03-01 00:00:00 UTC);
    let hour = time::Duration::hours(1);
    // Nine runs, one per hour: orders x4, revenue x3, shop/orders x2.
    let mut made = Vec::new();
    for (i, pipeline) in [
        &orders,
        &orders,
        &orders,
        &orders,
        &revenue,
        &revenue,
        &revenue,
        &other_ns_orders,
        &other_ns_orders,
    ]
    .into_iter()
    .enumerate()
    {
        let at = t0 + hour * i as i32;
        let run = fixtures::run_at(&client, pipeline, at).await;
        runs::transition(&client, run.id, RunStatus::Running, &Default::default(), at)
            .await
            .unwrap();
        made.push(run);
    }
    // Finish some: runs 0 and 4 succeed, run 8 fails.
    for (i, status) in [(0, RunStatus::Success), (4, RunStatus::Success), (8, RunStatus::Failed)] {
        runs::transition(&client, made[i].id, status, &Default::default(), t0 + hour * 20)
            .await
            .unwrap();
    }
    // A pending run that never started.
    let pending = fixtures::run_at(&client, &revenue, t0 + hour * 30).await;

    let newest = runs::DEFAULT_SORT;
    let page = PageRequest::default();
    let ids = |p: &rat_domain::KeysetPage<rat_domain::RunSummary>| p.items.iter().map(|r| r.id).collect::<Vec<_>>();

    let all = runs::list(&client, &Default::default(), newest, page, None)
        .await
        .unwrap();
    assert_eq!(all.total, 10);
    assert_eq!(all.items[0].id, pending.id, "newest first");

    let filter = runs::RunFilter {
        pipeline: Some(PipelineName::parse("orders").unwrap()),
        ..Default::default()
    };
    assert_eq!(
        runs::list(&client, &filter, newest, page, None).await.unwrap().total,
        6,
        "name matches in both namespaces"
    );

    let filter = runs::RunFilter {
        namespace: Some(NamespaceName::parse("default").unwrap()),
        pipeline: Some(PipelineName::parse("orders").unwrap()),
        ..Default::default()
    };
    let listed = runs::list(&client, &filter, newest, page, None).await.unwrap();
    assert_eq!(ids(&listed), [made[3].id, made[2].id, made[1].id, made[0].id]);
    assert_eq!(listed.total, 4);

    let filter = runs::RunFilter {
        layer: Some(Layer::Gold),
        ..Default::default()
    };
    assert_eq!(runs::list(&client, &filter, newest, page, None).await.unwrap().total, 4);

    let filter = runs::RunFilter {
        pipeline_id: Some(other_ns_orders.id),
        ..Default::default()
    };
    assert_eq!(runs::list(&client, &filter, newest, page, None).await.unwrap().total, 2);

    let filter = runs::RunFilter {
        status: Some(RunStatus::Success),
        ..Default::default()
    };
    let listed = runs::list(&client, &filter, newest, page, None).await.unwrap();
    assert_eq!(ids(&listed), [made[4].id, made[0].id]);

    // started_after is inclusive, started_before exclusive.
    let filter = runs::RunFilter {
        started_after: Some(t0 + hour * 2),
        started_before: Some(t0 + hour * 5),
        ..Default::default()
    };
    let listed = runs::list(&client, &filter, newest, page, None).await.unwrap();
    assert_eq!(ids(&listed), [made[4].id, made[3].id, made[2].id]);

    // Oldest first, paged, total over the filtered set.
    let oldest = Sort {
        field: RunSortField::CreatedAt,
        descending: false,
    };
    let filter = runs::RunFilter {
        status: Some(RunStatus::Running),
        ..Default::default()
    };
    let first = runs::list(
        &client,
        &filter,
        oldest,
        PageRequest::new(Some(2), Some(0)).unwrap(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(ids(&first), [made[1].id, made[2].id]);
    assert_eq!(first.total, 6);
    let second = runs::list(
        &client,
        &filter,
        oldest,
        PageRequest::new(Some(2), Some(2)).unwrap(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(ids(&second), [made[3].id, made[5].id]);

    // Sorting by a nullable column: a run that never started comes first descending.
    let by_start = Sort {
        field: RunSortField::StartedAt,
        descending: true,
    };
    let listed = runs::list(&client, &Default::default(), by_start, page, None)
        .await
        .unwrap();
    assert_eq!(listed.items[0].id, pending.id);
    assert_eq!(listed.items[1].id, made[8].id);

    // Runs of a soft-deleted pipeline are not found by name.
    rat_dao::pipelines::soft_delete(&client, &revenue.address, t0)
        .await
        .unwrap();
    let filter = runs::RunFilter {
        pipeline: Some(PipelineName::parse("revenue").unwrap()),
        ..Default::default()
    };
    assert_eq!(runs::list(&client, &filter, newest, page, None).await.unwrap().total, 0);
}

#[tokio::test]
async fn listing_a_pipeline_uses_the_pipeline_index() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    fixtures::run(&client, &pipeline).await;
    client.batch_execute("SET enable_seqscan = off").await.unwrap();
    let plan = fixtures::explain(
        &client,
        "SELECT id FROM runs WHERE pipeline_id = $1 ORDER BY created_at DESC, id DESC LIMIT 50",
        &[&pipeline.id],
    )
    .await;
    assert!(plan.contains("idx_runs_pipeline"), "{plan}");
    assert!(
        !plan.contains("Sort"),
        "a page of one pipeline's runs is read in order off the index: {plan}"
    );
}

#[tokio::test]
async fn appends_and_terminal_moves_notify_listeners_at_commit() {
    use futures_util::StreamExt;
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let run = fixtures::run(&client, &pipeline).await;

    let (listener, mut connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await.unwrap();
    let (tx, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    let stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    tokio::spawn(stream.for_each(move |message| {
        if let Ok(tokio_postgres::AsyncMessage::Notification(n)) = message {
            let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
        }
        futures_util::future::ready(())
    }));
    listener
        .batch_execute(&format!(
            "LISTEN {}; LISTEN {}",
            runs::LOG_CHANNEL,
            runs::STATUS_CHANNEL
        ))
        .await
        .unwrap();
    let next = |n: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>| {
        let received = n.try_recv();
        received.ok()
    };

    // Inside a transaction, nothing is announced before the commit.
    let mut other = db.client().await;
    let tx = other.transaction().await.unwrap();
    runs::append_log_entries(&tx, run.id, &[entry(0, "one")]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(next(&mut notifications), None, "not before commit");
    tx.commit().await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), notifications.recv())
        .await
        .unwrap();
    assert_eq!(got, Some((runs::LOG_CHANNEL.to_owned(), run.id.to_string())));

    // A non-terminal move is silent; a terminal one is announced.
    let now = OffsetDateTime::now_utc();
    runs::transition(&client, run.id, RunStatus::Running, &Default::default(), now)
        .await
        .unwrap();
    runs::transition(&client, run.id, RunStatus::Success, &Default::default(), now)
        .await
        .unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), notifications.recv())
        .await
        .unwrap();
    assert_eq!(got, Some((runs::STATUS_CHANNEL.to_owned(), run.id.to_string())));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(next(&mut notifications), None, "exactly one announcement");
}

#[tokio::test]
async fn status_reads_the_status_alone() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let run = fixtures::run(&client, &pipeline).await;
    assert_eq!(runs::status(&client, run.id).await.unwrap(), RunStatus::Pending);
    runs::transition(
        &client,
        run.id,
        RunStatus::Cancelled,
        &Default::default(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(runs::status(&client, run.id).await.unwrap(), RunStatus::Cancelled);
    assert!(matches!(
        runs::status(&client, uuid::Uuid::new_v4().into()).await,
        Err(DaoError::NotFound { entity: "run" })
    ));
}

#[tokio::test]
async fn run_events_hear_appends_and_terminal_moves_and_end_with_the_connection() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let run = fixtures::run(&client, &pipeline).await;
    let mut events = runs::RunEvents::connect(&db.database(), "rat-dao-test-events")
        .await
        .unwrap();

    runs::append_log_entries(&client, run.id, &[entry(0, "one")])
        .await
        .unwrap();
    assert_eq!(next_event(&mut events).await, Some(runs::RunEvent::Logs(run.id)));
    let now = OffsetDateTime::now_utc();
    runs::transition(&client, run.id, RunStatus::Running, &Default::default(), now)
        .await
        .unwrap();
    runs::transition(&client, run.id, RunStatus::Failed, &Default::default(), now)
        .await
        .unwrap();
    let finished = next_event(&mut events).await.unwrap();
    assert_eq!(finished, runs::RunEvent::Finished(run.id));
    assert_eq!(finished.run_id(), run.id);
    // Payloads that are not run ids are skipped, not fatal.
    client
        .batch_execute(&format!("NOTIFY {}, 'not-a-uuid'", runs::LOG_CHANNEL))
        .await
        .unwrap();
    runs::append_log_entries(&client, run.id, &[entry(1, "two")])
        .await
        .unwrap();
    assert_eq!(next_event(&mut events).await, Some(runs::RunEvent::Logs(run.id)));
    events.ping().await.unwrap();

    // When the server ends the session, the listener says so (its owner reconnects).
    client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&"rat-dao-test-events"],
        )
        .await
        .unwrap();
    assert_eq!(next_event(&mut events).await, None);
    assert!(events.ping().await.is_err());
}

/// The listener's next event, failing the test after 5 s.
async fn next_event(events: &mut runs::RunEvents) -> Option<runs::RunEvent> {
    tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
}

/// The runner protocol: claims, heartbeats, holder-checked completion.
mod runner {
    use super::*;
    use rat_dao::runs::NotHeld;
    use rat_domain::Run;
    use std::time::Duration as StdDuration;
    use time::Duration;

    const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

    fn secs(n: i64) -> Duration {
        Duration::seconds(n)
    }

    /// A published pipeline and `n` pending runs created one second apart from T0 - n.
    async fn pending_runs(client: &impl rat_dao::GenericClient, n: i64) -> Vec<Run> {
        let pipeline = fixtures::published_pipeline(client, "default", "silver", "orders").await;
        let mut created = Vec::new();
        for i in 0..n {
            created.push(fixtures::run_at(client, &pipeline, T0 - secs(n - i)).await);
        }
        created
    }

    #[tokio::test]
    async fn claim_hands_out_the_oldest_pending_runs_and_leases_them() {
        let db = TestDatabase::new().await;
        let client = db.client().await;
        let runs_created = pending_runs(&client, 4).await;
        // Neither a cancelled nor a running run is ever handed out.
        runs::transition(
            &client,
            runs_created[0].id,
            RunStatus::Cancelled,
            &Default::default(),
            T0,
        )
        .await
        .unwrap();

        let lease = T0 + secs(60);
        let first = runs::claim(&client, "runner-a", 2, lease, T0).await.unwrap();
        let ids: Vec<_> = first.iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            vec![runs_created[1].id, runs_created[2].id],
            "oldest pending first"
        );
        for run in &first {
            assert_eq!(run.status, RunStatus::Running);
            assert_eq!(run.runner_id.as_deref(), Some("runner-a"));
            assert_eq!(run.lease_expires_at, Some(lease));
            assert_eq!(run.heartbeat_at, Some(T0));
            assert_eq!(run.started_at, Some(T0));
            assert!(run.finished_at.is_none());
            // The whole run comes back, snapshot included.
            assert_eq!(run, &runs::get(&client, run.id).await.unwrap());
        }
        assert_eq!(first[0].published_versions, runs_created[1].published_versions);

        let second = runs::claim(&client, "runner-b", 100, lease, T0).await.unwrap();
        assert_eq!(
            second.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![runs_created[3].id]
        );
        assert!(
            runs::claim(&client, "runner-b", 100, lease, T0)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            runs::get(&client, runs_created[0].id).await.unwrap().status,
            RunStatus::Cancelled
        );
    }

    #[tokio::test]
    async fn claim_skips_runs_another_claim_is_taking_without_waiting() {
        let db = TestDatabase::new().await;
        let setup = db.client().await;
        let created = pending_runs(&setup, 2).await;
        let mut a = db.client().await;
        let b = db.client().await;
        let tx = a.transaction().await.unwrap();
        let in_flight = runs::claim(&tx, "runner-a", 1, T0 + secs(60), T0).await.unwrap();
        assert_eq!(in_flight[0].id, created[0].id);
        // The row `a` holds is skipped, not waited for.
        let other = tokio::time::timeout(
            StdDuration::from_secs(5),
            runs::claim(&b, "runner-b", 2, T0 + secs(60), T0),
        )
        .await
        .expect("a claim never waits for another claim")
        .unwrap();
        assert_eq!(other.iter().map(|r| r.id).collect::<Vec<_>>(), vec![created[1].id]);
        tx.commit().await.unwrap();
        assert!(
            runs::claim(&b, "runner-b", 2, T0 + secs(60), T0)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            runs::get(&setup, created[0].id).await.unwrap().runner_id.as_deref(),
            Some("runner-a")
        );
    }

    #[tokio::test]
    async fn claim_arguments_are_checked() {
        let db = TestDatabase::new().await;
        let client = db.client().await;
        pending_runs(&client, 1).await;
        let lease = T0 + secs(60);
        let long = "r".repeat(runs::MAX_RUNNER_ID_LEN + 1);
        let cases: Vec<(&str, i64, OffsetDateTime, &str)> = vec![
            ("runner", 0, lease, "claim_limit"),
            ("runner", runs::MAX_CLAIM_BATCH + 1, lease, "claim_limit"),
            ("", 1, lease, "runner_id"),
            (&long, 1, lease, "runner_id"),
            ("a\nb", 1, lease, "runner_id"),
            ("runner", 1, T0, "lease"),
        ];
        for (runner, limit, until, constraint) in cases {
            let err = runs::claim(&client, runner, limit, until, T0).await.unwrap_err();
            assert!(
                matches!(&err, DaoError::Invalid { constraint: c } if c == constraint),
                "{runner:?}/{limit}: {err:?}"
            );
        }
        // Nothing was claimed by the refused calls; 255 characters (not bytes) fit.
        let widest = "é".repeat(runs::MAX_RUNNER_ID_LEN);
        let claimed = runs::claim(&client, &widest, 1, lease, T0).await.unwrap();
        assert_eq!(claimed[0].runner_id.as_deref(), Some(widest.as_str()));
    }

    #[tokio::test]
    async fn claim_reads_pending_runs_in_order_off_their_index() {
        let db = TestDatabase::new().await;
        let client = db.client().await;
        pending_runs(&client, 3).await;
        client.batch_execute("SET enable_seqscan = off").await.unwrap();
        // The statement of runs::claim, explained (EXPLAIN does not execute it).
        let plan = fixtures::explain(&client, runs::CLAIM_SQL, &[&10_i64, &"runner", &T0, &(T0 + secs(60))]).await;
        assert!(plan.contains("idx_runs_pending"), "{plan}");
        assert!(
            !plan.contains("Sort"),
            "pending runs are read in order off the index: {plan}"
        );
        assert!(plan.contains("LockRows"), "{plan}");
    }

    #[tokio::test]
    async fn heartbeat_extends_only_a_live_lease_of_the_holder() {
        let db = TestDatabase::new().await;
        let client = db.client().await;
        let created = pending_runs(&client, 2).await;
        let claimed = runs::claim(&client, "runner-a", 1, T0 + secs(30), T0).await.unwrap();
        let id = claimed[0].id;

        let beat = runs::heartbeat(&client, id, "runner-a", Some(T0 + secs(90)), T0 + secs(20))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(beat.lease_expires_at, Some(T0 + secs(90)));
        assert_eq!(beat.heartbeat_at, Some(T0 + secs(20)));
        assert_eq!(beat.status, RunStatus::Running);
        assert_eq!(beat.started_at, Some(T0), "a heartbeat does not restart the run");

        let unchanged = runs::get(&client, id).await.unwrap();
        let refusals = [
            ("runner-b", T0 + secs(30), NotHeld::NotHolder(RunStatus::Running)),
            // At the instant the lease ends, it has ended.
            ("runner-a", T0 + secs(90), NotHeld::LeaseExpired),
            ("runner-a", T0 + secs(500), NotHeld::LeaseExpired),
        ];
        for (runner, now, reason) in refusals {
            let refused = runs::heartbeat(&client, id, runner, Some(now + secs(60)), now)
                .await
                .unwrap();
            assert_eq!(refused, Err(reason), "{runner} at {now}");
            assert_eq!(
                runs::get(&client, id).await.unwrap(),
                unchanged,
                "a refusal changes nothing"
            );
        }
        // A pending run is nobody's.
        let pending = runs::heartbeat(&client, created[1].id, "runner-a", None, T0)
            .await
            .unwrap();
        assert_eq!(pending, Err(NotHeld::NotHolder(RunStatus::Pending)));

        // Cancelled while held: the holder is told so (to stop), others that it finished.
        runs::transition(&client, id, RunStatus::Cancelled, &Default::default(), T0 + secs(40))
            .await
            .unwrap();
        let holder = runs::heartbeat(&client, id, "runner-a", Some(T0 + secs(100)), T0 + secs(41))
            .await
            .unwrap();
        assert_eq!(holder, Err(NotHeld::Cancelled));
        let other = runs::heartbeat(&client, id, "runner-b", None, T0 + secs(41))
            .await
            .unwrap();
        assert_eq!(other, Err(NotHeld::Finished(RunStatus::Cancelled)));

        let err = runs::heartbeat(&client, uuid::Uuid::new_v4().into(), "runner-a", None, T0)
            .await
            .unwrap_err();
        assert!(matches!(err, DaoError::NotFound { entity: "run" }), "{err:?}");
        let err = runs::heartbeat(&client, id, "", None, T0).await.unwrap_err();
        assert!(
            matches!(&err, DaoError::Invalid { constraint } if constraint == "runner_id"),
            "{err:?}"
        );
        let err = runs::heartbeat(&client, id, "runner-a", Some(T0), T0)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DaoError::Invalid { constraint } if constraint == "lease"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_heartbeat_without_a_lease_renews_the_current_lease_for_as_long() {
        let db = TestDatabase::new().await;
        let client = db.client().await;
        pending_runs(&client, 1).await;
        let id = runs::claim(&client, "runner-a", 1, T0 + secs(600), T0).await.unwrap()[0].id;
        let beat = runs::heartbeat(&client, id, "runner-a", None, T0 + secs(100))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            beat.lease_expires_at,
            Some(T0 + secs(700)),
            "the claim's 600 s lease, renewed"
        );
        let shorter = runs::heartbeat(&client, id, "runner-a", Some(T0 + secs(130)), T0 + secs(110))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(shorter.lease_expires_at, Some(T0 + secs(130)));
        let again = runs::heartbeat(&client, id, "runner-a", None, T0 + secs(120))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            again.lease_expires_at,
            Some(T0 + secs(140)),
            "the last heartbeat's 20 s lease"
        );
        assert_eq!(again.heartbeat_at, Some(T0 + secs(120)));
    }

    #[tokio::test]
    async fn complete_held_records_the_report_of_the_holder_only_once() {
        let db = TestDatabase::new().await;
        let client = db.client().await;
        pending_runs(&client, 1).await;
        let id = runs::claim(&client, "runner-a", 1, T0 + secs(30), T0).await.unwrap()[0].id;
        let report = runs::RunReport {
            error: Some("boom".to_owned()),
            duration_ms: Some(1500),
            rows_written: Some(42),
            phase_profiles: Some(serde_json::json!([{"name": "read", "duration_ms": 10}])),
        };
        let before = runs::get(&client, id).await.unwrap();
        let other = runs::complete_held(&client, id, "runner-b", RunStatus::Failed, &report, T0 + secs(5))
            .await
            .unwrap();
        assert_eq!(other, Err(NotHeld::NotHolder(RunStatus::Running)));
        let err = runs::complete_held(&client, id, "runner-a", RunStatus::Running, &report, T0)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DaoError::Invalid { constraint } if constraint == "status"),
            "{err:?}"
        );
        assert_eq!(runs::get(&client, id).await.unwrap(), before);

        let done = runs::complete_held(&client, id, "runner-a", RunStatus::Failed, &report, T0 + secs(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.status, RunStatus::Failed);
        assert_eq!(done.finished_at, Some(T0 + secs(5)));
        assert_eq!(done.started_at, Some(T0));
        assert_eq!(done.error.as_deref(), Some("boom"));
        assert_eq!(done.duration_ms, Some(1500));
        assert_eq!(done.rows_written, Some(42));
        assert_eq!(done.phase_profiles, report.phase_profiles);
        assert_eq!(done.runner_id.as_deref(), Some("runner-a"), "who ran it stays recorded");
        assert_eq!(runs::get(&client, id).await.unwrap(), done);

        // A late or repeated report changes nothing.
        let again = runs::complete_held(
            &client,
            id,
            "runner-a",
            RunStatus::Success,
            &Default::default(),
            T0 + secs(6),
        )
        .await
        .unwrap();
        assert_eq!(again, Err(NotHeld::Finished(RunStatus::Failed)));
        assert_eq!(runs::get(&client, id).await.unwrap(), done);
    }

    #[tokio::test]
    async fn complete_held_refuses_an_expired_lease_and_a_cancelled_run() {
        let db = TestDatabase::new().await;
        let client = db.client().await;
        pending_runs(&client, 2).await;
        let claimed = runs::claim(&client, "runner-a", 2, T0 + secs(30), T0).await.unwrap();
        let (expired, cancelled) = (claimed[0].id, claimed[1].id);
        let before = runs::get(&client, expired).await.unwrap();
        let late = runs::complete_held(
            &client,
            expired,
            "runner-a",
            RunStatus::Success,
            &Default::default(),
            T0 + secs(30),
        )
        .await
        .unwrap();
        assert_eq!(late, Err(NotHeld::LeaseExpired));
        assert_eq!(runs::get(&client, expired).await.unwrap(), before);

        runs::transition(
            &client,
            cancelled,
            RunStatus::Cancelled,
            &Default::default(),
            T0 + secs(1),
        )
        .await
        .unwrap();
        let refused = runs::complete_held(
            &client,
            cancelled,
            "runner-a",
            RunStatus::Success,
            &Default::default(),
            T0 + secs(2),
        )
        .await
        .unwrap();
        assert_eq!(refused, Err(NotHeld::Cancelled));
        assert_eq!(
            runs::get(&client, cancelled).await.unwrap().status,
            RunStatus::Cancelled
        );
        let err = runs::complete_held(
            &client,
            uuid::Uuid::new_v4().into(),
            "runner-a",
            RunStatus::Success,
            &Default::default(),
            T0,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, DaoError::NotFound { entity: "run" }), "{err:?}");
    }

    #[tokio::test]
    async fn lock_held_checks_the_holder_and_holds_off_a_concurrent_cancel() {
        let db = TestDatabase::new().await;
        let client = db.client().await;
        let created = pending_runs(&client, 2).await;
        let id = runs::claim(&client, "runner-a", 1, T0 + secs(30), T0).await.unwrap()[0].id;
        assert_eq!(
            runs::lock_held(&client, id, "runner-b", T0).await.unwrap(),
            Err(NotHeld::NotHolder(RunStatus::Running))
        );
        assert_eq!(
            runs::lock_held(&client, id, "runner-a", T0 + secs(30)).await.unwrap(),
            Err(NotHeld::LeaseExpired)
        );
        assert_eq!(
            runs::lock_held(&client, created[1].id, "runner-a", T0).await.unwrap(),
            Err(NotHeld::NotHolder(RunStatus::Pending))
        );

        let mut appender = db.client().await;
        let tx = appender.transaction().await.unwrap();
        assert_eq!(
            runs::lock_held(&tx, id, "runner-a", T0 + secs(1)).await.unwrap(),
            Ok(())
        );
        let canceller = db.client().await;
        let cancel = tokio::spawn(async move {
            runs::transition(&canceller, id, RunStatus::Cancelled, &Default::default(), T0 + secs(2)).await
        });
        tokio::time::sleep(StdDuration::from_millis(300)).await;
        assert!(!cancel.is_finished(), "the cancel waits for the holder's transaction");
        runs::append_log_entries(&tx, id, &[entry(1, "last words")])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let cancelled = cancel.await.unwrap().unwrap();
        assert_eq!(cancelled.status, RunStatus::Cancelled);
        assert_eq!(
            runs::lock_held(&client, id, "runner-a", T0 + secs(3)).await.unwrap(),
            Err(NotHeld::Cancelled)
        );
    }

    #[tokio::test]
    async fn complete_held_announces_the_terminal_status_at_commit() {
        let db = TestDatabase::new().await;
        let client = db.client().await;
        pending_runs(&client, 1).await;
        let id = runs::claim(&client, "runner-a", 1, T0 + secs(30), T0).await.unwrap()[0].id;
        let mut events = runs::RunEvents::connect(&db.database(), "rat-test-listener")
            .await
            .unwrap();
        let mut writer = db.client().await;
        let tx = writer.transaction().await.unwrap();
        runs::complete_held(
            &tx,
            id,
            "runner-a",
            RunStatus::Success,
            &Default::default(),
            T0 + secs(1),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(
            tokio::time::timeout(StdDuration::from_millis(300), events.recv())
                .await
                .is_err(),
            "nothing is announced before the commit"
        );
        tx.commit().await.unwrap();
        let event = tokio::time::timeout(StdDuration::from_secs(5), events.recv())
            .await
            .expect("an event within 5 s");
        assert_eq!(event, Some(runs::RunEvent::Finished(id)));
    }
}
