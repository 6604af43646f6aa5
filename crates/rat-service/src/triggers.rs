//! Pipeline triggers: typed configs, webhook tokens (hashed at rest).
//!
//! A trigger is always addressed through its pipeline: every read and write
//! names the pipeline, and a trigger of another pipeline is `NotFound`.
//! A webhook trigger's token is generated here (32 random bytes, 64 hex
//! characters); only its SHA-256 is stored, and the token is handed back once,
//! to the creator. A trigger's type never changes.
//!
//! Referenced objects (the upstream pipeline of `pipeline_success`, the zone
//! of `landing_zone_upload`/`file_pattern`, the dependencies of
//! `cron_dependency`) need not exist yet: a trigger may be set up before what
//! it watches. Only a `pipeline_success` trigger watching its own pipeline is
//! refused, since every success would start the pipeline again, and a
//! `file_pattern` whose glob does not compile.
//!
//! `cron` and `cron_dependency` triggers carry their next slot
//! (`next_fire_at`): every create and update sets it to the first slot after
//! `now` (UTC) when the trigger is enabled and clears it when it is disabled,
//! and announces the change on `rat_schedules` in the same transaction, so
//! schedulers wake up for the new slot. Other types never have a slot.

use rat_dao::triggers::{self, NewTrigger, TriggerUpdate};
use rat_dao::{DaoError, pipelines};
use rat_domain::TriggerId;
use rat_domain::{Page, PageRequest, Pipeline, PipelineRef, ScheduleTimezone, Trigger, TriggerConfig, TriggerType};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::identity::Caller;
use crate::pipelines::require_on_loaded;
use crate::{ServiceError, Services, firing};
use rat_domain::Permission;

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored hash of a webhook token: lowercase hex SHA-256 of the token text.
pub fn webhook_token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A fresh webhook token: 32 random bytes from a cryptographically secure
/// generator (rand's thread generator, seeded by the OS), as 64 hex characters.
pub fn generate_webhook_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex(&bytes)
}

/// What creating a trigger needs, validated.
#[derive(Debug, Clone)]
pub struct TriggerSpec {
    /// The config (`TriggerConfig::from_client`); `None` for a webhook, whose
    /// config (the token hash) is made here.
    pub config: Option<TriggerConfig>,
    /// Disabled triggers never fire.
    pub enabled: bool,
    /// Minimum seconds between two fires (`rat_domain::parse_cooldown_seconds`).
    pub cooldown_seconds: i32,
}

/// A new trigger and, for a webhook, its token (shown this once only).
#[derive(Debug, Clone)]
pub struct CreatedTrigger {
    /// The stored trigger.
    pub trigger: Trigger,
    /// The webhook token; `None` for other types.
    pub webhook_token: Option<String>,
}

/// Refuses what a config may not be beyond its shape: a `pipeline_success`
/// trigger watching its own pipeline, a `file_pattern` that is not a glob, a
/// cron expression that can never fire.
fn check_config(pipeline: &Pipeline, config: &TriggerConfig) -> Result<(), ServiceError> {
    match config {
        TriggerConfig::Cron { cron_expr } | TriggerConfig::CronDependency { cron_expr, .. } => {
            Ok(cron_expr.check_fires()?)
        }
        TriggerConfig::PipelineSuccess { upstream } if *upstream == pipeline.address => Err(ServiceError::invalid(
            "a pipeline_success trigger cannot watch its own pipeline",
        )),
        TriggerConfig::FilePattern { pattern, .. } => firing::compile_pattern(pattern).map(|_| ()),
        _ => Ok(()),
    }
}

/// The slot a trigger waits for at `now`: the first slot of its expression
/// after `now` (UTC) for an enabled `cron` or `cron_dependency` trigger,
/// `None` otherwise.
pub fn next_fire_at(trigger: &Trigger, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let cron = match &trigger.config {
        TriggerConfig::Cron { cron_expr } | TriggerConfig::CronDependency { cron_expr, .. } => cron_expr,
        _ => return None,
    };
    if trigger.enabled {
        cron.next_after(now, &ScheduleTimezone::UTC)
    } else {
        None
    }
}

/// Stores the trigger's slot at `now` and, for cron types, announces the
/// change to schedulers (delivered when the caller's transaction commits).
pub(crate) async fn reschedule(
    client: &impl rat_dao::GenericClient,
    trigger: &Trigger,
    now: OffsetDateTime,
) -> Result<(), ServiceError> {
    if !matches!(trigger.trigger_type(), TriggerType::Cron | TriggerType::CronDependency) {
        return Ok(());
    }
    triggers::set_next_fire_at(client, trigger.id, next_fire_at(trigger, now)).await?;
    triggers::notify_changed(client, trigger.id).await?;
    Ok(())
}

/// Creates a trigger of the live pipeline at `address`; a cron type gets its
/// first slot after `now`. `NotFound` for an unknown pipeline, `InvalidInput`
/// for a trigger watching its own pipeline or a pattern that is no glob.
#[tracing::instrument(skip(services, caller, spec), fields(pipeline = %address))]
pub async fn create(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    spec: TriggerSpec,
    now: OffsetDateTime,
) -> Result<CreatedTrigger, ServiceError> {
    let (config, webhook_token) = match spec.config {
        Some(config) => (config, None),
        None => {
            let token = generate_webhook_token();
            let config = TriggerConfig::Webhook {
                token_hash: webhook_token_hash(&token),
            };
            (config, Some(token))
        }
    };
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let pipeline = pipelines::get_by_ref(&transaction, address).await?;
    require_on_loaded(&transaction, caller, &pipeline, Permission::Write, "changing").await?;
    check_config(&pipeline, &config)?;
    let trigger = triggers::create(
        &transaction,
        &NewTrigger {
            pipeline_id: pipeline.id,
            config,
            enabled: spec.enabled,
            cooldown_seconds: spec.cooldown_seconds,
        },
    )
    .await?;
    reschedule(&transaction, &trigger, now).await?;
    transaction.commit().await?;
    tracing::info!(trigger = %trigger.id, r#type = %trigger.trigger_type(), "trigger created");
    Ok(CreatedTrigger { trigger, webhook_token })
}

/// The triggers of the live pipeline at `address`, oldest first, one page.
pub async fn list(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    page: PageRequest,
) -> Result<Page<Trigger>, ServiceError> {
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    require_on_loaded(&client, caller, &pipeline, Permission::Read, "reading").await?;
    Ok(triggers::list_for_pipeline(&client, pipeline.id, page).await?)
}

/// The trigger `id` of the live pipeline at `address`; `NotFound` when the
/// pipeline is unknown or the trigger is not one of its triggers.
pub async fn get(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    id: TriggerId,
) -> Result<Trigger, ServiceError> {
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    require_on_loaded(&client, caller, &pipeline, Permission::Read, "reading").await?;
    Ok(triggers::get_for_pipeline(&client, pipeline.id, id).await?)
}

/// Changes to a trigger as the client sent them; `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct TriggerChanges {
    /// The type the client believes the trigger has; a different one is refused.
    pub trigger_type: Option<TriggerType>,
    /// A new config, validated here against the trigger's stored type (a
    /// webhook takes only `{}`, which changes nothing: its token stays).
    pub config: Option<serde_json::Value>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New cooldown (`rat_domain::parse_cooldown_seconds`).
    pub cooldown_seconds: Option<i32>,
}

/// Applies `changes` to the trigger `id` of the live pipeline at `address`;
/// a cron type's slot is recomputed at `now` (cleared when it is disabled).
/// `InvalidInput` for a change of type or a config that does not fit the
/// trigger's type; `NotFound` as for [`get`].
#[tracing::instrument(skip(services, caller, changes), fields(pipeline = %address))]
pub async fn update(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    id: TriggerId,
    changes: &TriggerChanges,
    now: OffsetDateTime,
) -> Result<Trigger, ServiceError> {
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let pipeline = pipelines::get_by_ref(&transaction, address).await?;
    require_on_loaded(&transaction, caller, &pipeline, Permission::Write, "changing").await?;
    let current = triggers::get_for_pipeline(&transaction, pipeline.id, id).await?;
    let trigger_type = current.trigger_type();
    if let Some(asked) = changes.trigger_type
        && asked != trigger_type
    {
        return Err(ServiceError::invalid(format!(
            "the type of a trigger cannot change (it is {trigger_type}); delete it and create a {asked} trigger"
        )));
    }
    let config = match &changes.config {
        Some(value) => TriggerConfig::from_client(trigger_type, value)?,
        None => None,
    };
    if let Some(config) = &config {
        check_config(&pipeline, config)?;
    }
    let update = TriggerUpdate {
        config,
        enabled: changes.enabled,
        cooldown_seconds: changes.cooldown_seconds,
    };
    let trigger = match triggers::update(&transaction, pipeline.id, id, &update).await {
        Ok(trigger) => trigger,
        // The config was parsed for the stored type and a type never changes,
        // so this cannot happen; answer as for a client asking to change it.
        Err(DaoError::Invalid { constraint }) if constraint == "trigger_type" => {
            return Err(ServiceError::invalid("the type of a trigger cannot change"));
        }
        Err(other) => return Err(other.into()),
    };
    // The UPDATE above holds the row, so a scheduler tick cannot fire the old
    // slot between it and the new slot being stored.
    reschedule(&transaction, &trigger, now).await?;
    transaction.commit().await?;
    Ok(trigger)
}

/// Deletes the trigger `id` of the live pipeline at `address`; the runs it
/// created stay.
pub async fn delete(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    id: TriggerId,
) -> Result<(), ServiceError> {
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    require_on_loaded(&client, caller, &pipeline, Permission::Write, "changing").await?;
    Ok(triggers::delete(&client, pipeline.id, id).await?)
}

/// Triggers one [`backfill_cron_slots`] page reads.
const BACKFILL_PAGE: i64 = 500;

/// Gives every enabled `cron` and `cron_dependency` trigger that has no slot
/// its first slot after `now`, and announces the change. Such triggers were
/// created before `next_fire_at` existed (migration V10) or written behind
/// the service's back; without a slot a scheduler never fires them.
/// `rat-scheduler` calls it at start. Idempotent and safe with concurrent
/// callers (a slot is only set where there is none); bounded: it pages
/// through the triggers by id once. Returns how many got a slot; a trigger
/// whose expression never matches again keeps none.
pub async fn backfill_cron_slots(pool: &rat_dao::Pool, now: OffsetDateTime) -> Result<u64, ServiceError> {
    let client = pool.get().await?;
    let mut after = None;
    let mut set = 0;
    loop {
        let page = triggers::without_slot(&client, after, BACKFILL_PAGE).await?;
        for trigger in &page {
            if let Some(next) = next_fire_at(trigger, now)
                && triggers::set_missing_next_fire_at(&client, trigger.id, next).await?
            {
                set += 1;
                after = Some(trigger.id);
            }
        }
        if page.len() < BACKFILL_PAGE as usize {
            break;
        }
        after = page.last().map(|t| t.id);
    }
    if let Some(last) = after.filter(|_| set > 0) {
        // One announcement is enough: schedulers re-read the earliest slot.
        triggers::notify_changed(&client, last).await?;
    }
    Ok(set)
}
