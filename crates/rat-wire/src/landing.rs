//! `/api/v1/landing-zones`: landing zones, their files, samples and
//! lifecycle (contract §11).

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A landing zone with its file statistics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneDto {
    /// Primary key.
    pub id: Uuid,
    /// Namespace.
    pub namespace: String,
    /// Name, unique within the namespace.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Owner's identity.
    pub owner: Option<String>,
    /// Documentation of the expected file schema.
    pub expected_schema: String,
    /// Days processed files are kept (`null` = system default).
    pub processed_max_age_days: Option<i32>,
    /// Whether the reaper purges processed files.
    pub auto_purge: bool,
    /// Creation time.
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "crate::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Number of uploaded files.
    pub file_count: i64,
    /// Sum of their sizes in bytes.
    pub total_bytes: i64,
}

/// A page of zones.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneList {
    /// The page, by namespace then name.
    pub zones: Vec<ZoneDto>,
    /// Count of every zone matching the filter.
    pub total: i64,
}

/// Filters of `GET /landing-zones`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ZoneQuery {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Rows per page (default 50, at most 200).
    pub limit: Option<String>,
    /// Rows to skip.
    pub offset: Option<String>,
}

/// Body of `POST /landing-zones`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateZone {
    /// Namespace (must exist).
    pub namespace: String,
    /// `^[a-z][a-z0-9_-]*$`, at most 128 characters.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Documentation of the expected file schema.
    #[serde(default)]
    pub expected_schema: Option<String>,
}

/// Body of `PUT /landing-zones/{…}`; absent or null fields keep their value.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateZone {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New owner; empty keeps the current one (the portal sends `""` for none).
    #[serde(default)]
    pub owner: Option<String>,
    /// New expected schema.
    #[serde(default)]
    pub expected_schema: Option<String>,
}

/// A file uploaded to a zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileDto {
    /// Primary key.
    pub id: Uuid,
    /// The zone.
    pub zone_id: Uuid,
    /// Stored name, `YYYYMMDD_HHMMSS_<token>_<name>`.
    pub filename: String,
    /// Object key, `{ns}/landing/{zone}/{filename}`.
    pub s3_path: String,
    /// The version of the object this upload wrote (`null` for uploads
    /// recorded before versions were).
    pub s3_version_id: Option<String>,
    /// Size in bytes.
    pub size_bytes: i64,
    /// MIME type as uploaded.
    pub content_type: String,
    /// Uploader's identity.
    pub uploaded_by: Option<String>,
    /// Upload time.
    #[serde(with = "crate::rfc3339")]
    pub uploaded_at: OffsetDateTime,
}

/// A page of files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileList {
    /// The page, newest first.
    pub files: Vec<FileDto>,
    /// Count of the zone's files.
    pub total: i64,
    /// The `cursor` of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A sample file of a zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SampleDto {
    /// Object key, `{ns}/landing/{zone}/_samples/{filename}`.
    pub path: String,
    /// The file name.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// When its current version was written.
    #[serde(with = "crate::rfc3339")]
    pub modified: OffsetDateTime,
    /// File kind as in `GET /files` (always `""` for samples).
    #[serde(rename = "type")]
    pub file_type: String,
}

/// The zone's samples (ratd's shape: the key is `files`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SampleList {
    /// The page, by file name.
    pub files: Vec<SampleDto>,
    /// Count of the zone's samples.
    pub total: i64,
}

/// Answer of a sample upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadedSample {
    /// Object key.
    pub path: String,
    /// Stored file name.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// Always `uploaded`.
    pub status: String,
}

/// A zone's lifecycle settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LifecycleDto {
    /// Days processed files are kept (`null` = system default).
    pub processed_max_age_days: Option<i32>,
    /// Whether the reaper purges processed files.
    pub auto_purge: bool,
}

/// Body of `PUT …/lifecycle`: an absent key keeps its value;
/// `processed_max_age_days: null` returns to the system default.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateLifecycle {
    /// 1..=36,500 days, or `null` for the system default.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub processed_max_age_days: Option<Option<i64>>,
    /// Whether the reaper purges processed files.
    #[serde(default)]
    pub auto_purge: Option<bool>,
}

/// `Some(value)` for a key that is present, `null` included (`Some(None)`);
/// with `#[serde(default)]` an absent key stays `None`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(feature = "domain")]
impl From<rat_domain::LandingZoneSummary> for ZoneDto {
    fn from(summary: rat_domain::LandingZoneSummary) -> Self {
        let z = summary.zone;
        ZoneDto {
            id: z.id.into(),
            namespace: z.namespace.into_string(),
            name: z.name.into_string(),
            description: z.description,
            owner: z.owner,
            expected_schema: z.expected_schema,
            processed_max_age_days: z.processed_max_age_days,
            auto_purge: z.auto_purge,
            created_at: z.created_at,
            updated_at: z.updated_at,
            file_count: summary.file_count,
            total_bytes: summary.total_bytes,
        }
    }
}

#[cfg(feature = "domain")]
impl From<rat_domain::LandingFile> for FileDto {
    fn from(f: rat_domain::LandingFile) -> Self {
        FileDto {
            id: f.id,
            zone_id: f.zone_id.into(),
            filename: f.filename,
            s3_path: f.s3_path.to_string(),
            s3_version_id: f.s3_version_id.map(|v| v.to_string()),
            size_bytes: f.size_bytes,
            content_type: f.content_type,
            uploaded_by: f.uploaded_by,
            uploaded_at: f.uploaded_at,
        }
    }
}

#[cfg(feature = "domain")]
impl From<&rat_domain::LandingZone> for LifecycleDto {
    fn from(z: &rat_domain::LandingZone) -> Self {
        LifecycleDto {
            processed_max_age_days: z.processed_max_age_days,
            auto_purge: z.auto_purge,
        }
    }
}
