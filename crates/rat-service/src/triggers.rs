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
//! refused, since every success would start the pipeline again.

use rat_dao::triggers::{self, NewTrigger, TriggerUpdate};
use rat_dao::{DaoError, pipelines};
use rat_domain::{Page, PageRequest, Pipeline, PipelineRef, Trigger, TriggerConfig, TriggerType};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{ServiceError, Services};

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

fn refuse_self_watch(pipeline: &Pipeline, config: &TriggerConfig) -> Result<(), ServiceError> {
    if let TriggerConfig::PipelineSuccess { upstream } = config
        && *upstream == pipeline.address
    {
        return Err(ServiceError::invalid(
            "a pipeline_success trigger cannot watch its own pipeline",
        ));
    }
    Ok(())
}

/// Creates a trigger of the live pipeline at `address`. `NotFound` for an
/// unknown pipeline, `InvalidInput` for a trigger watching its own pipeline.
#[tracing::instrument(skip(services, spec), fields(pipeline = %address), err)]
pub async fn create(
    services: &Services,
    address: &PipelineRef,
    spec: TriggerSpec,
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
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    refuse_self_watch(&pipeline, &config)?;
    let trigger = triggers::create(
        &client,
        &NewTrigger {
            pipeline_id: pipeline.id,
            config,
            enabled: spec.enabled,
            cooldown_seconds: spec.cooldown_seconds,
        },
    )
    .await?;
    tracing::info!(trigger = %trigger.id, r#type = %trigger.trigger_type(), "trigger created");
    Ok(CreatedTrigger { trigger, webhook_token })
}

/// The triggers of the live pipeline at `address`, oldest first, one page.
pub async fn list(
    services: &Services,
    address: &PipelineRef,
    page: PageRequest,
) -> Result<Page<Trigger>, ServiceError> {
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    Ok(triggers::list_for_pipeline(&client, pipeline.id, page).await?)
}

/// The trigger `id` of the live pipeline at `address`; `NotFound` when the
/// pipeline is unknown or the trigger is not one of its triggers.
pub async fn get(services: &Services, address: &PipelineRef, id: Uuid) -> Result<Trigger, ServiceError> {
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
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

/// Applies `changes` to the trigger `id` of the live pipeline at `address`.
/// `InvalidInput` for a change of type or a config that does not fit the
/// trigger's type; `NotFound` as for [`get`].
#[tracing::instrument(skip(services, changes), fields(pipeline = %address), err)]
pub async fn update(
    services: &Services,
    address: &PipelineRef,
    id: Uuid,
    changes: &TriggerChanges,
) -> Result<Trigger, ServiceError> {
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    let current = triggers::get_for_pipeline(&client, pipeline.id, id).await?;
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
        refuse_self_watch(&pipeline, config)?;
    }
    let update = TriggerUpdate {
        config,
        enabled: changes.enabled,
        cooldown_seconds: changes.cooldown_seconds,
    };
    match triggers::update(&client, pipeline.id, id, &update).await {
        Ok(trigger) => Ok(trigger),
        // The config was parsed for the stored type and a type never changes,
        // so this cannot happen; answer as for a client asking to change it.
        Err(DaoError::Invalid { constraint }) if constraint == "trigger_type" => {
            Err(ServiceError::invalid("the type of a trigger cannot change"))
        }
        Err(other) => Err(other.into()),
    }
}

/// Deletes the trigger `id` of the live pipeline at `address`; the runs it
/// created stay.
pub async fn delete(services: &Services, address: &PipelineRef, id: Uuid) -> Result<(), ServiceError> {
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    Ok(triggers::delete(&client, pipeline.id, id).await?)
}
