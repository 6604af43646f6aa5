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
