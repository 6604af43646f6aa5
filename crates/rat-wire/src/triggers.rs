//! `/api/v1/pipelines/{…}/triggers` (contract §9): what starts a pipeline
//! besides a schedule.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// A trigger.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriggerDto {
    /// Primary key.
    pub id: Uuid,
    /// The pipeline it starts.
    pub pipeline_id: Uuid,
    /// `pipeline_success`, `landing_zone_upload`, `file_pattern`, `webhook`, `cron` or `cron_dependency`.
    #[serde(rename = "type")]
    pub trigger_type: String,
    /// The type's config (`{}` for a webhook: its token hash is never shown).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: Value,
    /// Disabled triggers never fire.
    pub enabled: bool,
    /// Minimum seconds between two fires.
    pub cooldown_seconds: i32,
    /// When it last fired.
    #[serde(with = "crate::rfc3339::option")]
    pub last_triggered_at: Option<OffsetDateTime>,
    /// The last run it created.
    pub last_run_id: Option<Uuid>,
    /// Creation time.
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "crate::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Webhook triggers only: where to send the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Webhook triggers only, in the answer to the creation only: the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_token: Option<String>,
}

/// A page of triggers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriggerList {
    /// The page, oldest first.
    pub triggers: Vec<TriggerDto>,
    /// Count of every trigger of the pipeline.
    pub total: i64,
}

/// Body of `POST /pipelines/{…}/triggers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTrigger {
    /// The trigger's type.
    #[serde(rename = "type")]
    pub trigger_type: String,
    /// The type's config; `{}` (or absent) for a webhook, whose token the server makes.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub config: Option<Value>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// 0 (default) to 2,592,000 (30 days).
    #[serde(default)]
    pub cooldown_seconds: Option<i64>,
}

/// Body of `PUT /pipelines/{…}/triggers/{id}`; absent or null fields keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTrigger {
    /// Must be the trigger's own type if given: a type never changes.
    #[serde(rename = "type", default)]
    pub trigger_type: Option<String>,
    /// A new config of the trigger's type (validated; a webhook takes only `{}`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub config: Option<Value>,
    /// Enable or disable.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// 0 to 2,592,000 (30 days).
    #[serde(default)]
    pub cooldown_seconds: Option<i64>,
}
