//! Registered plugins and their health.

use time::OffsetDateTime;

use crate::PluginName;

string_enum!(
    /// A plugin's last known health.
    PluginStatus, "status" {
        /// Answering health checks.
        Healthy => "healthy",
        /// Answering, with problems.
        Degraded => "degraded",
        /// Not answering.
        Down => "down",
        /// Never checked.
        Unknown => "unknown",
    }
);

/// A plugin as stored in `plugins`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plugin {
    /// Primary key.
    pub name: PluginName,
    /// The extension slot it fills (`auth`, `executor`, ...).
    pub slot: String,
    /// Container image.
    pub image: String,
    /// Last known health.
    pub status: PluginStatus,
    /// Plugin-specific configuration.
    pub config: serde_json::Value,
    /// Last health check.
    pub last_health: Option<OffsetDateTime>,
    /// Registration time.
    pub created_at: OffsetDateTime,
}
