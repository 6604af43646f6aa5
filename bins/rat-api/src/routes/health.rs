//! Health and readiness (at the root, outside `/api/v1`) and Prometheus metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
pub use rat_wire::health::{Check, Checks, Health, Readiness};

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Health)))]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    let build = &state.settings.build;
    Json(Health {
        status: "ok".to_owned(),
        version: build.version.to_owned(),
        git_commit: build.git_commit.to_owned(),
        build_time: build.build_time.to_owned(),
    })
}

/// The process is up (same as `/health`).
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Health)))]
pub async fn live(state: State<AppState>) -> Json<Health> {
    health(state).await
}

/// `check`, within `limit`; at once an error while the prober has marked
/// `dependency` down (`rat_service::health`).
async fn bounded<F, E>(dependency: &rat_service::health::Dependency, limit: Duration, check: F) -> Check
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    if let Some(down_for) = dependency.down_for() {
        return Check {
            status: "error".to_owned(),
            error: Some(format!("down for {} ms (failing fast)", down_for.as_millis())),
        };
    }
    match tokio::time::timeout(limit, check).await {
        Ok(Ok(())) => Check {
            status: "ok".to_owned(),
            error: None,
        },
        Ok(Err(e)) => Check {
            status: "error".to_owned(),
            error: Some(e.to_string()),
        },
        Err(_) => Check {
            status: "error".to_owned(),
            error: Some(format!("no answer within {} ms", limit.as_millis())),
        },
    }
}

/// Whether Postgres and the file store answer, each within the readiness
/// timeout; a dependency the prober has marked down is reported at once.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses(
    (status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let limit = state.settings.readiness_timeout;
    let dependencies = &state.services.dependencies;
    let postgres = bounded(&dependencies.database, limit, async {
        let client = state.services.pool.get().await.map_err(|_| "database unavailable")?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|_| "database unavailable")?;
        Ok::<(), &str>(())
    });
    let s3 = bounded(&dependencies.store, limit, async {
        state.services.store.check().await.map_err(|e| {
            tracing::warn!(error = %e, "file store readiness check failed");
            "file store unavailable"
        })
    });
    let (postgres, s3) = tokio::join!(postgres, s3);
    let ready = postgres.status == "ok" && s3.status == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" }.to_owned(),
        checks: Checks { postgres, s3 },
    };
    (status, Json(body))
}

/// Prometheus text exposition: request counts and latencies by route and
/// status, and connection pool usage.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, content_type = "text/plain"),
    (status = 401, description = "a metrics token or the API key is set and was not presented",
        body = crate::error::ErrorEnvelope)))]
pub async fn metrics(State(state): State<AppState>, request: Request) -> Response {
    if !metrics_allowed(&state, &request) {
        state.refusals.record(
            crate::refusals::Refusal::Unauthenticated,
            crate::middleware::client_ip(&request),
        );
        return crate::middleware::unauthorized("/metrics needs the metrics token or the API key");
    }
    let status = state.services.pool.status();
    metrics::gauge!("rat_db_pool_size").set(status.size as f64);
    metrics::gauge!("rat_db_pool_available").set(status.available as f64);
    metrics::gauge!("rat_db_pool_waiting").set(status.waiting as f64);
    metrics::gauge!("rat_db_pool_max_size").set(status.max_size as f64);
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// `/metrics` is open unless a metrics token or an API key is configured;
/// then either one opens it (Prometheus sends it as a bearer token).
fn metrics_allowed(state: &AppState, request: &Request) -> bool {
    let settings = &state.settings;
    let secrets = [&settings.metrics_token, &settings.api_key];
    if secrets.iter().all(|secret| secret.is_none()) {
        return true;
    }
    secrets
        .into_iter()
        .flatten()
        .any(|secret| crate::middleware::bearer_matches(request, secret))
}
