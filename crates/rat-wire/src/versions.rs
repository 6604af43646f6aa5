//! Publish, version history and rollback (contract §6).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Body of `POST …/publish`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    /// What changed (default empty).
    #[serde(default)]
    pub message: Option<String>,
}

/// Answer of `POST …/publish`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishedDto {
    /// Always `published`.
    pub status: String,
    /// The new version number.
    pub version: i32,
    /// The publish message.
    pub message: String,
    /// `{full key: version id}` of every file pinned.
    pub versions: BTreeMap<String, String>,
}

/// One entry of a pipeline's history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionDto {
    /// Primary key.
    pub id: Uuid,
    /// The pipeline.
    pub pipeline_id: Uuid,
    /// 1, 2, 3, ...
    pub version_number: i32,
    /// The publish message.
    pub message: String,
    /// `{full key: version id}` pinned by this version.
    pub published_versions: BTreeMap<String, String>,
    /// Publish time.
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A page of history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionList {
    /// Newest first.
    pub versions: Vec<VersionDto>,
    /// Versions kept for the pipeline.
    pub total: i64,
}

/// Body of `POST …/rollback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The version to re-pin, 1 or more.
    pub version: i64,
    /// Message of the new version (default `Rollback to v{N}`).
    #[serde(default)]
    pub message: Option<String>,
}

/// Answer of `POST …/rollback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolledBackDto {
    /// Always `rolled_back`.
    pub status: String,
    /// The version whose snapshot was re-pinned.
    pub from_version: i32,
    /// The new version re-pinning it.
    pub new_version: i32,
    /// The new version's message.
    pub message: String,
}

/// `{full key: version id}` of a version's pins.
#[cfg(feature = "domain")]
pub fn pins(version: &rat_domain::PipelineVersion) -> BTreeMap<String, String> {
    version
        .published_versions
        .iter()
        .map(|(key, id)| (key.to_string(), id.to_string()))
        .collect()
}

#[cfg(feature = "domain")]
impl From<rat_domain::PipelineVersion> for VersionDto {
    fn from(version: rat_domain::PipelineVersion) -> Self {
        VersionDto {
            published_versions: pins(&version),
            id: version.id,
            pipeline_id: version.pipeline_id.into(),
            version_number: version.version_number.get(),
            message: version.message,
            created_at: version.created_at,
        }
    }
}
