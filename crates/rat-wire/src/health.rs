//! `/health`, `/health/live`, `/health/ready` (at the root, outside `/api/v1`).

use serde::{Deserialize, Serialize};

/// Liveness answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// Crate version.
    pub version: String,
    /// Git commit of the build.
    pub git_commit: String,
    /// Build time.
    pub build_time: String,
}

/// One dependency's readiness.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Check {
    /// `ok` or `error`.
    pub status: String,
    /// Why it is not ready (no credentials or SQL in it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Readiness of each dependency.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Checks {
    /// The metadata database.
    pub postgres: Check,
    /// The file store.
    pub s3: Check,
}

/// Readiness answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// Each dependency.
    pub checks: Checks,
}
