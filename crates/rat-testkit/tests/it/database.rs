//! Per-test databases: cloned from the migrated template, dropped afterwards,
//! and leftovers of crashed runs swept.

use rat_testkit::TestDatabase;
use tokio_postgres::NoTls;

async fn database_exists(url: &str, name: &str) -> bool {
    // Any database of the same server answers for pg_database.
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_test_database_is_dropped_when_the_test_ends() {
    let observer = TestDatabase::new().await;
    let db = TestDatabase::new().await;
    let name = db.name().to_owned();
    assert!(database_exists(observer.url(), &name).await);
    drop(db);
    assert!(!database_exists(observer.url(), &name).await);
}

#[tokio::test]
async fn leftovers_of_crashed_runs_are_swept() {
    let observer = TestDatabase::new().await;
    let client = observer.client().await;
    // A database named like a test database of a process that died long ago.
    let leftover = "rat_t_1000_999999_0";
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {leftover}"))
        .await
        .unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {leftover}"))
        .await
        .unwrap();
    assert!(database_exists(observer.url(), leftover).await);
    let _next = TestDatabase::new().await;
    assert!(
        !database_exists(observer.url(), leftover).await,
        "the next test database sweeps it"
    );
}

#[tokio::test]
async fn every_test_database_starts_from_the_same_migrated_state() {
    let a = TestDatabase::new().await;
    let b = TestDatabase::new().await;
    assert_ne!(a.name(), b.name());
    let client_a = a.client().await;
    client_a
        .execute("INSERT INTO namespaces (name) VALUES ('only_in_a')", &[])
        .await
        .unwrap();
    let client_b = b.client().await;
    let n: i64 = client_b
        .query_one("SELECT count(*) FROM namespaces", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "b sees only the seed row, not a's writes");
}
