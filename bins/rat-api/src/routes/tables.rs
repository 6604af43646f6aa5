//! `/api/v1`: Table metadata (contract §12): user-authored descriptions of a
//! table and its columns, and its owner.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_domain::{KnownTable, Layer, NamespaceName, PageRequest, TableName};
use rat_service::tables::MetadataChanges;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams, etag, if_match};
use crate::middleware::AuditObject;
use crate::state::AppState;
use rat_service::concurrency::row_version;
pub use rat_wire::tables::{
    PutMetadata, QueryColumnDto, SchemaDto, SchemaTableDto, TableDetailDto, TableInfoDto, TableList, TableMetadataDto,
    TableQuery,
};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_metadata, put_metadata))
        .routes(routes!(list_tables))
        .routes(routes!(get_table))
        .routes(routes!(get_schema))
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

/// The namespace and layer filters of a table query.
fn table_filters(query: &TableQuery) -> ApiResult<(Option<NamespaceName>, Option<Layer>)> {
    let namespace = crate::extract::given(query.namespace.clone())
        .as_deref()
        .map(NamespaceName::parse)
        .transpose()?;
    let layer = crate::extract::given(query.layer.clone())
        .as_deref()
        .map(str::parse::<Layer>)
        .transpose()?;
    Ok((namespace, layer))
}

/// The page of a table query, `default_limit` rows when it names none.
fn table_page(query: &TableQuery, default_limit: i64) -> ApiResult<PageRequest> {
    let limit = query.limit.clone().or_else(|| Some(default_limit.to_string()));
    PageParams {
        limit,
        offset: query.offset.clone(),
    }
    .page()
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
    let (namespace, layer) = table_filters(&query)?;
    let page = table_page(&query, PageRequest::DEFAULT_LIMIT)?;
    let page = rat_service::tables::list_known(&state.services, &identity.caller, namespace, layer, page).await?;
    Ok(Json(TableList {
        tables: page.items.iter().map(TableInfoDto::from).collect(),
        total: page.total,
    }))
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

/// The known tables with their described columns (for the SQL editor's
/// autocomplete), as `GET /tables` lists them; default page size 200.
#[utoipa::path(get, path = "/schema", tag = "tables", params(TableQuery), responses(
    (status = 200, body = SchemaDto), (status = 400, body = ErrorEnvelope)))]
pub async fn get_schema(
    State(state): State<AppState>,
    identity: Identity,
    ApiQuery(query): ApiQuery<TableQuery>,
) -> ApiResult<Json<SchemaDto>> {
    let (namespace, layer) = table_filters(&query)?;
    let page = table_page(&query, PageRequest::MAX_LIMIT)?;
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
