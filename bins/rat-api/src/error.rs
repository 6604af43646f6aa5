//! The error envelope of every failed answer:
//! `{"error":{"code":"…","type":"…","message":"…"}}`.
//!
//! Service errors map to HTTP in one exhaustive `match` ([`From<ServiceError>`]).
//! 5xx messages are generic; the detail goes to the log, once, at WARN, with
//! the request id. Service functions log nothing of their own failures
//! (their spans carry no `err`): whoever handles a failure logs it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rat_service::ServiceError;

/// A failed request: status, machine code and a message for the client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `INVALID_ARGUMENT`, `NOT_FOUND`, ...
    pub code: &'static str,
    /// Safe to show to the client.
    pub message: String,
}

pub use rat_wire::error::{ErrorBody, ErrorEnvelope};

/// The `type` of the envelope for a status (contract §1).
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "VALIDATION",
        401 => "AUTHENTICATION",
        403 => "AUTHORIZATION",
        404 => "NOT_FOUND",
        409 | 412 => "CONFLICT",
        413 => "PAYLOAD_TOO_LARGE",
        429 => "RATE_LIMIT",
        503 => "UNAVAILABLE",
        s if s >= 500 => "INTERNAL",
        _ => "VALIDATION",
    }
}

/// The default `code` for a status, when nothing more precise is known.
pub fn default_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "UNAUTHENTICATED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        412 => "ABORTED",
        413 | 429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        s if s >= 500 => "INTERNAL",
        _ => "INVALID_ARGUMENT",
    }
}

/// Longest message an error answer carries, in characters: messages quote
/// what the client sent (a path, a name), and a client sending megabytes
/// must not get them echoed back.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// `message` cut to [`MAX_MESSAGE_CHARS`] characters, marked when cut.
fn bounded(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push_str("… (truncated)");
    }
    message
}

impl ApiError {
    /// An error with an explicit status, code and message (cut to
    /// [`MAX_MESSAGE_CHARS`]).
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: bounded(message.into()),
        }
    }

    /// 400 `INVALID_ARGUMENT`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 500 with the generic message; log the cause where it is known.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error")
    }

    /// The envelope body.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                code: self.code.to_owned(),
                error_type: error_type(self.status).to_owned(),
                message: self.message.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.envelope())).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::InvalidInput { message } => ApiError::invalid(message),
            ServiceError::NotFound { entity } => ApiError::not_found(format!("{entity} not found")),
            ServiceError::AlreadyExists { entity } => ApiError::new(
                StatusCode::CONFLICT,
                "ALREADY_EXISTS",
                format!("{entity} already exists"),
            ),
            ServiceError::FailedPrecondition { message } => {
                ApiError::new(StatusCode::CONFLICT, "FAILED_PRECONDITION", message)
            }
            ServiceError::Stale { message } => ApiError::new(StatusCode::PRECONDITION_FAILED, "ABORTED", message),
            ServiceError::Forbidden { message } => ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", message),
            // The one place a failure of a request is logged, once, at WARN,
            // inside the request's span (so with its request id); the client
            // gets none of the detail. 4xx answers are not logged beyond the
            // request line.
            ServiceError::Unavailable { message, source } => {
                tracing::warn!(error = ?source, "{message}");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
            }
            ServiceError::Internal { source } => {
                tracing::warn!(error = %source, detail = ?source, "internal error");
                ApiError::internal()
            }
        }
    }
}

impl From<rat_domain::DomainError> for ApiError {
    fn from(err: rat_domain::DomainError) -> Self {
        ApiError::from(ServiceError::from(err))
    }
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
