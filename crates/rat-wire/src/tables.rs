//! `/api/v1/tables` and `/api/v1/schema`: the known tables and their
//! user-authored metadata (contract §12).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The metadata of one table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "crate::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Body of `PUT /tables/{…}/metadata`; absent or null fields keep their value.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A column of a known table (RAT's `QueryColumn`): the columns are those
/// the table's metadata describes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueryColumnDto {
    /// Column name.
    pub name: String,
    /// Always `unknown` here (the query service knows the types).
    #[serde(rename = "type")]
    pub column_type: String,
    /// The metadata's description of the column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A known table (RAT's `TableInfo`): a live pipeline's output table or a
/// table with metadata. `row_count` and `size_bytes` are the query
/// service's and always 0 here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableInfoDto {
    /// Namespace.
    pub namespace: String,
    /// `bronze`, `silver` or `gold`.
    pub layer: String,
    /// Table name.
    pub name: String,
    /// Always 0 (not known to the metadata plane).
    pub row_count: i64,
    /// Always 0 (not known to the metadata plane).
    pub size_bytes: i64,
    /// The metadata's description, else the pipeline's; absent when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Filters of `GET /tables` and `GET /schema`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct TableQuery {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this layer (`bronze`, `silver` or `gold`).
    pub layer: Option<String>,
    /// Rows per page (default 50, at most 200; `GET /schema`: default 200).
    pub limit: Option<String>,
    /// Rows to skip.
    pub offset: Option<String>,
}

/// A page of known tables.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableList {
    /// The page.
    pub tables: Vec<TableInfoDto>,
    /// Count of every known table matching the filters that the caller may read.
    pub total: i64,
}

/// One known table (RAT's `TableDetail`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableDetailDto {
    /// Namespace, layer, name, counts and description.
    #[serde(flatten)]
    pub info: TableInfoDto,
    /// The columns the metadata describes (types unknown).
    pub columns: Vec<QueryColumnDto>,
    /// The metadata's owner, else the pipeline's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One table of `GET /schema`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchemaTableDto {
    /// Namespace.
    pub namespace: String,
    /// Layer.
    pub layer: String,
    /// Table name.
    pub name: String,
    /// The columns the metadata describes (types unknown).
    pub columns: Vec<QueryColumnDto>,
}

/// `GET /schema`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchemaDto {
    /// The page of tables.
    pub tables: Vec<SchemaTableDto>,
}

#[cfg(feature = "domain")]
impl From<rat_domain::TableMetadata> for TableMetadataDto {
    fn from(t: rat_domain::TableMetadata) -> Self {
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

#[cfg(feature = "domain")]
impl From<&rat_domain::KnownTable> for TableInfoDto {
    fn from(t: &rat_domain::KnownTable) -> Self {
        TableInfoDto {
            namespace: t.namespace.as_str().to_owned(),
            layer: t.layer.as_str().to_owned(),
            name: t.name.as_str().to_owned(),
            row_count: 0,
            size_bytes: 0,
            description: Some(t.description.clone()).filter(|d| !d.is_empty()),
        }
    }
}
