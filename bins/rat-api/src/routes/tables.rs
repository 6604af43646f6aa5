//! `/api/v1`: Table metadata (contract §12): user-authored descriptions of a
//! table and its columns, and its owner.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_domain::{KnownTable, Layer, NamespaceName, PageRequest, TableMetadata, TableName};
use rat_service::tables::MetadataChanges;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams, etag, if_match};
use crate::middleware::AuditObject;
use crate::state::AppState;
use rat_service::concurrency::row_version;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_metadata, put_metadata))
        .routes(routes!(list_tables))
        .routes(routes!(get_table))
        .routes(routes!(get_schema))
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
) -> ApiResult<impl IntoResponse> {
    let (namespace, layer, name) = table_address(&ns, &layer, &name)?;
    let metadata = rat_service::tables::get(&state.services, &identity.caller, &namespace, layer, &name).await?;
    Ok((
        etag(&row_version(metadata.updated_at)),
        Json(TableMetadataDto::from(metadata)),
    ))
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
    (status = 403, description = "a new owner, and the caller does not own the table", body = ErrorEnvelope),
    (status = 412, description = "If-Match names an older version", body = ErrorEnvelope)))]
pub async fn put_metadata(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, layer, name)): TablePath,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<PutMetadata>,
) -> ApiResult<impl IntoResponse> {
    let (namespace, layer, name) = table_address(&ns, &layer, &name)?;
    let if_match = if_match(&headers)?;
    let changes = MetadataChanges {
        description: body.description,
        // The portal sends `""` when there is no owner: no change.
        owner: crate::extract::given(body.owner),
        column_descriptions: body.column_descriptions,
    };
    let metadata = rat_service::tables::put_metadata_if(
        &state.services,
        &identity.caller,
        &namespace,
        layer,
        &name,
        &changes,
        if_match.as_ref(),
    )
    .await?;
    Ok((
        etag(&row_version(metadata.updated_at)),
        Extension(AuditObject::new("table.metadata", "table", Some(metadata.id))),
        Json(TableMetadataDto::from(metadata)),
    ))
}

/// The column type reported for every column: types live in the query
/// service's catalog, which the metadata plane does not read.
pub const UNKNOWN_COLUMN_TYPE: &str = "unknown";

/// A column of a known table (RAT's `QueryColumn`): the columns are those
/// the table's metadata describes.
#[derive(Debug, Serialize, ToSchema)]
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

fn columns_of(table: &KnownTable) -> Vec<QueryColumnDto> {
    table
        .column_descriptions
        .iter()
        .map(|(name, description)| QueryColumnDto {
            name: name.clone(),
            column_type: UNKNOWN_COLUMN_TYPE.to_owned(),
            description: Some(description.clone()).filter(|d| !d.is_empty()),
        })
        .collect()
}

/// A known table (RAT's `TableInfo`): a live pipeline's output table or a
/// table with metadata. `row_count` and `size_bytes` are the query
/// service's and always 0 here.
#[derive(Debug, Serialize, ToSchema)]
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

impl From<&KnownTable> for TableInfoDto {
    fn from(t: &KnownTable) -> Self {
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

/// Filters of `GET /tables` and `GET /schema`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
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

impl TableQuery {
    fn filters(&self) -> ApiResult<(Option<NamespaceName>, Option<Layer>)> {
        let namespace = crate::extract::given(self.namespace.clone())
            .as_deref()
            .map(NamespaceName::parse)
            .transpose()?;
        let layer = crate::extract::given(self.layer.clone())
            .as_deref()
            .map(str::parse::<Layer>)
            .transpose()?;
        Ok((namespace, layer))
    }

    fn page(&self, default_limit: i64) -> ApiResult<PageRequest> {
        let limit = self.limit.clone().or_else(|| Some(default_limit.to_string()));
        PageParams {
            limit,
            offset: self.offset.clone(),
        }
        .page()
    }
}

/// A page of known tables.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableList {
    /// The page.
    pub tables: Vec<TableInfoDto>,
    /// Count of every known table matching the filters that the caller may read.
    pub total: i64,
}

/// The tables the metadata plane knows of (every live pipeline's output
/// table and every table with metadata) that the caller may read, ordered
/// by namespace, layer and name, filtered and paged in SQL.
#[utoipa::path(get, path = "/tables", tag = "tables", params(TableQuery), responses(
    (status = 200, body = TableList), (status = 400, body = ErrorEnvelope)))]
pub async fn list_tables(
    State(state): State<AppState>,
    identity: Identity,
    ApiQuery(query): ApiQuery<TableQuery>,
) -> ApiResult<Json<TableList>> {
    let (namespace, layer) = query.filters()?;
    let page = query.page(PageRequest::DEFAULT_LIMIT)?;
    let page = rat_service::tables::list_known(&state.services, &identity.caller, namespace, layer, page).await?;
    Ok(Json(TableList {
        tables: page.items.iter().map(TableInfoDto::from).collect(),
        total: page.total,
    }))
}

/// One known table (RAT's `TableDetail`).
#[derive(Debug, Serialize, ToSchema)]
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

/// One known table; 404 when neither a live pipeline nor metadata has this
/// address, or the caller may not read it.
#[utoipa::path(get, path = "/tables/{namespace}/{layer}/{name}", tag = "tables",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path)), responses(
    (status = 200, body = TableDetailDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_table(
    State(state): State<AppState>,
    identity: Identity,
    Path((ns, layer, name)): TablePath,
) -> ApiResult<Json<TableDetailDto>> {
    let (namespace, layer, name) = table_address(&ns, &layer, &name)?;
    let table = rat_service::tables::get_known(&state.services, &identity.caller, &namespace, layer, &name).await?;
    Ok(Json(TableDetailDto {
        info: TableInfoDto::from(&table),
        columns: columns_of(&table),
        owner: table.owner.clone(),
    }))
}

/// One table of `GET /schema`.
#[derive(Debug, Serialize, ToSchema)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaDto {
    /// The page of tables.
    pub tables: Vec<SchemaTableDto>,
}

/// The known tables with their described columns (for the SQL editor's
/// autocomplete), as `GET /tables` lists them; default page size 200.
#[utoipa::path(get, path = "/schema", tag = "tables", params(TableQuery), responses(
    (status = 200, body = SchemaDto), (status = 400, body = ErrorEnvelope)))]
pub async fn get_schema(
    State(state): State<AppState>,
    identity: Identity,
    ApiQuery(query): ApiQuery<TableQuery>,
) -> ApiResult<Json<SchemaDto>> {
    let (namespace, layer) = query.filters()?;
    let page = query.page(PageRequest::MAX_LIMIT)?;
    let page = rat_service::tables::list_known(&state.services, &identity.caller, namespace, layer, page).await?;
    Ok(Json(SchemaDto {
        tables: page
            .items
            .iter()
            .map(|t| SchemaTableDto {
                namespace: t.namespace.as_str().to_owned(),
                layer: t.layer.as_str().to_owned(),
                name: t.name.as_str().to_owned(),
                columns: columns_of(t),
            })
            .collect(),
    }))
}
