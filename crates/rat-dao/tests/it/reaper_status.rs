//! `reaper_status` repository against a real PostgreSQL.

use std::time::Duration;

use futures_util::StreamExt;
use rat_dao::{DaoError, reaper_status};
use rat_domain::{ReaperCounters, ReaperStatus};
use rat_testkit::TestDatabase;
use time::macros::datetime;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

fn counters(n: i64) -> ReaperCounters {
    // Distinct values per counter, so a swapped column shows.
    ReaperCounters {
        runs_pruned: n,
        logs_pruned: 2 * n,
        quality_pruned: 3 * n,
        pipelines_purged: 4 * n,
        runs_failed: 5 * n,
        branches_cleaned: 6 * n,
        lz_files_cleaned: 7 * n,
        audit_pruned: 8 * n,
    }
}

#[tokio::test]
async fn the_migration_seeds_a_row_with_zero_counters() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let status = reaper_status::get(&client).await.unwrap();
    assert_eq!(status.last_run_at, None);
    assert_eq!(status.counters, ReaperCounters::default());
    assert_eq!(status.last_pass, ReaperCounters::default());
    assert!(status.updated_at.is_some(), "the stored row, not the in-memory default");
    assert_eq!(status.run_requested_at, None);
    assert!(!status.run_requested());
}

#[tokio::test]
async fn passes_add_up_and_set_the_last_run() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let first_at = datetime!(2026-03-01 01:00:00 UTC);
    let first = reaper_status::record_pass(&client, &counters(1), first_at)
        .await
        .unwrap();
    assert_eq!(first.last_run_at, Some(first_at));
    assert_eq!(first.counters, counters(1));

    let second_at = datetime!(2026-03-01 02:00:00 UTC);
    let second = reaper_status::record_pass(&client, &counters(10), second_at)
        .await
        .unwrap();
    assert_eq!(second.last_run_at, Some(second_at));
    assert_eq!(second.counters, counters(11));
    assert_eq!(second.last_pass, counters(10), "the last pass's own counts");
    assert!(second.updated_at > first.updated_at, "the trigger moves updated_at");
    assert_eq!(reaper_status::get(&client).await.unwrap(), second);

    // An idle pass changes only the time.
    let idle_at = datetime!(2026-03-01 03:00:00 UTC);
    let idle = reaper_status::record_pass(&client, &ReaperCounters::default(), idle_at)
        .await
        .unwrap();
    assert_eq!((idle.last_run_at, idle.counters), (Some(idle_at), counters(11)));
    assert_eq!(idle.last_pass, ReaperCounters::default(), "an idle pass did nothing");
}

#[tokio::test]
async fn an_interrupted_pass_adds_its_counters_but_stays_owed() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let finished = datetime!(2026-03-01 02:00:00 UTC);
    reaper_status::record_pass(&client, &counters(1), finished)
        .await
        .unwrap();
    let status = reaper_status::record_interrupted_pass(&client, &counters(5))
        .await
        .unwrap();
    assert_eq!((status.last_run_at, status.counters), (Some(finished), counters(6)));
    assert_eq!(status.last_pass, counters(1), "the last finished pass's counts stay");
}

#[tokio::test]
async fn counters_saturate_and_negative_passes_count_as_zero() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    client
        .execute("UPDATE reaper_status SET runs_pruned = 2147483600 WHERE id = 1", &[])
        .await
        .unwrap();
    let pass = ReaperCounters {
        runs_pruned: 100,
        logs_pruned: i64::MAX,
        quality_pruned: -5,
        audit_pruned: 3,
        ..ReaperCounters::default()
    };
    let status = reaper_status::record_pass(&client, &pass, datetime!(2026-03-01 00:00:00 UTC))
        .await
        .unwrap();
    let max = i64::from(i32::MAX);
    assert_eq!(status.counters.runs_pruned, max);
    assert_eq!(status.counters.logs_pruned, max);
    assert_eq!(status.counters.quality_pruned, 0);
    assert_eq!(status.counters.audit_pruned, 3);
    let status = reaper_status::record_pass(&client, &pass, datetime!(2026-03-02 00:00:00 UTC))
        .await
        .unwrap();
    assert_eq!(status.counters.runs_pruned, max, "stays saturated");
    assert_eq!(status.counters.audit_pruned, 6);
}

#[tokio::test]
async fn the_row_is_a_singleton_and_is_recreated_if_lost() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let err = DaoError::from(
        client
            .execute("INSERT INTO reaper_status (id) VALUES (2)", &[])
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "ck_reaper_status_singleton"),
        "{err:?}"
    );

    client.execute("DELETE FROM reaper_status", &[]).await.unwrap();
    assert_eq!(reaper_status::get(&client).await.unwrap(), ReaperStatus::default());
    let at = datetime!(2026-03-01 00:00:00 UTC);
    let status = reaper_status::record_pass(&client, &counters(2), at).await.unwrap();
    assert_eq!((status.last_run_at, status.counters), (Some(at), counters(2)));
    assert_eq!(status.last_pass, counters(2));
    let rows: i64 = client
        .query_one("SELECT count(*) FROM reaper_status", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}

/// A dedicated connection listening on the reaper's channel; notifications
/// arrive on the returned receiver as their channel names.
async fn listen(db: &TestDatabase) -> (tokio_postgres::Client, mpsc::UnboundedReceiver<String>) {
    let (client, mut connection) = tokio_postgres::connect(db.url(), NoTls).await.unwrap();
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = sender.send(n.channel().to_owned());
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {}", reaper_status::RUN_CHANNEL))
        .await
        .unwrap();
    (client, receiver)
}

#[tokio::test]
async fn a_run_request_is_stored_and_notified_at_commit() {
    let db = TestDatabase::new().await;
    let (_listener, mut notifications) = listen(&db).await;
    let mut client = db.client().await;

    let requested_at = datetime!(2026-03-01 12:00:00 UTC);
    let transaction = client.transaction().await.unwrap();
    let status = reaper_status::request_run(&transaction, requested_at).await.unwrap();
    assert_eq!(status.run_requested_at, Some(requested_at));
    assert_eq!(status.last_run_at, None);
    assert_eq!(
        status.counters,
        ReaperCounters::default(),
        "a request changes no counter"
    );
    assert!(status.run_requested(), "never ran, so the request is pending");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), notifications.recv())
            .await
            .is_err(),
        "nothing is delivered before the commit"
    );
    transaction.commit().await.unwrap();
    let channel = tokio::time::timeout(Duration::from_secs(10), notifications.recv())
        .await
        .expect("notified at commit")
        .unwrap();
    assert_eq!(channel, "rat_reaper_run");
    assert_eq!(reaper_status::get(&client).await.unwrap(), status);
}

#[tokio::test]
async fn a_rolled_back_request_is_neither_stored_nor_notified() {
    let db = TestDatabase::new().await;
    let (_listener, mut notifications) = listen(&db).await;
    let mut client = db.client().await;
    let transaction = client.transaction().await.unwrap();
    reaper_status::request_run(&transaction, datetime!(2026-03-01 12:00:00 UTC))
        .await
        .unwrap();
    transaction.rollback().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), notifications.recv())
            .await
            .is_err()
    );
    assert_eq!(reaper_status::get(&client).await.unwrap().run_requested_at, None);
}

#[tokio::test]
async fn a_pass_after_the_request_serves_it_and_keeps_the_request_time() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let first_pass = datetime!(2026-03-01 10:00:00 UTC);
    reaper_status::record_pass(&client, &counters(1), first_pass)
        .await
        .unwrap();

    let requested_at = datetime!(2026-03-01 11:00:00 UTC);
    let pending = reaper_status::request_run(&client, requested_at).await.unwrap();
    assert_eq!(pending.last_run_at, Some(first_pass));
    assert_eq!(pending.counters, counters(1));
    assert!(pending.run_requested(), "requested after the last pass");

    let served = reaper_status::record_pass(&client, &counters(1), datetime!(2026-03-01 11:05:00 UTC))
        .await
        .unwrap();
    assert_eq!(
        served.run_requested_at,
        Some(requested_at),
        "a pass keeps the request time"
    );
    assert!(!served.run_requested(), "the pass ended after the request");

    // A request older than the last pass (a clock step, a late replica) is served already.
    let stale = reaper_status::request_run(&client, datetime!(2026-03-01 11:01:00 UTC))
        .await
        .unwrap();
    assert!(!stale.run_requested());
}

#[tokio::test]
async fn a_request_recreates_a_lost_row() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    client.execute("DELETE FROM reaper_status", &[]).await.unwrap();
    let at = datetime!(2026-03-01 00:00:00 UTC);
    let status = reaper_status::request_run(&client, at).await.unwrap();
    assert_eq!((status.run_requested_at, status.last_run_at), (Some(at), None));
    assert_eq!(status.counters, ReaperCounters::default());
}
