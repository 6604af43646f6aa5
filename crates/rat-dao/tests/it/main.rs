//! The repositories against a real PostgreSQL, one module per aggregate.
//!
//! One test binary for the whole crate (each linking tokio, postgres and
//! the rest once, not once per file).

mod access;
mod audit;
mod cascades;
mod keyset;
mod landing;
mod migrations;
mod namespaces;
mod pipeline_versions;
mod pipelines;
mod plugins;
mod projects;
mod quality;
mod reaper_status;
mod run_counts;
mod run_references;
mod runner_reports;
mod runs;
mod schedules;
mod schema;
mod search;
mod settings;
mod tables;
mod triggers;
