//! The api, built in-process on a fresh database and bucket (and, in `process`, the real binary), one module per resource or concern.
//!
//! One test binary for the whole crate (each linking tokio, postgres and
//! the rest once, not once per file).

mod access;
mod admin;
mod audit;
mod client;
mod client_routes;
#[allow(dead_code, reason = "not every module uses every helper")]
mod common;
mod concurrency;
mod conventions;
mod fail_fast;
mod files;
mod holes;
mod landing;
mod logs_stream;
mod namespaces;
mod oidc;
mod oidc_provider;
mod openapi;
mod pipelines;
mod plugins;
mod pools;
mod process;
mod projects;
mod quality;
mod restore;
mod runner;
mod runs;
mod schedules;
mod security;
mod sharing;
mod tables;
mod triggers;
mod uploads;
mod versions;
mod webhooks;
