//! End-to-end tests that start the real binaries, and the repository policy checks.
//!
//! One test binary for the whole crate (each linking tokio, postgres and
//! the rest once, not once per file).

mod chaos;
mod curl_tour;
mod demo_data;
mod examples;
mod generated_client;
mod pgbouncer;
mod policy;
mod reaper_replicas;
mod restore;
mod roles;
mod scheduler_replicas;
mod schemathesis;
mod sdk_flows;
mod soak;
mod tenancy;
mod tenants;
mod tls;
