//! The scheduler tick through the service layer, with an injected clock,
//! against real PostgreSQL: a due slot fires once and the schedule advances
//! from `now`; missed slots collapse into one run; pipelines that are busy,
//! deleted or never published do not fire (and say why in the log) without
//! holding up the others; concurrent ticks and a tick that crashes before
//! its commit still fire every slot exactly once; clock changes in the
//! schedule's zone; the wake-up time; the change notifications.

use rat_service::identity::Caller;
use std::sync::{Arc, Mutex};

use crate::common::{World, address, create, fs_world};
use rat_dao::listen::Listener;
use rat_dao::runs;
use rat_dao::schedules::CHANGED_CHANNEL;
use rat_domain::{CronExpr, Run, RunStatus, Schedule, ScheduleTimezone};
use rat_service::scheduler::{self, TickOptions, TickReport};
use rat_service::schedules::{ScheduleChanges as Changes, ScheduleSpec};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// A pipeline `default/silver/<name>`, created and published through the services.
async fn published(world: &World, name: &str) {
    create(&world.services, name).await;
    rat_service::versions::publish(
        &world.services,
        &Caller::community(),
        &address("default", "silver", name),
        "v1",
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
}

/// A schedule of `default/silver/<pipeline>` created at `now`.
async fn schedule(world: &World, pipeline: &str, cron: &str, zone: &str, now: OffsetDateTime) -> Schedule {
    rat_service::schedules::create(
        &world.services,
        &Caller::community(),
        &ScheduleSpec {
            address: address("default", "silver", pipeline),
            cron: CronExpr::parse(cron).unwrap(),
            timezone: ScheduleTimezone::parse(zone).unwrap(),
            enabled: true,
        },
        now,
    )
    .await
    .unwrap()
}

async fn tick(world: &World, now: OffsetDateTime) -> TickReport {
    scheduler::tick(&world.services.pool, now, TickOptions::default())
        .await
        .unwrap()
}

async fn get(world: &World, id: Uuid) -> Schedule {
    rat_service::schedules::get(&world.services, &Caller::community(), id.into())
        .await
        .unwrap()
}

/// Every run a schedule created, by slot.
async fn runs_of(world: &World, schedule: Uuid) -> Vec<Run> {
    let client = world.db.client().await;
    let ids: Vec<Uuid> = client
        .query(
            "SELECT id FROM runs WHERE schedule_id = $1 ORDER BY scheduled_for",
            &[&schedule],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut found = Vec::new();
    for id in ids {
        found.push(runs::get(&client, id.into()).await.unwrap());
    }
    found
}

/// Log lines written while the returned guard lives, on this thread (the
/// tests run on tokio's current-thread runtime, so the tick's logs are here).
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buffer.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

fn text(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
}

#[tokio::test]
async fn a_due_slot_fires_once_and_the_schedule_advances_from_now() {
    let world = fs_world().await;
    published(&world, "orders").await;
    let created = schedule(
        &world,
        "orders",
        "*/5 * * * *",
        "UTC",
        datetime!(2026-06-01 10:03:10 UTC),
    )
    .await;
    assert_eq!(created.next_run_at, Some(datetime!(2026-06-01 10:05:00 UTC)));

    let early = tick(&world, datetime!(2026-06-01 10:04:59.999 UTC)).await;
    assert_eq!((early.claimed, early.fired, early.more), (0, 0, false));
    assert!(
        runs_of(&world, created.id.into()).await.is_empty(),
        "nothing fires before its slot"
    );

    let now = datetime!(2026-06-01 10:05:00.150 UTC);
    let report = tick(&world, now).await;
    assert_eq!(
        report,
        TickReport {
            batches: 1,
            claimed: 1,
            fired: 1,
            ..TickReport::default()
        }
    );
    let fired = runs_of(&world, created.id.into()).await;
    assert_eq!(fired.len(), 1);
    let run = &fired[0];
    assert_eq!(run.trigger, "schedule:*/5 * * * *");
    assert_eq!(run.status, RunStatus::Pending);
    assert_eq!(run.scheduled_for, Some(datetime!(2026-06-01 10:05:00 UTC)));
    assert_eq!(run.created_at, now, "created at the tick's clock");
    assert_eq!(run.version_number, 1);
    let advanced = get(&world, created.id.into()).await;
    assert_eq!(advanced.next_run_at, Some(datetime!(2026-06-01 10:10:00 UTC)));
    assert_eq!((advanced.last_run_id, advanced.last_run_at), (Some(run.id), Some(now)));

    // The same instant again: the slot is done.
    let again = tick(&world, now).await;
    assert_eq!((again.claimed, again.fired), (0, 0));
    assert_eq!(runs_of(&world, created.id.into()).await.len(), 1);
}

#[tokio::test]
async fn missed_slots_fire_once_then_wait_for_the_next_future_slot() {
    let world = fs_world().await;
    published(&world, "orders").await;
    let created = schedule(
        &world,
        "orders",
        "*/5 * * * *",
        "UTC",
        datetime!(2026-06-01 10:03:10 UTC),
    )
    .await;

    // Down from 10:03 to 13:02: 35 slots passed. One run, for the oldest.
    let now = datetime!(2026-06-01 13:02:30 UTC);
    let report = tick(&world, now).await;
    assert_eq!((report.claimed, report.fired), (1, 1));
    let fired = runs_of(&world, created.id.into()).await;
    assert_eq!(fired.len(), 1, "no backfill storm");
    assert_eq!(fired[0].scheduled_for, Some(datetime!(2026-06-01 10:05:00 UTC)));
    assert_eq!(
        get(&world, created.id.into()).await.next_run_at,
        Some(datetime!(2026-06-01 13:05:00 UTC)),
        "advanced to the future, not to the next missed slot"
    );
    let again = tick(&world, now + time::Duration::SECOND).await;
    assert_eq!(again.claimed, 0);
}

#[tokio::test]
async fn a_pipeline_with_a_pending_or_running_run_is_not_fired_again() {
    let world = fs_world().await;
    published(&world, "orders").await;
    let start = datetime!(2026-06-01 10:00:00.500 UTC);
    let every_second = schedule(&world, "orders", "* * * * * *", "UTC", start).await;
    let at = |s: i64| datetime!(2026-06-01 10:00:00 UTC) + time::Duration::seconds(s);

    assert_eq!(tick(&world, at(1)).await.fired, 1);
    let first = runs_of(&world, every_second.id.into()).await[0].id;
    let (buffer, guard) = capture_logs();
    // Pending: slot 2 is skipped, and the schedule still moves on.
    let pending = tick(&world, at(2)).await;
    assert_eq!((pending.claimed, pending.fired, pending.active_run), (1, 0, 1));
    assert_eq!(pending.skipped(), 1);
    assert_eq!(get(&world, every_second.id.into()).await.next_run_at, Some(at(3)));
    // Running: same.
    let client = world.db.client().await;
    runs::transition(&client, first, RunStatus::Running, &Default::default(), at(2))
        .await
        .unwrap();
    assert_eq!(tick(&world, at(3)).await.active_run, 1);
    drop(guard);
    let logs = text(&buffer);
    assert_eq!(
        logs.matches("its pipeline has a pending or running run").count(),
        2,
        "{logs}"
    );
    assert!(
        logs.contains(&first.to_string()),
        "the log names the active run: {logs}"
    );
    // Finished: the next slot fires.
    runs::transition(&client, first, RunStatus::Success, &Default::default(), at(3))
        .await
        .unwrap();
    assert_eq!(tick(&world, at(4)).await.fired, 1);
    let slots: Vec<_> = runs_of(&world, every_second.id.into())
        .await
        .iter()
        .map(|r| r.scheduled_for.unwrap())
        .collect();
    assert_eq!(slots, [at(1), at(4)]);
}

#[tokio::test]
async fn deleted_and_unpublished_pipelines_do_not_fire_say_why_and_block_nothing() {
    let world = fs_world().await;
    let created_at = datetime!(2026-06-01 09:59:30 UTC);
    published(&world, "gone").await;
    create(&world.services, "draft").await;
    published(&world, "orders").await;
    // Created first, so their slots come first in the batch.
    let gone = schedule(&world, "gone", "0 10 * * *", "UTC", created_at).await;
    let draft = schedule(&world, "draft", "0 10 * * *", "UTC", created_at).await;
    let orders = schedule(&world, "orders", "0 10 * * *", "UTC", created_at).await;
    // Soft-deleted without the service's delete, which would also disable
    // the schedule (as a delete racing with the tick, or an older api, may).
    rat_dao::pipelines::soft_delete(
        &world.db.client().await,
        &address("default", "silver", "gone"),
        created_at,
    )
    .await
    .unwrap();

    let (buffer, guard) = capture_logs();
    let report = tick(&world, datetime!(2026-06-01 10:00:00.2 UTC)).await;
    drop(guard);
    assert_eq!(
        (
            report.claimed,
            report.fired,
            report.pipeline_deleted,
            report.never_published
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(runs_of(&world, orders.id.into()).await.len(), 1);
    assert!(runs_of(&world, gone.id.into()).await.is_empty());
    assert!(runs_of(&world, draft.id.into()).await.is_empty());
    let logs = text(&buffer);
    let line_of = |id: Uuid| {
        logs.lines()
            .find(|line| line.contains(&id.to_string()))
            .unwrap_or_else(|| panic!("no log line for {id}: {logs}"))
            .to_owned()
    };
    assert!(line_of(gone.id.into()).contains("its pipeline is deleted"), "{logs}");
    assert!(line_of(draft.id.into()).contains("never published"), "{logs}");
    // All three moved on to tomorrow's slot: nothing is retried every tick.
    for id in [gone.id, draft.id, orders.id] {
        assert_eq!(
            get(&world, id.into()).await.next_run_at,
            Some(datetime!(2026-06-02 10:00:00 UTC))
        );
    }

    // Published later, the draft's pipeline fires at its next slot (and
    // orders again, its first run being done by then).
    let client = world.db.client().await;
    let orders_run = runs_of(&world, orders.id.into()).await[0].id;
    for to in [RunStatus::Running, RunStatus::Success] {
        runs::transition(&client, orders_run, to, &Default::default(), created_at)
            .await
            .unwrap();
    }
    rat_service::versions::publish(
        &world.services,
        &Caller::community(),
        &address("default", "silver", "draft"),
        "v1",
        created_at,
    )
    .await
    .unwrap();
    let tomorrow = tick(&world, datetime!(2026-06-02 10:00:01 UTC)).await;
    assert_eq!((tomorrow.fired, tomorrow.pipeline_deleted), (2, 1));
    assert_eq!(runs_of(&world, draft.id.into()).await.len(), 1);
}

#[tokio::test]
async fn an_expression_that_no_longer_parses_is_set_aside_without_blocking_others() {
    let world = fs_world().await;
    published(&world, "orders").await;
    published(&world, "events").await;
    let created_at = datetime!(2026-06-01 09:59:30 UTC);
    let broken = schedule(&world, "orders", "0 10 * * *", "UTC", created_at).await;
    let healthy = schedule(&world, "events", "0 10 * * *", "UTC", created_at).await;
    let client = world.db.client().await;
    client
        .execute(
            "UPDATE schedules SET cron_expr = 'at dawn' WHERE id = $1",
            &[&broken.id],
        )
        .await
        .unwrap();

    let report = tick(&world, datetime!(2026-06-01 10:00:00.2 UTC)).await;
    assert_eq!((report.claimed, report.fired, report.invalid), (2, 1, 1));
    assert_eq!(runs_of(&world, healthy.id.into()).await.len(), 1);
    let row = client
        .query_one("SELECT next_run_at FROM schedules WHERE id = $1", &[&broken.id])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<OffsetDateTime>>(0), None, "set aside until updated");
}

#[tokio::test]
async fn two_concurrent_ticks_fire_every_slot_exactly_once() {
    let world = fs_world().await;
    let client = world.db.client().await;
    let slot = datetime!(2026-06-01 10:00:00 UTC);
    // 300 published pipelines with one due schedule each, in bulk.
    client
        .batch_execute(&format!(
            "INSERT INTO pipelines (id, namespace, layer, name, s3_path) \
             SELECT gen_random_uuid(), 'default', 'silver', 'p' || g, 'default/pipelines/silver/p' || g || '/' \
             FROM generate_series(1, 300) g; \
             INSERT INTO pipeline_versions (pipeline_id, version_number, published_versions) \
             SELECT id, 1, jsonb_build_object(s3_path || 'pipeline.sql', 'v1') FROM pipelines; \
             INSERT INTO schedules (pipeline_id, cron_expr, next_run_at) \
             SELECT id, '* * * * *', '{slot}' FROM pipelines;",
            slot = "2026-06-01 10:00:00+00"
        ))
        .await
        .unwrap();

    let now = slot + time::Duration::milliseconds(300);
    let options = TickOptions {
        batch_size: 25,
        max_batches: 100,
    };
    let (a, b) = tokio::join!(
        scheduler::tick(&world.services.pool, now, options),
        scheduler::tick(&world.services.pool, now, options)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.fired + b.fired, 300, "{a:?} {b:?}");
    assert_eq!(a.skipped() + b.skipped(), 0, "{a:?} {b:?}");
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT (schedule_id, scheduled_for)), min(scheduled_for), max(scheduled_for) \
             FROM runs",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (300, 300));
    assert_eq!(
        (row.get::<_, OffsetDateTime>(2), row.get::<_, OffsetDateTime>(3)),
        (slot, slot)
    );
    let row = client
        .query_one(
            "SELECT count(*) FROM schedules WHERE next_run_at = $1 AND last_run_id IS NOT NULL",
            &[&(slot + time::Duration::MINUTE)],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 300, "every schedule advanced, with its run");
}

#[tokio::test]
async fn a_tick_that_crashes_before_its_commit_leaves_the_slot_to_the_next_tick() {
    let world = fs_world().await;
    published(&world, "orders").await;
    let created = schedule(
        &world,
        "orders",
        "0 10 * * *",
        "UTC",
        datetime!(2026-06-01 09:00:00 UTC),
    )
    .await;
    let now = datetime!(2026-06-01 10:00:00.1 UTC);

    // The whole batch runs, then the process "dies": the transaction is
    // dropped without a commit (the server rolls it back).
    {
        let mut client = world.services.pool.get().await.unwrap();
        let transaction = client.transaction().await.unwrap();
        let report = scheduler::fire_batch(&transaction, now, 10).await.unwrap();
        assert_eq!((report.claimed, report.fired), (1, 1));
        assert_eq!(
            runs_of(&world, created.id.into()).await.len(),
            0,
            "not visible before the commit"
        );
        // While it holds the claim, another tick skips the schedule.
        let other = tick(&world, now).await;
        assert_eq!((other.claimed, other.fired), (0, 0));
        drop(transaction);
    }
    assert!(runs_of(&world, created.id.into()).await.is_empty());
    assert_eq!(
        get(&world, created.id.into()).await,
        created,
        "the schedule is as it was"
    );

    let later = now + time::Duration::SECOND;
    let report = tick(&world, later).await;
    assert_eq!((report.claimed, report.fired), (1, 1));
    let fired = runs_of(&world, created.id.into()).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].scheduled_for, Some(datetime!(2026-06-01 10:00:00 UTC)));
    assert_eq!(tick(&world, later).await.claimed, 0);
    assert_eq!(runs_of(&world, created.id.into()).await.len(), 1);
}

#[tokio::test]
async fn a_tick_is_bounded_and_says_when_more_is_due() {
    let world = fs_world().await;
    let created_at = datetime!(2026-06-01 09:59:00 UTC);
    let mut ids = Vec::new();
    for n in 0..7 {
        let name = format!("p{n}");
        published(&world, &name).await;
        ids.push(schedule(&world, &name, "0 10 * * *", "UTC", created_at).await.id);
    }
    let now = datetime!(2026-06-01 10:00:00.5 UTC);
    let options = TickOptions {
        batch_size: 3,
        max_batches: 2,
    };
    let first = scheduler::tick(&world.services.pool, now, options).await.unwrap();
    assert_eq!((first.batches, first.claimed, first.fired, first.more), (2, 6, 6, true));
    let second = scheduler::tick(&world.services.pool, now, options).await.unwrap();
    assert_eq!(
        (second.batches, second.claimed, second.fired, second.more),
        (1, 1, 1, false)
    );
    for id in ids {
        assert_eq!(runs_of(&world, id.into()).await.len(), 1);
    }
    for bad in [0, scheduler::MAX_BATCH_SIZE + 1] {
        let err = scheduler::tick(
            &world.services.pool,
            now,
            TickOptions {
                batch_size: bad,
                max_batches: 1,
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, rat_service::ServiceError::InvalidInput { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn a_local_time_that_does_not_exist_fires_once_after_the_gap() {
    let world = fs_world().await;
    published(&world, "orders").await;
    // 02:30 does not exist in Paris on 2026-03-29 (02:00 CET -> 03:00 CEST).
    let created = schedule(
        &world,
        "orders",
        "30 2 * * *",
        "Europe/Paris",
        datetime!(2026-03-28 12:00:00 UTC),
    )
    .await;
    // The first instant after the gap: 03:00 CEST = 01:00 UTC.
    let gap = datetime!(2026-03-29 01:00:00 UTC);
    assert_eq!(created.next_run_at, Some(gap));
    assert_eq!(tick(&world, gap + time::Duration::milliseconds(5)).await.fired, 1);
    // The day after, 02:30 exists again: 02:30 CEST = 00:30 UTC.
    assert_eq!(
        get(&world, created.id.into()).await.next_run_at,
        Some(datetime!(2026-03-30 00:30:00 UTC))
    );
    let fired = runs_of(&world, created.id.into()).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].scheduled_for, Some(gap));
}

#[tokio::test]
async fn a_local_time_that_occurs_twice_fires_once() {
    let world = fs_world().await;
    published(&world, "orders").await;
    // 02:30 occurs twice in Paris on 2026-10-25 (03:00 CEST -> 02:00 CET):
    // at 00:30 UTC (CEST) and at 01:30 UTC (CET).
    let created = schedule(
        &world,
        "orders",
        "30 2 * * *",
        "Europe/Paris",
        datetime!(2026-10-24 12:00:00 UTC),
    )
    .await;
    let first = datetime!(2026-10-25 00:30:00 UTC);
    assert_eq!(created.next_run_at, Some(first));
    assert_eq!(tick(&world, first).await.fired, 1);
    let next = get(&world, created.id.into()).await.next_run_at;
    assert_eq!(next, Some(datetime!(2026-10-26 01:30:00 UTC)), "tomorrow's 02:30 CET");
    // The second 02:30 passes without a fire.
    let second = datetime!(2026-10-25 01:30:00 UTC);
    assert_eq!(tick(&world, second).await.claimed, 0);
    assert_eq!(runs_of(&world, created.id.into()).await.len(), 1);
}

#[tokio::test]
async fn next_wake_is_the_earliest_slot_within_the_longest_sleep() {
    let world = fs_world().await;
    published(&world, "orders").await;
    let now = datetime!(2026-06-01 10:00:00 UTC);
    let max = time::Duration::seconds(30);
    assert_eq!(
        scheduler::next_wake(&world.services.pool, now, max).await.unwrap(),
        now + max
    );
    schedule(&world, "orders", "0 11 * * *", "UTC", now).await;
    assert_eq!(
        scheduler::next_wake(&world.services.pool, now, max).await.unwrap(),
        now + max
    );
    schedule(&world, "orders", "10 0 10 * * *", "UTC", now).await;
    assert_eq!(
        scheduler::next_wake(&world.services.pool, now, max).await.unwrap(),
        datetime!(2026-06-01 10:00:10 UTC)
    );
    // A cron trigger's slot counts as well.
    let client = world.db.client().await;
    client
        .execute(
            "INSERT INTO pipeline_triggers (pipeline_id, type, config, next_fire_at) \
             SELECT id, 'cron', '{\"cron_expr\": \"* * * * * *\"}', $1 FROM pipelines",
            &[&datetime!(2026-06-01 10:00:02 UTC)],
        )
        .await
        .unwrap();
    assert_eq!(
        scheduler::next_wake(&world.services.pool, now, max).await.unwrap(),
        datetime!(2026-06-01 10:00:02 UTC)
    );
}

#[tokio::test]
async fn creating_updating_and_deleting_a_schedule_wakes_the_schedulers() {
    let world = fs_world().await;
    published(&world, "orders").await;
    let mut listener = Listener::connect(&world.db.database(), "scheduler-test", &[CHANGED_CHANNEL])
        .await
        .unwrap();
    let heard = async |listener: &mut Listener| {
        let heard = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
            .await
            .expect("a notification")
            .expect("connected");
        assert_eq!(heard.channel, CHANGED_CHANNEL);
        heard.payload.parse::<rat_domain::ScheduleId>().ok()
    };
    let now = datetime!(2026-06-01 10:00:00 UTC);
    let created = schedule(&world, "orders", "0 11 * * *", "UTC", now).await;
    assert_eq!(heard(&mut listener).await, Some(created.id));
    rat_service::schedules::update(
        &world.services,
        &Caller::community(),
        created.id,
        &Changes {
            enabled: Some(false),
            ..Default::default()
        },
        now,
    )
    .await
    .unwrap();
    assert_eq!(heard(&mut listener).await, Some(created.id));
    rat_service::schedules::delete(&world.services, &Caller::community(), created.id)
        .await
        .unwrap();
    assert_eq!(heard(&mut listener).await, Some(created.id));
    // A refused change announces nothing: notifications arrive in commit
    // order, so the next one heard is a marker sent after the refusal.
    rat_service::schedules::delete(&world.services, &Caller::community(), created.id)
        .await
        .unwrap_err();
    world
        .db
        .client()
        .await
        .execute("SELECT pg_notify($1, 'marker')", &[&CHANGED_CHANNEL])
        .await
        .unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("the marker")
        .expect("connected");
    assert_eq!(next.payload, "marker", "the refused delete announced {next:?}");
}
