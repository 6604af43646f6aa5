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
            version_number: 3,
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
        runs::get(&client, id).await.unwrap_err(),
        runs::transition(&client, id, RunStatus::Cancelled, &Default::default(), now)
            .await
            .unwrap_err(),
        runs::append_log_entries(&client, id, &[entry(0, "x")])
            .await
            .unwrap_err(),
        runs::legacy_logs(&client, id).await.unwrap_err(),
        runs::delete(&client, id).await.unwrap_err(),
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
        pipeline_id: uuid::Uuid::new_v4(),
        trigger: "manual".to_owned(),
        version_number: 1,
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
    new.version_number = 0;
    let err = runs::create(&client, &new, now).await.unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "ck_runs_version_number"),
        "{err:?}"
    );
    new.version_number = 1;
    new.trigger = "x".repeat(513);
    let err = runs::create(&client, &new, now).await.unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "value"),
        "{err:?}"
    );
    for (sql, constraint) in [
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
    let ids = |p: &rat_domain::Page<rat_domain::RunSummary>| p.items.iter().map(|r| r.id).collect::<Vec<_>>();

    let all = runs::list(&client, &Default::default(), newest, page).await.unwrap();
    assert_eq!(all.total, 10);
    assert_eq!(all.items[0].id, pending.id, "newest first");

    let filter = runs::RunFilter {
        pipeline: Some(PipelineName::parse("orders").unwrap()),
        ..Default::default()
    };
    assert_eq!(
        runs::list(&client, &filter, newest, page).await.unwrap().total,
        6,
        "name matches in both namespaces"
    );

    let filter = runs::RunFilter {
        namespace: Some(NamespaceName::parse("default").unwrap()),
        pipeline: Some(PipelineName::parse("orders").unwrap()),
        ..Default::default()
    };
    let listed = runs::list(&client, &filter, newest, page).await.unwrap();
    assert_eq!(ids(&listed), [made[3].id, made[2].id, made[1].id, made[0].id]);
    assert_eq!(listed.total, 4);

    let filter = runs::RunFilter {
        layer: Some(Layer::Gold),
        ..Default::default()
    };
    assert_eq!(runs::list(&client, &filter, newest, page).await.unwrap().total, 4);

    let filter = runs::RunFilter {
        pipeline_id: Some(other_ns_orders.id),
        ..Default::default()
    };
    assert_eq!(runs::list(&client, &filter, newest, page).await.unwrap().total, 2);

    let filter = runs::RunFilter {
        status: Some(RunStatus::Success),
        ..Default::default()
    };
    let listed = runs::list(&client, &filter, newest, page).await.unwrap();
    assert_eq!(ids(&listed), [made[4].id, made[0].id]);

    // started_after is inclusive, started_before exclusive.
    let filter = runs::RunFilter {
        started_after: Some(t0 + hour * 2),
        started_before: Some(t0 + hour * 5),
        ..Default::default()
    };
    let listed = runs::list(&client, &filter, newest, page).await.unwrap();
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
    let first = runs::list(&client, &filter, oldest, PageRequest::new(Some(2), Some(0)).unwrap())
        .await
        .unwrap();
    assert_eq!(ids(&first), [made[1].id, made[2].id]);
    assert_eq!(first.total, 6);
    let second = runs::list(&client, &filter, oldest, PageRequest::new(Some(2), Some(2)).unwrap())
        .await
        .unwrap();
    assert_eq!(ids(&second), [made[3].id, made[5].id]);

    // Sorting by a nullable column: a run that never started comes first descending.
    let by_start = Sort {
        field: RunSortField::StartedAt,
        descending: true,
    };
    let listed = runs::list(&client, &Default::default(), by_start, page).await.unwrap();
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
    assert_eq!(runs::list(&client, &filter, newest, page).await.unwrap().total, 0);
}

#[tokio::test]
async fn listing_a_pipeline_uses_the_pipeline_index() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    fixtures::run(&client, &pipeline).await;
    client.batch_execute("SET enable_seqscan = off").await.unwrap();
    let plan: Vec<String> = client
        .query(
            "EXPLAIN SELECT id FROM runs WHERE pipeline_id = $1 ORDER BY created_at DESC, id DESC LIMIT 50",
            &[&pipeline.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(plan.iter().any(|l| l.contains("idx_runs_pipeline")), "{plan:#?}");
    assert!(
        !plan.iter().any(|l| l.contains("Sort")),
        "a page of one pipeline's runs is read in order off the index: {plan:#?}"
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
