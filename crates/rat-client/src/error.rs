//! What a call can fail with: the server's error envelope as a typed
//! [`ApiError`], or a failure to reach it or to read its answer.

/// The error envelope of a failed answer (`{"error":{"code","type","message"}}`),
/// with the answer's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status (400, 404, 409, 412, 422, 503, ...).
    pub status: u16,
    /// The machine-readable code (`INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`, ...).
    pub code: String,
    /// The class derived from the status (`VALIDATION`, `NOT_FOUND`, `CONFLICT`, ...).
    pub error_type: String,
    /// The server's message, safe to show to a user.
    pub message: String,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with its error envelope.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The server answered an error without the envelope (a proxy in
    /// between, or not a RAT server at all).
    #[error("answer {status} without the error envelope: {body}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The request could not be sent, or its answer not received (after the
    /// retries an idempotent request is allowed).
    #[error("request failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// A successful answer whose body is not the expected shape.
    #[error("unreadable answer: {0}")]
    Decode(String),
    /// The client was built with something it cannot use (a bad base URL or token).
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl Error {
    /// The HTTP status of an answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(e) => Some(e.status),
            Error::Unexpected { status, .. } => Some(*status),
            Error::Transport(e) => e.status().map(|s| s.as_u16()),
            Error::Decode(_) | Error::Config(_) => None,
        }
    }

    /// The envelope's code (`NOT_FOUND`, ...), when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api(e) => Some(&e.code),
            _ => None,
        }
    }
}

/// The result of every call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
