//! `/api/v1/namespaces` (contract §3).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamespaceDto {
    /// Primary key (the `object_id` to share it by).
    pub id: Uuid,
    /// Unique slug.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Creator.
    pub created_by: Option<String>,
    /// Creation time.
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A page of namespaces.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamespaceList {
    /// The page, oldest first.
    pub namespaces: Vec<NamespaceDto>,
    /// Count of all namespaces.
    pub total: i64,
}

/// Body of `POST /namespaces`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateNamespace {
    /// `^[a-z][a-z0-9_-]*$`, at most 63 characters.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// Answer of `POST /namespaces`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedNamespace {
    /// Primary key (the `object_id` to share it by).
    pub id: Uuid,
    /// The new namespace's name.
    pub name: String,
}

/// Body of `PUT /namespaces/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateNamespace {
    /// The new description.
    #[serde(default)]
    pub description: Option<String>,
}

#[cfg(feature = "domain")]
impl From<rat_domain::Namespace> for NamespaceDto {
    fn from(n: rat_domain::Namespace) -> Self {
        NamespaceDto {
            id: n.id,
            name: n.name.into_string(),
            description: n.description,
            created_by: n.created_by,
            created_at: n.created_at,
        }
    }
}
