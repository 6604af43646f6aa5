//! The service layer's one error type: what callers (the api, the scheduler,
//! the reaper) need to decide an answer, with messages safe for clients.

use std::sync::Arc;

use rat_dao::DaoError;
use rat_domain::DomainError;
use rat_domain::ObjectError;
use rat_versioning::StoreError;

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed (bad name, path, value out of range).
    #[error("{message}")]
    InvalidInput {
        /// What is wrong, for the client.
        message: String,
    },
    /// Something the request names does not exist.
    #[error("{entity} not found")]
    NotFound {
        /// What was looked for.
        entity: &'static str,
    },
    /// The object already exists (a unique rule).
    #[error("{entity} already exists")]
    AlreadyExists {
        /// What exists.
        entity: &'static str,
    },
    /// The request is valid but the current state does not allow it
    /// (running a never-published pipeline, cancelling a finished run, ...).
    #[error("{message}")]
    FailedPrecondition {
        /// Why, for the client.
        message: String,
    },
    /// The caller's `If-Match` names a version that is no longer the
    /// current one: someone changed the object since it was read. Nothing
    /// changed (412 on the wire).
    #[error("{message}")]
    Stale {
        /// What changed, for the client.
        message: String,
    },
    /// The caller may not do this.
    #[error("{message}")]
    Forbidden {
        /// Why, for the client.
        message: String,
    },
    /// A dependency (database, file store) is down or misconfigured; retry later.
    #[error("{message}")]
    Unavailable {
        /// What is unavailable, for the client (no driver text).
        message: String,
        /// The underlying error, for the log.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A bug or corrupt data; the detail is only in `source()`.
    #[error("internal error")]
    Internal {
        /// The underlying error, for the log.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ServiceError {
    /// A precondition failure with this message.
    pub fn precondition(message: impl Into<String>) -> Self {
        ServiceError::FailedPrecondition {
            message: message.into(),
        }
    }

    /// An equivalent error for each of several callers that shared one
    /// failed operation (a coalesced read): same variant and client message;
    /// the shared original stays reachable through `source()` for the log.
    pub fn shared(err: &Arc<ServiceError>) -> ServiceError {
        let source = || -> Box<dyn std::error::Error + Send + Sync> { Box::new(SharedError(err.clone())) };
        match &**err {
            ServiceError::InvalidInput { message } => ServiceError::invalid(message.clone()),
            ServiceError::NotFound { entity } => ServiceError::NotFound { entity },
            ServiceError::AlreadyExists { entity } => ServiceError::AlreadyExists { entity },
            ServiceError::FailedPrecondition { message } => ServiceError::precondition(message.clone()),
            ServiceError::Stale { message } => ServiceError::Stale {
                message: message.clone(),
            },
            ServiceError::Forbidden { message } => ServiceError::Forbidden {
                message: message.clone(),
            },
            ServiceError::Unavailable { message, .. } => ServiceError::Unavailable {
                message: message.clone(),
                source: Some(source()),
            },
            ServiceError::Internal { .. } => ServiceError::Internal { source: source() },
        }
    }

    /// An invalid-input failure with this message.
    pub fn invalid(message: impl Into<String>) -> Self {
        ServiceError::InvalidInput {
            message: message.into(),
        }
    }
}

/// One error shared by several callers ([`ServiceError::shared`]).
#[derive(Debug)]
struct SharedError(Arc<ServiceError>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The original's own cause, when it has one: that is what the log wants.
        match std::error::Error::source(&*self.0) {
            Some(cause) => write!(f, "{cause}"),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0).and_then(std::error::Error::source)
    }
}

impl From<DomainError> for ServiceError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::InvalidTransition { .. } => ServiceError::precondition(err.to_string()),
            other => ServiceError::invalid(other.to_string()),
        }
    }
}

impl From<DaoError> for ServiceError {
    fn from(err: DaoError) -> Self {
        match err {
            DaoError::NotFound { entity } | DaoError::MissingReference { entity, .. } => {
                ServiceError::NotFound { entity }
            }
            DaoError::Conflict { ref constraint } => ServiceError::AlreadyExists {
                entity: rat_dao::conflicting_entity(constraint),
            },
            DaoError::Invalid { ref constraint } => ServiceError::invalid(format!("invalid value ({constraint})")),
            DaoError::InvalidTransition { from, to } => {
                ServiceError::precondition(format!("run cannot move from {from} to {to}"))
            }
            DaoError::Retryable { .. } | DaoError::Unavailable { .. } => ServiceError::Unavailable {
                message: "the database is unavailable, retry later".to_owned(),
                source: Some(Box::new(err)),
            },
            other => ServiceError::Internal {
                source: Box::new(other),
            },
        }
    }
}

impl From<ObjectError> for ServiceError {
    fn from(err: ObjectError) -> Self {
        ServiceError::invalid(err.to_string())
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Invalid(invalid) => invalid.into(),
            StoreError::NotFound { .. } => ServiceError::NotFound { entity: "file" },
            // The client's content stopped arriving; the api answers with
            // what it knows of why (too large, too slow).
            StoreError::BodyFailed { .. } => ServiceError::invalid("the uploaded content could not be read"),
            StoreError::NotVersioned { .. } | StoreError::Unavailable { .. } | StoreError::Config { .. } => {
                ServiceError::Unavailable {
                    message: err.to_string(),
                    source: Some(Box::new(err)),
                }
            }
            StoreError::Internal { .. } => ServiceError::Internal { source: Box::new(err) },
        }
    }
}

impl From<rat_dao::PoolError> for ServiceError {
    fn from(err: rat_dao::PoolError) -> Self {
        ServiceError::from(DaoError::from(err))
    }
}

impl From<rat_dao::PgError> for ServiceError {
    fn from(err: rat_dao::PgError) -> Self {
        ServiceError::from(DaoError::from(err))
    }
}
