//! `settings` repository (platform settings) against a real PostgreSQL.

use rat_dao::{GenericClient, settings};
use rat_domain::{DomainError, FeatureFlags, RetentionSettings};
use rat_testkit::TestDatabase;
use serde_json::{Value, json};
use time::OffsetDateTime;

async fn updated_at(client: &impl GenericClient, key: &str) -> OffsetDateTime {
    client
        .query_one("SELECT updated_at FROM platform_settings WHERE key = $1", &[&key])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn the_migration_seeds_the_defaults() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let retention = settings::get(&client, settings::RETENTION_KEY).await.unwrap().unwrap();
    assert_eq!(retention, RetentionSettings::default().to_json());
    let flags = settings::get(&client, settings::FEATURE_FLAGS_KEY)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(flags, FeatureFlags::default().to_json());

    let (effective, problems) = settings::retention(&client).await.unwrap();
    assert_eq!(effective, RetentionSettings::default());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(settings::feature_flags(&client).await.unwrap(), FeatureFlags::default());
}

#[tokio::test]
async fn put_and_get_round_trip_any_key() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    assert_eq!(settings::get(&client, "branding").await.unwrap(), None);
    let value = json!({"title": "RAT", "colors": ["#000", "#fff"], "nested": {"n": 1.5}});
    settings::put(&client, "branding", &value).await.unwrap();
    assert_eq!(settings::get(&client, "branding").await.unwrap(), Some(value));

    let before = updated_at(&client, "branding").await;
    settings::put(&client, "branding", &json!("plain")).await.unwrap();
    assert_eq!(settings::get(&client, "branding").await.unwrap(), Some(json!("plain")));
    assert!(
        updated_at(&client, "branding").await > before,
        "the trigger moves updated_at"
    );
}

#[tokio::test]
async fn retention_and_flags_round_trip() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let retention = RetentionSettings {
        runs_max_age_days: 10,
        audit_log_max_age_days: 30,
        ..RetentionSettings::default()
    };
    let before = updated_at(&client, settings::RETENTION_KEY).await;
    settings::put_retention(&client, &retention).await.unwrap();
    assert_eq!(settings::retention(&client).await.unwrap(), (retention, vec![]));
    assert!(updated_at(&client, settings::RETENTION_KEY).await > before);

    let flags = FeatureFlags {
        audit_log: false,
        pipeline_triggers: false,
        ..FeatureFlags::default()
    };
    settings::put_feature_flags(&client, &flags).await.unwrap();
    assert_eq!(settings::feature_flags(&client).await.unwrap(), flags);
}

#[tokio::test]
async fn stored_invalid_values_read_back_as_defaults_with_problems() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    // What ratd wrote for a partial update: the missing keys as 0.
    let mut stored = RetentionSettings::default().to_json();
    stored["audit_log_max_age_days"] = json!(0);
    stored["runs_max_age_days"] = json!(12);
    settings::put(&client, settings::RETENTION_KEY, &stored).await.unwrap();
    let (effective, problems) = settings::retention(&client).await.unwrap();
    assert_eq!(effective.audit_log_max_age_days, 365);
    assert_eq!(effective.runs_max_age_days, 12);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("audit_log_max_age_days"), "{problems:?}");

    let flags = json!({"audit_log": false, "landing_zones": "no"});
    settings::put(&client, settings::FEATURE_FLAGS_KEY, &flags)
        .await
        .unwrap();
    let read = settings::feature_flags(&client).await.unwrap();
    assert!(!read.audit_log);
    assert!(read.landing_zones, "a non-boolean flag keeps its default");
}

#[tokio::test]
async fn missing_rows_read_as_defaults() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    client
        .execute(
            "DELETE FROM platform_settings WHERE key IN ('retention', 'feature_flags')",
            &[],
        )
        .await
        .unwrap();
    let (effective, problems) = settings::retention(&client).await.unwrap();
    assert_eq!(effective, RetentionSettings::default());
    assert_eq!(problems.len(), 1, "a missing row is reported: {problems:?}");
    assert_eq!(settings::feature_flags(&client).await.unwrap(), FeatureFlags::default());
}

#[tokio::test]
async fn partial_update_keeps_other_keys_and_repairs_invalid_ones() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let mut stored = RetentionSettings::default().to_json();
    stored["logs_max_age_days"] = json!(5);
    stored["audit_log_max_age_days"] = json!(0);
    settings::put(&client, settings::RETENTION_KEY, &stored).await.unwrap();
    let before = updated_at(&client, settings::RETENTION_KEY).await;

    let next = settings::update_retention(&client, &json!({"runs_max_age_days": 10}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.runs_max_age_days, 10);
    assert_eq!(next.logs_max_age_days, 5, "an absent key keeps its stored value");
    assert_eq!(
        next.audit_log_max_age_days, 365,
        "an invalid stored value becomes its default"
    );
    assert_eq!(next.reaper_interval_minutes, 60);

    let written = settings::get(&client, settings::RETENTION_KEY).await.unwrap().unwrap();
    assert_eq!(written, next.to_json(), "every key is written back");
    assert_eq!(settings::retention(&client).await.unwrap(), (next, vec![]));
    assert!(updated_at(&client, settings::RETENTION_KEY).await > before);
}

#[tokio::test]
async fn a_refused_patch_writes_nothing() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let before: Value = settings::get(&client, settings::RETENTION_KEY).await.unwrap().unwrap();
    let stamped = updated_at(&client, settings::RETENTION_KEY).await;
    for patch in [
        json!({"runs_max_age_days": 10, "audit_log_max_age_days": 0}),
        json!({"no_such_key": 1}),
        json!({"runs_max_age_days": "10"}),
        json!([1]),
    ] {
        let refused = settings::update_retention(&client, &patch).await.unwrap();
        assert!(refused.is_err(), "{patch}");
    }
    let refused = settings::update_retention(&client, &json!({"audit_log_max_age_days": 0}))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            refused,
            DomainError::OutOfRange {
                field: "audit_log_max_age_days",
                value: 0,
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!(
        settings::get(&client, settings::RETENTION_KEY).await.unwrap().unwrap(),
        before
    );
    assert_eq!(
        updated_at(&client, settings::RETENTION_KEY).await,
        stamped,
        "not even rewritten unchanged"
    );
}

#[tokio::test]
async fn update_without_a_row_merges_with_the_defaults() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    client
        .execute("DELETE FROM platform_settings WHERE key = 'retention'", &[])
        .await
        .unwrap();
    let next = settings::update_retention(&client, &json!({"soft_delete_purge_days": 7}))
        .await
        .unwrap()
        .unwrap();
    let expected = RetentionSettings {
        soft_delete_purge_days: 7,
        ..RetentionSettings::default()
    };
    assert_eq!(next, expected);
    assert_eq!(settings::retention(&client).await.unwrap(), (expected, vec![]));
}

#[tokio::test]
async fn concurrent_updates_are_serialized_by_the_row_lock() {
    let db = TestDatabase::new().await;
    let mut first = db.client().await;
    let mut second = db.client().await;

    let tx1 = first.transaction().await.unwrap();
    settings::update_retention(&tx1, &json!({"runs_max_age_days": 10}))
        .await
        .unwrap()
        .unwrap();
    // While the first update is open, a second one must wait for it.
    let tx2 = second.transaction().await.unwrap();
    tx2.batch_execute("SET LOCAL lock_timeout = '200ms'").await.unwrap();
    let blocked = settings::update_retention(&tx2, &json!({"logs_max_age_days": 3}))
        .await
        .unwrap_err();
    assert!(blocked.is_retryable(), "{blocked:?}");
    tx2.rollback().await.unwrap();
    tx1.commit().await.unwrap();

    // Retried after the commit, it sees the first update and keeps it.
    let tx2 = second.transaction().await.unwrap();
    let next = settings::update_retention(&tx2, &json!({"logs_max_age_days": 3}))
        .await
        .unwrap()
        .unwrap();
    tx2.commit().await.unwrap();
    assert_eq!((next.runs_max_age_days, next.logs_max_age_days), (10, 3));
    assert_eq!(settings::retention(&first).await.unwrap().0, next);
}
