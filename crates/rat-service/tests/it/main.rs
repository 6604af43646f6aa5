//! The managers against a real PostgreSQL and file store, one module per concern.
//!
//! One test binary for the whole crate (each linking tokio, postgres and
//! the rest once, not once per file).

mod admin;
mod audit;
#[allow(dead_code, reason = "not every module uses every helper")]
mod branches;
mod common;
mod firing;
mod landing;
mod projects;
mod quality;
mod reads;
mod reaper;
mod runner;
mod runs;
mod scheduler;
mod schedules;
mod sharing;
mod triggers;
mod versioning;
