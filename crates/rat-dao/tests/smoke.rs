//! Smoke test of the testkit and the migrated schema.

use rat_testkit::TestDatabase;

#[tokio::test]
async fn migrated_database_has_the_seed_rows() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let row = client
        .query_one("SELECT count(*) FROM namespaces WHERE name = 'default'", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
}
