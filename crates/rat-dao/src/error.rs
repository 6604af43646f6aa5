//! The DAO's one error type, and the mapping from driver and pool errors to it.
//!
//! `Display` of a [`DaoError`] never contains SQL or driver text: it names a
//! constraint or an entity at most. The driver error stays reachable through
//! `source()` for logs.

use rat_domain::RunStatus;
use tokio_postgres::error::SqlState;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a repository call.
#[derive(Debug, thiserror::Error)]
pub enum DaoError {
    /// The row asked for does not exist (or is soft-deleted).
    #[error("{entity} not found")]
    NotFound {
        /// What was looked for (`pipeline`, `run`, ...).
        entity: &'static str,
    },
    /// A unique constraint (or another "already there" rule) refused the write.
    #[error("conflict: {constraint}")]
    Conflict {
        /// The violated constraint's name.
        constraint: String,
    },
    /// A foreign key on insert or update pointed at a row that does not exist.
    #[error("{entity} not found")]
    MissingReference {
        /// The referenced entity.
        entity: &'static str,
        /// The foreign key's name.
        constraint: String,
    },
    /// A CHECK, NOT NULL, length or format rule of the schema refused a value.
    #[error("invalid value: {constraint}")]
    Invalid {
        /// The violated constraint (or column) name.
        constraint: String,
    },
    /// A run status update the state machine refuses; nothing was changed.
    #[error("run cannot move from {from} to {to}")]
    InvalidTransition {
        /// The run's status when the update was refused.
        from: RunStatus,
        /// The status asked for.
        to: RunStatus,
    },
    /// Serialization failure, deadlock or lock timeout: the whole transaction
    /// may be retried.
    #[error("transaction conflict, retry")]
    Retryable {
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database cannot be reached, or the pool timed out.
    #[error("database unavailable")]
    Unavailable {
        /// The driver or pool error.
        #[source]
        source: BoxError,
    },
    /// A stored value does not parse into its domain type.
    #[error("stored {column} is invalid")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// Why it does not parse.
        #[source]
        source: BoxError,
    },
    /// The pool or connection settings are unusable.
    #[error("invalid database configuration: {reason}")]
    Config {
        /// What is wrong (never contains the password).
        reason: String,
    },
    /// A migration could not be applied; the schema was left as it was.
    #[error("schema migration failed: {reason}")]
    Migration {
        /// refinery's explanation (for operators, not clients).
        reason: String,
    },
    /// Anything else; the detail is only in `source()`.
    #[error("internal database error")]
    Internal {
        /// The driver error.
        #[source]
        source: BoxError,
    },
}

impl DaoError {
    /// True when retrying the whole transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DaoError::Retryable { .. })
    }

    /// Turns a foreign-key violation met while *deleting* (a row still
    /// referenced) into a conflict; deletes call this on their errors.
    pub(crate) fn on_delete(self) -> Self {
        match self {
            DaoError::MissingReference { constraint, .. } => DaoError::Conflict { constraint },
            other => other,
        }
    }

    pub(crate) fn corrupt(column: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        DaoError::Corrupt {
            column,
            source: Box::new(source),
        }
    }
}

/// The entity a unique constraint keeps unique, named for clients (what
/// already exists when a write hits [`DaoError::Conflict`]). With
/// `referenced_entity`, the one place the schema's constraint names are
/// turned into words.
pub fn conflicting_entity(constraint: &str) -> &'static str {
    match constraint {
        "uq_namespaces_name" => "namespace",
        "uq_pipelines_namespace_layer_name" => "pipeline",
        "uq_landing_zones_namespace_name" => "landing zone",
        "uq_quality_tests_pipeline_name" => "quality test",
        "uq_projects_name" => "project",
        "pk_project_members" => "project member",
        "uq_shares_object_shared_with" => "share",
        "uq_ownership_object" => "owner",
        "uq_runs_schedule_slot" | "uq_runs_trigger_slot" => "run for this slot",
        "uq_pipeline_versions_pipeline_version" => "version",
        _ => "object",
    }
}

/// The entity a foreign key points at, named for clients (`MissingReference`).
pub(crate) fn referenced_entity(constraint: &str) -> &'static str {
    match constraint {
        "fk_pipelines_namespace" | "fk_landing_zones_namespace" => "namespace",
        "fk_runs_pipeline"
        | "fk_schedules_pipeline"
        | "fk_pipeline_triggers_pipeline"
        | "fk_pipeline_versions_pipeline"
        | "fk_quality_tests_pipeline" => "pipeline",
        "fk_quality_results_run" | "fk_schedules_last_run" | "fk_pipeline_triggers_last_run" | "fk_run_logs_run" => {
            "run"
        }
        "fk_quality_results_test" => "quality test",
        "fk_landing_files_zone" => "landing zone",
        "fk_project_members_project" => "project",
        "fk_runs_schedule" => "schedule",
        "fk_runs_trigger" => "trigger",
        _ => "referenced row",
    }
}

impl From<tokio_postgres::Error> for DaoError {
    fn from(err: tokio_postgres::Error) -> Self {
        let Some(db) = err.as_db_error() else {
            // No server error: the connection broke, or a value failed to
            // convert on the client side.
            if err.is_closed() || std::error::Error::source(&err).is_some_and(|s| s.is::<std::io::Error>()) {
                return DaoError::Unavailable { source: Box::new(err) };
            }
            return DaoError::Internal { source: Box::new(err) };
        };
        let constraint = db.constraint().map(str::to_owned);
        let code = db.code().clone();
        if code == SqlState::UNIQUE_VIOLATION || code == SqlState::EXCLUSION_VIOLATION {
            DaoError::Conflict {
                constraint: constraint.unwrap_or_else(|| "unique".to_owned()),
            }
        } else if code == SqlState::FOREIGN_KEY_VIOLATION {
            let constraint = constraint.unwrap_or_else(|| "foreign_key".to_owned());
            DaoError::MissingReference {
                entity: referenced_entity(&constraint),
                constraint,
            }
        } else if code == SqlState::CHECK_VIOLATION {
            DaoError::Invalid {
                constraint: constraint.unwrap_or_else(|| "check".to_owned()),
            }
        } else if code == SqlState::NOT_NULL_VIOLATION {
            DaoError::Invalid {
                constraint: db
                    .column()
                    .map_or_else(|| "not_null".to_owned(), |c| format!("{c}_not_null")),
            }
        } else if code == SqlState::STRING_DATA_RIGHT_TRUNCATION
            || code == SqlState::INVALID_TEXT_REPRESENTATION
            || code == SqlState::NUMERIC_VALUE_OUT_OF_RANGE
            || code == SqlState::DATETIME_FIELD_OVERFLOW
            || code == SqlState::INVALID_PARAMETER_VALUE
            || code == SqlState::UNTRANSLATABLE_CHARACTER
            || code == SqlState::CHARACTER_NOT_IN_REPERTOIRE
        {
            DaoError::Invalid {
                constraint: "value".to_owned(),
            }
        } else if code == SqlState::T_R_SERIALIZATION_FAILURE
            || code == SqlState::T_R_DEADLOCK_DETECTED
            || code == SqlState::LOCK_NOT_AVAILABLE
        {
            DaoError::Retryable { source: err }
        } else if code.code().starts_with("08")
            || code == SqlState::ADMIN_SHUTDOWN
            || code == SqlState::CRASH_SHUTDOWN
            || code == SqlState::CANNOT_CONNECT_NOW
            || code == SqlState::TOO_MANY_CONNECTIONS
            || code == SqlState::QUERY_CANCELED
        {
            DaoError::Unavailable { source: Box::new(err) }
        } else {
            DaoError::Internal { source: Box::new(err) }
        }
    }
}

/// Every failure to get a pooled connection is `Unavailable`: the database
/// is down, restarting, out of connection slots, or refusing this role (a
/// rejected login is a configuration problem of the operator's, not of the
/// request, and the request may succeed once it is fixed).
impl From<deadpool_postgres::PoolError> for DaoError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        DaoError::Unavailable { source: Box::new(err) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_never_carries_driver_text() {
        let err = DaoError::Internal {
            source: "syntax error at or near SELECT".into(),
        };
        assert_eq!(err.to_string(), "internal database error");
        let err = DaoError::Unavailable {
            source: "connection refused to 10.0.0.1".into(),
        };
        assert_eq!(err.to_string(), "database unavailable");
    }

    #[test]
    fn delete_side_reference_violations_are_conflicts() {
        let err = DaoError::MissingReference {
            entity: "pipeline",
            constraint: "fk_runs_pipeline".into(),
        };
        assert!(matches!(err.on_delete(), DaoError::Conflict { .. }));
    }
}
