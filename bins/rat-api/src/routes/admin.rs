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
use rat_domain::{ReaperStatus, RetentionSettings};
use rat_service::retention::PipelineRetention;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams};
use crate::middleware::AuditObject;
use crate::routes::pipelines::{PipelinePath, address};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_config, put_config))
        .routes(routes!(get_status))
        .routes(routes!(run))
        .routes(routes!(list_failed_merges))
        .routes(routes!(get_pipeline_retention, put_pipeline_retention))
}

/// The retention settings (every key).
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionConfig {
    /// Runs kept per pipeline, newest first (1..=1,000,000).
    pub runs_max_per_pipeline: i64,
    /// Terminal runs older than this are deleted (days, 1..=36,500).
    pub runs_max_age_days: i64,
    /// Run logs older than this are cleared (days, 1..=36,500).
    pub logs_max_age_days: i64,
    /// Quality results kept per test, newest first (1..=1,000,000).
    pub quality_results_max_per_test: i64,
    /// Soft-deleted pipelines are purged after this (days, 1..=36,500).
    pub soft_delete_purge_days: i64,
    /// Running runs older than this are failed as stuck (minutes, 1..=525,600).
    pub stuck_run_timeout_minutes: i64,
    /// Audit entries older than this are deleted (days, 1..=36,500).
    pub audit_log_max_age_days: i64,
    /// Orphan Nessie branches older than this are deleted (hours, 1..=87,600).
    pub nessie_orphan_branch_max_age_hours: i64,
    /// Minutes between reaper passes (1..=10,080).
    pub reaper_interval_minutes: i64,
    /// Iceberg snapshots older than this are expired (days, 1..=36,500).
    pub iceberg_snapshot_max_age_days: i64,
    /// Iceberg orphan files older than this are removed (days, 1..=36,500).
    pub iceberg_orphan_file_max_age_days: i64,
}

impl From<RetentionSettings> for RetentionConfig {
    fn from(s: RetentionSettings) -> Self {
        RetentionConfig {
            runs_max_per_pipeline: s.runs_max_per_pipeline,
            runs_max_age_days: s.runs_max_age_days,
            logs_max_age_days: s.logs_max_age_days,
            quality_results_max_per_test: s.quality_results_max_per_test,
            soft_delete_purge_days: s.soft_delete_purge_days,
            stuck_run_timeout_minutes: s.stuck_run_timeout_minutes,
            audit_log_max_age_days: s.audit_log_max_age_days,
            nessie_orphan_branch_max_age_hours: s.nessie_orphan_branch_max_age_hours,
            reaper_interval_minutes: s.reaper_interval_minutes,
            iceberg_snapshot_max_age_days: s.iceberg_snapshot_max_age_days,
            iceberg_orphan_file_max_age_days: s.iceberg_orphan_file_max_age_days,
        }
    }
}

/// `{config}`: the system retention settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionConfigResponse {
    /// The settings.
    pub config: RetentionConfig,
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

/// The reaper's status row.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReaperStatusDto {
    /// Start of the last pass that finished (`null` before the first).
    #[serde(with = "crate::routes::rfc3339::option")]
    pub last_run_at: Option<OffsetDateTime>,
    /// The totals over every pass (these fields sit at the top level of
    /// the object, as ratd's clients read them).
    #[serde(flatten)]
    pub totals: ReaperCountersDto,
    /// Last change of the row.
    #[serde(with = "crate::routes::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// When a pass was last asked for; the reaper owes a pass while this is
    /// later than `last_run_at`.
    #[serde(with = "crate::routes::rfc3339::option")]
    pub run_requested_at: Option<OffsetDateTime>,
    /// What the last finished pass (the one that began at `last_run_at`)
    /// did on its own; zeros before the first.
    pub last_pass: ReaperCountersDto,
}

/// What one reaper pass did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReaperCountersDto {
    /// Runs deleted.
    pub runs_pruned: i64,
    /// Run logs cleared.
    pub logs_pruned: i64,
    /// Quality results deleted.
    pub quality_pruned: i64,
    /// Soft-deleted pipelines purged.
    pub pipelines_purged: i64,
    /// Stuck runs failed.
    pub runs_failed: i64,
    /// Orphan branches deleted.
    pub branches_cleaned: i64,
    /// Landing files purged.
    pub lz_files_cleaned: i64,
    /// Audit entries deleted.
    pub audit_pruned: i64,
}

impl From<rat_domain::ReaperCounters> for ReaperCountersDto {
    fn from(c: rat_domain::ReaperCounters) -> Self {
        ReaperCountersDto {
            runs_pruned: c.runs_pruned,
            logs_pruned: c.logs_pruned,
            quality_pruned: c.quality_pruned,
            pipelines_purged: c.pipelines_purged,
            runs_failed: c.runs_failed,
            branches_cleaned: c.branches_cleaned,
            lz_files_cleaned: c.lz_files_cleaned,
            audit_pruned: c.audit_pruned,
        }
    }
}

impl From<ReaperStatus> for ReaperStatusDto {
    fn from(s: ReaperStatus) -> Self {
        ReaperStatusDto {
            last_run_at: s.last_run_at,
            totals: s.counters.into(),
            updated_at: s.updated_at,
            run_requested_at: s.run_requested_at,
            last_pass: s.last_pass.into(),
        }
    }
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

/// A pipeline's retention: system settings, its overrides, and the result.
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineRetentionDto {
    /// The system settings.
    pub system: RetentionConfig,
    /// The pipeline's overrides (only overridden keys; `null` when none, as in ratd).
    #[schema(value_type = Option<Object>)]
    pub overrides: Option<Value>,
    /// The settings the reaper applies to this pipeline.
    pub effective: RetentionConfig,
}

impl From<PipelineRetention> for PipelineRetentionDto {
    fn from(r: PipelineRetention) -> Self {
        PipelineRetentionDto {
            system: r.system.into(),
            overrides: r.overrides.to_json(),
            effective: r.effective.into(),
        }
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
    Ok(Json(retention.into()))
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
        Json(PipelineRetentionDto::from(retention)),
    ))
}

/// A merge failure a runner reported.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedMergeDto {
    /// Row id.
    pub id: uuid::Uuid,
    /// The run, as the runner named it.
    pub run_id: String,
    /// The branch that did not merge.
    pub branch_name: String,
    /// The branch's hash, when reported.
    pub source_hash: Option<String>,
    /// The target's hash, when reported.
    pub target_hash: Option<String>,
    /// A short classification.
    pub error_kind: String,
    /// The error.
    pub error_message: String,
    /// When it was reported.
    #[serde(with = "crate::routes::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A page of merge failures.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedMergeList {
    /// The page, newest first.
    pub failed_merges: Vec<FailedMergeDto>,
    /// Count of every stored merge failure.
    pub total: i64,
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
