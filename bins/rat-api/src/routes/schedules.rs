//! `/api/v1/schedules`: cron schedules of pipelines (contract §8).
//!
//! Additions to ratd's object: `timezone` (IANA name, default `UTC`), settable
//! on create and update. `next_run_at` is recomputed by every create and
//! update; it is `null` while a schedule is disabled.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_domain::ScheduleId;
use rat_domain::{CronExpr, Layer, NamespaceName, PipelineName, Schedule, ScheduleTimezone};
use rat_service::schedules::ScheduleFilter;
use rat_service::schedules::{ScheduleChanges, ScheduleSpec};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams, given, path_id, pipeline_ref};
use crate::middleware::AuditObject;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
}

/// A cron schedule.
#[derive(Debug, Serialize, ToSchema)]
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
    #[serde(with = "crate::routes::rfc3339::option")]
    pub last_run_at: Option<OffsetDateTime>,
    /// Its next slot; `null` while disabled.
    #[serde(with = "crate::routes::rfc3339::option")]
    pub next_run_at: Option<OffsetDateTime>,
    /// Creation time.
    #[serde(with = "crate::routes::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "crate::routes::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Schedule> for ScheduleDto {
    fn from(s: Schedule) -> Self {
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

/// Filters of `GET /schedules`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    /// The page, oldest first.
    pub schedules: Vec<ScheduleDto>,
    /// Count of every schedule matching the filters.
    pub total: i64,
}

/// Schedules, filtered and paged in SQL, oldest first.
#[utoipa::path(get, path = "/schedules", tag = "schedules", params(ScheduleQuery), responses(
    (status = 200, body = ScheduleList), (status = 400, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    ApiQuery(query): ApiQuery<ScheduleQuery>,
) -> ApiResult<Json<ScheduleList>> {
    let page = PageParams {
        limit: query.limit,
        offset: query.offset,
    }
    .page()?;
    let enabled = match given(query.enabled).as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "enabled must be true or false, got {other:?}"
            )));
        }
    };
    let filter = ScheduleFilter {
        pipeline_id: None,
        enabled,
        namespace: given(query.namespace)
            .as_deref()
            .map(NamespaceName::parse)
            .transpose()?,
        layer: given(query.layer).as_deref().map(str::parse::<Layer>).transpose()?,
        pipeline: given(query.pipeline).as_deref().map(PipelineName::parse).transpose()?,
        readable_by: None,
    };
    let page = rat_service::schedules::list(&state.services, &identity.caller, &filter, page).await?;
    Ok(Json(ScheduleList {
        schedules: page.items.into_iter().map(ScheduleDto::from).collect(),
        total: page.total,
    }))
}

/// Body of `POST /schedules`.
#[derive(Debug, Deserialize, ToSchema)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSchedule {
    /// The new schedule's id.
    pub id: Uuid,
    /// Its expression.
    pub cron: String,
    /// Whether it fires.
    pub enabled: bool,
}

fn parse_timezone(value: Option<String>) -> Result<Option<ScheduleTimezone>, ApiError> {
    Ok(value.as_deref().map(ScheduleTimezone::parse).transpose()?)
}

/// Creates a schedule; its first slot is computed now.
#[utoipa::path(post, path = "/schedules", tag = "schedules", request_body = CreateSchedule, responses(
    (status = 201, body = CreatedSchedule), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<CreateSchedule>,
) -> ApiResult<impl IntoResponse> {
    let spec = ScheduleSpec {
        address: pipeline_ref(&body.namespace, &body.layer, &body.pipeline)?,
        cron: CronExpr::parse(&body.cron)?,
        timezone: parse_timezone(body.timezone)?.unwrap_or_default(),
        enabled: body.enabled.unwrap_or(true),
    };
    let schedule =
        rat_service::schedules::create(&state.services, &identity.caller, &spec, OffsetDateTime::now_utc()).await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditObject::new(
            "schedule.create",
            "schedule",
            Some(schedule.id.into()),
        )),
        Json(CreatedSchedule {
            id: schedule.id.into(),
            cron: schedule.cron_expr.as_str().to_owned(),
            enabled: schedule.enabled,
        }),
    ))
}

/// One schedule.
#[utoipa::path(get, path = "/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "schedule id")),
    responses((status = 200, body = ScheduleDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleDto>> {
    let id: ScheduleId = path_id(&id, "schedule")?;
    Ok(Json(
        rat_service::schedules::get(&state.services, &identity.caller, id)
            .await?
            .into(),
    ))
}

/// Body of `PUT /schedules/{id}`; absent or null fields keep their value.
#[derive(Debug, Default, Deserialize, ToSchema)]
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

/// Changes a schedule's expression, time zone or enabled flag; recomputes `next_run_at`.
#[utoipa::path(put, path = "/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "schedule id")), request_body = UpdateSchedule,
    responses((status = 200, body = ScheduleDto), (status = 400, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateSchedule>,
) -> ApiResult<impl IntoResponse> {
    let id: ScheduleId = path_id(&id, "schedule")?;
    let changes = ScheduleChanges {
        cron: body.cron.as_deref().map(CronExpr::parse).transpose()?,
        timezone: parse_timezone(body.timezone)?,
        enabled: body.enabled,
    };
    let schedule = rat_service::schedules::update(
        &state.services,
        &identity.caller,
        id,
        &changes,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok((
        Extension(AuditObject::new(
            "schedule.update",
            "schedule",
            Some(schedule.id.into()),
        )),
        Json(ScheduleDto::from(schedule)),
    ))
}

/// Deletes a schedule; the runs it created stay.
#[utoipa::path(delete, path = "/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "schedule id")),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id: ScheduleId = path_id(&id, "schedule")?;
    rat_service::schedules::delete(&state.services, &identity.caller, id).await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditObject::new("schedule.delete", "schedule", Some(id.into()))),
    ))
}
