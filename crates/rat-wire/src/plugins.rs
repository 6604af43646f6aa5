//! Registered plugins (`GET /api/v1/plugins`, and the answers of the
//! plugin routes of the runner listener).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A registered plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginDto {
    /// Unique name.
    pub name: String,
    /// The slot it fills.
    pub slot: String,
    /// Container image.
    pub image: String,
    /// `healthy`, `degraded`, `down` or `unknown`.
    pub status: String,
    /// Plugin configuration.
    pub config: serde_json::Value,
    /// Last health check.
    #[serde(with = "crate::rfc3339::option")]
    pub last_health: Option<OffsetDateTime>,
    /// Registration time.
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
}
