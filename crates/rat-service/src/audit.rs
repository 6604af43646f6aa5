//! Reading the audit log.
