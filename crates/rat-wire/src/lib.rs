//! The wire shapes of the RAT metadata plane: the JSON request and answer
//! bodies of the REST API (`/api/v1`) and of the runner protocol (rat-api's
//! internal listener), in one place, so the server (`rat-api`), the typed
//! client (`rat-client`), the minimal runner (`rat-runner`) and the tests
//! read and write the same types (the crates.io backend's api-types pattern).
//!
//! What it must never do: IO of any kind (no HTTP, no database, no files),
//! validation beyond what serde does (the server parses these into
//! `rat-domain` types at its edge), or change a shape on the wire: the RAT SDK
//! and portal depend on every field name, and `rat-api`'s OpenAPI documents are
//! derived from these types. A new field in an answer is a compatible change;
//! renaming or removing one is not.
//!
//! Features:
//! - `openapi`: derives `utoipa::ToSchema` / `IntoParams` (the server's
//!   OpenAPI documents);
//! - `domain`: `From` conversions of `rat-domain` entities into their wire
//!   shapes (the server's side; a client need not compile `rat-domain`).
//!
//! Times are RFC 3339 strings in UTC ([`rfc3339`]).
//!
//! ```
//! use rat_wire::runner::ClaimBody;
//! use rat_wire::error::ErrorEnvelope;
//!
//! let claim = ClaimBody { runner_id: "runner-1".into(), max_runs: Some(4), lease_seconds: None, plugins: None };
//! let json = serde_json::to_string(&claim).unwrap();
//! assert_eq!(json, r#"{"runner_id":"runner-1","max_runs":4,"lease_seconds":null,"plugins":null}"#);
//!
//! let error: ErrorEnvelope =
//!     serde_json::from_str(r#"{"error":{"code":"NOT_FOUND","type":"NOT_FOUND","message":"no such run"}}"#).unwrap();
//! assert_eq!(error.error.code, "NOT_FOUND");
//! ```

pub mod admin;
pub mod audit;
pub mod error;
pub mod files;
pub mod health;
pub mod landing;
pub mod me;
pub mod meta;
pub mod namespaces;
pub mod pipelines;
pub mod plugins;
pub mod projects;
pub mod quality;
pub mod runner;
pub mod runs;
pub mod schedules;
pub mod sharing;
pub mod tables;
pub mod triggers;
pub mod versions;
pub mod webhooks;

/// Serializes timestamps as RFC 3339 (UTC) in every wire type.
pub mod rfc3339 {
    pub use time::serde::rfc3339::*;
}
