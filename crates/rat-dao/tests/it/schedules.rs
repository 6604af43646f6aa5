//! `schedules` repository against a real PostgreSQL: round trips, partial
//! updates, list filters, the scheduler's claim (`FOR UPDATE SKIP LOCKED` on
//! the partial index) and what happens when runs or pipelines go away.

use rat_dao::{DaoError, GenericClient, pipelines, runs, schedules};
use rat_domain::{CronExpr, PageRequest, Schedule, ScheduleTimezone};
use rat_domain::{PipelineId, RunId, ScheduleId};
use rat_testkit::{TestDatabase, fixtures};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

fn cron(text: &str) -> CronExpr {
    CronExpr::parse(text).unwrap()
}

fn new_schedule(pipeline_id: PipelineId, next_run_at: Option<OffsetDateTime>, enabled: bool) -> schedules::NewSchedule {
    schedules::NewSchedule {
        pipeline_id,
        cron_expr: cron("*/5 * * * *"),
        timezone: ScheduleTimezone::UTC,
        enabled,
        next_run_at,
    }
}

fn ids(schedules: &[Schedule]) -> Vec<ScheduleId> {
    schedules.iter().map(|s| s.id).collect()
}

fn claimed_ids(claimed: &[schedules::DueSchedule]) -> Vec<ScheduleId> {
    claimed.iter().map(|s| s.id).collect()
}

/// Records that `id` fired `run_id` at `at`, moving it to `next`.
async fn record_fire(
    client: &impl GenericClient,
    id: ScheduleId,
    run_id: RunId,
    at: OffsetDateTime,
    next: Option<OffsetDateTime>,
) {
    let advance = schedules::Advance {
        id,
        next_run_at: next,
        run_id: Some(run_id),
    };
    assert_eq!(schedules::advance(client, &[advance], at).await.unwrap(), 1);
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
    let advance = |run_id, next_run_at| schedules::Advance {
        id: created.id,
        next_run_at,
        run_id,
    };
    assert_eq!(
        schedules::advance(&client, &[advance(Some(run.id), Some(following))], fired_at)
            .await
            .unwrap(),
        1
    );
    let fired = schedules::get(&client, created.id).await.unwrap();
    assert_eq!(fired.last_run_id, Some(run.id));
    assert_eq!(fired.last_run_at, Some(fired_at));
    assert_eq!(fired.next_run_at, Some(following));
    assert_eq!(fired.cron_expr, created.cron_expr);
    assert!(fired.updated_at >= created.updated_at);

    // An expression that never matches again leaves no next slot; a slot
    // that did not fire keeps the last run.
    schedules::advance(&client, &[advance(None, None)], following)
        .await
        .unwrap();
    let last = schedules::get(&client, created.id).await.unwrap();
    assert_eq!(last.next_run_at, None);
    assert_eq!((last.last_run_id, last.last_run_at), (Some(run.id), Some(fired_at)));
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
    let err = schedules::create(&client, &new_schedule(Uuid::new_v4().into(), None, true))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "pipeline", constraint } if constraint == "fk_schedules_pipeline"),
        "{err:?}"
    );
    let now = OffsetDateTime::now_utc();
    for err in [
        schedules::get(&client, Uuid::new_v4().into()).await.unwrap_err(),
        schedules::update(&client, Uuid::new_v4().into(), &Default::default())
            .await
            .unwrap_err(),
        schedules::delete(&client, Uuid::new_v4().into()).await.unwrap_err(),
    ] {
        assert!(matches!(err, DaoError::NotFound { entity: "schedule" }), "{err:?}");
    }

    // Recording a fire with a run that does not exist is refused.
    let pipeline = fixtures::pipeline(&client, "default", "gold", "real").await;
    let schedule = schedules::create(&client, &new_schedule(pipeline.id, None, true))
        .await
        .unwrap();
    let advance = schedules::Advance {
        id: schedule.id,
        next_run_at: None,
        run_id: Some(Uuid::new_v4().into()),
    };
    let err = schedules::advance(&client, &[advance], now).await.unwrap_err();
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
            version_number: rat_domain::VersionNumber::parse(1).unwrap(),
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
async fn claim_due_returns_enabled_due_schedules_by_slot() {
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

    let due = schedules::claim_due(&client, now, 10).await.unwrap();
    assert_eq!(claimed_ids(&due), [due_earliest, due_late, due_exactly]);
    let bounded = schedules::claim_due(&client, now, 2).await.unwrap();
    assert_eq!(claimed_ids(&bounded), [due_earliest, due_late]);
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
    let claimed1 = schedules::claim_due(&tx1, now, 2).await.unwrap();
    let claimed2 = schedules::claim_due(&tx2, now, 10).await.unwrap();
    assert_eq!(claimed_ids(&claimed1), all[..2]);
    assert_eq!(claimed_ids(&claimed2), all[2..]);
    tx2.rollback().await.unwrap();
    tx1.rollback().await.unwrap();

    // Both at once: disjoint, and together they claim every due schedule.
    let tx1 = first.transaction().await.unwrap();
    let tx2 = second.transaction().await.unwrap();
    let (a, b) = tokio::join!(schedules::claim_due(&tx1, now, 2), schedules::claim_due(&tx2, now, 2));
    let (a, b) = (claimed_ids(&a.unwrap()), claimed_ids(&b.unwrap()));
    assert!(a.iter().all(|id| !b.contains(id)), "{a:?} {b:?}");
    let mut union: Vec<ScheduleId> = a.into_iter().chain(b).collect();
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
    let plan = fixtures::explain(&tx, schedules::DUE_SQL, &[&now, &limit]).await;
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
    record_fire(&client, schedule.id, run.id, fired_at, None).await;

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
        schedules::get_for_update(&first, Uuid::new_v4().into())
            .await
            .unwrap_err(),
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

// ---- The scheduler's set-based tick statements ----

/// A pipeline at `default/silver/<name>` with `versions` published versions
/// in its history (0: never published). The latest pins `v<n>` of one file.
async fn with_versions(client: &impl GenericClient, name: &str, versions: i32) -> rat_domain::Pipeline {
    let pipeline = fixtures::pipeline(client, "default", "silver", name).await;
    for n in 1..=versions {
        let pins =
            rat_domain::PublishedVersions::from_pairs([(format!("{}pipeline.sql", pipeline.s3_path), format!("v{n}"))])
                .unwrap();
        rat_dao::pipeline_versions::insert_next(client, pipeline.id, "", &pins, OffsetDateTime::now_utc())
            .await
            .unwrap();
    }
    pipeline
}

fn slot_to_fire(schedule_id: ScheduleId, slot: OffsetDateTime) -> schedules::SlotToFire {
    schedules::SlotToFire {
        schedule_id,
        slot,
        trigger: "schedule:*/5 * * * *".to_owned(),
    }
}

#[tokio::test]
async fn claim_due_returns_slots_as_stored_and_bounds_the_batch() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let now = datetime!(2026-06-01 12:00:00 UTC);
    let paris = schedules::create(
        &client,
        &schedules::NewSchedule {
            pipeline_id: pipeline.id,
            cron_expr: cron("0 9 * * *"),
            timezone: ScheduleTimezone::parse("Europe/Paris").unwrap(),
            enabled: true,
            next_run_at: Some(now - time::Duration::hours(1)),
        },
    )
    .await
    .unwrap();
    let later = schedules::create(&client, &new_schedule(pipeline.id, Some(now), true))
        .await
        .unwrap();
    schedules::create(
        &client,
        &new_schedule(pipeline.id, Some(now + time::Duration::SECOND), true),
    )
    .await
    .unwrap();
    // A value no parser accepts any more still comes back, as text: the
    // scheduler must be able to skip it without failing the whole batch.
    client
        .execute(
            "UPDATE schedules SET cron_expr = 'every full moon' WHERE id = $1",
            &[&later.id],
        )
        .await
        .unwrap();

    let due = schedules::claim_due(&client, now, 10).await.unwrap();
    assert_eq!(
        due,
        [
            schedules::DueSchedule {
                id: paris.id,
                pipeline_id: pipeline.id,
                slot: now - time::Duration::hours(1),
                cron_expr: "0 9 * * *".to_owned(),
                timezone: "Europe/Paris".to_owned(),
            },
            schedules::DueSchedule {
                id: later.id,
                pipeline_id: pipeline.id,
                slot: now,
                cron_expr: "every full moon".to_owned(),
                timezone: "UTC".to_owned(),
            },
        ]
    );
    assert_eq!(schedules::claim_due(&client, now, 1).await.unwrap().len(), 1);
    for bad in [0, -1, schedules::MAX_CLAIM_BATCH + 1] {
        let err = schedules::claim_due(&client, now, bad).await.unwrap_err();
        assert!(
            matches!(&err, DaoError::Invalid { constraint } if constraint == "claim_limit"),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn fire_slots_creates_the_run_of_each_slot_from_the_latest_version() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = with_versions(&client, "orders", 2).await;
    let schedule = schedules::create(&client, &new_schedule(pipeline.id, None, true))
        .await
        .unwrap();
    let slot = datetime!(2026-06-01 12:00:00 UTC);
    let now = datetime!(2026-06-01 12:00:00.040 UTC);

    let fired = schedules::fire_slots(&client, &[slot_to_fire(schedule.id, slot)], now)
        .await
        .unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].schedule_id, fired[0].slot), (schedule.id, slot));
    let run = runs::get(&client, fired[0].run_id).await.unwrap();
    assert_eq!(run.pipeline_id, pipeline.id);
    assert_eq!(run.status, rat_domain::RunStatus::Pending);
    assert_eq!(run.trigger, "schedule:*/5 * * * *");
    assert_eq!(run.version_number, 2, "the latest published version");
    let latest = rat_dao::pipeline_versions::latest(&client, pipeline.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.published_versions, latest.published_versions);
    assert_eq!(run.schedule_id, Some(schedule.id));
    assert_eq!(run.trigger_id, None);
    assert_eq!(run.scheduled_for, Some(slot));
    assert_eq!(run.created_at, now);
    assert!(schedules::fire_slots(&client, &[], now).await.unwrap().is_empty());
}

#[tokio::test]
async fn slots_that_may_not_fire_are_left_and_explained() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let slot = datetime!(2026-06-01 12:00:00 UTC);
    let now = slot + time::Duration::milliseconds(10);
    let schedule_of = async |pipeline: &rat_domain::Pipeline| {
        schedules::create(&client, &new_schedule(pipeline.id, Some(slot), true))
            .await
            .unwrap()
            .id
    };
    let deleted = with_versions(&client, "deleted", 1).await;
    let deleted_schedule = schedule_of(&deleted).await;
    pipelines::soft_delete(&client, &deleted.address, now).await.unwrap();
    let unpublished = with_versions(&client, "unpublished", 0).await;
    let unpublished_schedule = schedule_of(&unpublished).await;
    let busy = with_versions(&client, "busy", 1).await;
    let busy_schedule = schedule_of(&busy).await;
    let active = fixtures::run(&client, &busy).await;
    let twice = with_versions(&client, "twice", 1).await;
    let first_of_twice = schedule_of(&twice).await;
    let second_of_twice = schedule_of(&twice).await;
    let fired_before = with_versions(&client, "fired_before", 1).await;
    let fired_before_schedule = schedule_of(&fired_before).await;
    let earlier = schedules::fire_slots(&client, &[slot_to_fire(fired_before_schedule, slot)], now)
        .await
        .unwrap();
    // Its run has finished: only the slot itself stands in the way now.
    runs::transition(
        &client,
        earlier[0].run_id,
        rat_domain::RunStatus::Cancelled,
        &Default::default(),
        now,
    )
    .await
    .unwrap();
    let free = with_versions(&client, "free", 1).await;
    let free_schedule = schedule_of(&free).await;

    let order = [
        deleted_schedule,
        unpublished_schedule,
        busy_schedule,
        first_of_twice,
        second_of_twice,
        fired_before_schedule,
        free_schedule,
    ];
    let slots: Vec<_> = order.iter().map(|id| slot_to_fire(*id, slot)).collect();
    let fired = schedules::fire_slots(&client, &slots, now).await.unwrap();
    let mut fired_ids: Vec<ScheduleId> = fired.iter().map(|f| f.schedule_id).collect();
    fired_ids.sort();
    let mut expected = vec![first_of_twice, free_schedule];
    expected.sort();
    assert_eq!(
        fired_ids, expected,
        "one run per pipeline, and only where a run may start"
    );
    let twice_run = fired.iter().find(|f| f.schedule_id == first_of_twice).unwrap().run_id;

    let unfired: Vec<_> = order
        .iter()
        .filter(|id| !fired_ids.contains(id))
        .map(|id| (*id, slot))
        .collect();
    let explained = schedules::explain_unfired(&client, &unfired).await.unwrap();
    let reasons: Vec<(ScheduleId, PipelineId, schedules::NotFired)> = explained
        .iter()
        .map(|u| (u.schedule_id, u.pipeline_id, u.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            (deleted_schedule, deleted.id, schedules::NotFired::PipelineDeleted),
            (
                unpublished_schedule,
                unpublished.id,
                schedules::NotFired::NeverPublished
            ),
            (
                busy_schedule,
                busy.id,
                schedules::NotFired::ActiveRun {
                    run_id: Some(active.id)
                }
            ),
            (
                second_of_twice,
                twice.id,
                schedules::NotFired::ActiveRun {
                    run_id: Some(twice_run)
                }
            ),
            (
                fired_before_schedule,
                fired_before.id,
                schedules::NotFired::AlreadyFired
            ),
        ]
    );
    assert!(explained.iter().all(|u| u.slot == slot));
    assert_eq!(
        reasons.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(),
        [
            "pipeline_deleted",
            "never_published",
            "active_run",
            "active_run",
            "already_fired"
        ]
    );
    assert!(schedules::explain_unfired(&client, &[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_slot_fired_by_a_concurrent_transaction_is_not_fired_again() {
    let db = TestDatabase::new().await;
    let mut first = db.client().await;
    let mut second = db.client().await;
    let pipeline = with_versions(&first, "orders", 1).await;
    let schedule = schedules::create(&first, &new_schedule(pipeline.id, None, true))
        .await
        .unwrap();
    let slot = datetime!(2026-06-01 12:00:00 UTC);
    let slots = [slot_to_fire(schedule.id, slot)];

    // The first transaction fires the slot and has not committed: the
    // second cannot see that run, so only the unique index stops it. It
    // waits for the first to end, then does nothing instead of failing.
    let tx1 = first.transaction().await.unwrap();
    let fired1 = schedules::fire_slots(&tx1, &slots, slot).await.unwrap();
    assert_eq!(fired1.len(), 1);
    let tx2 = second.transaction().await.unwrap();
    let (fired2, ()) = tokio::join!(schedules::fire_slots(&tx2, &slots, slot), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        tx1.commit().await.unwrap();
    });
    assert!(fired2.unwrap().is_empty());
    tx2.commit().await.unwrap();
    let (count,): (i64,) = {
        let row = first
            .query_one("SELECT count(*) FROM runs WHERE schedule_id = $1", &[&schedule.id])
            .await
            .unwrap();
        (row.get(0),)
    };
    assert_eq!(count, 1);

    // And the index itself refuses a second run of the slot.
    let err = runs::create(
        &first,
        &runs::NewRun {
            pipeline_id: pipeline.id,
            trigger: "schedule:*/5 * * * *".to_owned(),
            version_number: rat_domain::VersionNumber::parse(1).unwrap(),
            published_versions: fixtures::snapshot(&pipeline),
            schedule_id: Some(schedule.id),
            trigger_id: None,
            scheduled_for: Some(slot),
        },
        slot,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DaoError::Conflict { constraint } if constraint == "uq_runs_schedule_slot"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_delete_waits_for_the_fire_or_the_fire_sees_the_delete() {
    let db = TestDatabase::new().await;
    let mut first = db.client().await;
    let mut second = db.client().await;
    let pipeline = with_versions(&first, "orders", 1).await;
    let schedule = schedules::create(&first, &new_schedule(pipeline.id, None, true))
        .await
        .unwrap();
    let slot = datetime!(2026-06-01 12:00:00 UTC);
    let slots = [slot_to_fire(schedule.id, slot)];

    // A delete in flight (its row lock held): the fire waits for it and then
    // sees the pipeline gone, instead of starting a run of a deleted pipeline.
    let deleting = second.transaction().await.unwrap();
    pipelines::soft_delete(&deleting, &pipeline.address, slot)
        .await
        .unwrap();
    let tx = first.transaction().await.unwrap();
    let (fired, ()) = tokio::join!(schedules::fire_slots(&tx, &slots, slot), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        deleting.commit().await.unwrap();
    });
    assert!(fired.unwrap().is_empty());
    let explained = schedules::explain_unfired(&tx, &[(schedule.id, slot)]).await.unwrap();
    assert_eq!(explained[0].reason, schedules::NotFired::PipelineDeleted);
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn advance_moves_each_schedule_and_records_only_fired_runs() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = with_versions(&client, "orders", 1).await;
    let slot = datetime!(2026-06-01 12:00:00 UTC);
    let now = slot + time::Duration::milliseconds(25);
    let fired = schedules::create(&client, &new_schedule(pipeline.id, Some(slot), true))
        .await
        .unwrap();
    let skipped = schedules::create(&client, &new_schedule(pipeline.id, Some(slot), true))
        .await
        .unwrap();
    let ended = schedules::create(&client, &new_schedule(pipeline.id, Some(slot), true))
        .await
        .unwrap();
    let old_run = fixtures::run(&client, &pipeline).await;
    record_fire(&client, skipped.id, old_run.id, slot - time::Duration::DAY, Some(slot)).await;
    let run = fixtures::run(&client, &pipeline).await;

    let updated = schedules::advance(
        &client,
        &[
            schedules::Advance {
                id: fired.id,
                next_run_at: Some(slot + time::Duration::minutes(5)),
                run_id: Some(run.id),
            },
            schedules::Advance {
                id: skipped.id,
                next_run_at: Some(slot + time::Duration::minutes(10)),
                run_id: None,
            },
            schedules::Advance {
                id: ended.id,
                next_run_at: None,
                run_id: None,
            },
        ],
        now,
    )
    .await
    .unwrap();
    assert_eq!(updated, 3);
    let fired = schedules::get(&client, fired.id).await.unwrap();
    assert_eq!(
        (fired.next_run_at, fired.last_run_id, fired.last_run_at),
        (Some(slot + time::Duration::minutes(5)), Some(run.id), Some(now))
    );
    let skipped = schedules::get(&client, skipped.id).await.unwrap();
    assert_eq!(
        (skipped.next_run_at, skipped.last_run_id, skipped.last_run_at),
        (
            Some(slot + time::Duration::minutes(10)),
            Some(old_run.id),
            Some(slot - time::Duration::DAY)
        ),
        "a schedule that did not fire keeps its last run"
    );
    let ended = schedules::get(&client, ended.id).await.unwrap();
    assert_eq!((ended.next_run_at, ended.last_run_id), (None, None));
    assert_eq!(schedules::advance(&client, &[], now).await.unwrap(), 0);
}

#[tokio::test]
async fn earliest_slot_is_the_first_of_enabled_schedules_and_cron_triggers() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    assert_eq!(schedules::earliest_slot(&client).await.unwrap(), None);
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let t = datetime!(2026-06-01 12:00:00 UTC);
    schedules::create(&client, &new_schedule(pipeline.id, Some(t), true))
        .await
        .unwrap();
    schedules::create(
        &client,
        &new_schedule(pipeline.id, Some(t - time::Duration::HOUR), false),
    )
    .await
    .unwrap();
    schedules::create(&client, &new_schedule(pipeline.id, None, true))
        .await
        .unwrap();
    assert_eq!(schedules::earliest_slot(&client).await.unwrap(), Some(t));

    // Cron triggers count too (V10's next_fire_at), disabled ones do not.
    let trigger = async |next: Option<OffsetDateTime>, enabled: bool| {
        client
            .execute(
                "INSERT INTO pipeline_triggers (pipeline_id, type, config, enabled, next_fire_at) \
                 VALUES ($1, 'cron', '{\"cron_expr\": \"* * * * *\"}', $2, $3)",
                &[&pipeline.id, &enabled, &next],
            )
            .await
            .unwrap();
    };
    trigger(Some(t - time::Duration::minutes(30)), false).await;
    trigger(None, true).await;
    assert_eq!(schedules::earliest_slot(&client).await.unwrap(), Some(t));
    trigger(Some(t - time::Duration::minutes(1)), true).await;
    assert_eq!(
        schedules::earliest_slot(&client).await.unwrap(),
        Some(t - time::Duration::minutes(1))
    );
    client.execute("DELETE FROM schedules", &[]).await.unwrap();
    assert_eq!(
        schedules::earliest_slot(&client).await.unwrap(),
        Some(t - time::Duration::minutes(1))
    );
}

#[tokio::test]
async fn changes_are_announced_to_listeners_on_commit() {
    let db = TestDatabase::new().await;
    let mut client = db.client().await;
    let mut listener =
        rat_dao::listen::Listener::connect(&db.database(), "schedules-test", &[schedules::CHANGED_CHANNEL])
            .await
            .unwrap();
    let id = Uuid::new_v4();
    let tx = client.transaction().await.unwrap();
    schedules::notify_changed(&tx, id.into()).await.unwrap();
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), listener.recv()).await;
    assert!(early.is_err(), "nothing is announced before the commit");
    tx.commit().await.unwrap();
    let heard = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("the notification arrives")
        .expect("the listener is connected");
    assert_eq!(heard.channel, "rat_schedules");
    assert_eq!(heard.payload, id.to_string());
}

#[tokio::test]
async fn the_fire_reads_the_active_runs_of_its_batch_alone_off_a_partial_index() {
    let db = TestDatabase::new().await;
    let mut client = db.client().await;
    let pipeline = with_versions(&client, "orders", 1).await;
    let schedule = schedules::create(&client, &new_schedule(pipeline.id, None, true))
        .await
        .unwrap();
    // A long history: a probe of this pipeline's runs by pipeline id would
    // read all of it whenever none is active.
    client
        .execute(
            "INSERT INTO runs (pipeline_id, status, version_number, published_versions, created_at) \
             SELECT $1, 'success', 1, '{}', now() - g * interval '1 second' FROM generate_series(1, 5000) g",
            &[&pipeline.id],
        )
        .await
        .unwrap();
    fixtures::run(&client, &pipeline).await;
    // Thousands of pending runs of other pipelines (what a burst of due
    // schedules leaves until runners take them): not the fire's business.
    client
        .execute(
            "WITH p AS ( \
                 INSERT INTO pipelines (namespace, layer, name, s3_path) \
                 SELECT 'default', 'bronze', 'busy' || g, 'default/pipelines/bronze/busy' || g || '/' \
                 FROM generate_series(1, 3000) g RETURNING id \
             ) \
             INSERT INTO runs (pipeline_id, status, version_number, published_versions) \
             SELECT id, 'pending', 1, '{}' FROM p",
            &[],
        )
        .await
        .unwrap();
    client.batch_execute("ANALYZE pipelines, runs").await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    let ids = vec![schedule.id];
    let slots = vec![OffsetDateTime::now_utc()];
    let labels = vec!["schedule:*/5 * * * *"];
    let now = OffsetDateTime::now_utc();
    let plan = fixtures::explain(&tx, schedules::FIRE_SQL, &[&ids, &slots, &labels, &now]).await;
    assert!(plan.contains("idx_runs_active_pipeline"), "{plan}");
    assert!(!plan.contains("idx_runs_status"), "{plan}");
    assert!(!plan.contains("idx_runs_pipeline "), "{plan}");
    assert!(plan.contains("uq_runs_schedule_slot"), "{plan}");
    tx.rollback().await.unwrap();
}

/// A burst of due schedules grows `runs` by a batch at a time, faster than
/// autovacuum analyzes it, and a pooled connection may keep a generic plan
/// made while `runs` was small. Asked whether each slot already fired as an
/// `EXISTS`, the planner judged one hashed scan of every run cheaper than a
/// probe per slot once `runs` held a few thousand rows, stale statistics or
/// not; each later batch of a burst then read the whole grown table (10⁵
/// due schedules fired in 11 s against 0.7 s for 10⁴). The check must probe
/// the unique index of the slots.
#[tokio::test]
async fn the_fire_checks_its_slots_off_the_unique_index_whatever_the_statistics() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    client
        .batch_execute("ALTER TABLE runs SET (autovacuum_enabled = off)")
        .await
        .unwrap();
    fixtures::scheduled_pipelines(&client, 3_000, "*/5 * * * *", None).await;
    // The first batches of the burst: 2,500 fired slots, analyzed.
    let fire_history = |from: i32, to: i32| {
        format!(
            "INSERT INTO runs (pipeline_id, version_number, published_versions, schedule_id, scheduled_for) \
             SELECT s.pipeline_id, 1, '{{}}', s.id, now() - g * interval '5 minutes' \
             FROM (SELECT * FROM schedules ORDER BY id LIMIT 500) s, generate_series({from}, {to}) g"
        )
    };
    client.batch_execute(&fire_history(1, 5)).await.unwrap();
    client.batch_execute("ANALYZE runs").await.unwrap();
    // The rest of the burst, never analyzed.
    client.batch_execute(&fire_history(6, 105)).await.unwrap();
    let due: Vec<ScheduleId> = client
        .query("SELECT id FROM schedules ORDER BY id LIMIT 500", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, Uuid>(0).into())
        .collect();
    let now = OffsetDateTime::now_utc();
    let slots = vec![now; due.len()];
    let labels = vec!["schedule:*/5 * * * *"; due.len()];
    // Planned for these values, with the statistics of 2,500 runs.
    let plan = fixtures::explain(&client, schedules::FIRE_SQL, &[&due, &slots, &labels, &now]).await;
    assert!(plan.contains("uq_runs_schedule_slot"), "{plan}");
    assert!(!plan.contains("hashed SubPlan"), "{plan}");
    assert!(!plan.contains("Seq Scan on runs"), "{plan}");
}
