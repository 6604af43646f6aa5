//! The audit spool (`rat_service::audit::Spool`) against a real database:
//! entries kept while the database does not answer are written afterwards,
//! in order, each with the time of its action, and none is lost on a
//! failed flush.

use rat_service::Services;
use rat_service::audit::{NewAuditEntry, Spool};
use time::macros::datetime;

fn entry(action: &str) -> NewAuditEntry {
    NewAuditEntry {
        actor: "alice".to_owned(),
        action: action.to_owned(),
        object_type: None,
        object_id: None,
        details: Some(serde_json::json!({"request_id": action})),
    }
}

#[tokio::test]
async fn spooled_entries_are_written_once_the_database_answers() {
    let world = crate::common::fs_world().await;
    let spool = Spool::default();
    let first_at = datetime!(2026-12-01 10:00:00 UTC);
    spool.push(entry("first"), first_at);
    spool.push(entry("second"), first_at + time::Duration::seconds(1));

    // A database that does not answer: nothing is written, nothing lost.
    let closed = rat_testkit::dao::create_pool(&rat_testkit::dao::PoolSettings::new(world.db.url())).unwrap();
    closed.close();
    let down = Services::new(closed, world.services.store.clone());
    assert!(spool.flush(&down).await.is_err());
    assert_eq!(spool.len(), 2);
    spool.push(entry("third"), first_at + time::Duration::seconds(2));

    // It answers again: every entry, oldest first, at its own time.
    assert_eq!(spool.flush(&world.services).await.unwrap(), 3);
    assert!(spool.is_empty());
    let client = world.db.client().await;
    let rows: Vec<(String, time::OffsetDateTime)> = client
        .query("SELECT action, timestamp FROM audit_log ORDER BY timestamp", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("first".to_owned(), first_at),
            ("second".to_owned(), first_at + time::Duration::seconds(1)),
            ("third".to_owned(), first_at + time::Duration::seconds(2)),
        ]
    );
    assert_eq!(spool.flush(&world.services).await.unwrap(), 0);
}

#[tokio::test]
async fn a_full_spool_drops_its_oldest_entry() {
    let world = crate::common::fs_world().await;
    let spool = Spool::default();
    let at = datetime!(2026-12-01 10:00:00 UTC);
    let capacity = rat_service::audit::SPOOL_CAPACITY;
    for n in 0..=capacity {
        spool.push(entry(&n.to_string()), at + time::Duration::milliseconds(n as i64));
    }
    assert_eq!(spool.len(), capacity);
    // The one dropped is the oldest (0): the newest is kept.
    assert_eq!(spool.flush(&world.services).await.unwrap(), capacity);
    let client = world.db.client().await;
    let (first, last): (String, String) = client
        .query_one(
            "SELECT (array_agg(action ORDER BY timestamp))[1], \
                    (array_agg(action ORDER BY timestamp DESC))[1] FROM audit_log",
            &[],
        )
        .await
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    assert_eq!((first, last), ("1".to_owned(), capacity.to_string()));
}
