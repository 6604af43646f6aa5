//! `/api/v1/files`: files in the versioned store (contract §5).
//!
//! Paths are full object keys (`{ns}/pipelines/{layer}/{name}/pipeline.sql`).
//! Every path is checked by [`file_key`] before any store call. A write,
//! upload or delete inside a pipeline directory marks the pipeline's draft
//! dirty (in the service) and names the pipeline in the audit row.

use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rat_domain::PipelineRef;
use rat_versioning::ObjectKey;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, etag, if_match};
use crate::middleware::AuditObject;
use crate::state::AppState;
use crate::uploads::{self, FieldSource, multipart_error};
use rat_service::files::TextFile;
pub use rat_wire::files::UploadedFile;
use rat_wire::files::{FileContent, FileEntry, FileList, FileQuery, ReadQuery, WriteFile, WrittenFile};

/// The routes of this module. The upload route alone accepts bodies up to
/// `max_upload` (32 MiB by default); the others keep the JSON limit.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let upload_route = OpenApiRouter::new()
        .routes(routes!(upload))
        .layer(DefaultBodyLimit::max(state.settings.max_upload));
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read, write, delete))
        // `{*path}` never matches an empty path; answer it like any other bad path.
        .route(
            "/files/",
            axum::routing::get(empty_path).put(empty_path).delete(empty_path),
        )
        .merge(upload_route)
}

async fn empty_path() -> ApiError {
    ApiError::invalid("path is required")
}

/// Decodes `%XX` escapes once; other bytes are kept as they are.
fn percent_decode_once(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Checks a file path (contract §1) and makes it a key: 400 for an empty
/// path, a leading `/`, NUL, backslash, or a `..` segment, also one hidden
/// behind one more level of percent-encoding (`%252e%252e` arrives here as
/// `%2e%2e`), then the key rules of the store (segments of
/// `[A-Za-z0-9._-]`, at most 1,024 bytes).
pub fn file_key(path: &str) -> Result<ObjectKey, ApiError> {
    if path.is_empty() {
        return Err(ApiError::invalid("path is required"));
    }
    for candidate in [path.to_owned(), percent_decode_once(path)] {
        if candidate.starts_with('/') {
            return Err(ApiError::invalid("path must be relative (no leading '/')"));
        }
        if candidate.contains('\0') || candidate.contains('\\') {
            return Err(ApiError::invalid("path must not contain NUL or backslash"));
        }
        if candidate.split('/').any(|segment| segment == "..") {
            return Err(ApiError::invalid("path must not contain '..' segments"));
        }
    }
    ObjectKey::parse(path).map_err(|e| ApiError::from(rat_service::ServiceError::from(e)))
}

/// The audit note of a file operation: the pipeline holding the file.
fn audit_note(action: &'static str, pipeline_id: Uuid) -> AuditObject {
    AuditObject::new(action, "pipeline", Some(pipeline_id))
}

/// The ratd file type of a key: `pipeline-sql` (`pipeline.sql`),
/// `pipeline-py` (`pipeline.py`), `config` (`config.yaml`), `test`
/// (`tests/quality/*.sql` of a pipeline), `hook` (`hooks/*` of a pipeline),
/// `meta` (`meta.yaml` or `*.meta.*`), `doc` (`*.md`), else `""`.
pub fn file_type(key: &ObjectKey) -> &'static str {
    let inside = PipelineRef::from_file_key(key.as_str()).map(|(_, relative)| relative);
    if let Some(relative) = inside {
        if relative
            .strip_prefix("tests/quality/")
            .is_some_and(|rest| !rest.contains('/') && rest.ends_with(".sql"))
        {
            return "test";
        }
        if relative.starts_with("hooks/") {
            return "hook";
        }
    }
    let name = key.file_name();
    match name {
        "pipeline.sql" => "pipeline-sql",
        "pipeline.py" => "pipeline-py",
        "config.yaml" => "config",
        "meta.yaml" => "meta",
        _ if name.contains(".meta.") => "meta",
        _ if name.ends_with(".md") => "doc",
        _ => "",
    }
}

/// Most `exclude` entries one request may give.
const MAX_EXCLUDES: usize = 64;

/// Lists the files at HEAD under a directory.
///
/// `prefix` is required (400 without it). `exclude` is a comma-separated
/// list of directory paths relative to the prefix (`landing,data` or
/// `tests/quality`); a file is left out when its path below the prefix goes
/// through one of them as whole segments, at any depth — ratd's rule
/// ("the path contains `/{entry}/`"), applied below the prefix. At most
/// 10,000 files are returned (100,000 read, excluded ones included); when
/// more remain, the answer carries `"truncated": true`, a field ratd never
/// sends (it listed without bound).
#[utoipa::path(get, path = "/files", tag = "files", params(FileQuery), responses(
    (status = 200, body = FileList), (status = 400, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    ApiQuery(query): ApiQuery<FileQuery>,
) -> ApiResult<Json<FileList>> {
    let prefix = query
        .prefix
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::invalid("prefix query parameter is required"))?;
    // The prefix follows the path rules too (a trailing '/' is its own).
    file_key(prefix.trim_end_matches('/'))?;
    let exclude: Vec<String> = query
        .exclude
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect();
    if exclude.len() > MAX_EXCLUDES {
        return Err(ApiError::invalid(format!(
            "exclude may list at most {MAX_EXCLUDES} entries"
        )));
    }
    let listing = rat_service::files::list_files(
        &state.services,
        &identity.caller,
        &prefix,
        &exclude,
        rat_service::files::MAX_LISTED_FILES,
    )
    .await?;
    Ok(Json(FileList {
        files: listing
            .files
            .into_iter()
            .map(|head| FileEntry {
                file_type: file_type(&head.key).to_owned(),
                path: head.key.as_str().to_owned(),
                size: head.size,
                modified: head.last_modified,
            })
            .collect(),
        truncated: listing.truncated,
    }))
}

/// Reads a file at HEAD, as text for the editor, or as bytes with
/// `?download=true`.
///
/// `content` is the file as UTF-8 text. A file larger than the editor limit
/// (`RAT_MAX_EDITOR_BYTES`, 1 MiB by default) is not read and answers 422,
/// as does a file that is not text (not UTF-8, or with control characters
/// other than tab, line and form feed and carriage return): ratd showed
/// these with replacement characters, and a client saving that text back
/// would silently corrupt the file. `?download=true` answers the bytes of
/// any file, read from the store as they are sent, with its size, version
/// (`x-version-id`) and name (`Content-Disposition`).
#[utoipa::path(get, path = "/files/{*path}", tag = "files",
    params(("path" = String, Path, description = "Full key of the file"), ReadQuery), responses(
    (status = 200, description = "the file as JSON text, or its bytes with ?download=true", body = FileContent),
    (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 422, description = "too large for the editor, or not text: download it", body = ErrorEnvelope),
    (status = 503, body = ErrorEnvelope)))]
pub async fn read(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<String>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> ApiResult<Response> {
    let key = file_key(&path)?;
    let download = match query.download.as_deref() {
        None | Some("" | "false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "download must be true or false, got {other:?}"
            )));
        }
    };
    if download {
        return download_file(&state, &identity, &key).await;
    }
    let limit = state.settings.max_editor_bytes;
    let (content, last_modified, version_id) =
        match rat_service::files::read_text(&state.services, &identity.caller, key.as_str(), limit).await? {
            TextFile::Text {
                content,
                last_modified,
                version_id,
            } => (content, last_modified, version_id),
            TextFile::TooLarge { size } => {
                return Err(cannot_show(format!(
                    "file {key} is {size} bytes, more than the editor's {limit}; download it with ?download=true"
                )));
            }
            TextFile::Binary { size } => {
                return Err(cannot_show(format!(
                    "file {key} ({size} bytes) is not text; download it with ?download=true"
                )));
            }
        };
    Ok((
        etag(version_id.as_str()),
        Json(FileContent {
            path: key.as_str().to_owned(),
            size: content.len(),
            content,
            modified: last_modified,
        }),
    )
        .into_response())
}

fn cannot_show(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ARGUMENT", message)
}

/// The bytes of `key` at HEAD, streamed from the store.
async fn download_file(state: &AppState, identity: &Identity, key: &ObjectKey) -> ApiResult<Response> {
    let download = rat_service::files::open_file(&state.services, &identity.caller, key.as_str(), None).await?;
    let mut response = Body::from_stream(download.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(download.size));
    // The name is one key segment: [A-Za-z0-9._-] only, nothing to escape.
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", key.file_name())) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Ok(value) = HeaderValue::from_str(download.version_id.as_str()) {
        headers.insert(HeaderName::from_static("x-version-id"), value);
    }
    let [(name, value)] = etag(download.version_id.as_str());
    headers.insert(name, value);
    Ok(response)
}

/// Writes a new version of a file; inside a pipeline, its draft turns dirty.
/// With `If-Match` (the file's `ETag`, its S3 version id), only while the
/// file is at that version: 412 otherwise, and nothing is written.
#[utoipa::path(put, path = "/files/{*path}", tag = "files",
    params(("path" = String, Path, description = "Full key of the file")), request_body = WriteFile, responses(
    (status = 200, body = WrittenFile), (status = 400, body = ErrorEnvelope), (status = 412, body = ErrorEnvelope),
    (status = 413, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn write(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<String>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<WriteFile>,
) -> ApiResult<impl IntoResponse> {
    let key = file_key(&path)?;
    let if_match = if_match(&headers)?;
    let written = rat_service::files::write_file_if(
        &state.services,
        &identity.caller,
        key.as_str(),
        body.content.into_bytes(),
        if_match.as_ref(),
    )
    .await?;
    Ok((
        etag(written.version_id.as_str()),
        Extension(audit_note("file.write", written.pipeline_id.into())),
        Json(WrittenFile {
            path: written.key.as_str().to_owned(),
            status: "written".to_owned(),
            version_id: written.version_id.as_str().to_owned(),
        }),
    ))
}

/// Deletes a file (a delete marker: older versions, and publishes pinning
/// them, stay readable); inside a pipeline, its draft turns dirty (ratd
/// forgets this). 404 when the file does not exist at HEAD.
#[utoipa::path(delete, path = "/files/{*path}", tag = "files",
    params(("path" = String, Path, description = "Full key of the file")), responses(
    (status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 412, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    Path(path): Path<String>,
    headers: axum::http::HeaderMap,
) -> ApiResult<impl IntoResponse> {
    let key = file_key(&path)?;
    let if_match = if_match(&headers)?;
    let pipeline_id =
        rat_service::files::delete_file_if(&state.services, &identity.caller, key.as_str(), if_match.as_ref()).await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(audit_note("file.delete", pipeline_id.into())),
    ))
}

/// Multipart body of `POST /files/upload` (documentation only).
#[derive(Debug, ToSchema)]
pub struct UploadForm {
    /// Full key to write, inside an existing pipeline's directory; sent
    /// before `file` (the content streams to the store as it arrives).
    pub path: String,
    /// The content.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Uploads a file: multipart fields `path` (the full key) and `file` (the
/// content), `path` first. Parts with other names are ignored, as ratd does.
/// The content goes to the store as it arrives, never whole in memory; at
/// most `RAT_MAX_CONCURRENT_UPLOADS` uploads are received at once (others
/// wait for a slot, then answer 503). Bodies over the upload limit (32 MiB
/// by default) are 413. The pipeline's draft turns dirty.
#[utoipa::path(post, path = "/files/upload", tag = "files",
    request_body(content = UploadForm, content_type = "multipart/form-data"), responses(
    (status = 201, body = UploadedFile), (status = 400, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope), (status = 408, body = ErrorEnvelope),
    (status = 413, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn upload(
    State(state): State<AppState>,
    identity: Identity,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let mut multipart =
        multipart.map_err(|e| ApiError::invalid(format!("expected a multipart/form-data body: {}", e.body_text())))?;
    let _slot = match uploads::slot(&state).await {
        Ok(slot) => slot,
        Err(busy) => return Ok(busy),
    };
    let mut key: Option<ObjectKey> = None;
    while let Some(field) = multipart.next_field().await.map_err(|e| multipart_error(&e))? {
        match field.name() {
            Some("path") => {
                if key.is_some() {
                    return Err(ApiError::invalid("the path field is given twice"));
                }
                let path = field.text().await.map_err(|e| multipart_error(&e))?;
                key = Some(file_key(&path)?);
            }
            Some("file") => {
                let key = key.ok_or_else(|| ApiError::invalid("the path field is required, before the file field"))?;
                let filename = field
                    .file_name()
                    .filter(|name| !name.is_empty())
                    .map_or_else(|| key.file_name().to_owned(), str::to_owned);
                let mut source = FieldSource::new(field);
                let written =
                    rat_service::files::upload_file(&state.services, &identity.caller, key.as_str(), &mut source)
                        .await
                        .map_err(|e| uploads::upload_failed(&mut source, e))?;
                return Ok((
                    StatusCode::CREATED,
                    Extension(audit_note("file.upload", written.pipeline_id.into())),
                    Json(UploadedFile {
                        path: written.key.as_str().to_owned(),
                        filename,
                        size: usize::try_from(written.size).unwrap_or(usize::MAX),
                        status: "uploaded".to_owned(),
                        version_id: written.version_id.as_str().to_owned(),
                    }),
                )
                    .into_response());
            }
            _ => {}
        }
    }
    Err(ApiError::invalid(if key.is_some() {
        "the file field is required"
    } else {
        "the path field is required"
    }))
}
