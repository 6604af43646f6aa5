//! End to end: three real `rat-scheduler` processes against one database,
//! 200 schedules firing every second for over 30 s, one scheduler killed with
//! SIGKILL at random moments and restarted, and then every slot of the
//! window checked to have exactly one run.
//!
//! The binary is taken from `RAT_BIN_DIR` (set by `cargo xtask test`, which
//! builds every binary first), or else from `target/debug/`; build it with
//! `cargo build -p rat-scheduler` before running this test on its own.
//!
//! A completer task plays a very fast runner: it moves every pending run to
//! success within ~10 ms. Without it, a schedule's next slot would find the
//! previous run still pending and rightly not fire (the "active run" rule),
//! and the test could not tell such a skip from a missed fire.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::Rng;
use rat_testkit::TestDatabase;
use time::OffsetDateTime;

/// Schedules in the test.
const SCHEDULES: i64 = 200;
/// Scheduler processes.
const REPLICAS: usize = 3;
/// How long the schedulers fire, from the first slot.
const FIRING: Duration = Duration::from_secs(32);
/// Slots this close to either end of the firing period are not checked:
/// the first slot may fire while a scheduler is still starting, and the
/// last ones may be in flight when the schedulers are stopped.
const MARGIN_SECS: i64 = 2;
/// SIGKILLs during the firing period.
const KILLS: usize = 3;

/// One scheduler process slot: its current child and its log file.
struct Replica {
    child: Option<tokio::process::Child>,
    log: PathBuf,
}

/// Starts one scheduler, stderr appended to `log`.
fn spawn(binary: &Path, url: &str, log: &Path) -> tokio::process::Child {
    tests::spawn(
        binary,
        &[
            ("RAT_DATABASE_URL", url),
            ("RAT_DB_POOL_SIZE", "4"),
            ("RAT_SCHEDULER_MAX_SLEEP_SECS", "1"),
            ("RUST_LOG", "info"),
        ],
        log,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_schedulers_fire_every_slot_exactly_once_through_sigkills() {
    let binary = tests::binary("rat-scheduler");
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let logs_dir = tests::scratch_dir("rat-scheduler-replicas");

    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|n| {
            let log = logs_dir.join(format!("scheduler-{n}.log"));
            Replica {
                child: Some(spawn(&binary, db.url(), &log)),
                log,
            }
        })
        .collect();
    assert!(
        rat_testkit::fixtures::wait_for_sessions(
            &client,
            "rat-scheduler-listener",
            REPLICAS as i64,
            Duration::from_secs(30)
        )
        .await,
        "{REPLICAS} schedulers did not start listening within 30 s"
    );

    // 200 published pipelines with one every-second schedule each, whose
    // first slot is a whole second at least 2 s from now.
    let now = OffsetDateTime::now_utc();
    let first_slot = now.replace_nanosecond(0).unwrap() + time::Duration::seconds(3);
    rat_testkit::fixtures::scheduled_pipelines(&client, SCHEDULES as i32, "* * * * * *", Some(first_slot)).await;

    // The completer: a runner that finishes every run at once.
    let completing = Arc::new(AtomicBool::new(true));
    let completer = {
        let completing = completing.clone();
        let completer_client = db.client().await;
        tokio::spawn(async move {
            while completing.load(Ordering::Relaxed) {
                completer_client
                    .execute(
                        "UPDATE runs SET status = 'success', started_at = now(), finished_at = now() \
                         WHERE status = 'pending'",
                        &[],
                    )
                    .await
                    .expect("completing runs");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // SIGKILL one scheduler at random moments, and restart it after a
    // random pause.
    let until_first = (first_slot - OffsetDateTime::now_utc())
        .try_into()
        .unwrap_or(Duration::ZERO);
    let started = tokio::time::Instant::now() + until_first;
    let mut kill_at: Vec<Duration> = {
        let mut rng = rand::rng();
        (0..KILLS)
            .map(|k| {
                // One kill in each third of the period (from 3 s to the end
                // minus 4 s), so they are spread out; each within 40 ms after
                // a slot, when the schedulers are most likely mid-tick, with
                // schedules claimed and runs inserted but not committed.
                let span = (FIRING.as_secs() - 7) / KILLS as u64;
                Duration::from_secs(3 + span * k as u64 + rng.random_range(0..span))
                    + Duration::from_millis(rng.random_range(0..40))
            })
            .collect()
    };
    kill_at.sort();
    let mut killed = Vec::new();
    for at in kill_at {
        tokio::time::sleep_until(started + at).await;
        let (victim, pause) = {
            let mut rng = rand::rng();
            (rng.random_range(0..REPLICAS), rng.random_range(100..1500))
        };
        let replica = &mut replicas[victim];
        let mut child = replica.child.take().unwrap();
        child.start_kill().expect("SIGKILL");
        child.wait().await.unwrap();
        killed.push((victim, at, pause));
        tokio::time::sleep(Duration::from_millis(pause)).await;
        replica.child = Some(spawn(&binary, db.url(), &replica.log));
    }
    tokio::time::sleep_until(started + FIRING).await;

    // Stop: SIGTERM, and each must exit 0 after finishing its tick.
    let stopped_at = OffsetDateTime::now_utc();
    for replica in &replicas {
        tests::terminate(replica.child.as_ref().unwrap()).await;
    }
    for (n, replica) in replicas.iter_mut().enumerate() {
        let status = tokio::time::timeout(Duration::from_secs(15), replica.child.as_mut().unwrap().wait())
            .await
            .unwrap_or_else(|_| panic!("scheduler {n} did not stop within 15 s of SIGTERM"))
            .unwrap();
        assert!(
            status.success(),
            "scheduler {n} exited with {status}:\n{}",
            tests::tail(&replica.log, 30)
        );
    }
    completing.store(false, Ordering::Relaxed);
    completer.await.unwrap();

    let report_logs = || {
        replicas
            .iter()
            .enumerate()
            .map(|(n, r)| format!("--- scheduler {n} ({})\n{}", r.log.display(), tests::tail(&r.log, 15)))
            .collect::<Vec<_>>()
            .join("\n")
    };

    assert_no_slot_twice(&client).await;

    // Every slot of every schedule in the window has its run.
    let window_start = first_slot + time::Duration::seconds(MARGIN_SECS);
    let window_end = stopped_at.replace_nanosecond(0).unwrap() - time::Duration::seconds(MARGIN_SECS);
    assert!(
        window_end - window_start >= time::Duration::seconds(25),
        "window {window_start} .. {window_end} is too short"
    );
    let missing = client
        .query(
            "SELECT s.id, t.slot, \
                 (SELECT r.scheduled_for FROM runs r WHERE r.schedule_id = s.id AND r.scheduled_for < t.slot \
                  ORDER BY r.scheduled_for DESC LIMIT 1) AS previous_slot, \
                 (SELECT r.created_at FROM runs r WHERE r.schedule_id = s.id AND r.scheduled_for < t.slot \
                  ORDER BY r.scheduled_for DESC LIMIT 1) AS previous_created, \
                 (SELECT r.finished_at FROM runs r WHERE r.schedule_id = s.id AND r.scheduled_for < t.slot \
                  ORDER BY r.scheduled_for DESC LIMIT 1) AS previous_finished \
             FROM schedules s CROSS JOIN generate_series($1::timestamptz, $2::timestamptz, interval '1 second') t(slot) \
             WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.schedule_id = s.id AND r.scheduled_for = t.slot) \
             ORDER BY t.slot, s.id",
            &[&window_start, &window_end],
        )
        .await
        .unwrap();
    if !missing.is_empty() {
        // Tell a missed fire from a legitimate skip: a slot collapses when
        // the previous one fired a second or more late (missed-slot rule),
        // and is skipped when the previous run was still active.
        let detail: Vec<String> = missing
            .iter()
            .take(20)
            .map(|row| {
                let slot: OffsetDateTime = row.get(1);
                let previous_created: Option<OffsetDateTime> = row.get(3);
                let previous_finished: Option<OffsetDateTime> = row.get(4);
                let why = match (previous_created, previous_finished) {
                    (Some(created), _) if created >= slot => "collapsed: the previous slot fired >= 1 s late",
                    (_, Some(finished)) if finished > slot => "previous run still active at the slot",
                    _ => "MISSED",
                };
                format!(
                    "schedule {} slot {slot}: {why} (previous slot {:?}, created {previous_created:?}, finished \
                     {previous_finished:?})",
                    row.get::<_, uuid::Uuid>(0),
                    row.get::<_, Option<OffsetDateTime>>(2)
                )
            })
            .collect();
        panic!(
            "{} slots in {window_start} .. {window_end} have no run (kills: {killed:?}):\n{}\n{}",
            missing.len(),
            detail.join("\n"),
            report_logs()
        );
    }
    let per_schedule = client
        .query_one(
            "SELECT count(*), count(DISTINCT schedule_id) FROM runs WHERE scheduled_for BETWEEN $1 AND $2",
            &[&window_start, &window_end],
        )
        .await
        .unwrap();
    let slots = (window_end - window_start).whole_seconds() + 1;
    assert_eq!(per_schedule.get::<_, i64>(0), SCHEDULES * slots);
    assert_eq!(per_schedule.get::<_, i64>(1), SCHEDULES);

    // Fire latency over the whole run, for the record (target: p99 < 1 s).
    let latency = client
        .query_one(
            "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP ( \
                 ORDER BY extract(epoch FROM created_at - scheduled_for)::float8), \
                 max(extract(epoch FROM created_at - scheduled_for))::float8, count(*) \
             FROM runs WHERE schedule_id IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    let percentiles: Vec<f64> = latency.get(0);
    println!(
        "{} runs; fire latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; kills {killed:?}",
        latency.get::<_, i64>(2),
        percentiles[0] * 1000.0,
        percentiles[1] * 1000.0,
        latency.get::<_, f64>(1) * 1000.0
    );
    let _ = std::fs::remove_dir_all(&logs_dir);
}

/// No schedule slot has two runs (the unique index makes it impossible:
/// checked anyway).
pub(crate) async fn assert_no_slot_twice(client: &tokio_postgres::Client) {
    let duplicates = client
        .query(
            "SELECT schedule_id, scheduled_for, count(*) FROM runs WHERE schedule_id IS NOT NULL \
             GROUP BY schedule_id, scheduled_for HAVING count(*) > 1 LIMIT 10",
            &[],
        )
        .await
        .unwrap();
    assert!(duplicates.is_empty(), "slots with more than one run: {duplicates:?}");
}
