//! Builds the router: every route with its OpenAPI description, and the
//! layers every request goes through.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Json};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::middleware::{self, Feature};
use crate::routes::{
    admin, audit, files, health, landing, me, meta, namespaces, pipelines, projects, quality, runs, schedules, sharing,
    tables, triggers, versions, webhooks,
};
use crate::state::AppState;

/// The document's fixed parts; paths and schemas come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "RAT metadata API",
        description = "The ratd-compatible REST API of the RAT metadata plane. Every error answers \
                       {\"error\":{\"code\",\"type\",\"message\"}}."
    ),
    components(schemas(crate::error::ErrorEnvelope, crate::error::ErrorBody))
)]
struct ApiDoc;

/// Routes of one optional feature, answering 404 when the feature is off.
pub(crate) fn gated(feature: Feature, state: &AppState, router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router.route_layer(from_fn_with_state(
        state.clone(),
        move |State(state): State<AppState>, request: Request, next: Next| {
            middleware::require_feature(feature, state, request, next)
        },
    ))
}

/// Every route under `/api/v1`, with authentication, audit and the JSON body limit.
fn api_v1(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(meta::features))
        .routes(routes!(meta::plugins))
        .routes(routes!(meta::delete_plugin))
        .routes(routes!(meta::runner_plugins))
        .routes(routes!(me::me))
        .routes(routes!(me::list_tokens, me::create_token))
        .routes(routes!(me::revoke_token))
        .routes(routes!(namespaces::list, namespaces::create))
        .routes(routes!(namespaces::update, namespaces::delete))
        .routes(routes!(pipelines::list, pipelines::create))
        .routes(routes!(pipelines::get, pipelines::update, pipelines::delete))
        .routes(routes!(pipelines::get_deleted))
        .routes(routes!(pipelines::restore))
        .merge(files::router(state))
        .merge(versions::router(state))
        .merge(quality::router(state))
        .merge(runs::router())
        .merge(schedules::router())
        .merge(triggers::router(state))
        .merge(webhooks::router(state))
        .merge(landing::router(state))
        .merge(tables::router())
        .merge(sharing::router())
        .merge(projects::router())
        .merge(audit::router(state))
        .merge(admin::router())
        .layer(DefaultBodyLimit::max(state.settings.max_json_body))
        .layer(from_fn_with_state(state.clone(), middleware::guard))
        .layer(from_fn_with_state(state.clone(), middleware::fail_fast))
}

/// The router and the OpenAPI document describing it.
pub fn router_and_openapi(state: AppState) -> (Router, serde_json::Value) {
    router_with(state, Router::new())
}

/// The router with `extra` routes inside every layer (tests add failure
/// routes this way, e.g. one that panics), and the OpenAPI document.
pub fn router_with(state: AppState, extra: Router<AppState>) -> (Router, serde_json::Value) {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::metrics))
        .nest("/api/v1", api_v1(&state))
        .split_for_parts();
    let openapi = crate::openapi::finish(openapi, crate::openapi::Listener::Public);
    let document = openapi.clone();
    let spec = openapi_json_route(document, &state);
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(state.settings.cors_origins.clone()))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
        // ratd's list: a browser may send each of these.
        .allow_headers([
            header::ACCEPT,
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-webhook-token"),
        ])
        // ETag: a browser client reads it to send it back as If-Match.
        .expose_headers([HeaderName::from_static("x-request-id"), header::ETAG])
        .allow_credentials(true);
    let router = with_error_fallbacks(router.merge(spec).merge(extra)).layer(cors);
    let router = outer_layers(router, &state).with_state(state);
    (router, openapi)
}

/// Answers unknown routes with 404 and other methods of a known route with
/// 405, both in the envelope. Shared by the public and the internal listener.
pub(crate) fn with_error_fallbacks(router: Router<AppState>) -> Router<AppState> {
    router
        .fallback(|| async { ApiError::not_found("route not found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "INVALID_ARGUMENT",
                "method not allowed on this route",
            )
        })
}

/// The outermost layers of every listener, around the listener's own ones:
/// a panicking handler answers 500, and [`middleware::frame`] gives each
/// request its id, envelope, security headers, metrics and log line.
pub(crate) fn outer_layers(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    router
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(from_fn_with_state(state.clone(), middleware::frame))
}

/// `GET /api/v1/openapi.json`, behind the same authentication as the API.
fn openapi_json_route(document: serde_json::Value, state: &AppState) -> Router<AppState> {
    let document = std::sync::Arc::new(document);
    Router::new()
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move { Json(document.as_ref().clone()).into_response() }
            }),
        )
        .layer(from_fn_with_state(state.clone(), middleware::guard))
}

/// The application's router.
pub fn router(state: AppState) -> Router {
    router_and_openapi(state).0
}
