//! Retention settings, reaper status and on-demand passes, per-pipeline overrides.
//!
//! Stored values are read leniently (a missing or out-of-range value reads as
//! its default, and the problem is logged); values from clients are checked
//! strictly (unknown keys and out-of-range values are refused, and nothing
//! changes).

use rat_dao::{pipelines, reaper_status, settings};
use rat_domain::PipelineId;
use rat_domain::{PipelineRef, ReaperStatus, RetentionOverrides, RetentionSettings};
use serde_json::Value;
use time::OffsetDateTime;

use crate::identity::Caller;
use crate::pipelines::require_on_loaded;
use crate::{ServiceError, Services};
use rat_domain::Permission;

fn log_problems(what: &str, problems: &[String]) {
    for problem in problems {
        tracing::warn!(problem = %problem, "stored {what} is invalid");
    }
}

/// The system retention settings.
pub async fn config(services: &Services) -> Result<RetentionSettings, ServiceError> {
    let client = services.pool.get().await?;
    let (settings, problems) = settings::retention(&client).await?;
    log_problems("retention setting", &problems);
    Ok(settings)
}

/// Applies a partial update of the system retention settings (missing keys
/// keep their value) and returns the result. `InvalidInput`, with nothing
/// changed, for a non-object, an unknown key, a non-integer or a value out of
/// its range (zero and negative values included).
/// Admins only.
#[tracing::instrument(skip(services, caller))]
pub async fn update_config(
    services: &Services,
    caller: &Caller,
    patch: &Value,
) -> Result<RetentionSettings, ServiceError> {
    caller.require_admin("changing the retention settings")?;
    let mut client = services.pool.get().await?;
    // The row lock taken by update_retention lasts until this commit, so two
    // concurrent partial updates both keep each other's keys.
    let transaction = client.transaction().await?;
    let updated = settings::update_retention(&transaction, patch).await??;
    transaction.commit().await?;
    Ok(updated)
}

/// The reaper's status row.
pub async fn status(services: &Services) -> Result<ReaperStatus, ServiceError> {
    let client = services.pool.get().await?;
    Ok(reaper_status::get(&client).await?)
}

/// Asks the reaper for a pass (from any api replica): records the request
/// time in the status row and notifies the reaper, in one transaction.
/// Returns the status with the pending request. Admins only.
#[tracing::instrument(skip(services, caller))]
pub async fn request_run(
    services: &Services,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<ReaperStatus, ServiceError> {
    caller.require_admin("starting a reaper pass")?;
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let status = reaper_status::request_run(&transaction, now).await?;
    transaction.commit().await?;
    Ok(status)
}

/// A pipeline's retention: the system settings, its overrides and the
/// settings the reaper applies to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineRetention {
    /// The pipeline's id.
    pub pipeline_id: PipelineId,
    /// The system settings.
    pub system: RetentionSettings,
    /// The pipeline's overrides.
    pub overrides: RetentionOverrides,
    /// `system` with `overrides` laid over it.
    pub effective: RetentionSettings,
}

fn stored_overrides(pipeline: &rat_domain::Pipeline) -> RetentionOverrides {
    let (overrides, problems) = RetentionOverrides::from_stored(pipeline.retention_config.as_ref());
    log_problems("retention override", &problems);
    overrides
}

async fn pipeline_retention_of(
    client: &impl rat_dao::GenericClient,
    pipeline_id: PipelineId,
    overrides: RetentionOverrides,
) -> Result<PipelineRetention, ServiceError> {
    let (system, problems) = settings::retention(client).await?;
    log_problems("retention setting", &problems);
    Ok(PipelineRetention {
        pipeline_id,
        system,
        effective: system.with_overrides(&overrides),
        overrides,
    })
}

/// The retention of the live pipeline at `address` (read on it needed).
pub async fn pipeline_retention(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
) -> Result<PipelineRetention, ServiceError> {
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    require_on_loaded(&client, caller, &pipeline, Permission::Read, "reading").await?;
    pipeline_retention_of(&client, pipeline.id, stored_overrides(&pipeline)).await
}

/// Replaces a pipeline's overrides with `overrides`, the whole set: a key
/// with a value overrides that setting, a key that is missing or `null` does
/// not (the system setting applies), so `{}` removes every override. This is
/// how ratd and its clients treat the resource (the portal's form sends the
/// fields that have a value, and leaves out the ones reset to the system
/// default). `InvalidInput`, with nothing changed, for a non-object, a key
/// that is not overridable per pipeline, or a value out of range.
#[tracing::instrument(skip(services, caller, overrides), fields(pipeline = %address))]
pub async fn set_pipeline_retention(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    overrides: &Value,
) -> Result<PipelineRetention, ServiceError> {
    // Checks every key and value (nulls included) before anything is read.
    let overrides = RetentionOverrides::parse(overrides)?;
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let pipeline = pipelines::get_by_ref(&transaction, address).await?;
    require_on_loaded(&transaction, caller, &pipeline, Permission::Write, "changing").await?;
    pipelines::set_retention_config(&transaction, pipeline.id, overrides.to_json().as_ref()).await?;
    let retention = pipeline_retention_of(&transaction, pipeline.id, overrides).await?;
    transaction.commit().await?;
    Ok(retention)
}
