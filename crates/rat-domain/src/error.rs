//! The one error type of the domain crate: a value failed to parse or a rule was broken.

use std::fmt;

/// Why a value was refused. Every message is safe to show to an API client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A field's value does not have the required form.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, in the words a client used (`namespace`, `cron`, ...).
        field: &'static str,
        /// What is wrong, lowercase, no trailing period.
        reason: String,
    },
    /// A number lies outside its allowed range.
    #[error("{field} must be between {min} and {max}, got {value}")]
    OutOfRange {
        /// The field's name.
        field: &'static str,
        /// The value that was given.
        value: i64,
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A run status change that the state machine does not allow.
    #[error("run cannot move from {from} to {to}")]
    InvalidTransition {
        /// The status the run has.
        from: crate::RunStatus,
        /// The status that was asked for.
        to: crate::RunStatus,
    },
}

impl DomainError {
    /// Shorthand for [`DomainError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl fmt::Display) -> Self {
        DomainError::Invalid {
            field,
            reason: reason.to_string(),
        }
    }
}
