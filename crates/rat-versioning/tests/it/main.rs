//! The versioned store backends: the shared conformance suite against the filesystem store and S3 (moto), and what is particular to each.
//!
//! One test binary for the whole crate (each linking tokio, postgres and
//! the rest once, not once per file).

#[allow(dead_code, reason = "not every module uses every helper")]
mod conformance;
mod fs_store;
mod s3_store;
