//! `/api/v1/files`: files in the versioned store (contract §5).
//!
//! Paths are full object keys (`{ns}/pipelines/{layer}/{name}/pipeline.sql`).
//! Every path is checked by [`file_key`] before any store call. A write,
//! upload or delete inside a pipeline directory marks the pipeline's draft
//! dirty (in the service) and names the pipeline in the audit row.

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_domain::PipelineRef;
use rat_versioning::ObjectKey;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::AuditObject;
use crate::state::AppState;

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
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// The audit note of a file operation: the pipeline when the file is inside
/// one, no object otherwise.
fn audit_note(action: &'static str, pipeline_id: Option<Uuid>) -> AuditObject {
    match pipeline_id {
        Some(id) => AuditObject::new(action, "pipeline", Some(id)),
        None => AuditObject {
            action: Some(action),
            ..AuditObject::default()
        },
    }
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

/// Query of `GET /files`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileQuery {
    /// Required directory to list (`default/pipelines/silver/orders/`); a
    /// `/` is appended when missing.
    pub prefix: Option<String>,
    /// Comma-separated directory paths, relative to the prefix, to leave out
    /// (`landing,data`): a file is left out when its path below the prefix
    /// goes through one of them as whole segments, at any depth.
    pub exclude: Option<String>,
}

/// A file at HEAD.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileEntry {
    /// Full key.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// When the HEAD version was written.
    #[serde(with = "crate::routes::rfc3339")]
    pub modified: OffsetDateTime,
    /// `pipeline-sql`, `pipeline-py`, `config`, `test`, `hook`, `meta`, `doc` or `""`.
    #[serde(rename = "type")]
    pub file_type: &'static str,
}

/// The files under a prefix.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileList {
    /// In key order, at most 10,000.
    pub files: Vec<FileEntry>,
    /// Present (and true) only when the listing stopped at its limit.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub truncated: bool,
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
pub async fn list(State(state): State<AppState>, ApiQuery(query): ApiQuery<FileQuery>) -> ApiResult<Json<FileList>> {
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
    let listing =
        rat_service::files::list_files(&state.services, &prefix, &exclude, rat_service::files::MAX_LISTED_FILES)
            .await?;
    Ok(Json(FileList {
        files: listing
            .files
            .into_iter()
            .map(|head| FileEntry {
                file_type: file_type(&head.key),
                path: head.key.as_str().to_owned(),
                size: head.size,
                modified: head.last_modified,
            })
            .collect(),
        truncated: listing.truncated,
    }))
}

/// A file's content at HEAD.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileContent {
    /// Full key.
    pub path: String,
    /// The content, as UTF-8 text.
    pub content: String,
    /// Size in bytes.
    pub size: usize,
    /// When the HEAD version was written.
    #[serde(with = "crate::routes::rfc3339")]
    pub modified: OffsetDateTime,
}

/// Reads a file at HEAD.
///
/// `content` is the file as UTF-8 text. A file that is not valid UTF-8
/// (a binary upload) is refused with 400 rather than shown with replacement
/// characters as ratd does: a client saving that text back would silently
/// corrupt the file.
#[utoipa::path(get, path = "/files/{*path}", tag = "files",
    params(("path" = String, Path, description = "Full key of the file")), responses(
    (status = 200, body = FileContent), (status = 400, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn read(State(state): State<AppState>, Path(path): Path<String>) -> ApiResult<Json<FileContent>> {
    let key = file_key(&path)?;
    let object = rat_service::files::read_file(&state.services, key.as_str(), None).await?;
    let size = object.body.len();
    let content = String::from_utf8(object.body).map_err(|_| {
        ApiError::invalid(format!(
            "file {key} is not UTF-8 text ({size} bytes); it cannot be shown as content"
        ))
    })?;
    Ok(Json(FileContent {
        path: key.as_str().to_owned(),
        content,
        size,
        modified: object.last_modified,
    }))
}

/// Body of `PUT /files/{path}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFile {
    /// The new content (UTF-8 text).
    pub content: String,
}

/// Answer of `PUT /files/{path}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WrittenFile {
    /// Full key.
    pub path: String,
    /// Always `written`.
    pub status: &'static str,
    /// The version just written.
    pub version_id: String,
}

/// Writes a new version of a file; inside a pipeline, its draft turns dirty.
#[utoipa::path(put, path = "/files/{*path}", tag = "files",
    params(("path" = String, Path, description = "Full key of the file")), request_body = WriteFile, responses(
    (status = 200, body = WrittenFile), (status = 400, body = ErrorEnvelope),
    (status = 413, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn write(
    State(state): State<AppState>,
    Path(path): Path<String>,
    ApiJson(body): ApiJson<WriteFile>,
) -> ApiResult<impl IntoResponse> {
    let key = file_key(&path)?;
    let written = rat_service::files::write_file(&state.services, key.as_str(), body.content.into_bytes()).await?;
    Ok((
        Extension(audit_note("file.write", written.pipeline_id)),
        Json(WrittenFile {
            path: written.key.as_str().to_owned(),
            status: "written",
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
    (status = 503, body = ErrorEnvelope)))]
pub async fn delete(State(state): State<AppState>, Path(path): Path<String>) -> ApiResult<impl IntoResponse> {
    let key = file_key(&path)?;
    let pipeline_id = rat_service::files::delete_file(&state.services, key.as_str()).await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(audit_note("file.delete", pipeline_id)),
    ))
}

/// Multipart body of `POST /files/upload` (documentation only).
#[derive(Debug, ToSchema)]
pub struct UploadForm {
    /// Full key to write.
    pub path: String,
    /// The content.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Answer of `POST /files/upload`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedFile {
    /// Full key written.
    pub path: String,
    /// The uploaded file's name (the key's last segment when the form gave none).
    pub filename: String,
    /// Bytes written.
    pub size: usize,
    /// Always `uploaded`.
    pub status: &'static str,
    /// The version just written.
    pub version_id: String,
}

fn multipart_error(error: MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RESOURCE_EXHAUSTED",
            "upload is larger than the allowed size",
        )
    } else {
        ApiError::invalid(format!("invalid multipart body: {}", error.body_text()))
    }
}

/// Uploads a file: multipart fields `path` (the full key) and `file` (the
/// content). Parts with other names are ignored, as ratd does. Bodies over
/// the upload limit (32 MiB by default) are 413. Inside a pipeline, its
/// draft turns dirty.
#[utoipa::path(post, path = "/files/upload", tag = "files",
    request_body(content = UploadForm, content_type = "multipart/form-data"), responses(
    (status = 201, body = UploadedFile), (status = 400, body = ErrorEnvelope),
    (status = 413, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn upload(
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<impl IntoResponse> {
    let mut multipart =
        multipart.map_err(|e| ApiError::invalid(format!("expected a multipart/form-data body: {}", e.body_text())))?;
    let mut path: Option<String> = None;
    let mut file: Option<(Option<String>, Vec<u8>)> = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("path") => {
                if path.is_some() {
                    return Err(ApiError::invalid("the path field is given twice"));
                }
                path = Some(field.text().await.map_err(multipart_error)?);
            }
            Some("file") => {
                if file.is_some() {
                    return Err(ApiError::invalid("the file field is given twice"));
                }
                let filename = field.file_name().map(str::to_owned);
                let bytes = field.bytes().await.map_err(multipart_error)?;
                // Takes the buffer over when it is the only owner (no copy of up to 32 MiB).
                file = Some((filename, Vec::from(bytes)));
            }
            _ => {}
        }
    }
    let path = path.ok_or_else(|| ApiError::invalid("the path field is required"))?;
    let (filename, body) = file.ok_or_else(|| ApiError::invalid("the file field is required"))?;
    let key = file_key(&path)?;
    let size = body.len();
    let written = rat_service::files::write_file(&state.services, key.as_str(), body).await?;
    let filename = filename
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| written.key.file_name().to_owned());
    Ok((
        StatusCode::CREATED,
        Extension(audit_note("file.upload", written.pipeline_id)),
        Json(UploadedFile {
            path: written.key.as_str().to_owned(),
            filename,
            size,
            status: "uploaded",
            version_id: written.version_id.as_str().to_owned(),
        }),
    ))
}
