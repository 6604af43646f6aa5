//! `/api/v1/files` (contract §5): a pipeline's files at HEAD.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Query of `GET /files`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileEntry {
    /// Full key.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// When the HEAD version was written.
    #[serde(with = "crate::rfc3339")]
    pub modified: OffsetDateTime,
    /// `pipeline-sql`, `pipeline-py`, `config`, `test`, `hook`, `meta`, `doc` or `""`.
    #[serde(rename = "type")]
    pub file_type: String,
}

/// The files under a prefix.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileList {
    /// In key order, at most 10,000.
    pub files: Vec<FileEntry>,
    /// Present (and true) only when the listing stopped at its limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub truncated: bool,
}

/// A file's content at HEAD.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileContent {
    /// Full key.
    pub path: String,
    /// The content, as UTF-8 text.
    pub content: String,
    /// Size in bytes.
    pub size: usize,
    /// When the HEAD version was written.
    #[serde(with = "crate::rfc3339")]
    pub modified: OffsetDateTime,
}

/// Query of `GET /files/{path}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ReadQuery {
    /// `true`: the file's bytes as they are (`application/octet-stream`,
    /// any size), instead of the JSON answer for the editor.
    pub download: Option<String>,
}

/// Body of `PUT /files/{path}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WriteFile {
    /// The new content (UTF-8 text).
    pub content: String,
}

/// Answer of `PUT /files/{path}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WrittenFile {
    /// Full key.
    pub path: String,
    /// Always `written`.
    pub status: String,
    /// The version just written.
    pub version_id: String,
}

/// Answer of `POST /files/upload`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadedFile {
    /// Full key written.
    pub path: String,
    /// The uploaded file's name (the key's last segment when the form gave none).
    pub filename: String,
    /// Bytes written.
    pub size: usize,
    /// Always `uploaded`.
    pub status: String,
    /// The version just written.
    pub version_id: String,
}
