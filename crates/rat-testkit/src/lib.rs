//! Test and dev tooling for the RAT metadata plane. A dev-dependency only:
//! no shipped binary links it.
//!
//! - [`cluster`] starts a private PostgreSQL cluster from the machine's server
//!   binaries (`initdb`, `pg_ctl`), as an unprivileged user when run as root.
//! - [`seed`] fills a database with a realistic volume of metadata.
//! - [`fixtures`] creates ready-made rows through the real repositories.
//! - [`s3`] runs moto (an S3 server with object versioning) for the file
//!   store tests, installed on first use under `target/`.
//! - [`oidc`] runs a real OpenID provider (the npm package `oidc-provider`)
//!   for the end-to-end tests of signing in, installed on first use under
//!   `target/`.
//! - [`clients`] builds RAT's own clients (its TypeScript SDK and web
//!   portal) from the archive beside the checkout, under `target/`.
//! - [`pytools`] installs the Python tools that check the OpenAPI documents
//!   (a spec validator, schemathesis, openapi-python-client) under `target/`.
//! - [`pgbouncer`] runs a private PgBouncer in transaction pooling mode in
//!   front of the test server, as the services run behind a transaction
//!   pooler.
//! - [`chart`] writes SVG line charts for the reports of tools and
//!   benchmarks (`cargo xtask soak`).
//! - [`TestDatabase`] gives each test a fresh database cloned from a migrated
//!   template, dropped when the test ends; leftovers of crashed runs are swept.
//!
//! Tests use the server named by `RAT_TEST_DATABASE_URL` when it is set, and
//! otherwise a shared private cluster under the system temporary directory,
//! started on first use and kept running for the next test process
//! (`cargo xtask test` stops it at the end). Without server binaries and
//! without `RAT_TEST_DATABASE_URL`, tests fail and say what to install.
//!
//! What it must never do: be a dependency (other than a dev-dependency) of a
//! shipped binary, or skip a test when a component is missing (a missing
//! server fails the test, saying what to install).
//!
//! ```no_run
//! # async fn example() {
//! let db = rat_testkit::TestDatabase::new().await; // a fresh, migrated database
//! let client = db.client().await;
//! let store = rat_testkit::s3::test_store().await; // a fresh versioned bucket on moto
//! # let _ = (client, store);
//! # }
//! ```

pub mod chart;
pub mod clients;
pub mod cluster;
mod database;
pub mod demo;
pub mod fixtures;
mod install;
pub mod nessie;
pub mod oidc;
pub mod pgbouncer;
pub mod pytools;
pub mod s3;
pub mod seed;
pub mod tls;

pub use database::{ADMIN_URL_ENV, TestDatabase};
/// The repositories, for tests that arrange or check rows directly: the
/// binaries themselves reach the database only through `rat-service`, so
/// their tests name the repositories through this dev-only crate.
pub use rat_dao as dao;

/// A TCP port on `127.0.0.1` nothing listens on right now.
pub(crate) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// The last `lines` lines of the file at `path` (empty when unreadable).
pub(crate) fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
