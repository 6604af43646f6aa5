//! `/api/v1`: Publish, version history and rollback (contract §6), behind
//! the `pipeline_versions` feature flag.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams, pipeline_ref};
use crate::middleware::{AuditObject, Feature};
use crate::routes::pipelines::{PipelinePath, address};
use crate::state::AppState;
use rat_wire::versions::{PublishBody, PublishedDto, RollbackBody, RolledBackDto, VersionDto, VersionList, pins};

/// The routes of this module, answering 404 while `pipeline_versions` is off.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(publish))
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(rollback));
    crate::app::gated(Feature::PipelineVersions, state, routes)
}

/// Publishes a pipeline: pins the HEAD version of every file under its
/// directory as the next version, in one transaction (concurrent publishes
/// get consecutive numbers). 409 `FAILED_PRECONDITION` when the pipeline has
/// no file (ratd answers 422 with a bare string); 503 when the store fails
/// or answers without version ids (nothing is recorded then).
#[utoipa::path(post, path = "/pipelines/{namespace}/{layer}/{name}/publish", tag = "versions",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path)),
    request_body = PublishBody, responses(
    (status = 200, body = PublishedDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 409, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn publish(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
    ApiJson(body): ApiJson<PublishBody>,
) -> ApiResult<impl IntoResponse> {
    let address = address(path)?;
    let message = body.message.unwrap_or_default();
    let published = rat_service::versions::publish(
        &state.services,
        &identity.caller,
        &address,
        &message,
        OffsetDateTime::now_utc(),
    )
    .await?;
    let version = published.version;
    Ok((
        Extension(AuditObject::new(
            "pipeline.publish",
            "pipeline",
            Some(version.pipeline_id.into()),
        )),
        Json(PublishedDto {
            status: "published".to_owned(),
            version: version.version_number.get(),
            versions: pins(&version),
            message: version.message,
        }),
    ))
}

/// The pipeline's version history, newest first, paged.
#[utoipa::path(get, path = "/pipelines/{namespace}/{layer}/{name}/versions", tag = "versions",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path), PageParams),
    responses(
    (status = 200, body = VersionList), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<VersionList>> {
    let address = address(path)?;
    let page = page.page()?;
    let versions = rat_service::versions::list_versions(&state.services, &identity.caller, &address, page).await?;
    Ok(Json(VersionList {
        versions: versions.items.into_iter().map(VersionDto::from).collect(),
        total: versions.total,
    }))
}

/// Parses a version number given by a client: a whole number (the service
/// refuses numbers below 1).
fn version_number(text: &str) -> Result<i64, ApiError> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| ApiError::invalid(format!("version must be a whole number, got {text:?}")))
}

/// One version of the pipeline's history. 400 for a number below 1 or not a
/// number; 404 for an unknown or pruned version.
#[utoipa::path(get, path = "/pipelines/{namespace}/{layer}/{name}/versions/{number}", tag = "versions",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path),
        ("number" = String, Path, description = "Version number, 1 or more")),
    responses(
    (status = 200, body = VersionDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    identity: Identity,
    Path((namespace, layer, name, number)): Path<(String, String, String, String)>,
) -> ApiResult<Json<VersionDto>> {
    let address = pipeline_ref(&namespace, &layer, &name)?;
    let number = version_number(&number)?;
    let version = rat_service::versions::get_version(&state.services, &identity.caller, &address, number).await?;
    Ok(Json(version.into()))
}

/// Rolls back: a new version re-pins the snapshot of `version` (history is
/// never rewritten, no file content is copied). The draft stays dirty when
/// HEAD differs from the re-pinned snapshot (ratd always clears it). 400 for
/// a number below 1; 404 for an unknown or pruned version.
#[utoipa::path(post, path = "/pipelines/{namespace}/{layer}/{name}/rollback", tag = "versions",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path)),
    request_body = RollbackBody, responses(
    (status = 200, body = RolledBackDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 409, body = ErrorEnvelope)))]
pub async fn rollback(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
    ApiJson(body): ApiJson<RollbackBody>,
) -> ApiResult<impl IntoResponse> {
    let address = address(path)?;
    let rolled = rat_service::versions::rollback(
        &state.services,
        &identity.caller,
        &address,
        body.version,
        body.message.as_deref(),
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok((
        Extension(AuditObject::new(
            "pipeline.rollback",
            "pipeline",
            Some(rolled.version.pipeline_id.into()),
        )),
        Json(RolledBackDto {
            status: "rolled_back".to_owned(),
            from_version: rolled.from_version.get(),
            new_version: rolled.version.version_number.get(),
            message: rolled.version.message,
        }),
    ))
}
