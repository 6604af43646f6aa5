//! The test kit itself: the private cluster, test databases and moto.
//!
//! One test binary for the whole crate (each linking tokio, postgres and
//! the rest once, not once per file).

mod cluster;
mod database;
mod seed;
