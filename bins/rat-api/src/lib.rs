//! `rat-api`: the ratd-compatible REST API of the RAT metadata plane, as a
//! library (so tests build it in-process) and a binary (`main.rs`).
//!
//! hyper 1 serves HTTP; axum routes on top of it (its extractors and
//! `from_fn` middleware keep handlers thin); tower-http supplies CORS, panic
//! catching and response headers; utoipa (with utoipa-axum) generates the
//! OpenAPI document from the handlers, so a route cannot be registered
//! without its description; `metrics` with its Prometheus exporter renders
//! `/metrics`.
//!
//! What it must never do: decide access or hold business rules (handlers
//! parse, call one `rat-service` function, and map the answer), build SQL,
//! or put SQL or driver text in an answer. Its wire shapes live in
//! `rat-wire`, so clients can share them.
//!
//! ```no_run
//! use rat_api::state::{ApiSettings, AppState};
//!
//! # async fn example(services: rat_service::Services) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let settings = ApiSettings::new("http://127.0.0.1:8080".to_owned());
//! let live = rat_api::live::LiveLogs::new("postgres://rat@localhost/rat");
//! let state = AppState::new(services, settings, rat_api::metrics_handle(), live);
//! let limits = rat_api::server::ServeLimits::default();
//! rat_api::server::serve(listener, rat_api::app::router(state), limits, std::future::pending()).await
//! # }
//! ```

pub mod app;
pub mod body;
pub mod error;
pub mod extract;
pub mod internal;
pub mod live;
pub mod middleware;
pub mod openapi;
pub mod refusals;
pub mod routes;
pub mod security;
pub mod server;
pub mod state;
pub mod uploads;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process-wide Prometheus recorder (installed once, shared by every
/// router of the process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
                .expect("static buckets are valid")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}
