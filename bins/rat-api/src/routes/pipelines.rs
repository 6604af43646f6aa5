//! `/api/v1/pipelines` (contract §4).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_domain::{Layer, NamespaceName, PipelineId, PipelineRef, PipelineSortField, PipelineType, Sort};
use rat_service::pipelines::{DeletedView, NewPipeline, PipelineFilter, PipelineUpdate};
use time::OffsetDateTime;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams, etag, given, if_match, pipeline_ref};
use crate::middleware::AuditObject;
use crate::state::AppState;
use rat_service::concurrency::row_version;
use rat_wire::pipelines::{
    CreatePipeline, CreatedPipeline, PipelineDto, PipelineList, PipelineQuery, RestoreQuery, UpdatePipeline,
};

/// The wire shape of a soft-deleted pipeline: who deleted it and until when it can be restored.
pub(crate) fn deleted_dto(view: DeletedView) -> PipelineDto {
    let mut dto = PipelineDto::from(view.pipeline);
    dto.deleted_by = view.deleted_by;
    dto.purge_after = Some(view.purge_after);
    dto
}

/// Live pipelines (or, with `deleted=true`, soft-deleted ones), filtered,
/// searched, sorted and paged in SQL.
#[utoipa::path(get, path = "/pipelines", tag = "pipelines", params(PipelineQuery), responses(
    (status = 200, body = PipelineList), (status = 400, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    ApiQuery(query): ApiQuery<PipelineQuery>,
) -> ApiResult<Json<PipelineList>> {
    let page = PageParams {
        limit: query.limit,
        offset: query.offset,
    }
    .page()?;
    let filter = PipelineFilter {
        // An empty filter is no filter, as on every other list (clients send `""` for none).
        namespace: given(query.namespace)
            .as_deref()
            .map(NamespaceName::parse)
            .transpose()?,
        layer: given(query.layer).as_deref().map(str::parse::<Layer>).transpose()?,
        search: query.search.filter(|s| !s.is_empty()),
        readable_by: None,
    };
    if filter.search.as_ref().is_some_and(|s| s.len() > 255) {
        return Err(ApiError::invalid("search must be at most 255 characters"));
    }
    let sort = match query.sort.as_deref() {
        None | Some("") => rat_service::pipelines::DEFAULT_SORT,
        Some(text) => Sort::<PipelineSortField>::parse(text)?,
    };
    let deleted = match query.deleted.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("deleted must be true or false")),
    };
    if deleted {
        let page = rat_service::pipelines::list_deleted(&state.services, &identity.caller, &filter, sort, page).await?;
        return Ok(Json(PipelineList {
            pipelines: page.items.into_iter().map(deleted_dto).collect(),
            total: page.total,
        }));
    }
    let page = rat_service::pipelines::list(&state.services, &identity.caller, &filter, sort, page).await?;
    Ok(Json(PipelineList {
        pipelines: page.items.into_iter().map(PipelineDto::from).collect(),
        total: page.total,
    }))
}

/// Creates a pipeline and writes its starter files.
#[utoipa::path(post, path = "/pipelines", tag = "pipelines", request_body = CreatePipeline, responses(
    (status = 201, body = CreatedPipeline), (status = 400, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<CreatePipeline>,
) -> ApiResult<impl IntoResponse> {
    let address = pipeline_ref(&body.namespace, &body.layer, &body.name)?;
    let pipeline_type = match body.pipeline_type.as_deref() {
        None | Some("") => PipelineType::Sql,
        Some(text) => text.parse()?,
    };
    let created = rat_service::pipelines::create_pipeline(
        &state.services,
        &identity.caller,
        NewPipeline {
            address,
            pipeline_type,
            description: body.description.unwrap_or_default(),
            owner: Some(identity.actor),
            max_versions: None,
        },
    )
    .await?;
    let pipeline = created.pipeline;
    let files_created = created
        .files_created
        .iter()
        .map(|key| key.strip_prefix(pipeline.s3_path.as_str()).unwrap_or(key).to_owned())
        .collect();
    Ok((
        StatusCode::CREATED,
        Extension(AuditObject::new(
            "pipeline.create",
            "pipeline",
            Some(pipeline.id.into()),
        )),
        Json(CreatedPipeline {
            id: pipeline.id.into(),
            namespace: pipeline.address.namespace.to_string(),
            layer: pipeline.address.layer.to_string(),
            name: pipeline.address.name.to_string(),
            s3_path: pipeline.s3_path.to_string(),
            files_created,
        }),
    ))
}

/// `{namespace}/{layer}/{name}` path of one pipeline.
pub type PipelinePath = Path<(String, String, String)>;

/// Validates a pipeline path.
pub fn address(Path((namespace, layer, name)): PipelinePath) -> Result<PipelineRef, ApiError> {
    pipeline_ref(&namespace, &layer, &name)
}

/// One live pipeline, with its version as `ETag` (send it back as
/// `If-Match` on `PUT`/`DELETE` to refuse a stale write with 412).
#[utoipa::path(get, path = "/pipelines/{namespace}/{layer}/{name}", tag = "pipelines",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path)), responses(
    (status = 200, body = PipelineDto, headers(("ETag" = String, description = "The pipeline's version"))),
    (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
) -> ApiResult<impl IntoResponse> {
    let address = address(path)?;
    let pipeline = rat_service::pipelines::get(&state.services, &identity.caller, &address).await?;
    Ok((
        etag(&row_version(pipeline.updated_at)),
        Json(PipelineDto::from(pipeline)),
    ))
}

/// Changes a pipeline's description, type, owner or history size. A new
/// owner is a transfer: 403 unless the caller owns the pipeline, as
/// `POST /sharing/transfer` requires.
#[utoipa::path(put, path = "/pipelines/{namespace}/{layer}/{name}", tag = "pipelines",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path)),
    request_body = UpdatePipeline, responses(
    (status = 200, body = PipelineDto, headers(("ETag" = String, description = "The new version"))),
    (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope), (status = 412, body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpdatePipeline>,
) -> ApiResult<impl IntoResponse> {
    let address = address(path)?;
    let if_match = if_match(&headers)?;
    let max_versions = body
        .max_versions
        .map(|n| i32::try_from(n).map_err(|_| ApiError::invalid("max_versions is out of range")))
        .transpose()?;
    let changes = PipelineUpdate {
        description: body.description,
        pipeline_type: body.pipeline_type.as_deref().map(str::parse).transpose()?,
        // The portal sends `""` when there is no owner: no change.
        owner: crate::extract::given(body.owner),
        max_versions,
    };
    let pipeline =
        rat_service::pipelines::update_if(&state.services, &identity.caller, &address, &changes, if_match.as_ref())
            .await?;
    Ok((
        etag(&row_version(pipeline.updated_at)),
        Extension(AuditObject::new(
            "pipeline.update",
            "pipeline",
            Some(pipeline.id.into()),
        )),
        Json(PipelineDto::from(pipeline)),
    ))
}

/// Soft-deletes a pipeline; its name is free again at once. With
/// `If-Match`, only while the pipeline is at that version (412 otherwise).
#[utoipa::path(delete, path = "/pipelines/{namespace}/{layer}/{name}", tag = "pipelines",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path)), responses(
    (status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 412, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let address = address(path)?;
    let if_match = if_match(&headers)?;
    let deleted = rat_service::pipelines::delete_if(
        &state.services,
        &identity.caller,
        &address,
        if_match.as_ref(),
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditObject::new("pipeline.delete", "pipeline", Some(deleted.id.into()))),
    ))
}

/// One soft-deleted pipeline (not yet purged), by id, with `deleted_at`,
/// `deleted_by` and `purge_after`.
#[utoipa::path(get, path = "/pipelines/deleted/{id}", tag = "pipelines",
    params(("id" = Uuid, Path, description = "The deleted pipeline's id")), responses(
    (status = 200, body = PipelineDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_deleted(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> ApiResult<Json<PipelineDto>> {
    let id: PipelineId = id.parse()?;
    Ok(Json(deleted_dto(
        rat_service::pipelines::get_deleted(&state.services, &identity.caller, id).await?,
    )))
}

/// Restores a soft-deleted pipeline within its grace period: the row, its
/// runs, schedules, triggers, quality tests and versions, and its draft
/// files as they were at the delete. 409 when a live pipeline has the name
/// (nothing changes); 404 when there is no deleted pipeline there, or it is
/// past `purge_after`. Needs what the delete needs (owner or admin).
#[utoipa::path(post, path = "/pipelines/{namespace}/{layer}/{name}/restore", tag = "pipelines",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path), RestoreQuery),
    responses(
    (status = 200, body = PipelineDto), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn restore(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
    ApiQuery(query): ApiQuery<RestoreQuery>,
) -> ApiResult<impl IntoResponse> {
    let address = address(path)?;
    let id = query
        .id
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::parse::<PipelineId>)
        .transpose()?;
    let restored = rat_service::pipelines::restore_at(
        &state.services,
        &identity.caller,
        &address,
        id,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok((
        Extension(AuditObject::new(
            "pipeline.restore",
            "pipeline",
            Some(restored.id.into()),
        )),
        Json(PipelineDto::from(restored)),
    ))
}
