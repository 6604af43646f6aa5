//! The error envelope every failed answer carries:
//! `{"error":{"code":"…","type":"…","message":"…"}}`.

use serde::{Deserialize, Serialize};

/// The wire shape of the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The error inside the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Machine-readable code (`INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`, ...).
    pub code: String,
    /// Class derived from the status (`VALIDATION`, `NOT_FOUND`, `CONFLICT`, ...).
    #[serde(rename = "type")]
    pub error_type: String,
    /// Human-readable message.
    pub message: String,
}
