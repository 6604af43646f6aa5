//! `GET /api/v1/features`, `/api/v1/plugins` and `/api/v1/runner/plugins`:
//! what the portal asks on start.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What this installation offers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Features {
    /// `community`.
    pub edition: String,
    /// Registered plugins by name, in ratd's shape (`{enabled, type}`).
    pub plugins: BTreeMap<String, PluginFeature>,
    /// Namespaces are supported.
    pub namespaces: bool,
    /// Several users with their own identities (an OIDC issuer is configured).
    pub multi_user: bool,
    /// Landing zones (feature flag).
    pub landing_zones: bool,
    /// Quality tests (feature flag).
    pub quality_tests: bool,
    /// The audit log (feature flag).
    pub audit_log: bool,
    /// Event triggers (feature flag).
    pub pipeline_triggers: bool,
    /// Publish, versions and rollback (feature flag).
    pub pipeline_versions: bool,
}

/// One registered plugin in [`Features`]: ratd's `PluginFeature`, plus its
/// health.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginFeature {
    /// Registered plugins are enabled (as `GET /plugins?status=enabled` lists them).
    pub enabled: bool,
    /// The slot it fills (`auth`, `executor`, ...).
    #[serde(rename = "type")]
    pub slot: String,
    /// Last known health: `healthy`, `degraded`, `down` or `unknown`.
    pub status: String,
}

/// Filters of `GET /plugins`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct PluginQuery {
    /// `enabled` (every registered plugin) or a health status.
    pub status: Option<String>,
}

/// A plugin a live runner can load (RAT's runner's Python entry points:
/// merge strategies such as `soft_delete`, hooks).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunnerPluginDto {
    /// Entry point name.
    pub name: String,
    /// Entry point group.
    pub group: String,
    /// The providing package's version.
    pub version: String,
    /// The providing package.
    pub package_name: String,
}
