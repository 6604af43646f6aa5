//! `GET /api/v1/audit`: the audit log (contract §12).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// One audit entry (the seed's columns).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntryDto {
    /// Primary key.
    pub id: Uuid,
    /// Who acted.
    pub actor: String,
    /// What was done (`pipeline.create`, or `METHOD /route`).
    pub action: String,
    /// Kind of object acted on, when known.
    pub object_type: Option<String>,
    /// The object's id, when known.
    pub object_id: Option<Uuid>,
    /// Method, path, route, status, request id, client address.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub details: Option<serde_json::Value>,
    /// When.
    #[serde(with = "crate::rfc3339")]
    pub timestamp: OffsetDateTime,
}

/// A page of audit entries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditList {
    /// The page, newest first.
    pub entries: Vec<AuditEntryDto>,
    /// Count of every entry matching the filters.
    pub total: i64,
    /// The `cursor` of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters of `GET /audit`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AuditQuery {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this kind of object.
    pub object_type: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only entries before this time (RFC 3339, exclusive).
    pub until: Option<String>,
    /// Rows per page (default 50, at most 200).
    pub limit: Option<String>,
    /// Rows to skip; not with `cursor`.
    pub offset: Option<String>,
    /// Where the page starts: the `next_cursor` of the previous page (opaque).
    pub cursor: Option<String>,
}

#[cfg(feature = "domain")]
impl From<rat_domain::AuditEntry> for AuditEntryDto {
    fn from(e: rat_domain::AuditEntry) -> Self {
        AuditEntryDto {
            id: e.id,
            actor: e.actor,
            action: e.action,
            object_type: e.object_type,
            object_id: e.object_id,
            details: e.details,
            timestamp: e.timestamp,
        }
    }
}
