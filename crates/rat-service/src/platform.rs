//! Platform-wide reads: feature flags and registered plugins.

use rat_dao::{plugins, settings};
use rat_domain::{FeatureFlags, PageRequest, Plugin, PluginStatus};

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
