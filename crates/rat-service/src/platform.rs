//! Platform-wide: feature flags, and registered plugins with their health.

use rat_dao::{plugins, settings};
use rat_domain::{FeatureFlags, PageRequest, Plugin, PluginName, PluginStatus};
use serde_json::Value;
use time::OffsetDateTime;

use crate::identity::Caller;
use crate::{ServiceError, Services};

/// The feature flags, read from Postgres (never cached: every replica
/// answers the same).
pub async fn feature_flags(services: &Services) -> Result<FeatureFlags, ServiceError> {
    let client = services.pool.get().await?;
    Ok(settings::feature_flags(&client).await?)
}

/// Registered plugins (at most 200), optionally only those with `status`.
pub async fn plugins(services: &Services, status: Option<PluginStatus>) -> Result<Vec<Plugin>, ServiceError> {
    let client = services.pool.get().await?;
    Ok(
        plugins::list(&client, status, PageRequest::first(PageRequest::MAX_LIMIT))
            .await?
            .items,
    )
}

/// Longest `slot` (the column's length).
const MAX_SLOT_CHARS: usize = 20;
/// Longest `image` (the column's length).
const MAX_IMAGE_CHARS: usize = 500;

/// What a plugin sends to register.
#[derive(Debug, Clone)]
pub struct PluginRegistration {
    /// Unique name (the name rule, at most 63 characters).
    pub name: PluginName,
    /// The extension slot it fills (1 to 20 characters).
    pub slot: String,
    /// Its container image (1 to 500 characters).
    pub image: String,
    /// Its configuration (a JSON object; `{}` when absent).
    pub config: Option<Value>,
}

fn require_text(field: &str, value: &str, max: usize) -> Result<(), ServiceError> {
    if value.trim().is_empty() {
        return Err(ServiceError::invalid(format!("{field} is required")));
    }
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ServiceError::invalid(format!(
            "{field} must be at most {max} characters, without control characters"
        )));
    }
    Ok(())
}

/// Registers a plugin, or re-registers it (an upsert on the name: the new
/// slot, image and config replace the old; its status and last report stay).
/// A new plugin starts `unknown`, and counts as reported at its registration.
#[tracing::instrument(skip(services, registration), fields(plugin = %registration.name))]
pub async fn register_plugin(services: &Services, registration: &PluginRegistration) -> Result<Plugin, ServiceError> {
    require_text("slot", &registration.slot, MAX_SLOT_CHARS)?;
    require_text("image", &registration.image, MAX_IMAGE_CHARS)?;
    let config = match &registration.config {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(config @ Value::Object(_)) => config.clone(),
        Some(_) => return Err(ServiceError::invalid("config must be a JSON object")),
    };
    let client = services.pool.get().await?;
    Ok(plugins::register(
        &client,
        &registration.name,
        &registration.slot,
        &registration.image,
        &config,
    )
    .await?)
}

/// Records a plugin's own health report made at `now`. `NotFound` for a
/// plugin that is not registered; `unknown` is not a report (`InvalidInput`).
#[tracing::instrument(skip(services))]
pub async fn report_plugin_health(
    services: &Services,
    name: &PluginName,
    status: PluginStatus,
    now: OffsetDateTime,
) -> Result<Plugin, ServiceError> {
    if status == PluginStatus::Unknown {
        return Err(ServiceError::invalid("status must be healthy, degraded or down"));
    }
    let client = services.pool.get().await?;
    Ok(plugins::record_health(&client, name, status, now).await?)
}

/// Unregisters a plugin. Admins only; `NotFound` when it is not registered.
#[tracing::instrument(skip(services, caller))]
pub async fn remove_plugin(services: &Services, caller: &Caller, name: &PluginName) -> Result<(), ServiceError> {
    caller.require_admin("removing a plugin")?;
    let client = services.pool.get().await?;
    Ok(plugins::delete(&client, name).await?)
}

/// Most plugins one pass marks down (the table holds a handful).
const MARK_DOWN_BATCH: i64 = 1_000;

/// Marks `down` every plugin that has not reported (health, or its
/// registration when it never reported) within `window` before `now`.
/// Returns how many. The reaper's pass calls this.
pub async fn mark_silent_plugins_down(
    services: &Services,
    now: OffsetDateTime,
    window: std::time::Duration,
) -> Result<u64, ServiceError> {
    let window = time::Duration::try_from(window).map_err(|e| ServiceError::Internal { source: Box::new(e) })?;
    let client = services.pool.get().await?;
    let marked = plugins::mark_silent_down(&client, now - window, MARK_DOWN_BATCH).await?;
    for name in &marked {
        tracing::warn!(plugin = %name, "plugin marked down: no report within the window");
    }
    Ok(marked.len() as u64)
}
