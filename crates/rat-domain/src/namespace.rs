//! Namespaces: the logical groupings pipelines and zones live in.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::NamespaceName;

/// A namespace as stored in `namespaces`.
#[derive(Debug, Clone, PartialEq)]
pub struct Namespace {
    /// Primary key.
    pub id: Uuid,
    /// Unique slug.
    pub name: NamespaceName,
    /// Free text.
    pub description: String,
    /// Creator; `None` in Community mode.
    pub created_by: Option<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
}
