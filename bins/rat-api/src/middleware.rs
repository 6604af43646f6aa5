//! Cross-cutting layers: request ids, the error envelope on every error,
//! authentication, audit, metrics and feature flags.

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, OriginalUri, Request, State};
use axum::http::header::{
    AUTHORIZATION, CONTENT_TYPE, REFERRER_POLICY, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use rat_dao::audit::{self, NewAuditEntry};
use rat_domain::FeatureFlags;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::{ApiError, default_code};
use crate::extract::{Identity, RequestId};
use crate::state::AppState;

/// The request-id header, accepted from the client or generated.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Actor of requests in community mode (no authentication configured).
pub const COMMUNITY_ACTOR: &str = "community";
/// Actor of requests authenticated with the API key.
pub const API_KEY_ACTOR: &str = "api-key";
/// Actor of webhook calls, which authenticate with their trigger's token.
pub const WEBHOOK_ACTOR: &str = "webhook";
/// The one route that needs no API key: its webhook token authenticates it.
pub const WEBHOOK_PATH: &str = "/api/v1/webhooks";

fn valid_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    (!text.is_empty() && text.len() <= 128 && text.bytes().all(|b| b.is_ascii_graphic())).then(|| text.to_owned())
}

/// The frame around every request of both listeners, in one layer (each
/// layer costs a boxed service clone and a boxed future per request):
///
/// - takes the client's `X-Request-ID` (at most 128 printable characters) or
///   generates one, makes it available to handlers and logs, and echoes it;
/// - replaces any error answer that is not already JSON (axum's own
///   rejections, 404/405 of the router, limits of tower layers, a panic's
///   500) by the envelope, so no error ever reaches a client in another shape;
/// - sets the security headers;
/// - counts the request and records its latency by method, route and status;
/// - logs one line per request.
pub async fn frame(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(valid_request_id)
        // A v4 UUID from the thread's RNG: `Uuid::new_v4` asks the kernel for
        // randomness on every call, a syscall per request.
        .unwrap_or_else(|| uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string());
    let header = HeaderValue::from_str(&id).ok();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        %method,
        route = %route.as_ref().map_or_else(|| request.uri().path(), |r| r.as_str()),
    );
    request.extensions_mut().insert(RequestId(id));
    let started = Instant::now();
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let mut response = envelope_errors(response).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| tracing::info!(status, duration_ms = elapsed.as_secs_f64() * 1000.0, "request"));
    let labels = [
        ("method", method.as_str().to_owned()),
        (
            "route",
            route.map_or_else(|| "unmatched".to_owned(), |r| r.as_str().to_owned()),
        ),
        ("status", status.to_string()),
    ];
    metrics::counter!("rat_http_requests_total", &labels).increment(1);
    metrics::histogram!("rat_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Some(value) = header {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// The envelope instead of any error answer that is not already JSON.
async fn envelope_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let message = match status {
        StatusCode::NOT_FOUND => "route not found".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "request body is too large".to_owned(),
        s if s.is_server_error() => "internal error".to_owned(),
        _ => {
            // A client error from a framework layer: its text is about the
            // request (never internals), and worth keeping.
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("bad request").to_owned()
            } else {
                text
            }
        }
    };
    let mut replaced = ApiError::new(status, default_code(status), message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            replaced.headers_mut().insert(name.clone(), value.clone());
        }
    }
    replaced
}

/// Whether `request` is a webhook call (`POST` [`WEBHOOK_PATH`], exactly).
fn is_webhook_call(request: &Request) -> bool {
    // Inside the nested router the URI has lost its prefix; the original has it.
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path(), |uri| uri.path());
    request.method() == Method::POST && path == WEBHOOK_PATH
}

/// Whether `request` bears `Authorization: Bearer <secret>`, compared in
/// constant time so the answer's timing reveals nothing about the secret.
pub(crate) fn bearer_matches(request: &Request, secret: &SecretString) -> bool {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    presented.as_bytes().ct_eq(secret.expose_secret().as_bytes()).into()
}

/// 401 `UNAUTHENTICATED` with `WWW-Authenticate: Bearer`.
pub(crate) fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message).into_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The actor a request authenticates as, or `None` when it must be refused.
/// With an API key configured, requires `Authorization: Bearer <key>`
/// (compared in constant time); without one (community mode, loopback only
/// unless `--insecure-no-auth`), every request is [`COMMUNITY_ACTOR`].
/// Webhook calls ([`WEBHOOK_PATH`]) need no key: the webhook token they bear
/// is their authentication, checked by their handler; their actor is
/// [`WEBHOOK_ACTOR`].
fn actor_of(state: &AppState, request: &Request) -> Option<&'static str> {
    match &state.settings.api_key {
        _ if is_webhook_call(request) => Some(WEBHOOK_ACTOR),
        None => Some(COMMUNITY_ACTOR),
        Some(key) => bearer_matches(request, key).then_some(API_KEY_ACTOR),
    }
}

/// Runs the request as `actor` ([`Identity`] for the handler), or answers
/// 401 when there is none.
async fn run_as(actor: Option<&'static str>, mut request: Request, next: Next) -> Response {
    match actor {
        Some(actor) => {
            request.extensions_mut().insert(Identity {
                actor: actor.to_owned(),
            });
            next.run(request).await
        }
        None => unauthorized("missing or invalid API key"),
    }
}

/// Authentication, then the audit row: the one layer `/api/v1` routes sit
/// behind. Every request authenticates ([`actor_of`]); every POST, PUT and
/// DELETE writes one `audit_log` row after the handler ran (or after it was
/// refused), so the outcome (status code) is recorded — failed and rejected
/// requests included. Rows are not written while the `audit_log` feature
/// flag is off.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let actor = actor_of(&state, &request);
    if !matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    ) {
        return run_as(actor, request, next).await;
    }
    let method = request.method().clone();
    // Inside a nested router the URI has lost its prefix; the original has it.
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path().to_owned(), |uri| uri.path().to_owned());
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());

    let response = run_as(actor, request, next).await;

    let noted = response.extensions().get::<AuditObject>().cloned().unwrap_or_default();
    let action = match noted.action {
        Some(action) => action.to_owned(),
        None => format!("{method} {}", route.as_deref().unwrap_or(&path)),
    };
    let entry = NewAuditEntry {
        actor: actor.unwrap_or("unauthenticated").to_owned(),
        action: action.chars().take(100).collect(),
        object_type: noted.object_type.map(str::to_owned),
        object_id: noted.object_id,
        details: Some(serde_json::json!({
            "method": method.as_str(),
            "path": path,
            "route": route,
            "status": response.status().as_u16(),
            "request_id": request_id,
            "client_ip": client_ip,
        })),
    };
    if let Err(e) = write_audit(&state, &entry).await {
        // The action itself happened (or was refused); failing the answer now
        // would mislead the client. The gap is logged and counted instead.
        metrics::counter!("rat_audit_write_failures_total").increment(1);
        tracing::error!(error = %e, action = %entry.action, "could not write the audit row");
    }
    response
}

/// What a handler tells the audit layer about the object it acted on.
#[derive(Debug, Clone, Default)]
pub struct AuditObject {
    /// A short action name (`pipeline.create`); defaults to method and route.
    pub action: Option<&'static str>,
    /// `pipeline`, `namespace`, `run`, ...
    pub object_type: Option<&'static str>,
    /// The object's id, when it has one.
    pub object_id: Option<Uuid>,
}

impl AuditObject {
    /// An audit note for `action` on an object of `object_type`.
    pub fn new(action: &'static str, object_type: &'static str, object_id: Option<Uuid>) -> Self {
        AuditObject {
            action: Some(action),
            object_type: Some(object_type),
            object_id,
        }
    }
}

async fn write_audit(state: &AppState, entry: &NewAuditEntry) -> Result<(), rat_service::ServiceError> {
    let client = state.services.pool.get().await?;
    let flags = rat_dao::settings::feature_flags(&client).await?;
    if flags.audit_log {
        audit::insert(&client, entry, time::OffsetDateTime::now_utc()).await?;
    }
    Ok(())
}

/// An optional feature whose routes answer 404 when it is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `/pipelines/{…}/tests`.
    QualityTests,
    /// `/landing-zones`.
    LandingZones,
    /// `/audit`.
    AuditLog,
    /// `/pipelines/{…}/triggers`, `/webhooks`.
    PipelineTriggers,
    /// `/pipelines/{…}/publish|versions|rollback`.
    PipelineVersions,
}

impl Feature {
    fn enabled(self, flags: &FeatureFlags) -> bool {
        match self {
            Feature::QualityTests => flags.quality_tests,
            Feature::LandingZones => flags.landing_zones,
            Feature::AuditLog => flags.audit_log,
            Feature::PipelineTriggers => flags.pipeline_triggers,
            Feature::PipelineVersions => flags.pipeline_versions,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Feature::QualityTests => "quality_tests",
            Feature::LandingZones => "landing_zones",
            Feature::AuditLog => "audit_log",
            Feature::PipelineTriggers => "pipeline_triggers",
            Feature::PipelineVersions => "pipeline_versions",
        }
    }
}

/// Answers 404 (`FEATURE_DISABLED`) when `feature` is off in
/// `platform_settings.feature_flags`, read from Postgres on each request.
pub async fn require_feature(feature: Feature, state: AppState, request: Request, next: Next) -> Response {
    match rat_service::platform::feature_flags(&state.services).await {
        Ok(flags) if feature.enabled(&flags) => next.run(request).await,
        Ok(_) => {
            ApiError::not_found(format!("FEATURE_DISABLED: the {} feature is disabled", feature.name())).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// An empty 500 body for a panicking handler; [`envelope_errors`] turns it
/// into the envelope and the process keeps serving.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = detail, "a handler panicked");
    ApiError::internal().into_response()
}
