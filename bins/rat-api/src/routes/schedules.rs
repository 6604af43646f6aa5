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
use rat_domain::{CronExpr, Layer, NamespaceName, PipelineName, ScheduleTimezone};
use rat_service::schedules::ScheduleFilter;
use rat_service::schedules::{ScheduleChanges, ScheduleSpec};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams, given, path_id, pipeline_ref};
use crate::middleware::AuditObject;
use crate::state::AppState;
use rat_wire::schedules::{CreateSchedule, CreatedSchedule, ScheduleDto, ScheduleList, ScheduleQuery, UpdateSchedule};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
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
