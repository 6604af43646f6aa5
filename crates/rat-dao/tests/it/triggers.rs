//! `triggers` repository against a real PostgreSQL: every config type, the
//! fixed type, pipeline scoping, the event lookups (and the GIN index they
//! rely on), the atomic cooldown claim and the constraints.

use rat_domain::TriggerId;
use std::time::Duration;

use rat_dao::{DaoError, GenericClient, pipelines, runs, schedules, triggers};
use rat_domain::{
    CronExpr, NamespaceName, PageRequest, Pipeline, PipelineRef, Trigger, TriggerConfig, TriggerType, ZoneName,
};
use rat_testkit::{TestDatabase, fixtures};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

fn upstream(name: &str) -> PipelineRef {
    PipelineRef::parse("default", "bronze", name).unwrap()
}

fn success_of(name: &str) -> TriggerConfig {
    TriggerConfig::PipelineSuccess {
        upstream: upstream(name),
    }
}

fn zone_upload(ns: &str, zone: &str) -> TriggerConfig {
    TriggerConfig::LandingZoneUpload {
        namespace: NamespaceName::parse(ns).unwrap(),
        zone_name: ZoneName::parse(zone).unwrap(),
    }
}

fn file_pattern(ns: &str, zone: &str, pattern: &str) -> TriggerConfig {
    TriggerConfig::FilePattern {
        namespace: NamespaceName::parse(ns).unwrap(),
        zone_name: ZoneName::parse(zone).unwrap(),
        pattern: pattern.to_owned(),
    }
}

fn webhook(hash_byte: &str) -> TriggerConfig {
    TriggerConfig::Webhook {
        token_hash: hash_byte.repeat(32),
    }
}

fn new_trigger(pipeline: &Pipeline, config: TriggerConfig, enabled: bool) -> triggers::NewTrigger {
    triggers::NewTrigger {
        pipeline_id: pipeline.id,
        config,
        enabled,
        cooldown_seconds: 0,
    }
}

async fn create(client: &impl GenericClient, pipeline: &Pipeline, config: TriggerConfig, enabled: bool) -> Trigger {
    triggers::create(client, &new_trigger(pipeline, config, enabled))
        .await
        .unwrap()
}

fn ids(triggers: &[Trigger]) -> Vec<TriggerId> {
    triggers.iter().map(|t| t.id).collect()
}

/// Waits until the backend `pid` waits for a lock held by another session.
async fn wait_until_blocked(observer: &impl GenericClient, pid: i32) {
    for _ in 0..500 {
        let row = observer
            .query_one("SELECT cardinality(pg_blocking_pids($1)) > 0", &[&pid])
            .await
            .unwrap();
        if row.get::<_, bool>(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("backend {pid} never blocked");
}

#[tokio::test]
async fn every_type_round_trips() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let configs = [
        success_of("raw_orders"),
        zone_upload("default", "uploads"),
        file_pattern("default", "uploads", "orders_*.csv"),
        webhook("ab"),
        TriggerConfig::Cron {
            cron_expr: CronExpr::parse("0 */2 * * *").unwrap(),
        },
        TriggerConfig::CronDependency {
            cron_expr: CronExpr::parse("15 6 * * *").unwrap(),
            dependencies: vec![
                upstream("raw_orders"),
                PipelineRef::parse("default", "silver", "customers").unwrap(),
            ],
        },
    ];
    for (i, config) in configs.into_iter().enumerate() {
        let cooldown = i32::try_from(i).unwrap() * 30;
        let created = triggers::create(
            &client,
            &triggers::NewTrigger {
                pipeline_id: pipeline.id,
                config: config.clone(),
                enabled: i % 2 == 0,
                cooldown_seconds: cooldown,
            },
        )
        .await
        .unwrap();
        assert_eq!(created.pipeline_id, pipeline.id);
        assert_eq!(created.config, config);
        assert_eq!(created.enabled, i % 2 == 0);
        assert_eq!(created.cooldown_seconds, cooldown);
        assert!(created.last_triggered_at.is_none() && created.last_run_id.is_none());
        assert_eq!(triggers::get(&client, created.id).await.unwrap(), created);
        assert_eq!(
            triggers::get_for_pipeline(&client, pipeline.id, created.id)
                .await
                .unwrap(),
            created
        );

        // The type column is derived from the config; the config is stored in its JSON form.
        let row = client
            .query_one(
                "SELECT type, config FROM pipeline_triggers WHERE id = $1",
                &[&created.id],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, &str>("type"), config.trigger_type().as_str());
        assert_eq!(row.get::<_, serde_json::Value>("config"), config.to_json());
    }
    let all = triggers::list_for_pipeline(&client, pipeline.id, PageRequest::default())
        .await
        .unwrap();
    let types: Vec<TriggerType> = all.items.iter().map(Trigger::trigger_type).collect();
    assert_eq!(types, TriggerType::ALL);
}

#[tokio::test]
async fn update_keeps_the_type_and_absent_fields() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let created = create(&client, &pipeline, success_of("raw_orders"), true).await;

    let err = triggers::update(
        &client,
        pipeline.id,
        created.id,
        &triggers::TriggerUpdate {
            config: Some(zone_upload("default", "uploads")),
            enabled: Some(false),
            cooldown_seconds: Some(60),
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "trigger_type"),
        "{err:?}"
    );
    assert_eq!(
        triggers::get(&client, created.id).await.unwrap(),
        created,
        "a refused update writes nothing"
    );

    let cooled = triggers::update(
        &client,
        pipeline.id,
        created.id,
        &triggers::TriggerUpdate {
            cooldown_seconds: Some(120),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(cooled.cooldown_seconds, 120);
    assert_eq!(cooled.config, created.config);
    assert!(cooled.enabled);

    let moved = triggers::update(
        &client,
        pipeline.id,
        created.id,
        &triggers::TriggerUpdate {
            config: Some(success_of("raw_customers")),
            enabled: Some(false),
            cooldown_seconds: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(moved.config, success_of("raw_customers"));
    assert!(!moved.enabled);
    assert_eq!(moved.cooldown_seconds, 120);
    assert!(moved.updated_at >= created.updated_at);
    assert_eq!(triggers::get(&client, created.id).await.unwrap(), moved);
}

#[tokio::test]
async fn a_trigger_is_only_reachable_through_its_own_pipeline() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let owner = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let stranger = fixtures::pipeline(&client, "default", "gold", "sales").await;
    let trigger = create(&client, &owner, success_of("raw_orders"), true).await;

    for err in [
        triggers::get_for_pipeline(&client, stranger.id, trigger.id)
            .await
            .unwrap_err(),
        triggers::update(&client, stranger.id, trigger.id, &Default::default())
            .await
            .unwrap_err(),
        triggers::update(
            &client,
            stranger.id,
            trigger.id,
            &triggers::TriggerUpdate {
                config: Some(zone_upload("default", "uploads")),
                ..Default::default()
            },
        )
        .await
        .unwrap_err(),
        triggers::delete(&client, stranger.id, trigger.id).await.unwrap_err(),
        triggers::get(&client, Uuid::new_v4().into()).await.unwrap_err(),
        triggers::set_last_run(&client, Uuid::new_v4().into(), Uuid::new_v4().into())
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, DaoError::NotFound { entity: "trigger" }), "{err:?}");
    }
    assert_eq!(triggers::get(&client, trigger.id).await.unwrap(), trigger);

    triggers::delete(&client, owner.id, trigger.id).await.unwrap();
    assert!(matches!(
        triggers::get(&client, trigger.id).await.unwrap_err(),
        DaoError::NotFound { entity: "trigger" }
    ));
    assert!(matches!(
        triggers::delete(&client, owner.id, trigger.id).await.unwrap_err(),
        DaoError::NotFound { entity: "trigger" }
    ));
}

#[tokio::test]
async fn list_for_pipeline_is_oldest_first_with_a_total() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let orders = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let sales = fixtures::pipeline(&client, "default", "gold", "sales").await;
    let mut mine = Vec::new();
    for name in ["a", "b", "c"] {
        mine.push(create(&client, &orders, success_of(name), true).await.id);
    }
    create(&client, &sales, success_of("a"), true).await;

    let page = triggers::list_for_pipeline(&client, orders.id, PageRequest::new(Some(2), Some(0)).unwrap())
        .await
        .unwrap();
    assert_eq!(ids(&page.items), mine[..2]);
    assert_eq!(page.total, 3);
    let page = triggers::list_for_pipeline(&client, orders.id, PageRequest::new(Some(2), Some(2)).unwrap())
        .await
        .unwrap();
    assert_eq!(ids(&page.items), mine[2..]);
    assert_eq!(page.total, 3);
}

#[tokio::test]
async fn watching_finds_enabled_watchers_of_one_upstream() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let first = fixtures::pipeline(&client, "default", "silver", "first").await;
    let second = fixtures::pipeline(&client, "default", "gold", "second").await;
    let w1 = create(&client, &first, success_of("raw"), true).await;
    create(&client, &first, success_of("raw_other"), true).await;
    create(&client, &second, success_of("raw"), false).await;
    let w2 = create(&client, &second, success_of("raw"), true).await;
    // Same pipeline name in another layer is another upstream.
    create(
        &client,
        &second,
        TriggerConfig::PipelineSuccess {
            upstream: PipelineRef::parse("default", "silver", "raw").unwrap(),
        },
        true,
    )
    .await;
    // A cron_dependency on the upstream is not a pipeline_success watcher.
    create(
        &client,
        &second,
        TriggerConfig::CronDependency {
            cron_expr: CronExpr::parse("0 * * * *").unwrap(),
            dependencies: vec![upstream("raw")],
        },
        true,
    )
    .await;

    let found = triggers::watching(&client, &upstream("raw"), 10).await.unwrap();
    assert_eq!(ids(&found), [w1.id, w2.id]);
    let bounded = triggers::watching(&client, &upstream("raw"), 1).await.unwrap();
    assert_eq!(ids(&bounded), [w1.id]);
    assert!(
        triggers::watching(&client, &upstream("nobody"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_watching_query_uses_the_config_gin_index() {
    let db = TestDatabase::new().await;
    let mut client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    // A realistic population: thousands of triggers, most watching other
    // upstreams, some of other types, some disabled. On a table of a few
    // hundred rows the planner rightly prefers the small partial type index,
    // so the table is made large enough for containment to be the best path.
    client
        .execute(
            "INSERT INTO pipeline_triggers (pipeline_id, type, config, enabled) \
             SELECT $1, \
                    CASE WHEN g % 10 = 1 THEN 'cron' WHEN g % 10 = 2 THEN 'landing_zone_upload' \
                         ELSE 'pipeline_success' END, \
                    CASE WHEN g % 10 = 1 THEN jsonb_build_object('cron_expr', '0 * * * *') \
                         WHEN g % 10 = 2 THEN jsonb_build_object('namespace', 'default', 'zone_name', 'zone_' || g) \
                         ELSE jsonb_build_object('namespace', 'default', 'layer', 'bronze', 'pipeline', 'up_' || g) \
                    END, \
                    g % 7 <> 0 \
             FROM generate_series(1, 3000) AS g",
            &[&pipeline.id],
        )
        .await
        .unwrap();
    let watcher = create(&client, &pipeline, success_of("raw"), true).await;
    client.batch_execute("ANALYZE pipeline_triggers").await.unwrap();

    let tx = client.transaction().await.unwrap();
    tx.batch_execute("SET LOCAL enable_seqscan = off").await.unwrap();
    let document = TriggerConfig::watching(&upstream("raw"));
    let limit = 100_i64;
    let plan = fixtures::explain(&tx, triggers::WATCHING_SQL, &[&document, &limit]).await;
    assert!(plan.contains("idx_pipeline_triggers_config"), "{plan}");
    assert_eq!(
        ids(&triggers::watching(&tx, &upstream("raw"), limit).await.unwrap()),
        [watcher.id]
    );
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn find_webhook_matches_the_enabled_token_hash() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let hook = create(&client, &pipeline, webhook("ab"), true).await;
    create(&client, &pipeline, webhook("cd"), false).await;

    let found = triggers::find_webhook(&client, &"ab".repeat(32)).await.unwrap();
    assert_eq!(found.as_ref().map(|t| t.id), Some(hook.id));
    assert_eq!(
        triggers::find_webhook(&client, &"cd".repeat(32)).await.unwrap(),
        None,
        "disabled"
    );
    assert_eq!(
        triggers::find_webhook(&client, &"ef".repeat(32)).await.unwrap(),
        None,
        "unknown"
    );
}

#[tokio::test]
async fn two_webhooks_cannot_share_a_token_hash() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let other = fixtures::pipeline(&client, "default", "gold", "sales").await;
    create(&client, &pipeline, webhook("ab"), true).await;
    let err = triggers::create(
        &client,
        &triggers::NewTrigger {
            pipeline_id: other.id,
            config: webhook("ab"),
            enabled: false,
            cooldown_seconds: 0,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DaoError::Conflict { constraint } if constraint == "uq_pipeline_triggers_webhook_token"),
        "{err:?}"
    );
}

#[tokio::test]
async fn for_zone_finds_upload_and_pattern_triggers_of_the_zone() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    fixtures::namespace(&client, "ecommerce").await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let upload = create(&client, &pipeline, zone_upload("default", "uploads"), true).await;
    let pattern = create(&client, &pipeline, file_pattern("default", "uploads", "*.csv"), true).await;
    create(&client, &pipeline, zone_upload("default", "uploads"), false).await;
    create(&client, &pipeline, zone_upload("default", "other"), true).await;
    create(&client, &pipeline, zone_upload("ecommerce", "uploads"), true).await;
    create(&client, &pipeline, file_pattern("ecommerce", "uploads", "*.csv"), true).await;

    let ns = NamespaceName::parse("default").unwrap();
    let zone = ZoneName::parse("uploads").unwrap();
    let found = triggers::for_zone(&client, &ns, &zone, 10).await.unwrap();
    assert_eq!(ids(&found), [upload.id, pattern.id]);
    assert_eq!(
        ids(&triggers::for_zone(&client, &ns, &zone, 1).await.unwrap()),
        [upload.id]
    );
    let empty = ZoneName::parse("empty").unwrap();
    assert!(triggers::for_zone(&client, &ns, &empty, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn claims_respect_the_cooldown() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let trigger = triggers::create(
        &client,
        &triggers::NewTrigger {
            cooldown_seconds: 60,
            ..new_trigger(&pipeline, success_of("raw"), true)
        },
    )
    .await
    .unwrap();
    let t = datetime!(2026-06-01 12:00:00 UTC);
    let seconds = |s: i64| t + time::Duration::seconds(s);

    assert!(triggers::try_claim_fire(&client, trigger.id, t).await.unwrap());
    assert_eq!(
        triggers::get(&client, trigger.id).await.unwrap().last_triggered_at,
        Some(t)
    );
    assert!(!triggers::try_claim_fire(&client, trigger.id, t).await.unwrap());
    assert!(
        !triggers::try_claim_fire(&client, trigger.id, seconds(59))
            .await
            .unwrap()
    );
    assert_eq!(
        triggers::get(&client, trigger.id).await.unwrap().last_triggered_at,
        Some(t),
        "a refused claim changes nothing"
    );
    assert!(
        triggers::try_claim_fire(&client, trigger.id, seconds(60))
            .await
            .unwrap()
    );
    assert_eq!(
        triggers::get(&client, trigger.id).await.unwrap().last_triggered_at,
        Some(seconds(60))
    );

    // Without a cooldown every claim wins; disabled or unknown triggers never do.
    let eager = create(&client, &pipeline, success_of("raw"), true).await;
    assert!(triggers::try_claim_fire(&client, eager.id, t).await.unwrap());
    assert!(triggers::try_claim_fire(&client, eager.id, t).await.unwrap());
    let disabled = create(&client, &pipeline, success_of("raw"), false).await;
    assert!(!triggers::try_claim_fire(&client, disabled.id, t).await.unwrap());
    assert!(
        !triggers::try_claim_fire(&client, Uuid::new_v4().into(), t)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn concurrent_claims_in_one_window_have_one_winner() {
    let db = TestDatabase::new().await;
    let mut first = db.client().await;
    let observer = db.client().await;
    let pipeline = fixtures::pipeline(&first, "default", "silver", "orders").await;
    let new = triggers::NewTrigger {
        cooldown_seconds: 300,
        ..new_trigger(&pipeline, success_of("raw"), true)
    };
    let t = datetime!(2026-06-01 12:00:00 UTC);

    // Deterministic interleaving: the second claim waits for the first one's
    // row lock, then re-checks against the committed fire and loses.
    let trigger = triggers::create(&first, &new).await.unwrap();
    let tx1 = first.transaction().await.unwrap();
    assert!(triggers::try_claim_fire(&tx1, trigger.id, t).await.unwrap());
    let mut second = db.client().await;
    let second_pid: i32 = second.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let id = trigger.id;
    let racer = tokio::spawn(async move {
        let tx2 = second.transaction().await.unwrap();
        let won = triggers::try_claim_fire(&tx2, id, t).await.unwrap();
        tx2.commit().await.unwrap();
        won
    });
    wait_until_blocked(&observer, second_pid).await;
    tx1.commit().await.unwrap();
    assert!(!racer.await.unwrap());

    // Free-running: both claim at once from two connections; exactly one wins.
    for _ in 0..5 {
        let trigger = triggers::create(&first, &new).await.unwrap();
        let mut a = db.client().await;
        let mut b = db.client().await;
        let claim = async |client: &mut rat_dao::PooledClient| {
            let tx = client.transaction().await.unwrap();
            let won = triggers::try_claim_fire(&tx, trigger.id, t).await.unwrap();
            tx.commit().await.unwrap();
            won
        };
        let (won_a, won_b) = tokio::join!(claim(&mut a), claim(&mut b));
        assert!(won_a ^ won_b, "{won_a} {won_b}");
    }
}

#[tokio::test]
async fn constraints_map_to_dao_errors() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let err = triggers::create(
        &client,
        &triggers::NewTrigger {
            cooldown_seconds: -1,
            ..new_trigger(&pipeline, success_of("raw"), true)
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "ck_pipeline_triggers_cooldown"),
        "{err:?}"
    );
    let trigger = create(&client, &pipeline, success_of("raw"), true).await;
    let err = triggers::update(
        &client,
        pipeline.id,
        trigger.id,
        &triggers::TriggerUpdate {
            cooldown_seconds: Some(-5),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "ck_pipeline_triggers_cooldown"),
        "{err:?}"
    );

    let ghost = Pipeline {
        id: Uuid::new_v4().into(),
        ..pipeline.clone()
    };
    let err = triggers::create(&client, &new_trigger(&ghost, success_of("raw"), true))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "pipeline", constraint } if constraint == "fk_pipeline_triggers_pipeline"),
        "{err:?}"
    );
    let err = triggers::set_last_run(&client, trigger.id, Uuid::new_v4().into())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "run", constraint } if constraint == "fk_pipeline_triggers_last_run"),
        "{err:?}"
    );

    for (sql, constraint) in [
        (
            "INSERT INTO pipeline_triggers (pipeline_id, type) VALUES ($1, 'email')",
            "ck_pipeline_triggers_type",
        ),
        (
            "INSERT INTO pipeline_triggers (pipeline_id, type, config) VALUES ($1, 'cron', '[]')",
            "ck_pipeline_triggers_config_object",
        ),
    ] {
        let err = DaoError::from(client.execute(sql, &[&pipeline.id]).await.unwrap_err());
        assert!(
            matches!(&err, DaoError::Invalid { constraint: c } if c == constraint),
            "{sql}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_stored_config_that_does_not_parse_is_corrupt() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let trigger = create(&client, &pipeline, success_of("raw"), true).await;
    client
        .execute(
            "UPDATE pipeline_triggers SET config = '{\"cron_expr\": \"0 * * * *\"}' WHERE id = $1",
            &[&trigger.id],
        )
        .await
        .unwrap();
    let err = triggers::get(&client, trigger.id).await.unwrap_err();
    assert!(matches!(err, DaoError::Corrupt { column: "config", .. }), "{err:?}");
}

#[tokio::test]
async fn deleting_the_last_run_clears_the_reference() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let trigger = create(&client, &pipeline, success_of("raw"), true).await;
    let run = fixtures::run(&client, &pipeline).await;
    let t = datetime!(2026-06-01 12:00:00 UTC);
    assert!(triggers::try_claim_fire(&client, trigger.id, t).await.unwrap());
    triggers::set_last_run(&client, trigger.id, run.id).await.unwrap();
    assert_eq!(
        triggers::get(&client, trigger.id).await.unwrap().last_run_id,
        Some(run.id)
    );

    runs::delete(&client, run.id).await.unwrap();
    let after = triggers::get(&client, trigger.id).await.unwrap();
    assert_eq!(after.last_run_id, None);
    assert_eq!(after.last_triggered_at, Some(t), "the fire time is kept");
}

#[tokio::test]
async fn deleting_a_trigger_unlinks_its_runs_and_purging_the_pipeline_removes_it() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let trigger = create(&client, &pipeline, success_of("raw"), true).await;
    let run = runs::create(
        &client,
        &runs::NewRun {
            pipeline_id: pipeline.id,
            trigger: "trigger:pipeline_success:default/bronze/raw".to_owned(),
            version_number: rat_domain::VersionNumber::parse(1).unwrap(),
            published_versions: fixtures::snapshot(&pipeline),
            schedule_id: None,
            trigger_id: Some(trigger.id),
            scheduled_for: None,
        },
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    triggers::delete(&client, pipeline.id, trigger.id).await.unwrap();
    assert_eq!(runs::get(&client, run.id).await.unwrap().trigger_id, None);

    let doomed = create(&client, &pipeline, success_of("raw"), true).await;
    pipelines::purge(&client, pipeline.id).await.unwrap();
    assert!(matches!(
        triggers::get(&client, doomed.id).await.unwrap_err(),
        DaoError::NotFound { entity: "trigger" }
    ));
}

// ---- Cron slots, the fire target and the cron_dependency rule ----

fn cron(expr: &str) -> TriggerConfig {
    TriggerConfig::Cron {
        cron_expr: CronExpr::parse(expr).unwrap(),
    }
}

fn cron_dependency(expr: &str, dependencies: &[&str]) -> TriggerConfig {
    TriggerConfig::CronDependency {
        cron_expr: CronExpr::parse(expr).unwrap(),
        dependencies: dependencies
            .iter()
            .map(|d| PipelineRef::parse_dotted(d).unwrap())
            .collect(),
    }
}

/// A trigger created with `next_fire_at` set to `next`.
async fn slotted(
    client: &impl GenericClient,
    pipeline: &Pipeline,
    config: TriggerConfig,
    enabled: bool,
    next: Option<OffsetDateTime>,
) -> Trigger {
    let trigger = create(client, pipeline, config, enabled).await;
    triggers::set_next_fire_at(client, trigger.id, next).await.unwrap();
    trigger
}

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00:00 UTC);

fn minutes(m: i64) -> OffsetDateTime {
    NOW + time::Duration::minutes(m)
}

#[tokio::test]
async fn due_cron_triggers_are_claimed_in_slot_order_and_once_across_transactions() {
    let db = TestDatabase::new().await;
    let mut first = db.client().await;
    let mut second = db.client().await;
    let pipeline = fixtures::pipeline(&first, "default", "silver", "orders").await;
    let t1 = slotted(&first, &pipeline, cron("* * * * *"), true, Some(minutes(-2))).await;
    let t2 = slotted(&first, &pipeline, cron("* * * * *"), true, Some(minutes(-1))).await;
    let at_now = slotted(&first, &pipeline, cron("* * * * *"), true, Some(NOW)).await;
    let dependent = slotted(
        &first,
        &pipeline,
        cron_dependency("* * * * *", &["default.bronze.raw"]),
        true,
        Some(minutes(-1) + time::Duration::seconds(30)),
    )
    .await;
    // Not due: a later slot, disabled, no slot, and a slot on another type.
    slotted(&first, &pipeline, cron("* * * * *"), true, Some(minutes(1))).await;
    slotted(&first, &pipeline, cron("* * * * *"), false, Some(minutes(-3))).await;
    slotted(&first, &pipeline, cron("* * * * *"), true, None).await;
    slotted(&first, &pipeline, success_of("raw"), true, Some(minutes(-5))).await;

    let due = triggers::due_for_update(&first, NOW, 10).await.unwrap();
    let claimed: Vec<(TriggerId, OffsetDateTime)> = due.iter().map(|d| (d.trigger.id, d.slot)).collect();
    assert_eq!(
        claimed,
        [
            (t1.id, minutes(-2)),
            (t2.id, minutes(-1)),
            (dependent.id, minutes(-1) + time::Duration::seconds(30)),
            (at_now.id, NOW),
        ]
    );
    assert_eq!(
        due[2].trigger,
        triggers::get(&first, dependent.id).await.unwrap(),
        "the whole trigger comes back"
    );
    assert_eq!(
        ids(&triggers::due_for_update(&first, NOW, 2)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.trigger)
            .collect::<Vec<_>>()),
        [t1.id, t2.id],
        "the limit keeps the earliest slots"
    );

    // Two transactions claiming at once get disjoint sets: the rows one holds
    // are skipped by the other.
    let tx1 = first.transaction().await.unwrap();
    let tx2 = second.transaction().await.unwrap();
    let a: Vec<TriggerId> = triggers::due_for_update(&tx1, NOW, 2)
        .await
        .unwrap()
        .iter()
        .map(|d| d.trigger.id)
        .collect();
    let b: Vec<TriggerId> = triggers::due_for_update(&tx2, NOW, 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.trigger.id)
        .collect();
    assert_eq!(a, [t1.id, t2.id]);
    assert_eq!(b, [dependent.id, at_now.id]);
    tx1.rollback().await.unwrap();
    tx2.rollback().await.unwrap();
}

#[tokio::test]
async fn the_due_query_uses_the_partial_next_fire_index() {
    let db = TestDatabase::new().await;
    let mut client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    // Thousands of triggers, most without a slot, some disabled, slots spread
    // over a day around NOW.
    client
        .execute(
            "INSERT INTO pipeline_triggers (pipeline_id, type, config, enabled, next_fire_at) \
             SELECT $1, CASE WHEN g % 2 = 0 THEN 'cron' ELSE 'pipeline_success' END, \
                    CASE WHEN g % 2 = 0 THEN jsonb_build_object('cron_expr', '0 * * * *') \
                         ELSE jsonb_build_object('namespace', 'default', 'layer', 'bronze', 'pipeline', 'up_' || g) \
                    END, \
                    g % 7 <> 0, \
                    CASE WHEN g % 2 = 0 THEN $2::timestamptz + (g - 1500) * interval '1 minute' END \
             FROM generate_series(1, 3000) AS g",
            &[&pipeline.id, &NOW],
        )
        .await
        .unwrap();
    client.batch_execute("ANALYZE pipeline_triggers").await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("SET LOCAL enable_seqscan = off").await.unwrap();
    let limit = 100_i64;
    let plan = fixtures::explain(&tx, triggers::DUE_SQL, &[&NOW, &limit]).await;
    assert!(plan.contains("idx_pipeline_triggers_next_fire"), "{plan}");
    assert!(!plan.contains("Sort"), "rows stream in index order: {plan}");
    let due = triggers::due_for_update(&tx, NOW, limit).await.unwrap();
    assert_eq!(due.len(), 100);
    assert!(due.windows(2).all(|w| w[0].slot <= w[1].slot));
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn next_fire_at_is_set_read_and_cleared_and_the_earliest_is_found() {
    // No schedules here: the earliest slot the scheduler sleeps until is the
    // earliest trigger slot.
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    assert_eq!(schedules::earliest_slot(&client).await.unwrap(), None);

    let later = slotted(&client, &pipeline, cron("0 * * * *"), true, Some(minutes(60))).await;
    let sooner = slotted(&client, &pipeline, cron("0 * * * *"), true, Some(minutes(5))).await;
    slotted(&client, &pipeline, cron("0 * * * *"), false, Some(minutes(1))).await;
    assert_eq!(
        triggers::next_fire_at(&client, later.id).await.unwrap(),
        Some(minutes(60))
    );
    assert_eq!(
        schedules::earliest_slot(&client).await.unwrap(),
        Some(minutes(5)),
        "disabled triggers do not count"
    );

    triggers::set_next_fire_at(&client, sooner.id, None).await.unwrap();
    assert_eq!(triggers::next_fire_at(&client, sooner.id).await.unwrap(), None);
    assert_eq!(schedules::earliest_slot(&client).await.unwrap(), Some(minutes(60)));

    let ghost = Uuid::new_v4();
    assert!(matches!(
        triggers::set_next_fire_at(&client, ghost.into(), Some(NOW)).await,
        Err(DaoError::NotFound { entity: "trigger" })
    ));
    assert!(matches!(
        triggers::next_fire_at(&client, ghost.into()).await,
        Err(DaoError::NotFound { entity: "trigger" })
    ));
}

#[tokio::test]
async fn a_change_is_announced_on_the_schedules_channel_at_commit() {
    use futures_util::StreamExt;
    use tokio_postgres::{AsyncMessage, NoTls};

    let db = TestDatabase::new().await;
    let (listener, mut connection) = tokio_postgres::connect(db.url(), NoTls).await.unwrap();
    let (sender, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = sender.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    listener
        .batch_execute(&format!("LISTEN {}", rat_dao::schedules::CHANGED_CHANNEL))
        .await
        .unwrap();

    let mut client = db.client().await;
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let trigger = create(&client, &pipeline, cron("0 * * * *"), true).await;
    let tx = client.transaction().await.unwrap();
    triggers::notify_changed(&tx, trigger.id).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), notifications.recv())
            .await
            .is_err(),
        "nothing is delivered before the commit"
    );
    tx.commit().await.unwrap();
    let (channel, payload) = tokio::time::timeout(Duration::from_secs(10), notifications.recv())
        .await
        .expect("notified at commit")
        .unwrap();
    assert_eq!(channel, "rat_schedules");
    assert_eq!(payload, trigger.id.to_string());
}

#[tokio::test]
async fn the_fire_target_is_the_live_pipeline_held_for_share() {
    let db = TestDatabase::new().await;
    let mut client = db.client().await;
    let observer = db.client().await;
    let orders = fixtures::published_pipeline(&client, "default", "silver", "orders").await;

    let tx = client.transaction().await.unwrap();
    let target = triggers::fire_target(&tx, orders.id).await.unwrap();
    assert_eq!(target.as_ref(), Some(&orders));
    // Another fire of the same pipeline is not blocked ...
    let other = db.client().await;
    let shared = tokio::time::timeout(Duration::from_secs(5), async {
        let mut other = other;
        let tx = other.transaction().await.unwrap();
        let found = triggers::fire_target(&tx, orders.id).await.unwrap();
        tx.rollback().await.unwrap();
        found
    })
    .await
    .expect("a second FOR SHARE does not wait");
    assert_eq!(shared.map(|p| p.id), Some(orders.id));
    // ... but a delete (or publish) waits until the fire's transaction ends.
    let mut deleter = db.client().await;
    let deleter_pid: i32 = deleter.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let address = orders.address.clone();
    let delete = tokio::spawn(async move {
        let tx = deleter.transaction().await.unwrap();
        pipelines::soft_delete(&tx, &address, NOW).await.unwrap();
        tx.commit().await.unwrap();
    });
    wait_until_blocked(&observer, deleter_pid).await;
    tx.commit().await.unwrap();
    delete.await.unwrap();

    assert_eq!(
        triggers::fire_target(&client, orders.id).await.unwrap(),
        None,
        "a soft-deleted pipeline is no target"
    );
    assert_eq!(
        triggers::fire_target(&client, Uuid::new_v4().into()).await.unwrap(),
        None
    );
}

/// A run of `pipeline` that reached `status` at `finished_at`.
async fn finished_run(
    client: &impl GenericClient,
    pipeline: &Pipeline,
    status: rat_domain::RunStatus,
    finished_at: OffsetDateTime,
) {
    let run = fixtures::run_at(client, pipeline, finished_at - time::Duration::minutes(1)).await;
    let report = runs::RunReport::default();
    runs::transition(client, run.id, rat_domain::RunStatus::Running, &report, finished_at)
        .await
        .unwrap();
    runs::transition(client, run.id, status, &report, finished_at)
        .await
        .unwrap();
}

#[tokio::test]
async fn unmet_dependencies_follow_the_cron_dependency_rule() {
    use rat_domain::RunStatus::{Failed, Success};

    let db = TestDatabase::new().await;
    let client = db.client().await;
    let raw = fixtures::published_pipeline(&client, "default", "bronze", "raw").await;
    let clean = fixtures::published_pipeline(&client, "default", "silver", "clean").await;
    let gone = fixtures::published_pipeline(&client, "default", "silver", "gone").await;
    let deps: Vec<PipelineRef> = [
        "default.bronze.raw",
        "default.silver.clean",
        "default.gold.never",
        "default.silver.gone",
    ]
    .iter()
    .map(|d| PipelineRef::parse_dotted(d).unwrap())
    .collect();
    let unmet = async |since: Option<OffsetDateTime>| -> Vec<String> {
        triggers::unmet_dependencies(&client, &deps, since)
            .await
            .unwrap()
            .iter()
            .map(PipelineRef::dotted)
            .collect()
    };

    // Nothing ran yet: every dependency is unmet, in the order given.
    assert_eq!(
        unmet(None).await,
        [
            "default.bronze.raw",
            "default.silver.clean",
            "default.gold.never",
            "default.silver.gone"
        ]
    );

    finished_run(&client, &raw, Success, minutes(-30)).await;
    finished_run(&client, &clean, Failed, minutes(-20)).await;
    finished_run(&client, &gone, Success, minutes(-20)).await;
    pipelines::soft_delete(&client, &gone.address, minutes(-10))
        .await
        .unwrap();
    assert_eq!(
        unmet(None).await,
        ["default.silver.clean", "default.gold.never", "default.silver.gone"],
        "a failed run does not count; a deleted pipeline's success does not count"
    );

    finished_run(&client, &clean, Success, minutes(-5)).await;
    assert_eq!(unmet(None).await, ["default.gold.never", "default.silver.gone"]);
    // After a fire at -30 (the instant raw succeeded): raw's success is not
    // strictly after it, clean's is.
    assert_eq!(
        unmet(Some(minutes(-30))).await,
        ["default.bronze.raw", "default.gold.never", "default.silver.gone"]
    );
    assert_eq!(
        unmet(Some(minutes(-31))).await,
        ["default.gold.never", "default.silver.gone"]
    );

    let only_met = [raw.address.clone(), clean.address.clone()];
    assert!(
        triggers::unmet_dependencies(&client, &only_met, Some(minutes(-31)))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        triggers::unmet_dependencies(&client, &[], None)
            .await
            .unwrap()
            .is_empty()
    );
}
