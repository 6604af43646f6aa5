//! Table metadata: user-authored descriptions of tables and their columns,
//! and the table's owner.

use std::collections::BTreeMap;

use rat_dao::{access, tables};
use rat_domain::text::{MAX_COLUMN_DESCRIPTIONS, MAX_DESCRIPTION_CHARS, check_text_len};
use rat_domain::{KnownTable, Layer, NamespaceName, ObjectType, Page, PageRequest, TableMetadata, TableName};

use crate::concurrency::{self, IfMatch};
use crate::identity::Caller;
use crate::sharing::{self, Target};
use crate::{ServiceError, Services};
use rat_domain::Permission;

/// A change to a table's metadata; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct MetadataChanges {
    /// New description.
    pub description: Option<String>,
    /// New owner.
    pub owner: Option<String>,
    /// New `{column: description}` map (replaces the whole map).
    pub column_descriptions: Option<BTreeMap<String, String>>,
}

/// The metadata of `ns/layer/name`; `NotFound` when none was written or
/// `caller` may not read it.
pub async fn get(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    layer: Layer,
    name: &TableName,
) -> Result<TableMetadata, ServiceError> {
    let client = services.pool.get().await?;
    let table = tables::get(&client, namespace, layer, name).await?;
    sharing::require(&client, caller, &Target::of_table(&table), Permission::Read, "reading").await?;
    Ok(table)
}

/// Creates or updates the metadata of `ns/layer/name` on behalf of `caller`.
/// Creating needs write on the namespace; the owner is then `changes.owner`
/// or else the caller, and the ownership row of the table is written with it
/// (in the same transaction), so the owner can later transfer it. Updating
/// needs write on the table (absent fields keep their value), and a new
/// owner is a transfer (ownership needed).
#[tracing::instrument(skip(services, caller, changes))]
pub async fn put_metadata(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    layer: Layer,
    name: &TableName,
    changes: &MetadataChanges,
) -> Result<TableMetadata, ServiceError> {
    put_metadata_if(services, caller, namespace, layer, name, changes, None).await
}

/// [`put_metadata`], applied only while the metadata is at a version
/// `if_match` names (its `updated_at`; metadata never written matches
/// nothing): `Stale` otherwise, and nothing changes.
#[tracing::instrument(skip(services, caller, changes, if_match))]
pub async fn put_metadata_if(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    layer: Layer,
    name: &TableName,
    changes: &MetadataChanges,
    if_match: Option<&IfMatch>,
) -> Result<TableMetadata, ServiceError> {
    let actor = caller.user.as_str();
    if let Some(owner) = &changes.owner {
        rat_domain::parse_principal("owner", owner)?;
    }
    if let Some(description) = &changes.description {
        check_text_len("description", description, MAX_DESCRIPTION_CHARS)?;
    }
    if let Some(columns) = &changes.column_descriptions {
        if columns.keys().any(|column| column.trim().is_empty()) {
            return Err(ServiceError::invalid(
                "column_descriptions: column names must not be empty",
            ));
        }
        if columns.len() > MAX_COLUMN_DESCRIPTIONS {
            return Err(ServiceError::invalid(format!(
                "column_descriptions may describe at most {MAX_COLUMN_DESCRIPTIONS} columns"
            )));
        }
        for (column, description) in columns {
            check_text_len(
                "column_descriptions (column name)",
                column,
                rat_domain::TableName::MAX_LEN,
            )?;
            check_text_len("column_descriptions", description, MAX_DESCRIPTION_CHARS)?;
        }
    }
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let read = if if_match.is_some() {
        tables::get_for_update(&transaction, namespace, layer, name).await
    } else {
        tables::get(&transaction, namespace, layer, name).await
    };
    let existing = match read {
        Ok(row) => Some(row),
        Err(rat_dao::DaoError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    // Admins pass both checks without a query.
    match &existing {
        Some(table) => {
            sharing::require(
                &transaction,
                caller,
                &Target::of_table(table),
                Permission::Write,
                "changing",
            )
            .await?
        }
        None => {
            let doing = "creating a table's metadata in";
            crate::namespaces::require_on(&transaction, caller, namespace, Permission::Write, doing).await?
        }
    }
    let version = existing.as_ref().map(|t| concurrency::row_version(t.updated_at));
    concurrency::check(if_match, version.as_deref(), "table metadata")?;
    let owner = match (&changes.owner, &existing) {
        (Some(owner), _) => Some(owner.as_str()),
        (None, None) => Some(actor),
        (None, Some(_)) => None,
    };
    // A new owner of existing metadata is a transfer: only its owner may
    // make it, as `POST /sharing/transfer` requires.
    if let (Some(owner), Some(row)) = (&changes.owner, &existing)
        && row.owner.as_deref() != Some(owner.as_str())
    {
        sharing::change_owner(&transaction, caller, &Target::of_table(row), owner).await?;
    }
    let row = tables::upsert(
        &transaction,
        namespace,
        layer,
        name,
        changes.description.as_deref(),
        owner,
        changes.column_descriptions.as_ref(),
    )
    .await?;
    // The ownership row follows the owner column, on first write and on every
    // explicit owner change, so the two never drift. Two first writes racing
    // both take this branch; the second waits for the first on the unique
    // key, then overwrites the owner in both rows.
    if (existing.is_none() || changes.owner.is_some())
        && let Some(owner) = &row.owner
    {
        access::set_owner(&transaction, ObjectType::Table, row.id, owner).await?;
    }
    transaction.commit().await?;
    Ok(row)
}

/// The tables the metadata plane knows of (live pipelines' outputs and
/// metadata entries) in `namespace`/`layer` when given, that `caller` may
/// read (filtered in SQL, so the page and its total count only those).
pub async fn list_known(
    services: &Services,
    caller: &Caller,
    namespace: Option<NamespaceName>,
    layer: Option<Layer>,
    page: PageRequest,
) -> Result<Page<KnownTable>, ServiceError> {
    let client = services.pool.get().await?;
    let filter = tables::KnownTableFilter {
        namespace,
        layer,
        readable_by: (!caller.admin).then(|| sharing::share_names(caller)),
    };
    Ok(tables::list_known(&client, &filter, page).await?)
}

/// The known table at `ns/layer/name`; `NotFound` when there is none or
/// `caller` may not read it (its pipeline nor its metadata).
pub async fn get_known(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    layer: Layer,
    name: &TableName,
) -> Result<KnownTable, ServiceError> {
    let client = services.pool.get().await?;
    let readable_by = (!caller.admin).then(|| sharing::share_names(caller));
    Ok(tables::get_known(&client, namespace, layer, name, &readable_by).await?)
}
