//! Cross-cutting layers: request ids, the error envelope on every error,
//! authentication, audit, metrics and feature flags.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, OriginalUri, Request, State};
use axum::http::header::{
    AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN, REFERRER_POLICY, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use rat_domain::FeatureFlags;
use rat_service::audit::NewAuditEntry;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::body::DeadlineBody;
use crate::error::{ApiError, default_code};
use crate::extract::{Identity, RequestId};
use crate::refusals::Refusal;
use crate::state::AppState;
use rat_service::identity::{Caller, Unauthenticated};

/// The request-id header, accepted from the client or generated.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Actor of requests in community mode (no authentication configured).
pub const COMMUNITY_ACTOR: &str = rat_service::identity::COMMUNITY_USER;
/// Actor of requests authenticated with the API key.
pub const API_KEY_ACTOR: &str = rat_service::identity::API_KEY_USER;
/// Actor of webhook calls, which authenticate with their trigger's token.
pub const WEBHOOK_ACTOR: &str = rat_service::identity::WEBHOOK_USER;
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
/// - refuses, before anything else runs, a URI or headers over their limits
///   (414, 431), a `Host` this server does not serve and a state-changing
///   request from a foreign `Origin` (403; `screen`);
/// - puts the body under its deadlines ([`crate::body`]);
/// - replaces any error answer that is not already JSON (axum's own
///   rejections, 404/405 of the router, limits of tower layers, a panic's
///   500) by the envelope, so no error ever reaches a client in another shape;
/// - sets the security headers;
/// - counts the request and records its latency by method, route and status
///   (methods outside the standard ones, and unmatched routes, share one
///   label each, so invented ones cannot grow the metrics);
/// - logs one line per request.
pub async fn frame(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(valid_request_id)
        // A v4 UUID from the thread's RNG: `Uuid::new_v4` asks the kernel for
        // randomness on every call, a syscall per request.
        .unwrap_or_else(|| uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string());
    let header = HeaderValue::from_str(&id).ok();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        route = %route.as_ref().map_or("unmatched", |r| r.as_str()),
    );
    request.extensions_mut().insert(RequestId(id));
    let started = Instant::now();
    let response = match screen(&state, &request) {
        Some(refused) => refused,
        None => {
            // Most requests (every GET) have no body: nothing to time.
            if !http_body::Body::is_end_stream(request.body()) {
                let deadlines = state.settings.body_deadlines;
                request = request.map(|body| Body::new(DeadlineBody::new(body, deadlines)));
            }
            tracing::Instrument::instrument(next.run(request), span.clone()).await
        }
    };
    let mut response = envelope_errors(response).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| tracing::info!(status, duration_ms = elapsed.as_secs_f64() * 1000.0, "request"));
    let labels = [
        ("method", method.to_owned()),
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

/// The metrics label of a method: the standard ones by name, any other as
/// `OTHER`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The client address of a request, when the listener recorded it.
pub(crate) fn client_ip(request: &Request) -> Option<IpAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// Whether `method` changes state (every method but the safe ones).
fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// The answer refusing `request` before any handler runs, or `None`:
/// - 414 for a URI longer than `max_uri_bytes`, 431 for headers larger than
///   `max_header_bytes` (both with the envelope);
/// - 403 for a `Host` outside `allowed_hosts` (when set: a loopback server
///   without authentication serves only loopback names, so a page whose
///   name was rebound to 127.0.0.1 cannot read its answers);
/// - 403 for a state-changing request whose `Origin` is present and not
///   trusted (`cors_origins`, or the origin of `public_url`): browsers send
///   form, `text/plain` and multipart bodies cross-site without asking, so
///   this is what keeps another site's page from changing the platform.
///   Requests without `Origin` (curl, SDKs outside browsers, runners) pass.
fn screen(state: &AppState, request: &Request) -> Option<Response> {
    let settings = &state.settings;
    let uri_len = request.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > settings.max_uri_bytes {
        return Some(
            ApiError::new(
                StatusCode::URI_TOO_LONG,
                "INVALID_ARGUMENT",
                format!("request URI is too long (at most {} bytes)", settings.max_uri_bytes),
            )
            .into_response(),
        );
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > settings.max_header_bytes {
        return Some(
            ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "INVALID_ARGUMENT",
                format!(
                    "request headers are too large (at most {} bytes)",
                    settings.max_header_bytes
                ),
            )
            .into_response(),
        );
    }
    if let Some(allowed) = &settings.allowed_hosts {
        let host = request.uri().authority().map(|a| a.as_str().to_owned()).or_else(|| {
            request
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
        if let Some(host) = host
            && !crate::security::host_allowed(&host, allowed)
        {
            state.refusals.record(Refusal::ForeignHost, client_ip(request));
            return Some(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "FORBIDDEN",
                    "this host name is not served here (a loopback server without authentication serves \
                     loopback names and RAT_ALLOWED_HOSTS only)",
                )
                .into_response(),
            );
        }
    }
    if is_state_changing(request.method())
        && let Some(origin) = request.headers().get(ORIGIN)
        && !crate::security::origin_trusted(origin, settings)
    {
        state.refusals.record(Refusal::ForeignOrigin, client_ip(request));
        return Some(
            ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "cross-origin request refused: its Origin is not one of RAT_CORS_ORIGINS",
            )
            .into_response(),
        );
    }
    None
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

/// Whether `request` bears `Authorization: Bearer <secret>` (the scheme in
/// any case, RFC 7235), compared in constant time so the answer's timing
/// reveals nothing about the secret. A missing or empty credential never
/// matches, nor does an empty secret.
pub(crate) fn bearer_matches(request: &Request, secret: &SecretString) -> bool {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credential)
        .unwrap_or("");
    let secret = secret.expose_secret().as_bytes();
    !presented.is_empty() && !secret.is_empty() && bool::from(presented.as_bytes().ct_eq(secret))
}

/// The credential of an `Authorization: Bearer <credential>` value, the
/// scheme matched case-insensitively.
pub fn bearer_credential(value: &str) -> Option<&str> {
    let (scheme, credential) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credential.trim())
}

/// 401 `UNAUTHENTICATED` with `WWW-Authenticate: Bearer`.
pub(crate) fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message).into_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The bearer credential of a request, if it has one. [`guard`] turns it into
/// the caller ([`rat_service::identity::Authenticator`]): with an API key or
/// an OIDC issuer configured, a request needs `Authorization: Bearer <key or
/// access token>`; with neither (community mode, loopback only unless
/// `--insecure-no-auth`), every request is [`COMMUNITY_ACTOR`]. Webhook calls
/// ([`WEBHOOK_PATH`]) need no key: the webhook token they bear is their
/// authentication, checked by their handler; their actor is [`WEBHOOK_ACTOR`].
fn credential_of(request: &Request) -> Option<String> {
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credential)
        .map(str::to_owned)
}

/// Authentication, then the audit row: the one layer `/api/v1` routes sit
/// behind. Every request authenticates (`actor_of`); every POST, PUT and
/// DELETE writes one `audit_log` row after the handler ran, so the outcome
/// (status code) is recorded — failed requests included. Requests refused
/// before they did anything (401 here, a webhook caller over its rate) are
/// counted in [`crate::refusals`] instead of one row each. Rows are not
/// written while the `audit_log` feature flag is off.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let authenticated = if is_webhook_call(&request) {
        Ok(Caller::webhook())
    } else {
        // Community mode reads no credential: every request is its one user.
        let credential = state
            .auth
            .requires_credentials()
            .then(|| credential_of(&request))
            .flatten();
        state
            .auth
            .authenticate(credential.as_deref(), time::OffsetDateTime::now_utc())
            .await
    };
    let caller = match authenticated {
        Ok(caller) => caller,
        Err(unavailable @ (Unauthenticated::ProviderUnavailable(_) | Unauthenticated::StoreUnavailable(_))) => {
            let cause = std::error::Error::source(&unavailable).map(ToString::to_string);
            tracing::warn!(error = %unavailable, cause, "cannot verify a credential");
            return ApiError::from(rat_service::ServiceError::Unavailable {
                message: format!("{unavailable}, retry later"),
                source: None,
            })
            .into_response();
        }
        Err(refused) => {
            tracing::debug!(reason = %refused, cause = ?std::error::Error::source(&refused).map(ToString::to_string), "refused a credential");
            state.refusals.record(Refusal::Unauthenticated, client_ip(&request));
            return unauthorized(if state.auth.multi_user() {
                "missing or invalid credentials"
            } else {
                "missing or invalid API key"
            });
        }
    };
    let actor = caller.user.clone();
    request.extensions_mut().insert(Identity {
        actor: actor.clone(),
        caller,
    });
    if !matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    ) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    // Inside a nested router the URI has lost its prefix; the original has it.
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path().to_owned(), |uri| uri.path().to_owned());
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let client = client_ip(&request);

    let response = next.run(request).await;

    if let Some(RefusedBefore(refusal)) = response.extensions().get::<RefusedBefore>() {
        state.refusals.record(*refusal, client);
        return response;
    }
    let noted = response.extensions().get::<AuditObject>().cloned().unwrap_or_default();
    let action = match noted.action {
        Some(action) => action.to_owned(),
        None => format!("{method} {}", route.as_deref().unwrap_or("unmatched")),
    };
    let entry = NewAuditEntry {
        actor: actor.to_owned(),
        action: action.chars().take(100).collect(),
        object_type: noted.object_type.map(str::to_owned),
        object_id: noted.object_id,
        details: Some(serde_json::json!({
            "method": method.as_str(),
            "path": path.chars().take(1024).collect::<String>(),
            "route": route,
            "status": response.status().as_u16(),
            "request_id": request_id,
            "client_ip": client.map(|ip| ip.to_string()),
        })),
    };
    // A feature-gated route already read the flags for this request.
    let flags = response.extensions().get::<FlagsRead>().map(|read| &read.0);
    let now = time::OffsetDateTime::now_utc();
    if let Err(e) = rat_service::audit::record(&state.services, std::slice::from_ref(&entry), flags, now).await {
        // The action itself happened (or was refused); failing the answer now
        // would mislead the client. The row is spooled and written once the
        // database answers again (`main` flushes the spool every second).
        metrics::counter!("rat_audit_write_failures_total").increment(1);
        tracing::warn!(error = %e, action = %action, "could not write the audit row; spooled for a retry");
        state.audit_spool.push(entry, now);
    }
    response
}

/// Fails fast while the database is known down (`rat_service::health`):
/// a request answers 503 at once, with `Retry-After`, instead of waiting for
/// its own timeout, and a request in flight when the database is marked down
/// is abandoned with the same answer. Outermost layer of `/api/v1` and of the
/// runner listener, so not even authentication waits.
pub async fn fail_fast(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let database = &state.services.dependencies.database;
    if let Err(down) = database.require_up() {
        return unavailable_now(down);
    }
    tokio::select! {
        response = next.run(request) => response,
        () = database.went_down() => unavailable_now(database.unavailable()),
    }
}

/// 503 with the envelope and `Retry-After: 1`.
fn unavailable_now(error: rat_service::ServiceError) -> Response {
    let mut response = ApiError::from(error).into_response();
    response
        .headers_mut()
        .insert(axum::http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Marks an answer as a refusal made before the request did anything (a
/// webhook caller over its rate): [`guard`] counts it in
/// [`crate::refusals`] instead of writing an audit row.
#[derive(Debug, Clone, Copy)]
pub struct RefusedBefore(pub Refusal);

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

/// The feature flags [`require_feature`] read for this request.
#[derive(Debug, Clone)]
struct FlagsRead(rat_domain::FeatureFlags);

/// Answers 404 (`FEATURE_DISABLED`) when `feature` is off in
/// `platform_settings.feature_flags`, read from Postgres on each request.
pub async fn require_feature(feature: Feature, state: AppState, request: Request, next: Next) -> Response {
    match rat_service::platform::feature_flags(&state.services).await {
        Ok(flags) if feature.enabled(&flags) => {
            let mut response = next.run(request).await;
            // Handed to the audit layer, so the request reads the flags once.
            response.extensions_mut().insert(FlagsRead(flags));
            response
        }
        Ok(_) => {
            ApiError::not_found(format!("FEATURE_DISABLED: the {} feature is disabled", feature.name())).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// An empty 500 body for a panicking handler; `envelope_errors` turns it
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
