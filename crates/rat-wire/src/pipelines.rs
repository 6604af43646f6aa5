//! `/api/v1/pipelines` (contract §4).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PipelineDto {
    /// Primary key.
    pub id: Uuid,
    /// Namespace.
    pub namespace: String,
    /// `bronze`, `silver` or `gold`.
    pub layer: String,
    /// Name, unique within namespace and layer.
    pub name: String,
    /// `sql` or `python`.
    #[serde(rename = "type")]
    pub pipeline_type: String,
    /// S3 prefix of the pipeline's files.
    pub s3_path: String,
    /// Free text.
    pub description: String,
    /// Owner's identity.
    pub owner: Option<String>,
    /// Last publish.
    #[serde(with = "crate::rfc3339::option")]
    pub published_at: Option<OffsetDateTime>,
    /// `{S3 key: version id}` pinned by the last publish.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub published_versions: serde_json::Value,
    /// True when HEAD may differ from the published snapshot.
    pub draft_dirty: bool,
    /// Versions of history kept.
    pub max_versions: i32,
    /// Per-pipeline retention overrides.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub retention_config: Option<serde_json::Value>,
    /// Creation time.
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "crate::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When it was deleted (deleted pipelines only).
    #[serde(with = "crate::rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<OffsetDateTime>,
    /// Who deleted it (deleted pipelines only; absent when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<String>,
    /// From when the reaper may purge it, `deleted_at` plus the system's
    /// `soft_delete_purge_days`; it can be restored until then (deleted
    /// pipelines only).
    #[serde(with = "crate::rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    pub purge_after: Option<OffsetDateTime>,
}

/// Filters of `GET /pipelines`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct PipelineQuery {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this layer.
    pub layer: Option<String>,
    /// Case-insensitive substring of name or description.
    pub search: Option<String>,
    /// `[-]name|namespace|layer|created_at|updated_at|type` (default `-created_at`).
    pub sort: Option<String>,
    /// Rows per page (default 50, at most 200).
    pub limit: Option<String>,
    /// Rows to skip.
    pub offset: Option<String>,
    /// `true`: soft-deleted pipelines not yet purged instead of live ones,
    /// with `deleted_at`, `deleted_by` and `purge_after`.
    pub deleted: Option<String>,
}

/// A page of pipelines.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PipelineList {
    /// The page.
    pub pipelines: Vec<PipelineDto>,
    /// Count of every pipeline matching the filters.
    pub total: i64,
}

/// Body of `POST /pipelines`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreatePipeline {
    /// Namespace (must exist).
    pub namespace: String,
    /// `bronze`, `silver` or `gold`.
    pub layer: String,
    /// `^[a-z][a-z0-9_-]*$`, at most 128 characters.
    pub name: String,
    /// `sql` (default) or `python`.
    #[serde(rename = "type", default)]
    pub pipeline_type: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Sent by RAT's SDK (`CreatePipelineRequest.source`); accepted and
    /// ignored, as ratd ignores it.
    #[serde(default)]
    pub source: Option<String>,
    /// Sent by RAT's SDK (`CreatePipelineRequest.unique_key`); accepted and
    /// ignored, as ratd ignores it.
    #[serde(default)]
    pub unique_key: Option<String>,
}

/// Answer of `POST /pipelines`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedPipeline {
    /// Primary key (the `object_id` to share it by).
    pub id: Uuid,
    /// Namespace.
    pub namespace: String,
    /// Layer.
    pub layer: String,
    /// Name.
    pub name: String,
    /// `{ns}/pipelines/{layer}/{name}/`.
    pub s3_path: String,
    /// The starter files written, relative to `s3_path` (`pipeline.sql` or
    /// `pipeline.py`, and `config.yaml`), as ratd names them.
    pub files_created: Vec<String>,
}

/// Body of `PUT /pipelines/{…}`; absent or null fields keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdatePipeline {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New type.
    #[serde(rename = "type", default)]
    pub pipeline_type: Option<String>,
    /// New owner; empty keeps the current one (the portal sends `""` for none).
    #[serde(default)]
    pub owner: Option<String>,
    /// New history size (1..=10,000).
    #[serde(default)]
    pub max_versions: Option<i64>,
}

/// Query of `POST /pipelines/{…}/restore`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct RestoreQuery {
    /// Which deleted pipeline at this address (several may have had it);
    /// default: the one deleted last.
    pub id: Option<String>,
}

#[cfg(feature = "domain")]
impl From<rat_domain::Pipeline> for PipelineDto {
    fn from(p: rat_domain::Pipeline) -> Self {
        PipelineDto {
            id: p.id.into(),
            namespace: p.address.namespace.into_string(),
            layer: p.address.layer.as_str().to_owned(),
            name: p.address.name.into_string(),
            pipeline_type: p.pipeline_type.as_str().to_owned(),
            s3_path: p.s3_path.to_string(),
            description: p.description,
            owner: p.owner,
            published_at: p.published_at,
            published_versions: p.published_versions.to_json(),
            draft_dirty: p.draft_dirty,
            max_versions: p.max_versions,
            retention_config: p.retention_config,
            created_at: p.created_at,
            updated_at: p.updated_at,
            deleted_at: p.deleted_at,
            deleted_by: None,
            purge_after: None,
        }
    }
}
