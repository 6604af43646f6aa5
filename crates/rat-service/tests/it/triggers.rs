//! Triggers through the service layer: webhook tokens (generated, hashed at
//! rest), the self-watch refusal, and type changes refused on update.

use crate::common::{address, create, fs_world};
use rat_domain::{TriggerConfig, TriggerType};
use rat_service::ServiceError;
use rat_service::identity::Caller;
use rat_service::triggers::{TriggerChanges, TriggerSpec, generate_webhook_token, webhook_token_hash};
use serde_json::json;
use time::OffsetDateTime;

#[test]
fn the_token_hash_is_the_hex_sha256_of_the_token_text() {
    // FIPS 180-2 test vector.
    assert_eq!(
        webhook_token_hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn tokens_are_64_lowercase_hex_and_never_repeat() {
    let tokens: std::collections::HashSet<String> = (0..200).map(|_| generate_webhook_token()).collect();
    assert_eq!(tokens.len(), 200);
    for token in &tokens {
        assert_eq!(token.len(), 64);
        assert!(token.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')), "{token}");
    }
}

#[tokio::test]
async fn a_webhook_is_stored_with_the_hash_of_the_token_it_returns() {
    let world = fs_world().await;
    create(&world.services, "orders").await;
    let orders = address("default", "silver", "orders");
    let spec = TriggerSpec {
        config: None,
        enabled: true,
        cooldown_seconds: 30,
    };
    let created = rat_service::triggers::create(
        &world.services,
        &Caller::community(),
        &orders,
        spec,
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    let token = created.webhook_token.expect("a webhook gets a token");
    assert_eq!(
        created.trigger.config,
        TriggerConfig::Webhook {
            token_hash: webhook_token_hash(&token)
        }
    );
    assert_eq!(created.trigger.cooldown_seconds, 30);
    let client = world.db.client().await;
    let found = rat_dao::triggers::find_webhook(&client, &webhook_token_hash(&token))
        .await
        .unwrap()
        .expect("the firing path finds it by the hash of the presented token");
    assert_eq!(found.id, created.trigger.id);

    let cron = TriggerSpec {
        config: Some(TriggerConfig::parse(TriggerType::Cron, &json!({"cron_expr": "* * * * *"})).unwrap()),
        enabled: false,
        cooldown_seconds: 0,
    };
    let created = rat_service::triggers::create(
        &world.services,
        &Caller::community(),
        &orders,
        cron,
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(created.webhook_token, None);
    assert!(!created.trigger.enabled);
}

#[tokio::test]
async fn self_watch_and_type_changes_are_refused() {
    let world = fs_world().await;
    create(&world.services, "orders").await;
    let orders = address("default", "silver", "orders");
    let watch = |ns: &str, layer: &str, name: &str| TriggerSpec {
        config: Some(TriggerConfig::PipelineSuccess {
            upstream: address(ns, layer, name),
        }),
        enabled: true,
        cooldown_seconds: 0,
    };
    let err = rat_service::triggers::create(
        &world.services,
        &Caller::community(),
        &orders,
        watch("default", "silver", "orders"),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ServiceError::InvalidInput { message } if message.contains("its own pipeline")),
        "{err:?}"
    );
    let stored = rat_service::triggers::list(
        &world.services,
        &Caller::community(),
        &orders,
        rat_domain::PageRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!(stored.total, 0, "a refused create stores nothing");
    let trigger = rat_service::triggers::create(
        &world.services,
        &Caller::community(),
        &orders,
        watch("default", "bronze", "raw"),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap()
    .trigger;

    let changes = TriggerChanges {
        trigger_type: Some(TriggerType::Webhook),
        ..Default::default()
    };
    let err = rat_service::triggers::update(
        &world.services,
        &Caller::community(),
        &orders,
        trigger.id,
        &changes,
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ServiceError::InvalidInput { message } if message.contains("cannot change")),
        "{err:?}"
    );
    let changes = TriggerChanges {
        config: Some(json!({"namespace": "default", "layer": "silver", "pipeline": "orders"})),
        ..Default::default()
    };
    let err = rat_service::triggers::update(
        &world.services,
        &Caller::community(),
        &orders,
        trigger.id,
        &changes,
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ServiceError::InvalidInput { message } if message.contains("its own pipeline")),
        "{err:?}"
    );
    assert_eq!(
        rat_service::triggers::get(&world.services, &Caller::community(), &orders, trigger.id)
            .await
            .unwrap(),
        trigger,
        "a refused update stores nothing"
    );
    let changes = TriggerChanges {
        trigger_type: Some(TriggerType::PipelineSuccess),
        config: Some(json!({"namespace": "default", "layer": "bronze", "pipeline": "cleaned"})),
        enabled: Some(false),
        cooldown_seconds: Some(5),
    };
    let updated = rat_service::triggers::update(
        &world.services,
        &Caller::community(),
        &orders,
        trigger.id,
        &changes,
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(
        updated.config,
        TriggerConfig::PipelineSuccess {
            upstream: address("default", "bronze", "cleaned")
        }
    );
    assert_eq!((updated.enabled, updated.cooldown_seconds), (false, 5));
    assert_eq!(
        rat_service::triggers::get(&world.services, &Caller::community(), &orders, trigger.id)
            .await
            .unwrap(),
        updated
    );
}
