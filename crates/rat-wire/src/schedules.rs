//! `/api/v1/schedules` (contract §8): cron schedules of pipelines.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A cron schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleDto {
    /// Primary key.
    pub id: Uuid,
    /// The pipeline it starts.
    pub pipeline_id: Uuid,
    /// Cron expression: 5 fields, or 6 with leading seconds.
    pub cron: String,
    /// IANA time zone the expression is evaluated in (addition to ratd's object).
    pub timezone: String,
    /// Disabled schedules never fire.
    pub enabled: bool,
    /// The last run it created.
    pub last_run_id: Option<Uuid>,
    /// When it last fired.
    #[serde(with = "crate::rfc3339::option")]
    pub last_run_at: Option<OffsetDateTime>,
    /// Its next slot; `null` while disabled.
    #[serde(with = "crate::rfc3339::option")]
    pub next_run_at: Option<OffsetDateTime>,
    /// Creation time.
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "crate::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Filters of `GET /schedules`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ScheduleQuery {
    /// Schedules of live pipelines in this namespace.
    pub namespace: Option<String>,
    /// Schedules of live pipelines in this layer.
    pub layer: Option<String>,
    /// Schedules of live pipelines with this name.
    pub pipeline: Option<String>,
    /// `true` or `false`: only enabled (or disabled) schedules.
    pub enabled: Option<String>,
    /// Rows per page (default 50, at most 200).
    pub limit: Option<String>,
    /// Rows to skip.
    pub offset: Option<String>,
}

/// A page of schedules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleList {
    /// The page, oldest first.
    pub schedules: Vec<ScheduleDto>,
    /// Count of every schedule matching the filters.
    pub total: i64,
}

/// Body of `POST /schedules`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// Namespace of the pipeline.
    pub namespace: String,
    /// Layer of the pipeline.
    pub layer: String,
    /// Name of the pipeline.
    pub pipeline: String,
    /// Cron expression: 5 fields, or 6 with leading seconds.
    pub cron: String,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// IANA time zone (default `UTC`).
    #[serde(default)]
    pub timezone: Option<String>,
}

/// Answer of `POST /schedules`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedSchedule {
    /// The new schedule's id.
    pub id: Uuid,
    /// Its expression.
    pub cron: String,
    /// Whether it fires.
    pub enabled: bool,
}

/// Body of `PUT /schedules/{id}`; absent or null fields keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateSchedule {
    /// New cron expression (validated, unlike ratd).
    #[serde(default)]
    pub cron: Option<String>,
    /// Enable or disable.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// New IANA time zone.
    #[serde(default)]
    pub timezone: Option<String>,
}

#[cfg(feature = "domain")]
impl From<rat_domain::Schedule> for ScheduleDto {
    fn from(s: rat_domain::Schedule) -> Self {
        ScheduleDto {
            id: s.id.into(),
            pipeline_id: s.pipeline_id.into(),
            cron: s.cron_expr.as_str().to_owned(),
            timezone: s.timezone.name().to_owned(),
            enabled: s.enabled,
            last_run_id: s.last_run_id.map(Into::into),
            last_run_at: s.last_run_at,
            next_run_at: s.next_run_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}
