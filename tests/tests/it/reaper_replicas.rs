//! End to end: real `rat-reaper` processes against one database and one
//! file store.
//!
//! - Two reapers started together, and passes requested through Postgres
//!   while they run: their passes never overlap (read from their own logs).
//! - A pass stopped by SIGTERM exits 0 and stays owed; a pass killed with
//!   SIGKILL leaves nothing half-deleted visible; the next pass finishes the
//!   job, and keeps what must stay.
//!
//! The binary is taken from `RAT_BIN_DIR` (set by `cargo xtask test`), or
//! else from `target/debug/` (see [`tests::binary`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rat_testkit::{TestDatabase, fixtures};
use rat_versioning::fs::FsStore;
use rat_versioning::{KeyPrefix, ObjectKey, VersionedStore};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Environment of a reaper process: small batches, so that a pass over the
/// test's rows lasts long enough to be interrupted, and a short poll.
fn reaper_env<'a>(db: &'a TestDatabase, store: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("RAT_DATABASE_URL", db.url()),
        ("RAT_DB_POOL_SIZE", "4"),
        ("RAT_STORE", store),
        ("RAT_REAPER_BATCH_SIZE", "200"),
        ("RAT_REAPER_POLL_SECS", "1"),
        ("RAT_LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ]
}

/// Waits until `count` reapers listen for pass requests (each has
/// connected, migrated and entered its loop).
async fn wait_for_listeners(db: &TestDatabase, count: i64, logs: &[&Path]) {
    let listening = rat_testkit::fixtures::wait_for_sessions(
        &db.client().await,
        "rat-reaper-listener",
        count,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        listening,
        "{count} reapers did not start listening within 30 s:\n{}",
        logs_of(logs)
    );
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn last_run_at(client: &tokio_postgres::Client) -> Option<OffsetDateTime> {
    client
        .query_one("SELECT last_run_at FROM reaper_status WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0)
}

/// Asks for a pass the way `POST /admin/retention/run` does.
pub(crate) async fn request_pass(client: &tokio_postgres::Client) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    client
        .execute("UPDATE reaper_status SET run_requested_at = $1 WHERE id = 1", &[&now])
        .await
        .unwrap();
    client
        .execute("SELECT pg_notify('rat_reaper_run', '')", &[])
        .await
        .unwrap();
    now
}

/// Waits until a pass that started after `after` has been recorded.
pub(crate) async fn wait_for_pass_after(client: &tokio_postgres::Client, after: OffsetDateTime, logs: &[&Path]) {
    for _ in 0..1200 {
        if last_run_at(client).await.is_some_and(|at| at > after) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no pass was recorded within 60 s after {after}:\n{}", logs_of(logs));
}

fn logs_of(logs: &[&Path]) -> String {
    logs.iter()
        .map(|log| format!("--- {}\n{}", log.display(), tests::tail(log, 30)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `(start, end)` of every pass in a reaper's JSON log, in order.
pub(crate) fn passes(log: &Path) -> Vec<(OffsetDateTime, OffsetDateTime)> {
    let text = std::fs::read_to_string(log).unwrap();
    let mut passes = Vec::new();
    let mut started = None;
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let message = entry["fields"]["message"].as_str().unwrap_or_default();
        let at = || OffsetDateTime::parse(entry["timestamp"].as_str().unwrap(), &Rfc3339).unwrap();
        match message {
            "pass started" => {
                assert!(
                    started.is_none(),
                    "two passes started without one finishing in {}",
                    log.display()
                );
                started = Some(at());
            }
            "pass finished" => passes.push((started.take().expect("a pass finished before it started"), at())),
            _ => {}
        }
    }
    assert!(started.is_none(), "a pass never finished in {}", log.display());
    passes
}

/// Adds `rows` audit entries 400 days old and 10 recent ones.
async fn old_audit(client: &tokio_postgres::Client, rows: i32) {
    client
        .execute(
            "INSERT INTO audit_log (actor, action, timestamp) \
             SELECT 'test', 'old', now() - interval '400 days' - g * interval '1 second' \
             FROM generate_series(1, $1::int) g",
            &[&rows],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO audit_log (actor, action) SELECT 'test', 'recent' FROM generate_series(1, 10)",
            &[],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reapers_never_run_passes_at_the_same_time() {
    let binary = tests::binary("rat-reaper");
    let dir = tests::scratch_dir("rat-reaper-replicas");
    let db = TestDatabase::new().await;
    let client = raw_client(&db).await;
    let store = format!("fs:{}", dir.join("store").display());
    // A pass just ran: none is due until one is asked for, so both reapers
    // are up and listening when the first starts.
    client
        .execute("UPDATE reaper_status SET last_run_at = now() WHERE id = 1", &[])
        .await
        .unwrap();

    let logs: Vec<PathBuf> = (0..2).map(|n| dir.join(format!("reaper-{n}.log"))).collect();
    let env = reaper_env(&db, &store);
    let mut children: Vec<_> = logs.iter().map(|log| tests::spawn(&binary, &env, log)).collect();
    let log_refs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_for_listeners(&db, 2, &log_refs).await;

    // Four requested passes, each with old rows to delete, asked for while
    // both reapers listen: the notification wakes both at once, and only
    // one may run it.
    for _ in 0..4 {
        old_audit(&client, 12_500).await;
        let asked = request_pass(&client).await;
        // A second request during the pass: served by the pass after it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let asked_again = request_pass(&client).await;
        wait_for_pass_after(&client, asked.max(asked_again), &log_refs).await;
    }

    for child in &children {
        tests::terminate(child).await;
    }
    for (n, child) in children.iter_mut().enumerate() {
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .unwrap_or_else(|_| panic!("reaper {n} did not stop within 20 s of SIGTERM"))
            .unwrap();
        assert!(
            status.success(),
            "reaper {n} exited with {status}:\n{}",
            logs_of(&log_refs)
        );
    }

    let mut all: Vec<(OffsetDateTime, OffsetDateTime, usize)> = Vec::new();
    for (n, log) in logs.iter().enumerate() {
        all.extend(passes(log).into_iter().map(|(start, end)| (start, end, n)));
    }
    all.sort();
    assert!(
        all.len() >= 4,
        "expected at least 4 passes, saw {all:?}:\n{}",
        logs_of(&log_refs)
    );
    for pair in all.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "passes overlap: reaper {} ran {}..{} and reaper {} {}..{}",
            pair[0].2,
            pair[0].0,
            pair[0].1,
            pair[1].2,
            pair[1].0,
            pair[1].1
        );
    }
    assert_eq!(
        count(&client, "SELECT count(*) FROM audit_log WHERE action = 'old'").await,
        0
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM audit_log WHERE action = 'recent'").await,
        40
    );
    let audit_pruned: i32 = client
        .query_one("SELECT audit_pruned FROM reaper_status WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit_pruned, 50_000, "every deletion counted once");
    println!("passes: {all:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A plain client on the test database (the pooled one's type is not
/// `tokio_postgres::Client`).
async fn raw_client(db: &TestDatabase) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_pass_is_finished_by_the_next_and_keeps_what_must_stay() {
    let binary = tests::binary("rat-reaper");
    let dir = tests::scratch_dir("rat-reaper-interrupted");
    let db = TestDatabase::new().await;
    let pooled = db.client().await;
    let client = raw_client(&db).await;
    let store_dir = dir.join("store");
    let store = FsStore::open(store_dir.clone()).await.unwrap();
    let store_arg = format!("fs:{}", store_dir.display());

    // What must go: 30,000 finished runs 400 days old of one pipeline, a
    // pipeline deleted 40 days ago with two versions of a file, old audit.
    // What must stay: the busy pipeline's 5 recent runs and an old pending
    // run, a live pipeline and its file, recent audit.
    let busy = fixtures::published_pipeline(&pooled, "default", "silver", "busy").await;
    client
        .execute(
            "INSERT INTO runs (pipeline_id, status, created_at, started_at, finished_at, version_number, published_versions) \
             SELECT $1, 'success', t, t, t, 1, '{}'::jsonb \
             FROM (SELECT now() - interval '400 days' - g * interval '1 second' AS t FROM generate_series(1, 30000) g) s",
            &[&busy.id],
        )
        .await
        .unwrap();
    let mut recent_runs = Vec::new();
    for _ in 0..5 {
        let run = fixtures::run(&pooled, &busy).await;
        client
            .execute(
                "UPDATE runs SET status = 'success', started_at = now(), finished_at = now() WHERE id = $1",
                &[&run.id],
            )
            .await
            .unwrap();
        recent_runs.push(run.id);
    }
    let old_pending = fixtures::run_at(&pooled, &busy, OffsetDateTime::now_utc() - time::Duration::days(400)).await;
    let gone = fixtures::pipeline(&pooled, "default", "bronze", "gone").await;
    let gone_key = ObjectKey::parse("default/pipelines/bronze/gone/pipeline.sql").unwrap();
    store.put(&gone_key, b"v1".to_vec(), "text/plain").await.unwrap();
    store.put(&gone_key, b"v2".to_vec(), "text/plain").await.unwrap();
    client
        .execute(
            "UPDATE pipelines SET deleted_at = now() - interval '40 days' WHERE id = $1",
            &[&gone.id],
        )
        .await
        .unwrap();
    let live = fixtures::pipeline(&pooled, "default", "bronze", "live").await;
    let live_key = ObjectKey::parse("default/pipelines/bronze/live/pipeline.sql").unwrap();
    let live_version = store.put(&live_key, b"keep".to_vec(), "text/plain").await.unwrap();
    old_audit(&client, 20_000).await;
    let old_runs = "SELECT count(*) FROM runs WHERE created_at < now() - interval '300 days' AND status = 'success'";

    let log = dir.join("reaper.log");
    let env = reaper_env(&db, &store_arg);

    // SIGTERM mid-pass: exits 0 soon, and the pass stays owed.
    let mut child = tests::spawn(&binary, &env, &log);
    wait_until_fewer(&client, old_runs, 30_000, &log).await;
    tests::terminate(&child).await;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the reaper stops within 10 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "exit {status}:\n{}", tests::tail(&log, 30));
    assert_eq!(
        last_run_at(&client).await,
        None,
        "an interrupted pass is not recorded as done"
    );
    let after_term = count(&client, old_runs).await;
    assert!(after_term > 0, "the pass was stopped before the end of its first task");

    // SIGKILL mid-pass, with no chance to clean up.
    let mut child = tests::spawn(&binary, &env, &log);
    wait_until_fewer(&client, old_runs, after_term, &log).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert_eq!(last_run_at(&client).await, None);
    // Nothing half-deleted is visible: every remaining run is whole (its
    // pipeline is there), and the deleted pipeline still has its files.
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM runs r WHERE NOT EXISTS (SELECT 1 FROM pipelines p WHERE p.id = r.pipeline_id)"
        )
        .await,
        0
    );
    let prefix = KeyPrefix::parse("default/pipelines/bronze/gone/").unwrap();
    assert_eq!(store.list_versions(&prefix, None, 100).await.unwrap().items.len(), 2);

    // The next pass finishes the job.
    let started = OffsetDateTime::now_utc();
    let mut child = tests::spawn(&binary, &env, &log);
    wait_for_pass_after(&client, OffsetDateTime::UNIX_EPOCH, &[&log]).await;
    assert!(last_run_at(&client).await.unwrap() >= started - time::Duration::seconds(1));
    tests::terminate(&child).await;
    assert!(child.wait().await.unwrap().success());

    assert_eq!(count(&client, old_runs).await, 0, "every old finished run deleted");
    for id in &recent_runs {
        let kept = client
            .query_one("SELECT EXISTS (SELECT 1 FROM runs WHERE id = $1)", &[id])
            .await
            .unwrap();
        assert!(kept.get::<_, bool>(0), "a recent run was deleted");
    }
    let pending: String = client
        .query_one("SELECT status FROM runs WHERE id = $1", &[&old_pending.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        pending, "failed",
        "a pending run nobody claimed is failed, never deleted"
    );
    let gone_left = client
        .query_one("SELECT count(*) FROM pipelines WHERE id = $1", &[&gone.id])
        .await
        .unwrap();
    assert_eq!(gone_left.get::<_, i64>(0), 0);
    assert!(store.list_versions(&prefix, None, 100).await.unwrap().items.is_empty());
    assert_eq!(store.get(&live_key, Some(&live_version)).await.unwrap().body, b"keep");
    assert!(
        client
            .query_one("SELECT EXISTS (SELECT 1 FROM pipelines WHERE id = $1)", &[&live.id])
            .await
            .unwrap()
            .get::<_, bool>(0)
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM audit_log WHERE action = 'old'").await,
        0
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM audit_log WHERE action = 'recent'").await,
        10
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until `sql` counts fewer than `than` rows (a pass is under way).
async fn wait_until_fewer(client: &tokio_postgres::Client, sql: &str, than: i64, log: &Path) {
    for _ in 0..1200 {
        if count(client, sql).await < than {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no pass got under way within 30 s:\n{}", tests::tail(log, 30));
}
