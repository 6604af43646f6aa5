//! Landing zones and the files uploaded to them.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::ZoneId;
use crate::object::{KeyPrefix, ObjectKey, VersionId};
use crate::{DomainError, NamespaceName, ZoneName};

/// A landing zone as stored in `landing_zones`.
#[derive(Debug, Clone, PartialEq)]
pub struct LandingZone {
    /// Primary key.
    pub id: ZoneId,
    /// Namespace.
    pub namespace: NamespaceName,
    /// Unique within the namespace.
    pub name: ZoneName,
    /// Free text.
    pub description: String,
    /// Owner's identity.
    pub owner: Option<String>,
    /// Documentation of the expected file schema.
    pub expected_schema: String,
    /// Days processed files are kept (`None` = system default).
    pub processed_max_age_days: Option<i32>,
    /// Whether the reaper purges processed files.
    pub auto_purge: bool,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last modification time.
    pub updated_at: OffsetDateTime,
}

impl LandingZone {
    /// The S3 key prefix of the zone's files: `{ns}/landing/{zone}/`.
    pub fn s3_prefix(namespace: &NamespaceName, zone: &ZoneName) -> KeyPrefix {
        KeyPrefix::from_names(&[namespace.as_str(), "landing", zone.as_str()])
    }
}

/// A landing zone with its file count and total size, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct LandingZoneSummary {
    /// The zone.
    pub zone: LandingZone,
    /// Number of files.
    pub file_count: i64,
    /// Sum of file sizes.
    pub total_bytes: i64,
}

/// A file uploaded to a zone (`landing_files`).
#[derive(Debug, Clone, PartialEq)]
pub struct LandingFile {
    /// Primary key.
    pub id: Uuid,
    /// The zone.
    pub zone_id: ZoneId,
    /// Stored filename (`YYYYMMDD_HHMMSS_<token>_<basename>`).
    pub filename: String,
    /// Object key.
    pub s3_path: ObjectKey,
    /// The version of the object this row describes (`None` for rows
    /// written before versions were recorded: they describe HEAD).
    pub s3_version_id: Option<VersionId>,
    /// Size.
    pub size_bytes: i64,
    /// MIME type as uploaded.
    pub content_type: String,
    /// Uploader's identity.
    pub uploaded_by: Option<String>,
    /// Upload time.
    pub uploaded_at: OffsetDateTime,
}

/// Checks a zone's processed-file maximum age: at least one day.
pub fn parse_processed_max_age_days(days: i64) -> Result<i32, DomainError> {
    const MAX: i64 = 36_500;
    if !(1..=MAX).contains(&days) {
        return Err(DomainError::OutOfRange {
            field: "processed_max_age_days",
            value: days,
            min: 1,
            max: MAX,
        });
    }
    Ok(days as i32)
}
