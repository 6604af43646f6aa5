//! `schedules` repository against a real PostgreSQL: round trips, partial
//! updates, list filters, the scheduler's claim (`FOR UPDATE SKIP LOCKED` on
//! the partial index) and what happens when runs or pipelines go away.

use rat_dao::{DaoError, GenericClient, pipelines, runs, schedules};
use rat_domain::{CronExpr, PageRequest, Schedule, ScheduleTimezone};
use rat_testkit::{TestDatabase, fixtures};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

fn cron(text: &str) -> CronExpr {
    CronExpr::parse(text).unwrap()
}

fn new_schedule(pipeline_id: Uuid, next_run_at: Option<OffsetDateTime>, enabled: bool) -> schedules::NewSchedule {
    schedules::NewSchedule {
        pipeline_id,
        cron_expr: cron("*/5 * * * *"),
        timezone: ScheduleTimezone::UTC,
        enabled,
        next_run_at,
    }
}

fn ids(schedules: &[Schedule]) -> Vec<Uuid> {
    schedules.iter().map(|s| s.id).collect()
}

#[tokio::test]
async fn every_column_round_trips() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let paris = ScheduleTimezone::parse("Europe/Paris").unwrap();
    let next = datetime!(2026-06-01 07:00:00 UTC);
    let created = schedules::create(
        &client,
        &schedules::NewSchedule {
            pipeline_id: pipeline.id,
            cron_expr: cron("30 0 9 * * 1-5"),
            timezone: paris,
            enabled: false,
            next_run_at: Some(next),
        },
    )
    .await
    .unwrap();
    assert_eq!(created.pipeline_id, pipeline.id);
    assert_eq!(created.cron_expr.as_str(), "30 0 9 * * 1-5");
    assert_eq!(created.timezone.name(), "Europe/Paris");
    assert!(!created.enabled);
    assert_eq!(created.next_run_at, Some(next));
    assert!(created.last_run_id.is_none() && created.last_run_at.is_none());
    assert_eq!(schedules::get(&client, created.id).await.unwrap(), created);

    let run = fixtures::run(&client, &pipeline).await;
    let fired_at = datetime!(2026-06-01 07:00:00.125 UTC);
    let following = datetime!(2026-06-02 07:00:00 UTC);
    let fired = schedules::record_fire(&client, created.id, run.id, fired_at, Some(following))
        .await
        .unwrap();
    assert_eq!(fired.last_run_id, Some(run.id));
    assert_eq!(fired.last_run_at, Some(fired_at));
    assert_eq!(fired.next_run_at, Some(following));
    assert_eq!(fired.cron_expr, created.cron_expr);
    assert!(fired.updated_at >= created.updated_at);
    assert_eq!(schedules::get(&client, created.id).await.unwrap(), fired);

    // An expression that never matches again leaves no next slot.
    let last = schedules::record_fire(&client, created.id, run.id, following, None)
        .await
        .unwrap();
    assert_eq!(last.next_run_at, None);
}

#[tokio::test]
async fn update_keeps_absent_fields() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let next = datetime!(2026-06-01 07:00:00 UTC);
    let created = schedules::create(&client, &new_schedule(pipeline.id, Some(next), true))
        .await
        .unwrap();

    let disabled = schedules::update(
        &client,
        created.id,
        &schedules::ScheduleUpdate {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.cron_expr, created.cron_expr);
    assert_eq!(disabled.timezone, ScheduleTimezone::UTC);
    assert_eq!(disabled.next_run_at, Some(next));

    let tokyo = ScheduleTimezone::parse("Asia/Tokyo").unwrap();
    let later = datetime!(2026-06-03 00:00:00 UTC);
    let changed = schedules::update(
        &client,
        created.id,
        &schedules::ScheduleUpdate {
            cron_expr: Some(cron("0 0 * * *")),
            timezone: Some(tokyo),
            enabled: None,
            next_run_at: Some(Some(later)),
        },
    )
    .await
    .unwrap();
    assert_eq!(changed.cron_expr.as_str(), "0 0 * * *");
    assert_eq!(changed.timezone, tokyo);
    assert!(!changed.enabled, "absent enabled is kept");
    assert_eq!(changed.next_run_at, Some(later));

    let cleared = schedules::update(
        &client,
        created.id,
        &schedules::ScheduleUpdate {
            next_run_at: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(cleared.next_run_at, None);
    assert_eq!(cleared.timezone, tokyo);
    assert_eq!(schedules::get(&client, created.id).await.unwrap(), cleared);
}

#[tokio::test]
async fn missing_rows_and_references() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let err = schedules::create(&client, &new_schedule(Uuid::new_v4(), None, true))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "pipeline", constraint } if constraint == "fk_schedules_pipeline"),
        "{err:?}"
    );
    let now = OffsetDateTime::now_utc();
    for err in [
        schedules::get(&client, Uuid::new_v4()).await.unwrap_err(),
        schedules::update(&client, Uuid::new_v4(), &Default::default())
            .await
            .unwrap_err(),
        schedules::delete(&client, Uuid::new_v4()).await.unwrap_err(),
        schedules::record_fire(&client, Uuid::new_v4(), Uuid::new_v4(), now, None)
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, DaoError::NotFound { entity: "schedule" }), "{err:?}");
    }

    // Recording a fire with a run that does not exist is refused.
    let pipeline = fixtures::pipeline(&client, "default", "gold", "real").await;
    let schedule = schedules::create(&client, &new_schedule(pipeline.id, None, true))
        .await
        .unwrap();
    let err = schedules::record_fire(&client, schedule.id, Uuid::new_v4(), now, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "run", constraint } if constraint == "fk_schedules_last_run"),
        "{err:?}"
    );
}

#[tokio::test]
async fn delete_removes_the_schedule_and_unlinks_its_runs() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let schedule = schedules::create(&client, &new_schedule(pipeline.id, None, true))
        .await
        .unwrap();
    let run = runs::create(
        &client,
        &runs::NewRun {
            pipeline_id: pipeline.id,
            trigger: "schedule:*/5 * * * *".to_owned(),
            version_number: 1,
            published_versions: fixtures::snapshot(&pipeline),
            schedule_id: Some(schedule.id),
            trigger_id: None,
            scheduled_for: Some(datetime!(2026-06-01 10:00:00 UTC)),
        },
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    schedules::delete(&client, schedule.id).await.unwrap();
    assert!(matches!(
        schedules::get(&client, schedule.id).await.unwrap_err(),
        DaoError::NotFound { entity: "schedule" }
    ));
    assert_eq!(runs::get(&client, run.id).await.unwrap().schedule_id, None);
}

#[tokio::test]
async fn list_filters_orders_and_counts() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let orders = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let sales = fixtures::pipeline(&client, "default", "gold", "sales").await;
    let mut created = Vec::new();
    for (pipeline, enabled) in [
        (&orders, true),
        (&sales, true),
        (&orders, false),
        (&orders, true),
        (&sales, false),
    ] {
        created.push(
            schedules::create(&client, &new_schedule(pipeline.id, None, enabled))
                .await
                .unwrap(),
        );
    }
    let list = |filter: schedules::ScheduleFilter, page: PageRequest| {
        let client = &client;
        async move { schedules::list(client, &filter, page).await.unwrap() }
    };

    let all = list(Default::default(), PageRequest::default()).await;
    assert_eq!(ids(&all.items), ids(&created), "oldest first");
    assert_eq!(all.total, 5);

    let of_orders = list(
        schedules::ScheduleFilter {
            pipeline_id: Some(orders.id),
            ..Default::default()
        },
        PageRequest::default(),
    )
    .await;
    assert_eq!(ids(&of_orders.items), [created[0].id, created[2].id, created[3].id]);
    assert_eq!(of_orders.total, 3);

    let disabled = list(
        schedules::ScheduleFilter {
            enabled: Some(false),
            ..Default::default()
        },
        PageRequest::default(),
    )
    .await;
    assert_eq!(ids(&disabled.items), [created[2].id, created[4].id]);

    let both = list(
        schedules::ScheduleFilter {
            pipeline_id: Some(orders.id),
            enabled: Some(true),
            ..Default::default()
        },
        PageRequest::new(Some(1), Some(1)).unwrap(),
    )
    .await;
    assert_eq!(ids(&both.items), [created[3].id]);
    assert_eq!(both.total, 2);

    let page = list(Default::default(), PageRequest::new(Some(2), Some(2)).unwrap()).await;
    assert_eq!(ids(&page.items), [created[2].id, created[3].id]);
    assert_eq!(page.total, 5);
}

#[tokio::test]
async fn due_for_update_returns_enabled_due_schedules_by_slot() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let now = datetime!(2026-06-01 12:00:00 UTC);
    let minutes = |m: i64| now + time::Duration::minutes(m);
    let create = async |next: Option<OffsetDateTime>, enabled: bool| {
        schedules::create(&client, &new_schedule(pipeline.id, next, enabled))
            .await
            .unwrap()
            .id
    };
    let due_late = create(Some(minutes(-5)), true).await;
    let due_exactly = create(Some(now), true).await;
    let due_earliest = create(Some(minutes(-30)), true).await;
    create(Some(minutes(1)), true).await;
    create(Some(minutes(-60)), false).await;
    create(None, true).await;

    let due = schedules::due_for_update(&client, now, 10).await.unwrap();
    assert_eq!(ids(&due), [due_earliest, due_late, due_exactly]);
    let bounded = schedules::due_for_update(&client, now, 2).await.unwrap();
    assert_eq!(ids(&bounded), [due_earliest, due_late]);
}

#[tokio::test]
async fn concurrent_claims_never_share_a_schedule() {
    let db = TestDatabase::new().await;
    let mut first = db.client().await;
    let mut second = db.client().await;
    let pipeline = fixtures::pipeline(&first, "default", "silver", "orders").await;
    let now = datetime!(2026-06-01 12:00:00 UTC);
    let mut all = Vec::new();
    for m in 0..3 {
        let next = now - time::Duration::minutes(10 - m);
        all.push(
            schedules::create(&first, &new_schedule(pipeline.id, Some(next), true))
                .await
                .unwrap()
                .id,
        );
    }

    // One claimer holds its rows; the other skips them instead of waiting
    // (the lock timeout would turn a wait into an error).
    let tx1 = first.transaction().await.unwrap();
    let tx2 = second.transaction().await.unwrap();
    tx2.batch_execute("SET LOCAL lock_timeout = '1s'").await.unwrap();
    let claimed1 = schedules::due_for_update(&tx1, now, 2).await.unwrap();
    let claimed2 = schedules::due_for_update(&tx2, now, 10).await.unwrap();
    assert_eq!(ids(&claimed1), all[..2]);
    assert_eq!(ids(&claimed2), all[2..]);
    tx2.rollback().await.unwrap();
    tx1.rollback().await.unwrap();

    // Both at once: disjoint, and together they claim every due schedule.
    let tx1 = first.transaction().await.unwrap();
    let tx2 = second.transaction().await.unwrap();
    let (a, b) = tokio::join!(
        schedules::due_for_update(&tx1, now, 2),
        schedules::due_for_update(&tx2, now, 2)
    );
    let (a, b) = (ids(&a.unwrap()), ids(&b.unwrap()));
    assert!(a.iter().all(|id| !b.contains(id)), "{a:?} {b:?}");
    let mut union: Vec<Uuid> = a.into_iter().chain(b).collect();
    union.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(union, expected);
    tx1.commit().await.unwrap();
    tx2.commit().await.unwrap();
}

#[tokio::test]
async fn the_due_query_uses_the_partial_next_run_index() {
    let db = TestDatabase::new().await;
    let mut client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let now = OffsetDateTime::now_utc();
    for m in 0..20 {
        let next = now + time::Duration::minutes(m - 10);
        schedules::create(&client, &new_schedule(pipeline.id, Some(next), m % 3 != 0))
            .await
            .unwrap();
    }
    client.batch_execute("ANALYZE schedules").await.unwrap();
    let tx = client.transaction().await.unwrap();
    // A table this small would be scanned sequentially; turning that off
    // shows which index the planner can use for the query.
    tx.batch_execute("SET LOCAL enable_seqscan = off").await.unwrap();
    let limit = 10_i64;
    let plan: Vec<String> = tx
        .query(&format!("EXPLAIN {}", schedules::DUE_SQL), &[&now, &limit])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("idx_schedules_next_run"), "{plan}");
    assert!(plan.contains("LockRows"), "{plan}");
    // The rows come in index order: no sort of every due row before the limit.
    assert!(!plan.contains("Sort"), "{plan}");
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn deleting_the_last_run_clears_the_reference() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let schedule = schedules::create(&client, &new_schedule(pipeline.id, None, true))
        .await
        .unwrap();
    let run = fixtures::run(&client, &pipeline).await;
    let fired_at = datetime!(2026-06-01 12:00:00 UTC);
    schedules::record_fire(&client, schedule.id, run.id, fired_at, None)
        .await
        .unwrap();

    runs::delete(&client, run.id).await.unwrap();
    let after = schedules::get(&client, schedule.id).await.unwrap();
    assert_eq!(after.last_run_id, None);
    assert_eq!(after.last_run_at, Some(fired_at), "the fire time is kept");
}

#[tokio::test]
async fn purging_the_pipeline_removes_its_schedules() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let gone = fixtures::pipeline(&client, "default", "silver", "gone").await;
    let kept = fixtures::pipeline(&client, "default", "silver", "kept").await;
    let doomed = schedules::create(&client, &new_schedule(gone.id, None, true))
        .await
        .unwrap();
    let survivor = schedules::create(&client, &new_schedule(kept.id, None, true))
        .await
        .unwrap();
    pipelines::purge(&client, gone.id).await.unwrap();
    assert!(matches!(
        schedules::get(&client, doomed.id).await.unwrap_err(),
        DaoError::NotFound { entity: "schedule" }
    ));
    assert_eq!(schedules::get(&client, survivor.id).await.unwrap(), survivor);
}

#[tokio::test]
async fn stored_values_that_do_not_parse_are_corrupt() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let schedule = schedules::create(&client, &new_schedule(pipeline.id, None, true))
        .await
        .unwrap();
    for (sql, column) in [
        (
            "UPDATE schedules SET timezone = 'Mars/Olympus' WHERE id = $1",
            "timezone",
        ),
        (
            "UPDATE schedules SET timezone = 'UTC', cron_expr = 'every minute' WHERE id = $1",
            "cron_expr",
        ),
    ] {
        client.execute(sql, &[&schedule.id]).await.unwrap();
        let err = schedules::get(&client, schedule.id).await.unwrap_err();
        assert!(
            matches!(&err, DaoError::Corrupt { column: c, .. } if *c == column),
            "{err:?}"
        );
        assert_eq!(err.to_string(), format!("stored {column} is invalid"));
    }
}

#[tokio::test]
async fn list_filters_by_pipeline_names_over_live_pipelines() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let orders = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let gold_orders = fixtures::pipeline(&client, "default", "gold", "orders").await;
    let shop_orders = fixtures::pipeline(&client, "shop", "silver", "orders").await;
    let shop_sales = fixtures::pipeline(&client, "shop", "silver", "sales").await;
    let gone = fixtures::pipeline(&client, "shop", "silver", "gone").await;
    let mut created = Vec::new();
    for pipeline in [&orders, &gold_orders, &shop_orders, &shop_sales, &gone] {
        created.push(
            schedules::create(&client, &new_schedule(pipeline.id, None, true))
                .await
                .unwrap()
                .id,
        );
    }
    pipelines::soft_delete(&client, &gone.address, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let list = async |filter: schedules::ScheduleFilter| {
        let page = schedules::list(&client, &filter, PageRequest::default()).await.unwrap();
        (ids(&page.items), page.total)
    };
    let ns = |name: &str| Some(name.parse().unwrap());

    let (shop, total) = list(schedules::ScheduleFilter {
        namespace: ns("shop"),
        ..Default::default()
    })
    .await;
    assert_eq!(
        shop,
        [created[2], created[3]],
        "the deleted pipeline's schedule is left out"
    );
    assert_eq!(total, 2);
    let (silver, _) = list(schedules::ScheduleFilter {
        layer: Some("silver".parse().unwrap()),
        ..Default::default()
    })
    .await;
    assert_eq!(silver, [created[0], created[2], created[3]]);
    let (named, total) = list(schedules::ScheduleFilter {
        pipeline: Some("orders".parse().unwrap()),
        ..Default::default()
    })
    .await;
    assert_eq!(named, [created[0], created[1], created[2]]);
    assert_eq!(total, 3);
    let (one, total) = list(schedules::ScheduleFilter {
        namespace: ns("default"),
        layer: Some("silver".parse().unwrap()),
        pipeline: Some("orders".parse().unwrap()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        (one, total),
        (vec![created[0]], 1),
        "the three together address one pipeline"
    );
    let (none, total) = list(schedules::ScheduleFilter {
        namespace: ns("default"),
        pipeline: Some("sales".parse().unwrap()),
        ..Default::default()
    })
    .await;
    assert_eq!((none, total), (vec![], 0));
}

#[tokio::test]
async fn get_for_update_locks_the_row_until_the_transaction_ends() {
    let db = TestDatabase::new().await;
    let mut first = db.client().await;
    let mut second = db.client().await;
    let pipeline = fixtures::pipeline(&first, "default", "silver", "orders").await;
    let schedule = schedules::create(&first, &new_schedule(pipeline.id, None, true))
        .await
        .unwrap();
    assert!(matches!(
        schedules::get_for_update(&first, Uuid::new_v4()).await.unwrap_err(),
        DaoError::NotFound { entity: "schedule" }
    ));

    let tx1 = first.transaction().await.unwrap();
    assert_eq!(schedules::get_for_update(&tx1, schedule.id).await.unwrap(), schedule);
    let tx2 = second.transaction().await.unwrap();
    tx2.batch_execute("SET LOCAL lock_timeout = '200ms'").await.unwrap();
    let err = schedules::get_for_update(&tx2, schedule.id).await.unwrap_err();
    assert!(err.is_retryable(), "a held lock makes the second reader wait: {err:?}");
    tx2.rollback().await.unwrap();
    // A plain read does not wait for the lock.
    assert_eq!(schedules::get(&second, schedule.id).await.unwrap(), schedule);
    tx1.commit().await.unwrap();

    let tx2 = second.transaction().await.unwrap();
    assert_eq!(schedules::get_for_update(&tx2, schedule.id).await.unwrap(), schedule);
    tx2.commit().await.unwrap();
}
