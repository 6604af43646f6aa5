//! `/api/v1`: Table metadata (contract §12): user-authored descriptions of a
//! table and its columns, and its owner.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_domain::{Layer, NamespaceName, TableMetadata, TableName};
use rat_service::tables::MetadataChanges;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, Identity};
use crate::middleware::AuditObject;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_metadata, put_metadata))
}

/// The metadata of one table.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableMetadataDto {
    /// Primary key (the `resource_id` of an ownership transfer).
    pub id: Uuid,
    /// Namespace.
    pub namespace: String,
    /// `bronze`, `silver` or `gold`.
    pub layer: String,
    /// Table name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Owner's identity.
    pub owner: Option<String>,
    /// `{column: description}`.
    pub column_descriptions: BTreeMap<String, String>,
    /// Creation time.
    #[serde(with = "crate::routes::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "crate::routes::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<TableMetadata> for TableMetadataDto {
    fn from(t: TableMetadata) -> Self {
        TableMetadataDto {
            id: t.id,
            namespace: t.namespace.into_string(),
            layer: t.layer.as_str().to_owned(),
            name: t.name.into_string(),
            description: t.description,
            owner: t.owner,
            column_descriptions: t.column_descriptions,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// `{namespace}/{layer}/{name}` path of one table.
type TablePath = Path<(String, String, String)>;

fn table_address(namespace: &str, layer: &str, name: &str) -> ApiResult<(NamespaceName, Layer, TableName)> {
    Ok((
        NamespaceName::parse(namespace)?,
        layer.parse()?,
        TableName::parse(name)?,
    ))
}

/// The metadata of a table; 404 when none was written.
#[utoipa::path(get, path = "/tables/{namespace}/{layer}/{name}/metadata", tag = "tables",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path)), responses(
    (status = 200, body = TableMetadataDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_metadata(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, layer, name)): TablePath,
) -> ApiResult<Json<TableMetadataDto>> {
    let (namespace, layer, name) = table_address(&ns, &layer, &name)?;
    let metadata = rat_service::tables::get(&state.services, &identity.caller, &namespace, layer, &name).await?;
    Ok(Json(metadata.into()))
}

/// Body of `PUT /tables/{…}/metadata`; absent or null fields keep their value.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutMetadata {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New owner (on creation, defaults to the caller); empty keeps the
    /// current one (the portal sends `""` for none).
    #[serde(default)]
    pub owner: Option<String>,
    /// `{column: description}`; replaces the whole map.
    #[serde(default)]
    pub column_descriptions: Option<BTreeMap<String, String>>,
}

/// Creates or updates the metadata of a table (which may exist outside RAT).
#[utoipa::path(put, path = "/tables/{namespace}/{layer}/{name}/metadata", tag = "tables",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path)),
    request_body = PutMetadata, responses(
    (status = 200, body = TableMetadataDto), (status = 400, body = ErrorEnvelope),
    (status = 403, description = "a new owner, and the caller does not own the table", body = ErrorEnvelope)))]
pub async fn put_metadata(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, layer, name)): TablePath,
    ApiJson(body): ApiJson<PutMetadata>,
) -> ApiResult<impl IntoResponse> {
    let (namespace, layer, name) = table_address(&ns, &layer, &name)?;
    let changes = MetadataChanges {
        description: body.description,
        // The portal sends `""` when there is no owner: no change.
        owner: crate::extract::given(body.owner),
        column_descriptions: body.column_descriptions,
    };
    let metadata =
        rat_service::tables::put_metadata(&state.services, &identity.caller, &namespace, layer, &name, &changes)
            .await?;
    Ok((
        Extension(AuditObject::new("table.metadata", "table", Some(metadata.id))),
        Json(TableMetadataDto::from(metadata)),
    ))
}
