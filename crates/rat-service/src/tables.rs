//! Table metadata.
