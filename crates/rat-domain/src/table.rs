//! User-authored metadata for tables (which may exist outside RAT).

use std::collections::BTreeMap;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Layer, NamespaceName, TableName};

/// Metadata of one table (`table_metadata`).
#[derive(Debug, Clone, PartialEq)]
pub struct TableMetadata {
    /// Primary key.
    pub id: Uuid,
    /// Namespace.
    pub namespace: NamespaceName,
    /// Layer.
    pub layer: Layer,
    /// Table name.
    pub name: TableName,
    /// Free text.
    pub description: String,
    /// Owner's identity.
    pub owner: Option<String>,
    /// `{column: description}`.
    pub column_descriptions: BTreeMap<String, String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last modification time.
    pub updated_at: OffsetDateTime,
}

/// A table the metadata plane knows of: the output table of a live pipeline
/// (`{namespace}.{layer}.{name}`), a `table_metadata` entry, or both. Row
/// counts, sizes and column types belong to the query service and are not
/// known here.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownTable {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Layer.
    pub layer: Layer,
    /// Table name.
    pub name: TableName,
    /// The metadata's description, else the pipeline's (possibly empty).
    pub description: String,
    /// The metadata's owner, else the pipeline's.
    pub owner: Option<String>,
    /// `{column: description}` from the metadata (empty without any).
    pub column_descriptions: BTreeMap<String, String>,
}
