//! `plugins` repository against a real PostgreSQL.

use rat_dao::{DaoError, plugins};
use rat_domain::{PageRequest, PluginName, PluginStatus};
use rat_testkit::TestDatabase;
use serde_json::json;
use time::macros::datetime;

fn name(s: &str) -> PluginName {
    PluginName::parse(s).unwrap()
}

#[tokio::test]
async fn register_round_trips_every_column() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let config = json!({"issuer": "https://id.example.com", "audiences": ["rat"], "ttl": 300});
    let registered = plugins::register(&client, &name("auth-oidc"), "auth", "ghcr.io/rat/auth:1.2", &config)
        .await
        .unwrap();
    assert_eq!(registered.name.as_str(), "auth-oidc");
    assert_eq!(registered.slot, "auth");
    assert_eq!(registered.image, "ghcr.io/rat/auth:1.2");
    assert_eq!(
        registered.status,
        PluginStatus::Unknown,
        "a new plugin was never checked"
    );
    assert_eq!(registered.config, config);
    assert_eq!(registered.last_health, None);
    assert_eq!(plugins::get(&client, &name("auth-oidc")).await.unwrap(), registered);
}

/// jsonb keeps numbers as `numeric` and prints them in full (no exponent):
/// the largest finite double comes back as 309 digits, which a best-effort
/// float parser rounds past the largest double ("number out of range").
/// Every double the api accepts must read back as itself.
#[tokio::test]
async fn config_numbers_read_back_exactly_at_the_ends_of_the_double_range() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let config = json!({
        "max": f64::MAX,
        "min": f64::MIN,
        "tiny": f64::MIN_POSITIVE,
        "subnormal": 5e-324,
        "nested": [{"x": 1.7976931348623157e308, "y": -2.2250738585072014e-308, "z": 0.1}],
        "big": -3660890193_i64,
        "u": u64::MAX,
    });
    let registered = plugins::register(&client, &name("numbers"), "slot", "img", &config)
        .await
        .unwrap();
    assert_eq!(registered.config, config);
    assert_eq!(plugins::get(&client, &name("numbers")).await.unwrap().config, config);
}

#[tokio::test]
async fn register_again_updates_but_keeps_health() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let n = name("executor");
    let first = plugins::register(&client, &n, "executor", "img:1", &json!({"a": 1}))
        .await
        .unwrap();
    let checked_at = datetime!(2026-04-05 06:07:08 UTC);
    let healthy = plugins::record_health(&client, &n, PluginStatus::Healthy, checked_at)
        .await
        .unwrap();
    assert_eq!(healthy.status, PluginStatus::Healthy);
    assert_eq!(healthy.last_health, Some(checked_at));
    assert_eq!(healthy.image, "img:1");

    let again = plugins::register(&client, &n, "runner", "img:2", &json!({}))
        .await
        .unwrap();
    assert_eq!(again.slot, "runner");
    assert_eq!(again.image, "img:2");
    assert_eq!(again.config, json!({}));
    assert_eq!(again.status, PluginStatus::Healthy);
    assert_eq!(again.last_health, Some(checked_at));
    assert_eq!(again.created_at, first.created_at);
}

#[tokio::test]
async fn list_filters_by_status_with_total() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let at = datetime!(2026-01-01 00:00:00 UTC);
    for (n, status) in [
        ("delta", PluginStatus::Healthy),
        ("alpha", PluginStatus::Healthy),
        ("charlie", PluginStatus::Down),
        ("bravo", PluginStatus::Healthy),
        ("echo", PluginStatus::Unknown),
    ] {
        plugins::register(&client, &name(n), "slot", "img", &json!({}))
            .await
            .unwrap();
        if status != PluginStatus::Unknown {
            plugins::record_health(&client, &name(n), status, at).await.unwrap();
        }
    }
    let names = |page: &rat_domain::Page<rat_domain::Plugin>| -> Vec<String> {
        page.items.iter().map(|p| p.name.to_string()).collect()
    };
    let all = plugins::list(&client, None, PageRequest::default()).await.unwrap();
    assert_eq!(names(&all), ["alpha", "bravo", "charlie", "delta", "echo"]);
    assert_eq!(all.total, 5);

    let healthy = plugins::list(
        &client,
        Some(PluginStatus::Healthy),
        PageRequest::new(Some(2), Some(0)).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(names(&healthy), ["alpha", "bravo"]);
    assert_eq!(healthy.total, 3);
    let healthy = plugins::list(
        &client,
        Some(PluginStatus::Healthy),
        PageRequest::new(Some(2), Some(2)).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(names(&healthy), ["delta"]);
    assert_eq!(healthy.total, 3);

    let down = plugins::list(&client, Some(PluginStatus::Down), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(names(&down), ["charlie"]);
    let degraded = plugins::list(&client, Some(PluginStatus::Degraded), PageRequest::default())
        .await
        .unwrap();
    assert!(degraded.items.is_empty());
    assert_eq!(degraded.total, 0);
}

#[tokio::test]
async fn missing_plugins_are_not_found_and_delete_removes() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let n = name("ghost");
    for err in [
        plugins::get(&client, &n).await.unwrap_err(),
        plugins::record_health(&client, &n, PluginStatus::Down, datetime!(2026-01-01 00:00:00 UTC))
            .await
            .unwrap_err(),
        plugins::delete(&client, &n).await.unwrap_err(),
    ] {
        assert!(matches!(err, DaoError::NotFound { entity: "plugin" }), "{err:?}");
    }
    plugins::register(&client, &n, "auth", "img", &json!({})).await.unwrap();
    plugins::delete(&client, &n).await.unwrap();
    assert!(matches!(
        plugins::get(&client, &n).await.unwrap_err(),
        DaoError::NotFound { entity: "plugin" }
    ));
}

#[tokio::test]
async fn schema_checks_are_invalid_input_and_null_config_reads_as_empty() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let err = DaoError::from(
        client
            .execute(
                "INSERT INTO plugins (name, slot, image, status) VALUES ('x', 'auth', 'img', 'sleeping')",
                &[],
            )
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "ck_plugins_status"),
        "{err:?}"
    );
    let err = plugins::register(&client, &name("auth"), &"s".repeat(21), "img", &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "value"),
        "{err:?}"
    );

    client
        .execute(
            "INSERT INTO plugins (name, slot, image, config) VALUES ('bare', 'auth', 'img', NULL)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(plugins::get(&client, &name("bare")).await.unwrap().config, json!({}));
}
