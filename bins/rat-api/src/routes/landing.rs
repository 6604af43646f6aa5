//! `/api/v1`: Landing zones, their files, samples and lifecycle (contract §11).
//!
//! The wire shapes are ratd's (and its TypeScript SDK's): zones list as
//! `{zones, total}`, files as `{files, total}`, samples as
//! `{files:[{path, filename, size, modified, type}], total}`; a sample upload
//! answers `{path, filename, size, status:"uploaded"}`. Uploads are multipart
//! with a `file` part, limited to the configured upload size (413 above it).

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rat_domain::{NamespaceName, ZoneName};
use rat_service::landing::{NewLandingZone, ZoneUpdate};
use rat_service::landing::{Sample, Upload};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, CursorPageParams, Identity, PageParams, etag, if_match};
use crate::middleware::{AuditObject, Feature};
use crate::state::AppState;
use crate::uploads::{self, FieldSource, multipart_error};
use rat_service::concurrency::row_version;
pub use rat_wire::landing::{
    CreateZone, FileDto, FileList, LifecycleDto, SampleDto, SampleList, UpdateLifecycle, UpdateZone, UploadedSample,
    ZoneDto, ZoneList, ZoneQuery,
};

/// The routes of this module, answering 404 while the `landing_zones` feature is off.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    // Upload routes take multipart bodies up to the upload limit instead of
    // the JSON limit; this inner limit overrides the one of `api_v1`.
    let uploads = OpenApiRouter::new()
        .routes(routes!(list_files, upload_file))
        .routes(routes!(list_samples, upload_sample))
        .layer(DefaultBodyLimit::max(state.settings.max_upload));
    let routes = OpenApiRouter::new()
        .routes(routes!(list_zones, create_zone))
        .routes(routes!(get_zone, update_zone, delete_zone))
        .routes(routes!(get_file, delete_file))
        .routes(routes!(delete_sample))
        .routes(routes!(get_lifecycle, update_lifecycle))
        .merge(uploads);
    crate::app::gated(Feature::LandingZones, state, routes)
}

/// `{namespace}/{name}` path of one zone.
type ZonePath = Path<(String, String)>;

fn zone_address(namespace: &str, name: &str) -> ApiResult<(NamespaceName, ZoneName)> {
    Ok((NamespaceName::parse(namespace)?, ZoneName::parse(name)?))
}

/// Landing zones with their file counts and sizes.
#[utoipa::path(get, path = "/landing-zones", tag = "landing zones", params(ZoneQuery), responses(
    (status = 200, body = ZoneList), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn list_zones(
    State(state): State<AppState>,
    identity: Identity,
    ApiQuery(query): ApiQuery<ZoneQuery>,
) -> ApiResult<Json<ZoneList>> {
    let page = PageParams {
        limit: query.limit,
        offset: query.offset,
    }
    .page()?;
    let namespace = query
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .map(NamespaceName::parse)
        .transpose()?;
    let page = rat_service::landing::list_zones(&state.services, &identity.caller, namespace.as_ref(), page).await?;
    Ok(Json(ZoneList {
        zones: page.items.into_iter().map(ZoneDto::from).collect(),
        total: page.total,
    }))
}

/// Creates a landing zone owned by the caller.
#[utoipa::path(post, path = "/landing-zones", tag = "landing zones", request_body = CreateZone, responses(
    (status = 201, body = ZoneDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 409, body = ErrorEnvelope)))]
pub async fn create_zone(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<CreateZone>,
) -> ApiResult<impl IntoResponse> {
    let (namespace, name) = zone_address(&body.namespace, &body.name)?;
    let new = NewLandingZone {
        namespace,
        name,
        description: body.description.unwrap_or_default(),
        owner: Some(identity.actor),
        expected_schema: body.expected_schema.unwrap_or_default(),
    };
    let zone = rat_service::landing::create_zone(&state.services, &identity.caller, new).await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditObject::new(
            "landing_zone.create",
            "landing_zone",
            Some(zone.zone.id.into()),
        )),
        Json(ZoneDto::from(zone)),
    ))
}

/// One landing zone.
#[utoipa::path(get, path = "/landing-zones/{namespace}/{name}", tag = "landing zones",
    params(("namespace" = String, Path), ("name" = String, Path)), responses(
    (status = 200, body = ZoneDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_zone(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, name)): ZonePath,
) -> ApiResult<impl IntoResponse> {
    let (namespace, name) = zone_address(&ns, &name)?;
    let zone = rat_service::landing::get_zone(&state.services, &identity.caller, &namespace, &name).await?;
    Ok((etag(&row_version(zone.zone.updated_at)), Json(ZoneDto::from(zone))))
}

/// Changes a zone's description, owner or expected schema. A new owner is
/// 403 unless the caller owns the zone.
#[utoipa::path(put, path = "/landing-zones/{namespace}/{name}", tag = "landing zones",
    params(("namespace" = String, Path), ("name" = String, Path)), request_body = UpdateZone, responses(
    (status = 200, body = ZoneDto), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope), (status = 412, body = ErrorEnvelope)))]
pub async fn update_zone(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, name)): ZonePath,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<UpdateZone>,
) -> ApiResult<impl IntoResponse> {
    let (namespace, name) = zone_address(&ns, &name)?;
    let if_match = if_match(&headers)?;
    let changes = ZoneUpdate {
        description: body.description,
        // The portal sends `""` when there is no owner: no change.
        owner: crate::extract::given(body.owner),
        expected_schema: body.expected_schema,
    };
    let zone = rat_service::landing::update_zone_if(
        &state.services,
        &identity.caller,
        &namespace,
        &name,
        &changes,
        if_match.as_ref(),
    )
    .await?;
    Ok((
        etag(&row_version(zone.zone.updated_at)),
        Extension(AuditObject::new(
            "landing_zone.update",
            "landing_zone",
            Some(zone.zone.id.into()),
        )),
        Json(ZoneDto::from(zone)),
    ))
}

/// Deletes a zone with its files and samples (rows and objects).
#[utoipa::path(delete, path = "/landing-zones/{namespace}/{name}", tag = "landing zones",
    params(("namespace" = String, Path), ("name" = String, Path)), responses(
    (status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 412, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn delete_zone(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, name)): ZonePath,
    headers: axum::http::HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let (namespace, name) = zone_address(&ns, &name)?;
    let if_match = if_match(&headers)?;
    let zone =
        rat_service::landing::delete_zone_if(&state.services, &identity.caller, &namespace, &name, if_match.as_ref())
            .await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditObject::new(
            "landing_zone.delete",
            "landing_zone",
            Some(zone.id.into()),
        )),
    ))
}

/// The multipart form of an upload.
#[derive(Debug, ToSchema)]
pub struct ZoneUploadForm {
    /// The file; its name is reduced to a safe base name.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// The zone's files, newest first.
#[utoipa::path(get, path = "/landing-zones/{namespace}/{name}/files", tag = "landing zones",
    params(("namespace" = String, Path), ("name" = String, Path), CursorPageParams), responses(
    (status = 200, body = FileList), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn list_files(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, name)): ZonePath,
    ApiQuery(params): ApiQuery<CursorPageParams>,
) -> ApiResult<Json<FileList>> {
    let (namespace, name) = zone_address(&ns, &name)?;
    let (page, cursor) = params.page()?;
    let page = rat_service::landing::list_files(
        &state.services,
        &identity.caller,
        &namespace,
        &name,
        page,
        cursor.as_deref(),
    )
    .await?;
    Ok(Json(FileList {
        files: page.items.into_iter().map(FileDto::from).collect(),
        total: page.total,
        next_cursor: page.next_cursor,
    }))
}

/// Opens the multipart body of an upload (400 for anything else).
fn multipart_body(multipart: Result<Multipart, MultipartRejection>) -> ApiResult<Multipart> {
    multipart.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RESOURCE_EXHAUSTED",
                "upload is larger than the allowed size",
            )
        } else {
            ApiError::invalid("the body must be multipart/form-data with a file part")
        }
    })
}

/// Finds the `file` part of a multipart upload (other parts are ignored) and
/// hands its name and type, and the part itself to be read as a stream, to
/// `receive`.
async fn with_file_part<T>(
    multipart: &mut Multipart,
    receive: impl AsyncFnOnce(Upload, FieldSource<'_>) -> ApiResult<T>,
) -> ApiResult<T> {
    while let Some(field) = multipart.next_field().await.map_err(|e| multipart_error(&e))? {
        if field.name() != Some("file") {
            continue;
        }
        let uploaded_name = field
            .file_name()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::invalid("the file part needs a file name"))?;
        let basename = rat_service::landing::stored_basename(&uploaded_name)?;
        let content_type = field
            .content_type()
            .filter(|t| !t.is_empty())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let upload = Upload {
            basename,
            original_name: rat_service::landing::original_basename(&uploaded_name).to_owned(),
            content_type,
        };
        return receive(upload, FieldSource::new(field)).await;
    }
    Err(ApiError::invalid("file form field is required"))
}

/// Uploads a file to the zone (multipart part `file`). It is stored as
/// `{ns}/landing/{zone}/YYYYMMDD_HHMMSS_<token>_<base name>` (the token keeps
/// two uploads of one name in one second apart), streamed to the store as it
/// arrives; at most `RAT_MAX_CONCURRENT_UPLOADS` uploads are received at once
/// (others wait for a slot, then answer 503).
#[utoipa::path(post, path = "/landing-zones/{namespace}/{name}/files", tag = "landing zones",
    params(("namespace" = String, Path), ("name" = String, Path)),
    request_body(content = ZoneUploadForm, content_type = "multipart/form-data"), responses(
    (status = 201, body = FileDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 408, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn upload_file(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, name)): ZonePath,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let (namespace, name) = zone_address(&ns, &name)?;
    let mut multipart = multipart_body(multipart)?;
    let _slot = match uploads::slot(&state).await {
        Ok(slot) => slot,
        Err(busy) => return Ok(busy),
    };
    let file = with_file_part(&mut multipart, async |upload, mut source| {
        rat_service::landing::upload_file(
            &state.services,
            &identity.caller,
            &namespace,
            &name,
            upload,
            &mut source,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|e| uploads::upload_failed(&mut source, e))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditObject::new("landing_file.upload", "landing_file", Some(file.id))),
        Json(FileDto::from(file)),
    )
        .into_response())
}

/// `{namespace}/{name}/{id}` path of one file.
type FilePath = Path<(String, String, String)>;

fn file_address(namespace: &str, name: &str, id: &str) -> ApiResult<(NamespaceName, ZoneName, Uuid)> {
    let (namespace, name) = zone_address(namespace, name)?;
    let id = Uuid::parse_str(id).map_err(|_| ApiError::invalid(format!("invalid file id {id:?}")))?;
    Ok((namespace, name, id))
}

/// One file of the zone.
#[utoipa::path(get, path = "/landing-zones/{namespace}/{name}/files/{id}", tag = "landing zones",
    params(("namespace" = String, Path), ("name" = String, Path), ("id" = Uuid, Path)), responses(
    (status = 200, body = FileDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_file(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, name, id)): FilePath,
) -> ApiResult<Json<FileDto>> {
    let (namespace, name, id) = file_address(&ns, &name, &id)?;
    let file = rat_service::landing::get_file(&state.services, &identity.caller, &namespace, &name, id).await?;
    Ok(Json(file.into()))
}

/// Deletes a file of the zone: its object (older versions stay readable), then its row.
#[utoipa::path(delete, path = "/landing-zones/{namespace}/{name}/files/{id}", tag = "landing zones",
    params(("namespace" = String, Path), ("name" = String, Path), ("id" = Uuid, Path)), responses(
    (status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 503, body = ErrorEnvelope)))]
pub async fn delete_file(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, name, id)): FilePath,
) -> ApiResult<impl IntoResponse> {
    let (namespace, name, id) = file_address(&ns, &name, &id)?;
    let file = rat_service::landing::delete_file(&state.services, &identity.caller, &namespace, &name, id).await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditObject::new("landing_file.delete", "landing_file", Some(file.id))),
    ))
}

/// The wire shape of a sample file.
fn sample_dto(s: Sample) -> SampleDto {
    SampleDto {
        path: s.key.as_str().to_owned(),
        filename: s.filename,
        size: s.size,
        modified: s.modified,
        file_type: String::new(),
    }
}

/// The zone's sample files, by name.
#[utoipa::path(get, path = "/landing-zones/{namespace}/{name}/samples", tag = "landing zones",
    params(("namespace" = String, Path), ("name" = String, Path), PageParams), responses(
    (status = 200, body = SampleList), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn list_samples(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, name)): ZonePath,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<SampleList>> {
    let (namespace, name) = zone_address(&ns, &name)?;
    let page =
        rat_service::landing::list_samples(&state.services, &identity.caller, &namespace, &name, page.page()?).await?;
    Ok(Json(SampleList {
        files: page.items.into_iter().map(sample_dto).collect(),
        total: page.total,
    }))
}

/// Uploads a sample file (multipart part `file`) to `{ns}/landing/{zone}/_samples/`,
/// under its base name (no timestamp: a sample of the same name is replaced).
#[utoipa::path(post, path = "/landing-zones/{namespace}/{name}/samples", tag = "landing zones",
    params(("namespace" = String, Path), ("name" = String, Path)),
    request_body(content = ZoneUploadForm, content_type = "multipart/form-data"), responses(
    (status = 201, body = UploadedSample), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 408, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn upload_sample(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, name)): ZonePath,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let (namespace, name) = zone_address(&ns, &name)?;
    let mut multipart = multipart_body(multipart)?;
    let _slot = match uploads::slot(&state).await {
        Ok(slot) => slot,
        Err(busy) => return Ok(busy),
    };
    let sample = with_file_part(&mut multipart, async |upload, mut source| {
        rat_service::landing::upload_sample(
            &state.services,
            &identity.caller,
            &namespace,
            &name,
            upload,
            &mut source,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|e| uploads::upload_failed(&mut source, e))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditObject::new("landing_sample.upload", "landing_zone", None)),
        Json(UploadedSample {
            path: sample.key.as_str().to_owned(),
            filename: sample.filename,
            size: sample.size,
            status: "uploaded".to_owned(),
        }),
    )
        .into_response())
}

/// Deletes a sample file (older versions stay readable).
#[utoipa::path(delete, path = "/landing-zones/{namespace}/{name}/samples/{filename}", tag = "landing zones",
    params(("namespace" = String, Path), ("name" = String, Path), ("filename" = String, Path)), responses(
    (status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_sample(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, name, filename)): Path<(String, String, String)>,
) -> ApiResult<impl IntoResponse> {
    let (namespace, name) = zone_address(&ns, &name)?;
    rat_service::landing::delete_sample(&state.services, &identity.caller, &namespace, &name, &filename).await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditObject::new("landing_sample.delete", "landing_zone", None)),
    ))
}

/// The zone's lifecycle settings.
#[utoipa::path(get, path = "/landing-zones/{namespace}/{name}/lifecycle", tag = "landing zones",
    params(("namespace" = String, Path), ("name" = String, Path)), responses(
    (status = 200, body = LifecycleDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_lifecycle(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, name)): ZonePath,
) -> ApiResult<Json<LifecycleDto>> {
    let (namespace, name) = zone_address(&ns, &name)?;
    let zone = rat_service::landing::get_zone(&state.services, &identity.caller, &namespace, &name).await?;
    Ok(Json(LifecycleDto::from(&zone.zone)))
}

/// Changes the zone's lifecycle settings; answers them as stored.
#[utoipa::path(put, path = "/landing-zones/{namespace}/{name}/lifecycle", tag = "landing zones",
    params(("namespace" = String, Path), ("name" = String, Path)), request_body = UpdateLifecycle, responses(
    (status = 200, body = LifecycleDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn update_lifecycle(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, name)): ZonePath,
    ApiJson(body): ApiJson<UpdateLifecycle>,
) -> ApiResult<impl IntoResponse> {
    let (namespace, name) = zone_address(&ns, &name)?;
    let max_age = body
        .processed_max_age_days
        .map(|days| days.map(rat_domain::parse_processed_max_age_days).transpose())
        .transpose()?;
    let zone = rat_service::landing::update_lifecycle(
        &state.services,
        &identity.caller,
        &namespace,
        &name,
        max_age,
        body.auto_purge,
    )
    .await?;
    Ok((
        Extension(AuditObject::new(
            "landing_zone.lifecycle",
            "landing_zone",
            Some(zone.id.into()),
        )),
        Json(LifecycleDto::from(&zone)),
    ))
}
