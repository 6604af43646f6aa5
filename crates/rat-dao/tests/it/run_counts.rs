//! The kept run counts (V22): `GET /runs` totals read from the counters and
//! the pending deltas equal `count(*)` of the same filter after every kind
//! of change to `runs` (insert, status change, other updates, delete, a
//! pipeline's purge cascading), before and after folding, and under
//! concurrent writers and folders; and reading them never touches `runs`.

use rat_dao::{GenericClient, pipelines, runs};
use rat_domain::{PageRequest, PipelineId, RunStatus};
use rat_testkit::{TestDatabase, fixtures};
use time::OffsetDateTime;

/// Every filter the counters serve, with the `count(*)` that must equal its
/// total: (name, filter, the condition on `runs`).
fn filters(a: PipelineId, b: PipelineId) -> Vec<(&'static str, runs::RunFilter, String)> {
    let of = |id: PipelineId, status: Option<RunStatus>| runs::RunFilter {
        pipeline_id: Some(id),
        status,
        ..Default::default()
    };
    vec![
        ("all", runs::RunFilter::default(), "true".to_owned()),
        (
            "failed",
            runs::RunFilter {
                status: Some(RunStatus::Failed),
                ..Default::default()
            },
            "status = 'failed'".to_owned(),
        ),
        ("pipeline a", of(a, None), format!("pipeline_id = '{a}'")),
        (
            "pipeline b, pending",
            of(b, Some(RunStatus::Pending)),
            format!("pipeline_id = '{b}' AND status = 'pending'"),
        ),
        (
            "namespace ns by address",
            runs::RunFilter {
                namespace: Some(rat_domain::NamespaceName::parse("ns").unwrap()),
                ..Default::default()
            },
            "pipeline_id IN (SELECT id FROM pipelines WHERE namespace = 'ns' AND deleted_at IS NULL)".to_owned(),
        ),
        (
            // Nobody owns or shares anything here: the access rule leaves
            // the pipelines without an owner, which every reader sees.
            "readable by alice",
            runs::RunFilter {
                readable_by: Some(vec!["alice".to_owned()]),
                ..Default::default()
            },
            "pipeline_id IN (SELECT id FROM pipelines WHERE owner IS NULL)".to_owned(),
        ),
    ]
}

/// Asserts every filter's total equals the rows it selects.
async fn assert_totals(client: &impl GenericClient, a: PipelineId, b: PipelineId, when: &str) {
    for (name, filter, condition) in filters(a, b) {
        // A page of one: the total then comes from the count, not the page.
        let page = runs::list(
            client,
            &filter,
            runs::DEFAULT_SORT,
            PageRequest::new(Some(1), None).unwrap(),
            None,
        )
        .await
        .unwrap();
        let counted: i64 = client
            .query_one(&format!("SELECT count(*) FROM runs WHERE {condition}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(page.total, counted, "{name}, {when}");
    }
}

/// Folds every delta, in batches of 7 walked by their cursor (the reaper's
/// and the scheduler's way).
async fn fold(db: &TestDatabase) -> i64 {
    let mut client = db.client().await;
    let (mut folded, mut after) = (0, 0);
    loop {
        let tx = client.transaction().await.unwrap();
        assert!(runs::try_lock_fold(&tx).await.unwrap(), "nobody else folds here");
        let (batch, last) = runs::fold_counts(&tx, after, 7).await.unwrap();
        tx.commit().await.unwrap();
        assert!(last >= after);
        folded += batch;
        after = last;
        if batch < 7 {
            return folded;
        }
    }
}

#[tokio::test]
async fn a_fold_from_a_cursor_leaves_the_deltas_before_it_for_the_next_fold() {
    let db = TestDatabase::new().await;
    let mut client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "ns", "bronze", "a").await;
    for _ in 0..3 {
        fixtures::run(&client, &pipeline).await;
    }
    let ids: Vec<i64> = client
        .query("SELECT id FROM run_count_deltas ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), 3, "one delta per inserting statement");
    // From after the first delta: the other two, and the last id.
    let tx = client.transaction().await.unwrap();
    assert_eq!(runs::fold_counts(&tx, ids[0], 10).await.unwrap(), (2, ids[2]));
    // Nothing after the last: the cursor stays.
    assert_eq!(runs::fold_counts(&tx, ids[2], 10).await.unwrap(), (0, ids[2]));
    tx.commit().await.unwrap();
    assert_eq!(
        runs::pending_deltas(&client).await.unwrap(),
        1,
        "the delta before the cursor waits"
    );
    // The count is exact meanwhile, and the next fold from 0 takes it.
    let total = runs::list(
        &client,
        &runs::RunFilter::default(),
        runs::DEFAULT_SORT,
        PageRequest::new(Some(1), None).unwrap(),
        None,
    )
    .await
    .unwrap()
    .total;
    assert_eq!(total, 3);
    assert_eq!(fold(&db).await, 1);
}

#[tokio::test]
async fn totals_equal_the_rows_through_every_kind_of_change_folded_or_not() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let a = fixtures::published_pipeline(&client, "ns", "bronze", "a").await;
    let b = fixtures::published_pipeline(&client, "ns", "silver", "b").await;
    let c = fixtures::published_pipeline(&client, "other", "gold", "c").await;
    let (ai, bi) = (a.id, b.id);
    // Bob's own pipeline, which alice may not read.
    client
        .execute("UPDATE pipelines SET owner = 'bob' WHERE id = $1", &[&c.id])
        .await
        .unwrap();
    assert_totals(&client, ai, bi, "empty").await;

    // Inserts one by one, and thousands in one statement.
    let mut made = Vec::new();
    for pipeline in [&a, &a, &b, &c, &b] {
        made.push(fixtures::run(&client, pipeline).await);
    }
    client
        .execute(
            "INSERT INTO runs (pipeline_id, status, version_number, published_versions) \
             SELECT (ARRAY[$1::uuid, $2::uuid, $3::uuid])[1 + i % 3], \
                    (ARRAY['success', 'failed', 'cancelled', 'pending'])[1 + i % 4], 1, '{}' \
             FROM generate_series(1, 3000) AS i",
            &[&a.id, &b.id, &c.id],
        )
        .await
        .unwrap();
    assert_totals(&client, ai, bi, "after inserts").await;
    assert!(runs::pending_deltas(&client).await.unwrap() > 0);
    assert!(fold(&db).await > 0);
    assert_eq!(runs::pending_deltas(&client).await.unwrap(), 0);
    assert_totals(&client, ai, bi, "after inserts, folded").await;

    // Status changes through the state machine, a refused one, and an
    // update that leaves the status alone.
    let now = OffsetDateTime::now_utc();
    let report = runs::RunReport::default();
    runs::transition(&client, made[0].id, RunStatus::Running, &report, now)
        .await
        .unwrap();
    runs::transition(&client, made[0].id, RunStatus::Failed, &report, now)
        .await
        .unwrap();
    runs::transition(&client, made[2].id, RunStatus::Cancelled, &report, now)
        .await
        .unwrap();
    runs::transition(&client, made[2].id, RunStatus::Running, &report, now)
        .await
        .unwrap_err();
    let untouched = runs::pending_deltas(&client).await.unwrap();
    client
        .execute("UPDATE runs SET rows_written = 7 WHERE status = 'success'", &[])
        .await
        .unwrap();
    assert_eq!(
        runs::pending_deltas(&client).await.unwrap(),
        untouched,
        "an update that changes no status appends no delta"
    );
    assert_totals(&client, ai, bi, "after status changes").await;
    // Many at once, in one statement, across pipelines and statuses.
    client
        .execute("UPDATE runs SET status = 'cancelled' WHERE status = 'pending'", &[])
        .await
        .unwrap();
    assert_totals(&client, ai, bi, "after a bulk update").await;
    fold(&db).await;
    assert_totals(&client, ai, bi, "after status changes, folded").await;

    // Deletes: some rows, then a whole pipeline purged (cascading).
    client
        .execute(
            "DELETE FROM runs WHERE status = 'failed' AND pipeline_id = $1",
            &[&b.id],
        )
        .await
        .unwrap();
    runs::delete(&client, made[1].id).await.unwrap();
    assert_totals(&client, ai, bi, "after deletes").await;
    pipelines::purge(&client, c.id).await.unwrap();
    assert_totals(&client, ai, bi, "after a purge").await;
    fold(&db).await;
    assert_totals(&client, ai, bi, "after deletes, folded").await;
    let left_of_c: i64 = client
        .query_one("SELECT count(*) FROM run_counts WHERE pipeline_id = $1", &[&c.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        left_of_c, 0,
        "the counters of a purged pipeline are deleted once folded"
    );
}

#[tokio::test]
async fn concurrent_writers_and_folders_lose_no_count() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let a = fixtures::published_pipeline(&client, "ns", "bronze", "a").await;
    let b = fixtures::published_pipeline(&client, "ns", "silver", "b").await;
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let pool = db.pool().clone();
            let (a, b) = (a.clone(), b.clone());
            tokio::spawn(async move {
                let mut client = pool.get().await.unwrap();
                for i in 0..40 {
                    // Several runs and status changes in one transaction,
                    // across both pipelines, in an order that differs per
                    // writer.
                    let tx = client.transaction().await.unwrap();
                    let (first, second) = if (w + i) % 2 == 0 { (&a, &b) } else { (&b, &a) };
                    let run = fixtures::run(&tx, first).await;
                    fixtures::run(&tx, second).await;
                    let now = OffsetDateTime::now_utc();
                    let report = runs::RunReport::default();
                    runs::transition(&tx, run.id, RunStatus::Running, &report, now)
                        .await
                        .unwrap();
                    if i % 3 == 0 {
                        runs::delete(&tx, run.id).await.unwrap();
                    } else {
                        runs::transition(&tx, run.id, RunStatus::Success, &report, now)
                            .await
                            .unwrap();
                    }
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    let folders: Vec<_> = (0..2)
        .map(|_| {
            let pool = db.pool().clone();
            tokio::spawn(async move {
                let mut client = pool.get().await.unwrap();
                for _ in 0..60 {
                    let tx = client.transaction().await.unwrap();
                    if runs::try_lock_fold(&tx).await.unwrap() {
                        runs::fold_counts(&tx, 0, 5).await.unwrap();
                    }
                    tx.commit().await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    for task in writers.into_iter().chain(folders) {
        task.await.unwrap();
    }
    assert_totals(&client, a.id, b.id, "after concurrent writers and folders").await;
    fold(&db).await;
    assert_totals(&client, a.id, b.id, "folded at the end").await;
    let total: i64 = client
        .query_one("SELECT sum(n)::bigint FROM run_totals", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 6 * 40 * 2 - 6 * 14, "every run made, less those deleted");
}

#[tokio::test]
async fn reading_a_total_never_touches_runs() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let a = fixtures::published_pipeline(&client, "ns", "bronze", "a").await;
    let status = "failed";
    let principals = vec!["alice".to_owned()];
    let cases: Vec<(runs::RunFilter, Vec<&(dyn tokio_postgres::types::ToSql + Sync)>)> = vec![
        (runs::RunFilter::default(), vec![]),
        (
            runs::RunFilter {
                status: Some(RunStatus::Failed),
                ..Default::default()
            },
            vec![&status],
        ),
        (
            runs::RunFilter {
                pipeline_id: Some(a.id),
                ..Default::default()
            },
            vec![&a.id],
        ),
        (
            runs::RunFilter {
                readable_by: Some(principals.clone()),
                ..Default::default()
            },
            vec![&principals],
        ),
    ];
    for (filter, params) in cases {
        let sql = runs::count_statement(&filter).expect("the counters serve this filter");
        let plan = fixtures::explain(&client, &sql, &params).await;
        assert!(!plan.contains(" on runs"), "{sql}\n{plan}");
    }
    let window = runs::RunFilter {
        started_after: Some(OffsetDateTime::now_utc()),
        ..Default::default()
    };
    assert!(runs::count_statement(&window).is_none(), "a time window counts rows");
}
