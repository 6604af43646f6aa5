//! `table_metadata`: user-authored table and column descriptions. Tables may
//! exist outside RAT, so rows are keyed by `(namespace, layer, name)` without a
//! foreign key, and written by upsert.

use std::collections::BTreeMap;

use crate::GenericClient;
use rat_domain::{DomainError, KnownTable, Layer, NamespaceName, Page, PageRequest, TableMetadata, TableName};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::DaoError;
use crate::sql::{self, Conditions, OrderBy};

const COLUMNS: &str = "id, namespace, layer, name, description, owner, column_descriptions, created_at, updated_at";

fn column_descriptions_from_json(value: Value) -> Result<BTreeMap<String, String>, DomainError> {
    let Value::Object(object) = value else {
        return Err(DomainError::invalid("column_descriptions", "must be a JSON object"));
    };
    object
        .into_iter()
        .map(|(column, description)| match description {
            Value::String(text) => Ok((column, text)),
            _ => Err(DomainError::invalid(
                "column_descriptions",
                format!("the description of {column:?} is not a string"),
            )),
        })
        .collect()
}

fn column_descriptions_to_json(descriptions: &BTreeMap<String, String>) -> Value {
    Value::Object(
        descriptions
            .iter()
            .map(|(column, text)| (column.clone(), Value::String(text.clone())))
            .collect(),
    )
}

fn from_row(row: &Row) -> Result<TableMetadata, DaoError> {
    let descriptions: Value = row.try_get("column_descriptions")?;
    Ok(TableMetadata {
        id: row.try_get("id")?,
        namespace: sql::parse_column(row, "namespace")?,
        layer: sql::parse_column(row, "layer")?,
        name: sql::parse_column(row, "name")?,
        description: row.try_get("description")?,
        owner: row.try_get("owner")?,
        column_descriptions: column_descriptions_from_json(descriptions)
            .map_err(|e| DaoError::corrupt("column_descriptions", e))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Creates or updates the metadata of `ns/layer/name` in one statement. A
/// `None` argument keeps the stored value (on creation: empty description, no
/// owner, no column descriptions); `Some` replaces it, so
/// `column_descriptions` replaces the whole map rather than merging columns.
pub async fn upsert(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    layer: Layer,
    name: &TableName,
    description: Option<&str>,
    owner: Option<&str>,
    column_descriptions: Option<&BTreeMap<String, String>>,
) -> Result<TableMetadata, DaoError> {
    let descriptions = column_descriptions.map(column_descriptions_to_json);
    // EXCLUDED would carry the insert defaults for absent fields, so the
    // update side reads the parameters themselves and falls back to the
    // current row's values.
    let row = sql::query_one(
        client,
        "table metadata",
        &format!(
            "INSERT INTO table_metadata (namespace, layer, name, description, owner, column_descriptions) \
             VALUES ($1, $2, $3, COALESCE($4, ''), $5, COALESCE($6, '{{}}'::jsonb)) \
             ON CONFLICT (namespace, layer, name) DO UPDATE SET \
                description = COALESCE($4, table_metadata.description), \
                owner = COALESCE($5, table_metadata.owner), \
                column_descriptions = COALESCE($6, table_metadata.column_descriptions) \
             RETURNING {COLUMNS}"
        ),
        &[
            &namespace.as_str(),
            &layer.as_str(),
            &name.as_str(),
            &description,
            &owner,
            &descriptions,
        ],
    )
    .await?;
    from_row(&row)
}

/// The metadata of `ns/layer/name`.
pub async fn get(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    layer: Layer,
    name: &TableName,
) -> Result<TableMetadata, DaoError> {
    get_where(client, namespace, layer, name, "").await
}

/// The row at `ns/layer/name`, with `suffix` after its condition (a lock).
async fn get_where(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    layer: Layer,
    name: &TableName,
    suffix: &'static str,
) -> Result<TableMetadata, DaoError> {
    let row = sql::query_one(
        client,
        "table metadata",
        &format!("SELECT {COLUMNS} FROM table_metadata WHERE namespace = $1 AND layer = $2 AND name = $3{suffix}"),
        &[&namespace.as_str(), &layer.as_str(), &name.as_str()],
    )
    .await?;
    from_row(&row)
}

/// [`get`], locked (`FOR UPDATE`) until the caller's transaction ends: a
/// conditional change checks the version it read and writes under the lock.
pub async fn get_for_update(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    layer: Layer,
    name: &TableName,
) -> Result<TableMetadata, DaoError> {
    get_where(client, namespace, layer, name, " FOR UPDATE").await
}

/// The metadata row with this id (ownership and shares refer to rows by id).
pub async fn get_by_id(client: &impl GenericClient, id: Uuid) -> Result<TableMetadata, DaoError> {
    let row = sql::query_one(
        client,
        "table metadata",
        &format!("SELECT {COLUMNS} FROM table_metadata WHERE id = $1"),
        &[&id],
    )
    .await?;
    from_row(&row)
}

/// Deletes the metadata of `ns/layer/name`; a database trigger removes the
/// ownership, shares and project memberships of the row with it.
pub async fn delete(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    layer: Layer,
    name: &TableName,
) -> Result<(), DaoError> {
    let deleted = sql::execute(
        client,
        "DELETE FROM table_metadata WHERE namespace = $1 AND layer = $2 AND name = $3",
        &[&namespace.as_str(), &layer.as_str(), &name.as_str()],
    )
    .await
    .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound {
            entity: "table metadata",
        });
    }
    Ok(())
}

/// Deletes the metadata of every table of `namespace` (triggers remove their
/// ownership, shares and project memberships). Returns how many rows went.
pub async fn delete_namespace(client: &impl GenericClient, namespace: &NamespaceName) -> Result<u64, DaoError> {
    sql::execute(
        client,
        "DELETE FROM table_metadata WHERE namespace = $1",
        &[&namespace.as_str()],
    )
    .await
    .map_err(DaoError::on_delete)
}

/// Metadata rows (of one namespace, or of all), ordered by namespace, layer
/// and name (all three as text, so `bronze`, `gold`, `silver`), one page, with
/// the total.
pub async fn list(
    client: &impl GenericClient,
    namespace: Option<&NamespaceName>,
    page: PageRequest,
) -> Result<Page<TableMetadata>, DaoError> {
    let namespace = namespace.map(NamespaceName::as_str);
    let mut conditions = Conditions::new();
    conditions.push_opt("namespace = $?", &namespace);
    // The order of uq_table_metadata_namespace_layer_name, unique as a whole.
    let order = OrderBy {
        columns: &["namespace", "layer", "name"],
        descending: false,
    };
    sql::fetch_page(client, COLUMNS, "table_metadata", &conditions, order, page, from_row).await
}

/// Every table the metadata plane knows of: the output table of each live
/// pipeline joined with the `table_metadata` row of the same address, and
/// metadata rows without a pipeline. One row per address (live pipelines
/// and metadata rows are both unique by address).
const KNOWN_FROM: &str = "(SELECT COALESCE(p.namespace, m.namespace) AS namespace, \
        COALESCE(p.layer, m.layer) AS layer, COALESCE(p.name, m.name) AS name, \
        p.id AS pipeline_id, p.owner AS pipeline_owner, m.id AS metadata_id, m.owner AS metadata_owner, \
        COALESCE(NULLIF(m.description, ''), p.description, '') AS description, \
        COALESCE(m.owner, p.owner) AS owner, \
        COALESCE(m.column_descriptions, '{}'::jsonb) AS column_descriptions \
     FROM (SELECT id, namespace, layer, name, owner, description FROM pipelines WHERE deleted_at IS NULL) p \
     FULL JOIN table_metadata m ON m.namespace = p.namespace AND m.layer = p.layer AND m.name = p.name) AS known";

const KNOWN_COLUMNS: &str = "namespace, layer, name, description, owner, column_descriptions";

/// A known table is readable when its pipeline is or its metadata row is
/// ([`readable_condition!`] on each); one parameter, the share principals.
macro_rules! readable_known {
    () => {
        concat!(
            "((known.pipeline_id IS NOT NULL AND ",
            readable_condition!(
                "'pipeline'",
                "known.pipeline_id",
                "known.pipeline_owner",
                "known.namespace"
            ),
            ") OR (known.metadata_id IS NOT NULL AND ",
            readable_condition!(
                "'table'",
                "known.metadata_id",
                "known.metadata_owner",
                "known.namespace"
            ),
            "))"
        )
    };
}

fn known_from_row(row: &Row) -> Result<KnownTable, DaoError> {
    let descriptions: Value = row.try_get("column_descriptions")?;
    Ok(KnownTable {
        namespace: sql::parse_column(row, "namespace")?,
        layer: sql::parse_column(row, "layer")?,
        name: sql::parse_column(row, "name")?,
        description: row.try_get("description")?,
        owner: row.try_get("owner")?,
        column_descriptions: column_descriptions_from_json(descriptions)
            .map_err(|e| DaoError::corrupt("column_descriptions", e))?,
    })
}

/// Filters of [`list_known`].
#[derive(Debug, Clone, Default)]
pub struct KnownTableFilter {
    /// Only this namespace.
    pub namespace: Option<NamespaceName>,
    /// Only this layer.
    pub layer: Option<Layer>,
    /// Only tables these share principals may read (the user, then
    /// `role:NAME`s); `None` = all (admins).
    pub readable_by: Option<Vec<String>>,
}

/// The known tables (live pipelines' outputs and metadata rows) matching
/// `filter`, ordered by namespace, layer and name (as text), one page, with
/// the total; filtered and counted in SQL.
pub async fn list_known(
    client: &impl GenericClient,
    filter: &KnownTableFilter,
    page: PageRequest,
) -> Result<Page<KnownTable>, DaoError> {
    let namespace = filter.namespace.as_ref().map(NamespaceName::as_str);
    let layer = filter.layer.map(Layer::as_str);
    let mut conditions = Conditions::new();
    conditions.push_opt("known.namespace = $?", &namespace);
    conditions.push_opt("known.layer = $?", &layer);
    conditions.push_opt(readable_known!(), &filter.readable_by);
    let order = OrderBy {
        columns: &["namespace", "layer", "name"],
        descending: false,
    };
    sql::fetch_page(
        client,
        KNOWN_COLUMNS,
        KNOWN_FROM,
        &conditions,
        order,
        page,
        known_from_row,
    )
    .await
}

/// The known table at `ns/layer/name`; `NotFound` when there is none or
/// `readable_by` may not read it.
pub async fn get_known(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    layer: Layer,
    name: &TableName,
    readable_by: &Option<Vec<String>>,
) -> Result<KnownTable, DaoError> {
    let namespace = Some(namespace.as_str());
    let layer = Some(layer.as_str());
    let name = Some(name.as_str());
    let mut conditions = Conditions::new();
    conditions.push_opt("known.namespace = $?", &namespace);
    conditions.push_opt("known.layer = $?", &layer);
    conditions.push_opt("known.name = $?", &name);
    conditions.push_opt(readable_known!(), readable_by);
    let row = sql::fetch_opt(client, KNOWN_COLUMNS, KNOWN_FROM, &conditions)
        .await?
        .ok_or(DaoError::NotFound { entity: "table" })?;
    known_from_row(&row)
}
