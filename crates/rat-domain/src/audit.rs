//! The audit trail of state-changing requests.

use time::OffsetDateTime;
use uuid::Uuid;

/// One audit entry (`audit_log`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Primary key.
    pub id: Uuid,
    /// Who acted.
    pub actor: String,
    /// What was done (e.g. `pipeline.create`).
    pub action: String,
    /// Kind of object acted on, when known.
    pub object_type: Option<String>,
    /// The object's id, when known.
    pub object_id: Option<Uuid>,
    /// Method, path, status code, request id, client address, ...
    pub details: Option<serde_json::Value>,
    /// When.
    pub timestamp: OffsetDateTime,
}
