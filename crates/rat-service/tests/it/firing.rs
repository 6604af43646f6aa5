//! Trigger firing against a real PostgreSQL, with an injected clock: every
//! type fires with its exact label and records `last_triggered_at` /
//! `last_run_id` with the run, cooldowns hold under concurrency, triggers
//! that cannot fire never break the event that fired them, file patterns
//! match the original file name, cron slots fire once across concurrent
//! callers and collapse when missed, and the cron_dependency rule.

use rat_service::identity::Caller;
use std::time::Duration as StdDuration;

use crate::common::{World, address, fs_world};
use rat_dao::landing::NewLandingZone;
use rat_dao::pipelines::NewPipeline;
use rat_dao::runs::RunReport;
use rat_dao::{runs, triggers};
use rat_domain::{
    NamespaceName, Pipeline, PipelineType, Run, RunStatus, Trigger, TriggerConfig, TriggerType, ZoneName,
};
use rat_service::firing::{self, CronTickReport, FireOutcome};
use rat_service::landing::{self, Upload};
use rat_service::runner::{self, Completion, Lease, RunnerId};
use rat_service::triggers::{TriggerChanges, TriggerSpec};
use rat_service::{ServiceError, Services};
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2026-04-01 08:00:00 UTC);

fn at(seconds: i64) -> OffsetDateTime {
    T0 + Duration::seconds(seconds)
}

/// A SQL pipeline at `default/{layer}/{name}`, published at T0 when `publish`.
async fn pipeline(world: &World, layer: &str, name: &str, publish: bool) -> Pipeline {
    let created = rat_service::pipelines::create_pipeline(
        &world.services,
        &Caller::community(),
        NewPipeline {
            address: address("default", layer, name),
            pipeline_type: PipelineType::Sql,
            description: String::new(),
            owner: None,
            max_versions: None,
        },
    )
    .await
    .expect("create pipeline");
    if publish {
        rat_service::versions::publish(
            &world.services,
            &Caller::community(),
            &created.pipeline.address,
            "v1",
            T0,
        )
        .await
        .expect("publish");
    }
    created.pipeline
}

/// Creates a trigger of `target` from a client config, at `now`.
async fn trigger_at(
    world: &World,
    target: &Pipeline,
    trigger_type: TriggerType,
    config: serde_json::Value,
    cooldown_seconds: i32,
    now: OffsetDateTime,
) -> Trigger {
    let spec = TriggerSpec {
        config: TriggerConfig::from_client(trigger_type, &config).unwrap(),
        enabled: true,
        cooldown_seconds,
    };
    rat_service::triggers::create(&world.services, &Caller::community(), &target.address, spec, now)
        .await
        .expect("create trigger")
        .trigger
}

async fn trigger(
    world: &World,
    target: &Pipeline,
    trigger_type: TriggerType,
    config: serde_json::Value,
    cooldown_seconds: i32,
) -> Trigger {
    trigger_at(world, target, trigger_type, config, cooldown_seconds, T0).await
}

fn watching(layer: &str, name: &str) -> serde_json::Value {
    json!({"namespace": "default", "layer": layer, "pipeline": name})
}

async fn disable(world: &World, target: &Pipeline, trigger: &Trigger) {
    let changes = TriggerChanges {
        enabled: Some(false),
        ..TriggerChanges::default()
    };
    rat_service::triggers::update(
        &world.services,
        &Caller::community(),
        &target.address,
        trigger.id,
        &changes,
        T0,
    )
    .await
    .unwrap();
}

async fn stored(world: &World, id: Uuid) -> Trigger {
    triggers::get(&world.db.client().await, id.into()).await.unwrap()
}

/// The runs a trigger created, oldest first.
async fn runs_of(world: &World, trigger: &Trigger) -> Vec<Run> {
    let client = world.db.client().await;
    let rows = client
        .query(
            "SELECT id FROM runs WHERE trigger_id = $1 ORDER BY created_at, id",
            &[&trigger.id],
        )
        .await
        .unwrap();
    let mut found = Vec::new();
    for row in rows {
        found.push(runs::get(&client, row.get(0)).await.unwrap());
    }
    found
}

async fn run_count(world: &World) -> i64 {
    let client = world.db.client().await;
    client.query_one("SELECT count(*) FROM runs", &[]).await.unwrap().get(0)
}

/// A pending run of `pipeline` (published), created just before `now`.
async fn pending_run(world: &World, pipeline: &Pipeline, now: OffsetDateTime) -> Run {
    let client = world.db.client().await;
    rat_testkit::fixtures::run_at(&client, pipeline, now - Duration::seconds(1)).await
}

/// Runs `pipeline` to success at `now` through ratd's callback.
async fn succeed(world: &World, pipeline: &Pipeline, now: OffsetDateTime) -> Run {
    let run = pending_run(world, pipeline, now).await;
    let report = RunReport::default();
    runner::callback_status(&world.services, run.id, RunStatus::Running, &report, now)
        .await
        .unwrap();
    runner::callback_status(&world.services, run.id, RunStatus::Success, &report, now)
        .await
        .unwrap()
}

/// Runs `run` to success at `now` through ratd's callback.
async fn finish(world: &World, run: &Run, now: OffsetDateTime) {
    let report = RunReport::default();
    for status in [RunStatus::Running, RunStatus::Success] {
        runner::callback_status(&world.services, run.id, status, &report, now)
            .await
            .unwrap();
    }
}

/// Asserts the run a trigger created: label, trigger, slot, creation time,
/// the pipeline's published snapshot, and the trigger's record of the fire.
#[track_caller]
fn assert_fired(run: &Run, trigger: &Trigger, target: &Pipeline, label: &str, now: OffsetDateTime) {
    assert_eq!(run.trigger, label);
    assert_eq!(run.trigger_id, Some(trigger.id));
    assert_eq!(run.pipeline_id, target.id);
    assert_eq!(run.status, RunStatus::Pending);
    assert_eq!(run.created_at, now);
    assert_eq!(run.version_number, 1);
    assert!(!run.published_versions.is_empty());
    assert_eq!(run.schedule_id, None);
}

#[tokio::test]
async fn a_success_fires_its_watchers_in_the_transaction_recording_it() {
    let world = fs_world().await;
    let raw = pipeline(&world, "bronze", "raw", true).await;
    let orders = pipeline(&world, "silver", "orders", true).await;
    let report = pipeline(&world, "gold", "report", true).await;
    let draft = pipeline(&world, "silver", "draft", false).await;
    let elsewhere = pipeline(&world, "silver", "elsewhere", true).await;
    let downstream = trigger(
        &world,
        &orders,
        TriggerType::PipelineSuccess,
        watching("bronze", "raw"),
        0,
    )
    .await;
    // Created before the others, so it is tried first: it cannot fire, and
    // must block neither the success nor the triggers after it.
    let unpublished = trigger(
        &world,
        &draft,
        TriggerType::PipelineSuccess,
        watching("bronze", "raw"),
        0,
    )
    .await;
    let second = trigger(
        &world,
        &report,
        TriggerType::PipelineSuccess,
        watching("bronze", "raw"),
        0,
    )
    .await;
    let off = trigger(
        &world,
        &elsewhere,
        TriggerType::PipelineSuccess,
        watching("bronze", "raw"),
        0,
    )
    .await;
    disable(&world, &elsewhere, &off).await;
    let other_upstream = trigger(
        &world,
        &elsewhere,
        TriggerType::PipelineSuccess,
        watching("silver", "orders"),
        0,
    )
    .await;

    // Through the runner protocol (claim, complete).
    let run = pending_run(&world, &raw, at(10)).await;
    let runner_id = RunnerId::parse("r1").unwrap();
    let claimed = runner::claim(
        &world.services,
        &runner_id,
        1,
        Lease::seconds(60).unwrap(),
        StdDuration::from_secs(60),
        at(10),
    )
    .await
    .unwrap();
    assert_eq!(claimed[0].run.id, run.id);
    let completion = Completion {
        status: RunStatus::Success,
        report: RunReport::default(),
        quality_results: Vec::new(),
    };
    let done = runner::complete(&world.services, run.id, &runner_id, &completion, at(20))
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Success, "the success is recorded");

    let label = "trigger:pipeline_success:default/bronze/raw";
    for (fired, target) in [(&downstream, &orders), (&second, &report)] {
        let created = runs_of(&world, fired).await;
        assert_eq!(created.len(), 1);
        assert_fired(&created[0], fired, target, label, at(20));
        let after = stored(&world, fired.id.into()).await;
        assert_eq!(after.last_triggered_at, Some(at(20)));
        assert_eq!(after.last_run_id, Some(created[0].id));
    }
    // The never-published target fired nothing, and its cooldown claim was
    // rolled back with its savepoint.
    assert!(runs_of(&world, &unpublished).await.is_empty());
    let untouched = stored(&world, unpublished.id.into()).await;
    assert_eq!((untouched.last_triggered_at, untouched.last_run_id), (None, None));
    assert!(runs_of(&world, &off).await.is_empty(), "a disabled trigger never fires");
    assert!(
        runs_of(&world, &other_upstream).await.is_empty(),
        "it watches another pipeline"
    );
    assert_eq!(run_count(&world).await, 3, "the upstream run and two downstream runs");

    // Through ratd's callback, the same.
    succeed(&world, &raw, at(30)).await;
    assert_eq!(runs_of(&world, &downstream).await.len(), 2);
    assert_eq!(
        stored(&world, downstream.id.into()).await.last_triggered_at,
        Some(at(30))
    );
    // A failure fires nothing.
    let failing = pending_run(&world, &raw, at(40)).await;
    runner::callback_status(
        &world.services,
        failing.id,
        RunStatus::Failed,
        &RunReport::default(),
        at(40),
    )
    .await
    .unwrap();
    assert_eq!(runs_of(&world, &downstream).await.len(), 2);
}

#[tokio::test]
async fn a_fire_is_part_of_the_callers_transaction() {
    let world = fs_world().await;
    let raw = pipeline(&world, "bronze", "raw", true).await;
    let orders = pipeline(&world, "silver", "orders", true).await;
    let downstream = trigger(
        &world,
        &orders,
        TriggerType::PipelineSuccess,
        watching("bronze", "raw"),
        0,
    )
    .await;
    let upstream_run = pending_run(&world, &raw, at(5)).await;

    let mut client = world.db.client().await;
    let mut transaction = client.transaction().await.unwrap();
    let fires = firing::fire_pipeline_success(&mut transaction, &upstream_run, at(10))
        .await
        .unwrap();
    assert_eq!(fires.len(), 1);
    let run_id = fires[0].outcome.run_id().expect("fired");
    // Inside the transaction the run and the trigger's record are there ...
    let inside = triggers::get(&transaction, downstream.id).await.unwrap();
    assert_eq!(
        (inside.last_triggered_at, inside.last_run_id),
        (Some(at(10)), Some(run_id))
    );
    // ... and a rollback of the caller's work takes all of it back.
    transaction.rollback().await.unwrap();
    let after = stored(&world, downstream.id.into()).await;
    assert_eq!((after.last_triggered_at, after.last_run_id), (None, None));
    assert!(matches!(
        runs::get(&client, run_id).await,
        Err(rat_dao::DaoError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_deleted_target_does_not_fire_and_says_why() {
    let world = fs_world().await;
    let orders = pipeline(&world, "silver", "orders", true).await;
    let hook = trigger(
        &world,
        &orders,
        TriggerType::PipelineSuccess,
        watching("bronze", "raw"),
        0,
    )
    .await;
    rat_service::pipelines::delete(&world.services, &Caller::community(), &orders.address, at(1))
        .await
        .unwrap();
    // Deleting the pipeline disabled its triggers.
    let mut client = world.db.client().await;
    let mut transaction = client.transaction().await.unwrap();
    let outcome = firing::fire(&mut transaction, &hook, "trigger:pipeline_success:x", None, at(2))
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    assert!(matches!(&outcome, FireOutcome::Disabled), "{outcome:?}");
    assert!(!stored(&world, hook.id.into()).await.enabled);
    // One enabled behind the service's back still does not fire, and says why.
    client
        .execute("UPDATE pipeline_triggers SET enabled = true WHERE id = $1", &[&hook.id])
        .await
        .unwrap();
    let mut transaction = client.transaction().await.unwrap();
    let outcome = firing::fire(&mut transaction, &hook, "trigger:pipeline_success:x", None, at(3))
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    assert!(
        matches!(&outcome, FireOutcome::NotRunnable(reason) if reason.contains("deleted")),
        "{outcome:?}"
    );
    assert_eq!(stored(&world, hook.id.into()).await.last_triggered_at, None);
}

#[tokio::test]
async fn concurrent_events_within_a_cooldown_create_one_run() {
    let world = fs_world().await;
    let raw = pipeline(&world, "bronze", "raw", true).await;
    let orders = pipeline(&world, "silver", "orders", true).await;
    let cooled = trigger(
        &world,
        &orders,
        TriggerType::PipelineSuccess,
        watching("bronze", "raw"),
        300,
    )
    .await;

    // Two upstream runs succeed at once (from two connections), a second apart.
    let first = pending_run(&world, &raw, at(10)).await;
    let second = pending_run(&world, &raw, at(10)).await;
    for run in [&first, &second] {
        runner::callback_status(
            &world.services,
            run.id,
            RunStatus::Running,
            &RunReport::default(),
            at(10),
        )
        .await
        .unwrap();
    }
    let report = RunReport::default();
    let (a, b) = tokio::join!(
        runner::callback_status(&world.services, first.id, RunStatus::Success, &report, at(10)),
        runner::callback_status(&world.services, second.id, RunStatus::Success, &report, at(11)),
    );
    assert_eq!(a.unwrap().status, RunStatus::Success);
    assert_eq!(
        b.unwrap().status,
        RunStatus::Success,
        "the one in cooldown still records its success"
    );
    let created = runs_of(&world, &cooled).await;
    assert_eq!(created.len(), 1, "one run per cooldown window");
    let fired_at = stored(&world, cooled.id.into()).await.last_triggered_at.unwrap();
    assert_eq!(created[0].created_at, fired_at);

    // Still within the window: nothing. Outside it: a second run.
    succeed(&world, &raw, fired_at + Duration::seconds(299)).await;
    assert_eq!(runs_of(&world, &cooled).await.len(), 1);
    succeed(&world, &raw, fired_at + Duration::seconds(300)).await;
    let created = runs_of(&world, &cooled).await;
    assert_eq!(created.len(), 2, "the window has passed");
    assert_eq!(created[1].created_at, fired_at + Duration::seconds(300));

    // Without a cooldown, two concurrent events are two runs.
    let eager = trigger(
        &world,
        &orders,
        TriggerType::PipelineSuccess,
        watching("bronze", "raw"),
        0,
    )
    .await;
    let (x, y) = (
        pending_run(&world, &raw, at(900)).await,
        pending_run(&world, &raw, at(900)).await,
    );
    for run in [&x, &y] {
        runner::callback_status(&world.services, run.id, RunStatus::Running, &report, at(900))
            .await
            .unwrap();
    }
    let (a, b) = tokio::join!(
        runner::callback_status(&world.services, x.id, RunStatus::Success, &report, at(901)),
        runner::callback_status(&world.services, y.id, RunStatus::Success, &report, at(901)),
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(runs_of(&world, &eager).await.len(), 2);
}

async fn zone(world: &World, name: &str) -> (NamespaceName, ZoneName) {
    let (ns, zone) = (NamespaceName::parse("default").unwrap(), ZoneName::parse(name).unwrap());
    landing::create_zone(
        &world.services,
        &Caller::community(),
        NewLandingZone {
            namespace: ns.clone(),
            name: zone.clone(),
            description: String::new(),
            owner: None,
            expected_schema: String::new(),
        },
    )
    .await
    .unwrap();
    (ns, zone)
}

/// An upload as the api builds it from the name the client sent.
fn upload(sent_name: &str) -> Upload {
    Upload {
        basename: landing::stored_basename(sent_name).unwrap(),
        original_name: landing::original_basename(sent_name).to_owned(),
        content_type: "text/csv".to_owned(),
    }
}

/// The content of every test upload, as the stream an upload arrives as.
fn content() -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Unpin {
    futures_util::stream::iter([Ok(bytes::Bytes::from_static(b"id\n1\n"))])
}

/// Whether `filename` is `{stamp}_{8 hex}_{name}`: an upload's stored name.
fn is_stored_name(filename: &str, stamp: &str, name: &str) -> bool {
    filename
        .strip_prefix(&format!("{stamp}_"))
        .and_then(|rest| rest.split_once('_'))
        .is_some_and(|(token, rest)| token.len() == 8 && token.bytes().all(|b| b.is_ascii_hexdigit()) && rest == name)
}

fn zone_config(zone: &str) -> serde_json::Value {
    json!({"namespace": "default", "zone_name": zone})
}

fn pattern_config(zone: &str, pattern: &str) -> serde_json::Value {
    json!({"namespace": "default", "zone_name": zone, "pattern": pattern})
}

#[tokio::test]
async fn uploads_fire_the_zone_triggers_and_the_patterns_matching_the_original_name() {
    let world = fs_world().await;
    let orders = pipeline(&world, "silver", "orders", true).await;
    let draft = pipeline(&world, "silver", "draft", false).await;
    let (ns, uploads) = zone(&world, "uploads").await;
    zone(&world, "other").await;
    let unpublished = trigger(
        &world,
        &draft,
        TriggerType::LandingZoneUpload,
        zone_config("uploads"),
        0,
    )
    .await;
    let any = trigger(
        &world,
        &orders,
        TriggerType::LandingZoneUpload,
        zone_config("uploads"),
        0,
    )
    .await;
    let csv = trigger(
        &world,
        &orders,
        TriggerType::FilePattern,
        pattern_config("uploads", "*.csv"),
        0,
    )
    .await;
    let upper = trigger(
        &world,
        &orders,
        TriggerType::FilePattern,
        pattern_config("uploads", "*.CSV"),
        0,
    )
    .await;
    let spaced = trigger(
        &world,
        &orders,
        TriggerType::FilePattern,
        pattern_config("uploads", "Q? report (*).xlsx"),
        0,
    )
    .await;
    let other_zone = trigger(&world, &orders, TriggerType::LandingZoneUpload, zone_config("other"), 0).await;
    let other_pattern = trigger(
        &world,
        &orders,
        TriggerType::FilePattern,
        pattern_config("other", "*"),
        0,
    )
    .await;
    let off = trigger(
        &world,
        &orders,
        TriggerType::LandingZoneUpload,
        zone_config("uploads"),
        0,
    )
    .await;
    disable(&world, &orders, &off).await;

    let file = landing::upload_file(
        &world.services,
        &Caller::community(),
        &ns,
        &uploads,
        upload("orders.csv"),
        &mut content(),
        at(10),
    )
    .await
    .unwrap();
    assert!(
        is_stored_name(&file.filename, "20260401_080010", "orders.csv"),
        "the upload itself is unaffected: {}",
        file.filename
    );
    let zone_label = "trigger:landing_zone_upload:default/uploads";
    let any_runs = runs_of(&world, &any).await;
    assert_eq!(any_runs.len(), 1);
    assert_fired(&any_runs[0], &any, &orders, zone_label, at(10));
    let csv_runs = runs_of(&world, &csv).await;
    assert_eq!(csv_runs.len(), 1);
    assert_fired(
        &csv_runs[0],
        &csv,
        &orders,
        "trigger:file_pattern:default/uploads:*.csv",
        at(10),
    );
    let after = stored(&world, csv.id.into()).await;
    assert_eq!(
        (after.last_triggered_at, after.last_run_id),
        (Some(at(10)), Some(csv_runs[0].id))
    );
    assert!(runs_of(&world, &upper).await.is_empty(), "patterns are case-sensitive");
    assert!(runs_of(&world, &spaced).await.is_empty());
    assert!(runs_of(&world, &unpublished).await.is_empty());
    assert_eq!(stored(&world, unpublished.id.into()).await.last_triggered_at, None);

    // The client's name has directories, spaces and parentheses: the stored
    // name is reduced, but the pattern matches the name as the client sent it.
    let file = landing::upload_file(
        &world.services,
        &Caller::community(),
        &ns,
        &uploads,
        upload("C:\\exports\\Q1 report (final).xlsx"),
        &mut content(),
        at(20),
    )
    .await
    .unwrap();
    assert!(
        is_stored_name(&file.filename, "20260401_080020", "Q1_report__final_.xlsx"),
        "{}",
        file.filename
    );
    let spaced_runs = runs_of(&world, &spaced).await;
    assert_eq!(spaced_runs.len(), 1);
    assert_fired(
        &spaced_runs[0],
        &spaced,
        &orders,
        "trigger:file_pattern:default/uploads:Q? report (*).xlsx",
        at(20),
    );
    assert_eq!(
        runs_of(&world, &any).await.len(),
        2,
        "every upload fires the zone trigger"
    );
    assert_eq!(runs_of(&world, &csv).await.len(), 1);

    for quiet in [&upper, &other_zone, &other_pattern, &off] {
        assert!(runs_of(&world, quiet).await.is_empty());
    }
}

#[tokio::test]
async fn a_pattern_must_be_a_glob() {
    let world = fs_world().await;
    let orders = pipeline(&world, "silver", "orders", false).await;
    let spec = TriggerSpec {
        config: TriggerConfig::from_client(TriggerType::FilePattern, &pattern_config("uploads", "[abc")).unwrap(),
        enabled: true,
        cooldown_seconds: 0,
    };
    let err = rat_service::triggers::create(&world.services, &Caller::community(), &orders.address, spec, T0)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::InvalidInput { message } if message.contains("pattern")),
        "{err:?}"
    );
}

#[tokio::test]
async fn webhooks_fire_by_token_hash() {
    let world = fs_world().await;
    let orders = pipeline(&world, "silver", "orders", true).await;
    let draft = pipeline(&world, "silver", "draft", false).await;
    let create_hook = async |target: &Pipeline, cooldown_seconds: i32| {
        let spec = TriggerSpec {
            config: None,
            enabled: true,
            cooldown_seconds,
        };
        rat_service::triggers::create(&world.services, &Caller::community(), &target.address, spec, T0)
            .await
            .unwrap()
    };
    let hook = create_hook(&orders, 60).await;
    let token = hook.webhook_token.clone().unwrap();

    let fired = firing::fire_webhook(&world.services, &token, at(5)).await.unwrap();
    assert_eq!(fired.trigger_id, hook.trigger.id);
    let run_id = fired.outcome.run_id().expect("fired");
    let hash = rat_service::triggers::webhook_token_hash(&token);
    let created = runs_of(&world, &hook.trigger).await;
    assert_eq!(created.iter().map(|r| r.id).collect::<Vec<_>>(), [run_id]);
    assert_fired(
        &created[0],
        &hook.trigger,
        &orders,
        &format!("trigger:webhook:{}", &hash[..8]),
        at(5),
    );
    let after = stored(&world, hook.trigger.id.into()).await;
    assert_eq!(
        (after.last_triggered_at, after.last_run_id),
        (Some(at(5)), Some(run_id))
    );

    let again = firing::fire_webhook(&world.services, &token, at(64)).await.unwrap();
    assert_eq!(again.outcome, FireOutcome::Cooldown);
    let later = firing::fire_webhook(&world.services, &token, at(65)).await.unwrap();
    assert!(later.outcome.run_id().is_some(), "the window has passed");

    let unknown = firing::fire_webhook(&world.services, &"0".repeat(64), at(70)).await;
    assert!(matches!(unknown, Err(ServiceError::NotFound { .. })), "{unknown:?}");
    // The hash of a token, presented as a token, is just another unknown token.
    let hash_as_token = firing::fire_webhook(&world.services, &hash, at(70)).await;
    assert!(matches!(hash_as_token, Err(ServiceError::NotFound { .. })));
    disable(&world, &orders, &hook.trigger).await;
    let disabled = firing::fire_webhook(&world.services, &token, at(500)).await;
    assert!(matches!(disabled, Err(ServiceError::NotFound { .. })), "{disabled:?}");

    let unpublished = create_hook(&draft, 0).await;
    let refused = firing::fire_webhook(&world.services, unpublished.webhook_token.as_deref().unwrap(), at(80))
        .await
        .unwrap();
    assert!(
        matches!(&refused.outcome, FireOutcome::NotRunnable(reason) if reason.contains("never been published")),
        "{refused:?}"
    );
    assert_eq!(
        stored(&world, unpublished.trigger.id.into()).await.last_triggered_at,
        None
    );
}

// ---- cron and cron_dependency ----

/// 12:00 on the test day; cron slots are easier to read from there.
const NOON: OffsetDateTime = datetime!(2026-04-01 12:00:00 UTC);

fn clock(hh_mm_ss: (i64, i64, i64)) -> OffsetDateTime {
    NOON + Duration::hours(hh_mm_ss.0 - 12) + Duration::minutes(hh_mm_ss.1) + Duration::seconds(hh_mm_ss.2)
}

async fn next_fire(world: &World, trigger: &Trigger) -> Option<OffsetDateTime> {
    triggers::next_fire_at(&world.db.client().await, trigger.id)
        .await
        .unwrap()
}

async fn tick(services: &Services, now: OffsetDateTime) -> CronTickReport {
    firing::fire_due_cron_triggers(&services.pool, now, 100).await.unwrap()
}

#[tokio::test]
async fn cron_triggers_get_their_slot_on_create_and_update() {
    let world = fs_world().await;
    let orders = pipeline(&world, "silver", "orders", false).await;
    let every_5 = trigger_at(
        &world,
        &orders,
        TriggerType::Cron,
        json!({"cron_expr": "*/5 * * * *"}),
        0,
        clock((12, 1, 0)),
    )
    .await;
    assert_eq!(next_fire(&world, &every_5).await, Some(clock((12, 5, 0))));
    let dependent = trigger_at(
        &world,
        &orders,
        TriggerType::CronDependency,
        json!({"cron_expr": "0 * * * *", "dependencies": ["default.bronze.raw"]}),
        0,
        clock((12, 1, 0)),
    )
    .await;
    assert_eq!(next_fire(&world, &dependent).await, Some(clock((13, 0, 0))));
    let hook = trigger(&world, &orders, TriggerType::Webhook, json!({}), 0).await;
    assert_eq!(next_fire(&world, &hook).await, None, "only cron types have a slot");

    let update = async |changes: TriggerChanges, now: OffsetDateTime| {
        rat_service::triggers::update(
            &world.services,
            &Caller::community(),
            &orders.address,
            every_5.id,
            &changes,
            now,
        )
        .await
        .unwrap()
    };
    update(
        TriggerChanges {
            enabled: Some(false),
            ..TriggerChanges::default()
        },
        clock((12, 2, 0)),
    )
    .await;
    assert_eq!(next_fire(&world, &every_5).await, None, "disabled: no slot");
    assert_eq!(tick(&world.services, clock((13, 0, 0))).await.fired, 0);
    update(
        TriggerChanges {
            enabled: Some(true),
            ..TriggerChanges::default()
        },
        clock((12, 7, 0)),
    )
    .await;
    assert_eq!(
        next_fire(&world, &every_5).await,
        Some(clock((12, 10, 0))),
        "from the update's now"
    );
    update(
        TriggerChanges {
            config: Some(json!({"cron_expr": "30 14 * * *"})),
            ..TriggerChanges::default()
        },
        clock((12, 8, 0)),
    )
    .await;
    assert_eq!(next_fire(&world, &every_5).await, Some(clock((14, 30, 0))));

    // A disabled cron trigger is created without a slot.
    let spec = TriggerSpec {
        config: TriggerConfig::from_client(TriggerType::Cron, &json!({"cron_expr": "* * * * *"})).unwrap(),
        enabled: false,
        cooldown_seconds: 0,
    };
    let off = rat_service::triggers::create(&world.services, &Caller::community(), &orders.address, spec, NOON)
        .await
        .unwrap()
        .trigger;
    assert_eq!(next_fire(&world, &off).await, None);
}

#[tokio::test]
async fn cron_triggers_without_a_slot_get_one_from_the_backfill() {
    let world = fs_world().await;
    let orders = pipeline(&world, "silver", "orders", false).await;
    let hourly = trigger_at(
        &world,
        &orders,
        TriggerType::Cron,
        json!({"cron_expr": "0 * * * *"}),
        0,
        NOON,
    )
    .await;
    let dependent = trigger_at(
        &world,
        &orders,
        TriggerType::CronDependency,
        json!({"cron_expr": "*/10 * * * *", "dependencies": ["default.bronze.raw"]}),
        0,
        NOON,
    )
    .await;
    let kept = trigger_at(
        &world,
        &orders,
        TriggerType::Cron,
        json!({"cron_expr": "0 0 * * *"}),
        0,
        NOON,
    )
    .await;
    let hook = trigger(&world, &orders, TriggerType::Webhook, json!({}), 0).await;
    disable(&world, &orders, &kept).await;
    // As written before next_fire_at existed: no slot at all.
    world
        .db
        .client()
        .await
        .execute(
            "UPDATE pipeline_triggers SET next_fire_at = NULL WHERE id = ANY($1)",
            &[&vec![hourly.id, dependent.id]],
        )
        .await
        .unwrap();
    assert_eq!(
        tick(&world.services, clock((15, 0, 0))).await.fired,
        0,
        "no slot, no fire"
    );

    let now = clock((12, 31, 0));
    let set = rat_service::triggers::backfill_cron_slots(&world.services.pool, now)
        .await
        .unwrap();
    assert_eq!(set, 2);
    assert_eq!(next_fire(&world, &hourly).await, Some(clock((13, 0, 0))));
    assert_eq!(next_fire(&world, &dependent).await, Some(clock((12, 40, 0))));
    assert_eq!(next_fire(&world, &kept).await, None, "disabled: still no slot");
    assert_eq!(next_fire(&world, &hook).await, None, "not a cron type");
    assert_eq!(
        rat_service::triggers::backfill_cron_slots(&world.services.pool, clock((12, 45, 0)))
            .await
            .unwrap(),
        0,
        "a slot already set is kept"
    );
    assert_eq!(next_fire(&world, &dependent).await, Some(clock((12, 40, 0))));
}

#[tokio::test]
async fn a_trigger_change_wakes_the_schedulers() {
    use futures_util::StreamExt;
    use tokio_postgres::{AsyncMessage, NoTls};

    let world = fs_world().await;
    let orders = pipeline(&world, "silver", "orders", false).await;
    let (listener, mut connection) = tokio_postgres::connect(world.db.url(), NoTls).await.unwrap();
    let (sender, mut payloads) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = sender.send(n.payload().to_owned());
            }
        }
    });
    listener.batch_execute("LISTEN rat_schedules").await.unwrap();
    let next = async |payloads: &mut tokio::sync::mpsc::UnboundedReceiver<String>| {
        tokio::time::timeout(StdDuration::from_secs(10), payloads.recv())
            .await
            .expect("notified")
            .unwrap()
    };

    let cron = trigger(&world, &orders, TriggerType::Cron, json!({"cron_expr": "* * * * *"}), 0).await;
    assert_eq!(next(&mut payloads).await, cron.id.to_string(), "on create");
    disable(&world, &orders, &cron).await;
    assert_eq!(next(&mut payloads).await, cron.id.to_string(), "on disable");
    // Other types have no slot and wake nobody: notifications arrive in
    // commit order, so the next one heard is a marker sent after the create.
    trigger(&world, &orders, TriggerType::Webhook, json!({}), 0).await;
    listener
        .batch_execute("SELECT pg_notify('rat_schedules', 'marker')")
        .await
        .unwrap();
    assert_eq!(
        next(&mut payloads).await,
        "marker",
        "a webhook trigger woke the schedulers"
    );
}

#[tokio::test]
async fn a_cron_slot_fires_once_with_concurrent_callers() {
    let world = fs_world().await;
    // One pipeline each: a pipeline with an active run skips its slots.
    let mut all = Vec::new();
    for i in 0..20 {
        let target = pipeline(&world, "silver", &format!("orders_{i}"), true).await;
        all.push((
            target.clone(),
            trigger_at(
                &world,
                &target,
                TriggerType::Cron,
                json!({"cron_expr": "*/5 * * * *"}),
                0,
                clock((12, 1, 0)),
            )
            .await,
        ));
    }
    assert_eq!(
        tick(&world.services, clock((12, 4, 59))).await,
        CronTickReport::default(),
        "not due yet"
    );

    // Two schedulers tick at once, in small batches, until nothing is due.
    let now = clock((12, 5, 30));
    let scheduler = async |services: Services| {
        let mut fired = 0;
        loop {
            let report = firing::fire_due_cron_triggers(&services.pool, now, 3).await.unwrap();
            fired += report.fired;
            assert_eq!(report.skipped, 0);
            if !report.more {
                return fired;
            }
        }
    };
    let (a, b) = tokio::join!(scheduler(world.services.clone()), scheduler(world.services.clone()));
    assert_eq!(a + b, 20, "every slot fired once: {a} + {b}");
    for (target, cron) in &all {
        let created = runs_of(&world, cron).await;
        assert_eq!(created.len(), 1);
        assert_fired(&created[0], cron, target, "trigger:cron:*/5 * * * *", now);
        assert_eq!(created[0].scheduled_for, Some(clock((12, 5, 0))), "the slot");
        let after = stored(&world, cron.id.into()).await;
        assert_eq!(
            (after.last_triggered_at, after.last_run_id),
            (Some(now), Some(created[0].id))
        );
        assert_eq!(next_fire(&world, cron).await, Some(clock((12, 10, 0))));
    }
    assert_eq!(
        tick(&world.services, clock((12, 9, 0))).await,
        CronTickReport::default()
    );
}

#[tokio::test]
async fn missed_slots_collapse_into_one_fire() {
    let world = fs_world().await;
    let orders = pipeline(&world, "silver", "orders", true).await;
    let every_minute = trigger_at(
        &world,
        &orders,
        TriggerType::Cron,
        json!({"cron_expr": "* * * * *"}),
        0,
        clock((12, 0, 30)),
    )
    .await;
    // No scheduler ran for ten minutes.
    let report = tick(&world.services, clock((12, 10, 15))).await;
    assert_eq!((report.fired, report.skipped, report.more), (1, 0, false));
    let created = runs_of(&world, &every_minute).await;
    assert_eq!(created.len(), 1, "one run, not ten");
    assert_eq!(created[0].scheduled_for, Some(clock((12, 1, 0))));
    assert_eq!(next_fire(&world, &every_minute).await, Some(clock((12, 11, 0))));
    finish(&world, &created[0], clock((12, 10, 30))).await;
    assert_eq!(tick(&world.services, clock((12, 10, 50))).await.fired, 0);
    assert_eq!(tick(&world.services, clock((12, 11, 0))).await.fired, 1);
}

#[tokio::test]
async fn cron_slots_respect_cooldowns_unpublished_targets_and_the_slot_index() {
    let world = fs_world().await;
    let orders = pipeline(&world, "silver", "orders", true).await;
    let draft = pipeline(&world, "silver", "draft", false).await;
    let start = clock((12, 0, 30));
    let cooled = trigger_at(
        &world,
        &orders,
        TriggerType::Cron,
        json!({"cron_expr": "* * * * *"}),
        150,
        start,
    )
    .await;
    let unpublished = trigger_at(
        &world,
        &draft,
        TriggerType::Cron,
        json!({"cron_expr": "* * * * *"}),
        0,
        start,
    )
    .await;

    let report = tick(&world.services, clock((12, 1, 0))).await;
    assert_eq!((report.fired, report.skipped), (1, 1));
    assert_eq!(runs_of(&world, &cooled).await.len(), 1);
    assert!(runs_of(&world, &unpublished).await.is_empty());
    assert_eq!(stored(&world, unpublished.id.into()).await.last_triggered_at, None);
    assert_eq!(
        next_fire(&world, &unpublished).await,
        Some(clock((12, 2, 0))),
        "advanced all the same"
    );

    // Its run finished (a pipeline with an active run skips its slots).
    finish(&world, &runs_of(&world, &cooled).await[0], clock((12, 1, 30))).await;
    // 12:02 and 12:03 are within the 150 s cooldown of the 12:01 fire.
    for slot in [clock((12, 2, 0)), clock((12, 3, 0))] {
        let report = tick(&world.services, slot).await;
        assert_eq!((report.fired, report.skipped), (0, 2));
    }
    assert_eq!(runs_of(&world, &cooled).await.len(), 1);
    assert_eq!(tick(&world.services, clock((12, 4, 0))).await.fired, 1);
    finish(&world, &runs_of(&world, &cooled).await[1], clock((12, 4, 30))).await;

    // Even if a slot came due again (a claim gone wrong), its run is unique.
    triggers::set_next_fire_at(&world.db.client().await, cooled.id, Some(clock((12, 4, 0))))
        .await
        .unwrap();
    let report = tick(&world.services, clock((12, 9, 0))).await;
    assert_eq!(report.fired, 0, "the 12:04 slot already has its run");
    let slots: Vec<_> = runs_of(&world, &cooled).await.iter().map(|r| r.scheduled_for).collect();
    assert_eq!(slots, [Some(clock((12, 1, 0))), Some(clock((12, 4, 0)))]);
    assert_eq!(next_fire(&world, &cooled).await, Some(clock((12, 10, 0))));
}

#[tokio::test]
async fn a_full_batch_says_there_is_more() {
    let world = fs_world().await;
    for i in 0..3 {
        let target = pipeline(&world, "silver", &format!("orders_{i}"), true).await;
        trigger_at(
            &world,
            &target,
            TriggerType::Cron,
            json!({"cron_expr": "0 * * * *"}),
            0,
            NOON,
        )
        .await;
    }
    let now = clock((13, 0, 0));
    let first = firing::fire_due_cron_triggers(&world.services.pool, now, 2)
        .await
        .unwrap();
    assert_eq!((first.fired, first.more), (2, true));
    let second = firing::fire_due_cron_triggers(&world.services.pool, now, 2)
        .await
        .unwrap();
    assert_eq!((second.fired, second.more), (1, false));
}

#[tokio::test]
async fn cron_dependency_fires_once_every_dependency_succeeded_since_its_previous_fire() {
    let world = fs_world().await;
    let raw = pipeline(&world, "bronze", "raw", true).await;
    let clean = pipeline(&world, "silver", "clean", true).await;
    let report = pipeline(&world, "gold", "report", true).await;
    let config = json!({"cron_expr": "*/10 * * * *", "dependencies": ["default.bronze.raw", "default.silver.clean"]});
    let dependent = trigger_at(&world, &report, TriggerType::CronDependency, config, 0, NOON).await;
    let never = trigger_at(
        &world,
        &report,
        TriggerType::CronDependency,
        json!({"cron_expr": "*/10 * * * *", "dependencies": ["default.bronze.raw", "default.silver.ghost"]}),
        0,
        NOON,
    )
    .await;

    // 12:10: nothing ran yet.
    let tick_at = async |now: OffsetDateTime| tick(&world.services, now).await;
    assert_eq!(tick_at(clock((12, 10, 0))).await.fired, 0);
    assert_eq!(
        next_fire(&world, &dependent).await,
        Some(clock((12, 20, 0))),
        "skipped slots advance"
    );
    // 12:20: only raw succeeded.
    succeed(&world, &raw, clock((12, 12, 0))).await;
    assert_eq!(tick_at(clock((12, 20, 0))).await.fired, 0);
    // 12:30: both succeeded (never fired: any success counts).
    succeed(&world, &clean, clock((12, 25, 0))).await;
    assert_eq!(tick_at(clock((12, 30, 0))).await.fired, 1);
    let created = runs_of(&world, &dependent).await;
    assert_eq!(created.len(), 1);
    assert_fired(
        &created[0],
        &dependent,
        &report,
        "trigger:cron_dependency:*/10 * * * *",
        clock((12, 30, 0)),
    );
    assert_eq!(created[0].scheduled_for, Some(clock((12, 30, 0))));
    assert_eq!(
        stored(&world, dependent.id.into()).await.last_triggered_at,
        Some(clock((12, 30, 0)))
    );
    // Its run finished (a pipeline with an active run skips its slots).
    finish(&world, &created[0], clock((12, 35, 0))).await;
    // 12:40: the successes before the previous fire do not count again.
    assert_eq!(tick_at(clock((12, 40, 0))).await.fired, 0);
    // 12:50: raw succeeded again, clean not yet.
    succeed(&world, &raw, clock((12, 41, 0))).await;
    assert_eq!(tick_at(clock((12, 50, 0))).await.fired, 0);
    // 13:00: both succeeded since 12:30.
    succeed(&world, &clean, clock((12, 55, 0))).await;
    assert_eq!(tick_at(clock((13, 0, 0))).await.fired, 1);
    assert_eq!(runs_of(&world, &dependent).await.len(), 2);

    assert!(
        runs_of(&world, &never).await.is_empty(),
        "a dependency that does not exist is never met"
    );
    assert_eq!(stored(&world, never.id.into()).await.last_triggered_at, None);
}

#[tokio::test]
async fn cron_slots_are_skipped_while_the_pipeline_has_an_active_run() {
    let world = fs_world().await;
    let orders = pipeline(&world, "silver", "orders", true).await;
    let every_second = trigger_at(
        &world,
        &orders,
        TriggerType::Cron,
        json!({"cron_expr": "* * * * * *"}),
        0,
        clock((12, 0, 0)),
    )
    .await;
    assert_eq!(tick(&world.services, clock((12, 0, 1))).await.fired, 1);
    // The run is still pending: the next slots do not pile runs up.
    for second in 2..6 {
        let report = tick(&world.services, clock((12, 0, second))).await;
        assert_eq!((report.fired, report.skipped), (0, 1), "second {second}");
    }
    assert_eq!(runs_of(&world, &every_second).await.len(), 1);
    assert_eq!(next_fire(&world, &every_second).await, Some(clock((12, 0, 6))));
    // Once it finished, the next slot fires again.
    finish(&world, &runs_of(&world, &every_second).await[0], clock((12, 0, 5))).await;
    assert_eq!(tick(&world.services, clock((12, 0, 6))).await.fired, 1);
    assert_eq!(runs_of(&world, &every_second).await.len(), 2);
}

#[tokio::test]
async fn cron_expressions_that_can_never_fire_are_refused() {
    let world = fs_world().await;
    let orders = pipeline(&world, "silver", "orders", true).await;
    for (trigger_type, config) in [
        (TriggerType::Cron, json!({"cron_expr": "0 0 30 2 *"})),
        (
            TriggerType::CronDependency,
            json!({"cron_expr": "0 0 30 2 *", "dependencies": ["default.bronze.raw"]}),
        ),
    ] {
        let spec = TriggerSpec {
            config: TriggerConfig::from_client(trigger_type, &config).unwrap(),
            enabled: true,
            cooldown_seconds: 0,
        };
        let refused =
            rat_service::triggers::create(&world.services, &Caller::community(), &orders.address, spec, T0).await;
        assert!(
            matches!(&refused, Err(rat_service::ServiceError::InvalidInput { message }) if message.contains("never fire")),
            "{refused:?}"
        );
    }
}
