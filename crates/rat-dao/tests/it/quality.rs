//! `quality` repository against a real PostgreSQL: test definitions, results
//! (NUMERIC values through float8), the references to runs and tests, and
//! the per-test pruning of the reaper.

use rat_dao::{DaoError, GenericClient, pipelines, quality, runs};
use rat_domain::{PageRequest, Pipeline, QualityResult, QualityStatus, QualityTest, Severity, TestName};
use rat_testkit::{TestDatabase, fixtures};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

fn name(text: &str) -> TestName {
    TestName::parse(text).unwrap()
}

fn new_test(pipeline: &Pipeline, test: &str) -> quality::NewQualityTest {
    quality::NewQualityTest {
        pipeline_id: pipeline.id,
        name: name(test),
        description: format!("checks {test}"),
        severity: Severity::Warn,
        s3_path: format!("{}tests/quality/{test}.sql", pipeline.s3_path),
    }
}

fn new_result(test: &QualityTest, ran_at: OffsetDateTime) -> quality::NewQualityResult {
    quality::NewQualityResult {
        test_id: test.id,
        run_id: None,
        status: QualityStatus::Passed,
        value: Some(0.0),
        expected: Some(0.0),
        duration_ms: Some(12),
        ran_at,
    }
}

fn minutes(m: i64) -> OffsetDateTime {
    datetime!(2026-06-01 12:00:00 UTC) + time::Duration::minutes(m)
}

fn result_ids(results: &[QualityResult]) -> Vec<Uuid> {
    results.iter().map(|r| r.id).collect()
}

async fn count_results(client: &impl GenericClient, test_id: Uuid) -> i64 {
    client
        .query_one("SELECT count(*) FROM quality_results WHERE test_id = $1", &[&test_id])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn test_definitions_round_trip_update_and_delete() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let created = quality::create(&client, &new_test(&pipeline, "no_null_ids"))
        .await
        .unwrap();
    assert_eq!(created.pipeline_id, pipeline.id);
    assert_eq!(created.name.as_str(), "no_null_ids");
    assert_eq!(created.description, "checks no_null_ids");
    assert_eq!(created.severity, Severity::Warn);
    assert_eq!(
        created.s3_path,
        "default/pipelines/silver/orders/tests/quality/no_null_ids.sql"
    );
    assert_eq!(
        quality::get_by_name(&client, pipeline.id, &created.name).await.unwrap(),
        created
    );

    let severe = quality::update(&client, pipeline.id, &created.name, None, Some(Severity::Error))
        .await
        .unwrap();
    assert_eq!(severe.severity, Severity::Error);
    assert_eq!(severe.description, "checks no_null_ids", "absent description is kept");
    let described = quality::update(&client, pipeline.id, &created.name, Some("ids are never null"), None)
        .await
        .unwrap();
    assert_eq!(described.description, "ids are never null");
    assert_eq!(described.severity, Severity::Error, "absent severity is kept");
    assert_eq!(described.s3_path, created.s3_path);
    assert_eq!(described.created_at, created.created_at);

    quality::delete(&client, pipeline.id, &created.name).await.unwrap();
    for err in [
        quality::get_by_name(&client, pipeline.id, &created.name)
            .await
            .unwrap_err(),
        quality::update(&client, pipeline.id, &created.name, None, None)
            .await
            .unwrap_err(),
        quality::delete(&client, pipeline.id, &created.name).await.unwrap_err(),
    ] {
        assert!(matches!(err, DaoError::NotFound { entity: "quality test" }), "{err:?}");
    }
}

#[tokio::test]
async fn names_are_unique_per_pipeline() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let orders = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let sales = fixtures::pipeline(&client, "default", "gold", "sales").await;
    quality::create(&client, &new_test(&orders, "row_count")).await.unwrap();
    let err = quality::create(&client, &new_test(&orders, "row_count"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::Conflict { constraint } if constraint == "uq_quality_tests_pipeline_name"),
        "{err:?}"
    );
    // The same name on another pipeline is another test, found only there.
    let other = quality::create(&client, &new_test(&sales, "row_count")).await.unwrap();
    assert_eq!(
        quality::get_by_name(&client, sales.id, &name("row_count"))
            .await
            .unwrap(),
        other
    );
    assert_ne!(
        quality::get_by_name(&client, orders.id, &name("row_count"))
            .await
            .unwrap()
            .id,
        other.id
    );

    let mut ghost = new_test(&orders, "x");
    ghost.pipeline_id = Uuid::new_v4().into();
    let err = quality::create(&client, &ghost).await.unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "pipeline", constraint } if constraint == "fk_quality_tests_pipeline"),
        "{err:?}"
    );
}

#[tokio::test]
async fn list_for_pipeline_is_by_name_with_a_total() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let orders = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let sales = fixtures::pipeline(&client, "default", "gold", "sales").await;
    for test in ["unique_ids", "freshness", "row_count"] {
        quality::create(&client, &new_test(&orders, test)).await.unwrap();
    }
    quality::create(&client, &new_test(&sales, "another")).await.unwrap();

    let names = |page: &rat_domain::Page<QualityTest>| -> Vec<String> {
        page.items.iter().map(|t| t.name.to_string()).collect()
    };
    let page = quality::list_for_pipeline(&client, orders.id, PageRequest::new(Some(2), Some(0)).unwrap())
        .await
        .unwrap();
    assert_eq!(names(&page), ["freshness", "row_count"]);
    assert_eq!(page.total, 3);
    let page = quality::list_for_pipeline(&client, orders.id, PageRequest::new(Some(2), Some(2)).unwrap())
        .await
        .unwrap();
    assert_eq!(names(&page), ["unique_ids"]);
    assert_eq!(page.total, 3);
}

#[tokio::test]
async fn results_round_trip_and_list() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let test = quality::create(&client, &new_test(&pipeline, "row_count"))
        .await
        .unwrap();
    let other_test = quality::create(&client, &new_test(&pipeline, "freshness"))
        .await
        .unwrap();
    let run = fixtures::run(&client, &pipeline).await;

    let full = quality::insert_result(
        &client,
        &quality::NewQualityResult {
            test_id: test.id,
            run_id: Some(run.id),
            status: QualityStatus::Warned,
            value: Some(12345.678),
            expected: Some(0.1),
            duration_ms: Some(850),
            ran_at: minutes(1),
        },
    )
    .await
    .unwrap();
    assert_eq!(full.test_id, test.id);
    assert_eq!(full.run_id, Some(run.id));
    assert_eq!(full.status, QualityStatus::Warned);
    assert_eq!(full.value, Some(12345.678));
    assert_eq!(full.expected, Some(0.1));
    assert_eq!(full.duration_ms, Some(850));
    assert_eq!(full.ran_at, minutes(1));

    let empty = quality::insert_result(
        &client,
        &quality::NewQualityResult {
            test_id: test.id,
            run_id: None,
            status: QualityStatus::Error,
            value: None,
            expected: None,
            duration_ms: None,
            ran_at: minutes(2),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (empty.run_id, empty.value, empty.expected, empty.duration_ms),
        (None, None, None, None)
    );
    assert_eq!(empty.status, QualityStatus::Error);

    // The stored value is NUMERIC: check it is the number, not a float's text.
    let stored: String = client
        .query_one("SELECT value::text FROM quality_results WHERE id = $1", &[&full.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, "12345.678");

    let oldest = quality::insert_result(
        &client,
        &quality::NewQualityResult {
            run_id: Some(run.id),
            ..new_result(&test, minutes(0))
        },
    )
    .await
    .unwrap();
    quality::insert_result(
        &client,
        &quality::NewQualityResult {
            run_id: Some(run.id),
            ..new_result(&other_test, minutes(3))
        },
    )
    .await
    .unwrap();

    let page = quality::list_results_for_test(&client, test.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(result_ids(&page.items), [empty.id, full.id, oldest.id], "newest first");
    assert_eq!(page.items[1], full);
    assert_eq!(page.total, 3);
    let page = quality::list_results_for_test(&client, test.id, PageRequest::new(Some(1), Some(1)).unwrap())
        .await
        .unwrap();
    assert_eq!(result_ids(&page.items), [full.id]);
    assert_eq!(page.total, 3);

    let of_run = quality::results_for_run(&client, run.id, 10).await.unwrap();
    assert_eq!(of_run.len(), 3);
    assert_eq!(result_ids(&of_run[..2]), [oldest.id, full.id], "in the order they ran");
    assert_eq!(of_run[2].test_id, other_test.id);
    assert_eq!(quality::results_for_run(&client, run.id, 2).await.unwrap().len(), 2);
}

#[tokio::test]
async fn tests_by_names_and_results_in_one_statement() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let orders = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let sales = fixtures::pipeline(&client, "default", "silver", "sales").await;
    let row_count = quality::create(&client, &new_test(&orders, "row_count")).await.unwrap();
    let freshness = quality::create(&client, &new_test(&orders, "freshness")).await.unwrap();
    quality::create(&client, &new_test(&orders, "unasked")).await.unwrap();
    quality::create(&client, &new_test(&sales, "other_pipeline"))
        .await
        .unwrap();

    let mut found = quality::get_by_names(
        &client,
        orders.id,
        &["row_count", "freshness", "other_pipeline", "ghost"],
    )
    .await
    .unwrap();
    found.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    assert_eq!(
        found,
        [freshness.clone(), row_count.clone()],
        "only the pipeline's tests among the names"
    );
    assert!(quality::get_by_names(&client, orders.id, &[]).await.unwrap().is_empty());

    let run = fixtures::run(&client, &orders).await;
    assert_eq!(quality::insert_results(&client, &[]).await.unwrap(), 0);
    let written = quality::insert_results(
        &client,
        &[
            quality::NewQualityResult {
                run_id: Some(run.id),
                status: QualityStatus::Warned,
                value: Some(12345.678),
                expected: Some(0.1),
                duration_ms: Some(850),
                ..new_result(&row_count, minutes(1))
            },
            quality::NewQualityResult {
                run_id: Some(run.id),
                status: QualityStatus::Error,
                value: None,
                expected: None,
                duration_ms: None,
                ..new_result(&freshness, minutes(2))
            },
        ],
    )
    .await
    .unwrap();
    assert_eq!(written, 2);
    let of_run = quality::results_for_run(&client, run.id, 10).await.unwrap();
    assert_eq!(of_run.len(), 2);
    let (first, second) = (&of_run[0], &of_run[1]);
    assert_eq!(
        (
            first.test_id,
            first.run_id,
            first.status,
            first.value,
            first.expected,
            first.duration_ms,
            first.ran_at
        ),
        (
            row_count.id,
            Some(run.id),
            QualityStatus::Warned,
            Some(12345.678),
            Some(0.1),
            Some(850),
            minutes(1)
        )
    );
    assert_eq!(
        (
            second.test_id,
            second.status,
            second.value,
            second.expected,
            second.duration_ms,
            second.ran_at
        ),
        (freshness.id, QualityStatus::Error, None, None, None, minutes(2))
    );
    let stored: String = client
        .query_one("SELECT value::text FROM quality_results WHERE id = $1", &[&first.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, "12345.678", "NUMERIC keeps the number");

    // One unknown test refuses the whole statement: nothing of it is written.
    let err = quality::insert_results(
        &client,
        &[
            new_result(&row_count, minutes(3)),
            quality::NewQualityResult {
                test_id: Uuid::new_v4().into(),
                ..new_result(&row_count, minutes(3))
            },
        ],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            &err,
            DaoError::MissingReference {
                entity: "quality test",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(count_results(&client, row_count.id.into()).await, 1);
}

#[tokio::test]
async fn constraints_map_to_dao_errors() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let test = quality::create(&client, &new_test(&pipeline, "row_count"))
        .await
        .unwrap();

    let err = quality::insert_result(
        &client,
        &quality::NewQualityResult {
            duration_ms: Some(-1),
            ..new_result(&test, minutes(0))
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "ck_quality_results_duration_ms"),
        "{err:?}"
    );
    let err = quality::insert_result(
        &client,
        &quality::NewQualityResult {
            test_id: Uuid::new_v4().into(),
            ..new_result(&test, minutes(0))
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "quality test", constraint } if constraint == "fk_quality_results_test"),
        "{err:?}"
    );
    let err = quality::insert_result(
        &client,
        &quality::NewQualityResult {
            run_id: Some(Uuid::new_v4().into()),
            ..new_result(&test, minutes(0))
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "run", constraint } if constraint == "fk_quality_results_run"),
        "{err:?}"
    );

    for (sql, constraint) in [
        (
            "INSERT INTO quality_tests (pipeline_id, name, severity, s3_path) VALUES ($1, 'x', 'fatal', 'p')",
            "ck_quality_tests_severity",
        ),
        (
            "INSERT INTO quality_results (test_id, status) \
             SELECT id, 'skipped' FROM quality_tests WHERE pipeline_id = $1",
            "ck_quality_results_status",
        ),
    ] {
        let err = DaoError::from(client.execute(sql, &[&pipeline.id]).await.unwrap_err());
        assert!(
            matches!(&err, DaoError::Invalid { constraint: c } if c == constraint),
            "{sql}: {err:?}"
        );
    }
}

#[tokio::test]
async fn stored_values_that_do_not_parse_are_corrupt() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let test = quality::create(&client, &new_test(&pipeline, "row_count"))
        .await
        .unwrap();
    client
        .execute(
            "UPDATE quality_tests SET name = 'Not A Name' WHERE id = $1",
            &[&test.id],
        )
        .await
        .unwrap();
    let err = quality::list_for_pipeline(&client, pipeline.id, PageRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, DaoError::Corrupt { column: "name", .. }), "{err:?}");
}

#[tokio::test]
async fn results_outlive_their_run_but_not_their_test() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let test = quality::create(&client, &new_test(&pipeline, "row_count"))
        .await
        .unwrap();
    let run = fixtures::run(&client, &pipeline).await;
    let result = quality::insert_result(
        &client,
        &quality::NewQualityResult {
            run_id: Some(run.id),
            ..new_result(&test, minutes(0))
        },
    )
    .await
    .unwrap();

    runs::delete(&client, run.id).await.unwrap();
    let page = quality::list_results_for_test(&client, test.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.items, [QualityResult { run_id: None, ..result }]);
    assert!(quality::results_for_run(&client, run.id, 10).await.unwrap().is_empty());

    quality::delete(&client, pipeline.id, &test.name).await.unwrap();
    assert_eq!(count_results(&client, test.id.into()).await, 0);

    // Purging the pipeline takes its tests and their results with it.
    let again = quality::create(&client, &new_test(&pipeline, "row_count"))
        .await
        .unwrap();
    quality::insert_result(&client, &new_result(&again, minutes(0)))
        .await
        .unwrap();
    pipelines::purge(&client, pipeline.id).await.unwrap();
    assert_eq!(count_results(&client, again.id.into()).await, 0);
    let tests: i64 = client
        .query_one(
            "SELECT count(*) FROM quality_tests WHERE pipeline_id = $1",
            &[&pipeline.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tests, 0);
}

#[tokio::test]
async fn prune_keeps_the_newest_results_per_test_in_bounded_batches() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let busy = quality::create(&client, &new_test(&pipeline, "busy")).await.unwrap();
    let quiet = quality::create(&client, &new_test(&pipeline, "quiet")).await.unwrap();
    let mut busy_results = Vec::new();
    // Inserted out of time order, so the pruning must go by ran_at.
    for m in [3, 0, 5, 1, 4, 2] {
        busy_results.push((
            m,
            quality::insert_result(&client, &new_result(&busy, minutes(m)))
                .await
                .unwrap()
                .id,
        ));
    }
    for m in [0, 1] {
        quality::insert_result(&client, &new_result(&quiet, minutes(m)))
            .await
            .unwrap();
    }

    // 6 - 3 = 3 rows are beyond the newest three of `busy`; `quiet` is within.
    assert_eq!(
        quality::prune_results_per_test(&client, 3, 2).await.unwrap(),
        2,
        "bounded by the batch"
    );
    assert_eq!(count_results(&client, busy.id.into()).await, 4);
    assert_eq!(quality::prune_results_per_test(&client, 3, 2).await.unwrap(), 1);
    assert_eq!(quality::prune_results_per_test(&client, 3, 2).await.unwrap(), 0);

    let kept = quality::list_results_for_test(&client, busy.id, PageRequest::default())
        .await
        .unwrap();
    busy_results.sort_by_key(|(m, _)| std::cmp::Reverse(*m));
    let newest: Vec<Uuid> = busy_results.iter().take(3).map(|(_, id)| *id).collect();
    assert_eq!(result_ids(&kept.items), newest);
    assert_eq!(count_results(&client, quiet.id.into()).await, 2);

    // Equal times are ranked by id, so exactly `keep` rows survive.
    for _ in 0..3 {
        quality::insert_result(&client, &new_result(&quiet, minutes(9)))
            .await
            .unwrap();
    }
    assert_eq!(quality::prune_results_per_test(&client, 2, 100).await.unwrap(), 1 + 3);
    assert_eq!(count_results(&client, quiet.id.into()).await, 2);
    assert_eq!(count_results(&client, busy.id.into()).await, 2);

    for (keep, batch, constraint) in [(-1, 10, "keep"), (3, 0, "batch")] {
        let err = quality::prune_results_per_test(&client, keep, batch).await.unwrap_err();
        assert!(
            matches!(&err, DaoError::Invalid { constraint: c } if c == constraint),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn the_test_name_lock_serialises_one_test_until_commit() {
    let db = TestDatabase::new().await;
    let orders = {
        let client = db.client().await;
        fixtures::pipeline(&client, "default", "silver", "orders").await
    };
    let mut first = db.client().await;
    let first_tx = first.transaction().await.unwrap();
    quality::lock_test_name(&first_tx, orders.id, &name("row_count"))
        .await
        .unwrap();

    // Another name, or the same name on another pipeline, is not blocked.
    let mut other = db.client().await;
    let other_tx = other.transaction().await.unwrap();
    quality::lock_test_name(&other_tx, orders.id, &name("freshness"))
        .await
        .unwrap();
    quality::lock_test_name(&other_tx, Uuid::new_v4().into(), &name("row_count"))
        .await
        .unwrap();
    other_tx.rollback().await.unwrap();

    // The same test waits until the holder's transaction ends.
    let pool = db.pool().clone();
    let pipeline_id = orders.id;
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let waiter = tokio::spawn(async move {
        let mut client = pool.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        quality::lock_test_name(&tx, pipeline_id, &name("row_count"))
            .await
            .unwrap();
        let _ = locked_tx.send(());
        tx.commit().await.unwrap();
    });
    let mut locked_rx = locked_rx;
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut locked_rx).await;
    assert!(
        early.is_err(),
        "the second lock of one test must wait for the first transaction"
    );
    first_tx.commit().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), locked_rx)
        .await
        .expect("the lock is released at commit")
        .unwrap();
    waiter.await.unwrap();
}

#[tokio::test]
async fn tests_list_with_their_newest_result_and_counts() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let orders = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let sales = fixtures::pipeline(&client, "default", "gold", "sales").await;
    let mut tests = Vec::new();
    for test in ["a_passed", "b_failed", "c_never", "d_warned", "e_error"] {
        tests.push(quality::create(&client, &new_test(&orders, test)).await.unwrap());
    }
    let elsewhere = quality::create(&client, &new_test(&sales, "z_other")).await.unwrap();
    let run = fixtures::run(&client, &orders).await;
    let record = |test: &QualityTest, status: QualityStatus, at: i64, run_id: Option<rat_domain::RunId>| {
        quality::NewQualityResult {
            status,
            run_id,
            value: Some(at as f64),
            ..new_result(test, minutes(at))
        }
    };
    // Older results of other statuses must not count: only the newest does.
    for new in [
        record(&tests[0], QualityStatus::Failed, 0, None),
        record(&tests[0], QualityStatus::Passed, 5, Some(run.id)),
        record(&tests[1], QualityStatus::Passed, 1, None),
        record(&tests[1], QualityStatus::Failed, 6, Some(run.id)),
        record(&tests[3], QualityStatus::Warned, 7, None),
        record(&tests[4], QualityStatus::Error, 8, None),
        record(&elsewhere, QualityStatus::Failed, 9, None),
    ] {
        quality::insert_result(&client, &new).await.unwrap();
    }

    let page = quality::list_with_latest_result(&client, orders.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.total, 5);
    let seen: Vec<(String, Option<QualityStatus>, Option<f64>)> = page
        .items
        .iter()
        .map(|t| {
            (
                t.test.name.to_string(),
                t.latest.as_ref().map(|r| r.status),
                t.latest.as_ref().and_then(|r| r.value),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("a_passed".to_owned(), Some(QualityStatus::Passed), Some(5.0)),
            ("b_failed".to_owned(), Some(QualityStatus::Failed), Some(6.0)),
            ("c_never".to_owned(), None, None),
            ("d_warned".to_owned(), Some(QualityStatus::Warned), Some(7.0)),
            ("e_error".to_owned(), Some(QualityStatus::Error), Some(8.0)),
        ]
    );
    assert_eq!(page.items[0].test, tests[0], "every test column round trips");
    let newest = page.items[0].latest.as_ref().unwrap();
    assert_eq!(
        (
            newest.test_id,
            newest.run_id,
            newest.expected,
            newest.duration_ms,
            newest.ran_at
        ),
        (tests[0].id, Some(run.id), Some(0.0), Some(12), minutes(5))
    );

    let second = quality::list_with_latest_result(&client, orders.id, PageRequest::new(Some(2), Some(2)).unwrap())
        .await
        .unwrap();
    assert_eq!(second.total, 5, "the total counts every test, not the page");
    assert_eq!(
        second.items.iter().map(|t| t.test.name.to_string()).collect::<Vec<_>>(),
        ["c_never", "d_warned"]
    );

    let counts = quality::latest_status_counts(&client, orders.id).await.unwrap();
    assert_eq!(
        counts,
        quality::LatestStatusCounts {
            total: 5,
            passed: 1,
            failed: 1,
            warned: 1,
            errored: 1,
            never_run: 1,
        }
    );
    let none = quality::latest_status_counts(&client, Uuid::new_v4().into())
        .await
        .unwrap();
    assert_eq!(none, quality::LatestStatusCounts::default());
}
