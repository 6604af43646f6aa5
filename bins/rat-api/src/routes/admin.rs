//! `/api/v1`: Retention settings, reaper status and on-demand passes; per-pipeline retention (contract §12).
//!
//! Unlike ratd, a `PUT` of the settings may be partial (missing keys keep
//! their value) and every value is range-checked, so no setting can ever mean
//! "delete everything"; per-pipeline overrides are stored, read back and
//! honoured.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_service::retention::PipelineRetention;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams};
use crate::middleware::AuditObject;
use crate::routes::pipelines::{PipelinePath, address};
use crate::state::AppState;
pub use rat_wire::admin::{
    FailedMergeDto, FailedMergeList, PipelineRetentionDto, ReaperCountersDto, ReaperStatusDto, RetentionConfig,
    RetentionConfigResponse,
};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_config, put_config))
        .routes(routes!(get_status))
        .routes(routes!(run))
        .routes(routes!(list_failed_merges))
        .routes(routes!(get_pipeline_retention, put_pipeline_retention))
}

/// The system retention settings.
#[utoipa::path(get, path = "/admin/retention/config", tag = "retention", responses(
    (status = 200, body = RetentionConfigResponse)))]
pub async fn get_config(State(state): State<AppState>) -> ApiResult<Json<RetentionConfigResponse>> {
    let config = rat_service::retention::config(&state.services).await?;
    Ok(Json(RetentionConfigResponse { config: config.into() }))
}

/// The settings object of a `PUT` body: `{config:{…}}` (the shape of the
/// answer) or the bare keys (what ratd's SDK sends). `config` is not a
/// setting's name, so the two cannot be confused.
fn settings_patch(body: Value) -> Value {
    match body {
        Value::Object(mut object) if object.len() == 1 && object.get("config").is_some_and(Value::is_object) => {
            object.remove("config").unwrap_or_default()
        }
        other => other,
    }
}

/// Changes some retention settings; missing keys keep their value. Every
/// value is range-checked; an unknown key, a non-integer or a value out of
/// range (0 and negatives included) is a 400 and changes nothing. Accepts
/// `{config:{…}}` or the bare keys.
#[utoipa::path(put, path = "/admin/retention/config", tag = "retention",
    request_body(content = Object, description = "Some of the settings' keys, bare or as `{config:{…}}`"),
    responses((status = 200, body = RetentionConfigResponse), (status = 400, body = ErrorEnvelope)))]
pub async fn put_config(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<impl IntoResponse> {
    let config =
        rat_service::retention::update_config(&state.services, &identity.caller, &settings_patch(body)).await?;
    Ok((
        Extension(AuditObject::new("retention.update", "settings", None)),
        Json(RetentionConfigResponse { config: config.into() }),
    ))
}

/// The reaper's last pass and cumulative counters.
#[utoipa::path(get, path = "/admin/retention/status", tag = "retention", responses(
    (status = 200, body = ReaperStatusDto)))]
pub async fn get_status(State(state): State<AppState>) -> ApiResult<Json<ReaperStatusDto>> {
    let status = rat_service::retention::status(&state.services).await?;
    Ok(Json(status.into()))
}

/// Asks the reaper (a separate process) for a pass now, through Postgres, so
/// any api replica can; answers 202 with the status, the request included.
#[utoipa::path(post, path = "/admin/retention/run", tag = "retention", responses(
    (status = 202, body = ReaperStatusDto), (status = 503, body = ErrorEnvelope)))]
pub async fn run(State(state): State<AppState>, identity: Identity) -> ApiResult<impl IntoResponse> {
    let status =
        rat_service::retention::request_run(&state.services, &identity.caller, OffsetDateTime::now_utc()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Extension(AuditObject::new("retention.run", "reaper", None)),
        Json(ReaperStatusDto::from(status)),
    ))
}

/// The wire shape of a pipeline's retention.
fn retention_dto(r: PipelineRetention) -> PipelineRetentionDto {
    PipelineRetentionDto {
        system: r.system.into(),
        overrides: r.overrides.to_json(),
        effective: r.effective.into(),
    }
}

/// The retention of one pipeline.
#[utoipa::path(get, path = "/pipelines/{namespace}/{layer}/{name}/retention", tag = "retention",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path)), responses(
    (status = 200, body = PipelineRetentionDto), (status = 400, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope)))]
pub async fn get_pipeline_retention(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
) -> ApiResult<Json<PipelineRetentionDto>> {
    let address = address(path)?;
    let retention = rat_service::retention::pipeline_retention(&state.services, &identity.caller, &address).await?;
    Ok(Json(retention_dto(retention)))
}

/// Replaces a pipeline's overrides with the body, the whole set (as ratd
/// does, and as the portal's form expects): a key with a value overrides
/// that setting, a missing or `null` key does not, so `{}` removes every
/// override. `runs_max_per_pipeline`, `runs_max_age_days`,
/// `logs_max_age_days`, `quality_results_max_per_test`,
/// `stuck_run_timeout_minutes`, `iceberg_snapshot_max_age_days` and
/// `iceberg_orphan_file_max_age_days` may be overridden, each range-checked;
/// anything else is a 400 and changes nothing. Answers like the `GET` (ratd
/// answers 204).
#[utoipa::path(put, path = "/pipelines/{namespace}/{layer}/{name}/retention", tag = "retention",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path)),
    request_body(content = Object, description = "The whole set of overrides (a missing or `null` key: the system setting applies)"), responses(
    (status = 200, body = PipelineRetentionDto), (status = 400, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope)))]
pub async fn put_pipeline_retention(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<impl IntoResponse> {
    let address = address(path)?;
    let retention =
        rat_service::retention::set_pipeline_retention(&state.services, &identity.caller, &address, &body).await?;
    Ok((
        Extension(AuditObject::new(
            "pipeline.retention",
            "pipeline",
            Some(retention.pipeline_id.into()),
        )),
        Json(retention_dto(retention)),
    ))
}

/// Merge failures runners reported, newest first, paged (admins only; kept
/// for `audit_log_max_age_days`).
#[utoipa::path(get, path = "/admin/failed-merges", tag = "retention", params(PageParams), responses(
    (status = 200, body = FailedMergeList), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_failed_merges(
    State(state): State<AppState>,
    identity: Identity,
    ApiQuery(query): ApiQuery<PageParams>,
) -> ApiResult<Json<FailedMergeList>> {
    let page = rat_service::failed_merges::list(&state.services, &identity.caller, query.page()?).await?;
    Ok(Json(FailedMergeList {
        failed_merges: page
            .items
            .into_iter()
            .map(|m| FailedMergeDto {
                id: m.id,
                run_id: m.report.run_id,
                branch_name: m.report.branch_name,
                source_hash: m.report.source_hash,
                target_hash: m.report.target_hash,
                error_kind: m.report.error_kind,
                error_message: m.report.error_message,
                created_at: m.created_at,
            })
            .collect(),
        total: page.total,
    }))
}
