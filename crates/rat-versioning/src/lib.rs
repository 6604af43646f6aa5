//! Versioned file store (S3 with object versioning, and a local filesystem backend).
//!
//! Filled by the versioning issue; depends on `rat-domain` only.
