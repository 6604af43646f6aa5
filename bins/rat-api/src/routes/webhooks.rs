//! `POST /api/v1/webhooks`: fires the webhook trigger whose token the call
//! bears (contract §9), behind the `pipeline_triggers` feature flag.
//!
//! The token (`X-Webhook-Token`, or `Authorization: Bearer`) is the caller's
//! authentication: the route needs no API key (`middleware::guard`
//! exempts exactly this path), and is audited like every POST, with the
//! actor `webhook` and the fired trigger as the object. The token is hashed
//! and the trigger found by its hash, so no stored secret is ever compared
//! with what the caller sent. Each client (IP address) has its own rate limit,
//! a token bucket in this process's memory, checked before any database work.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rat_service::firing::FireOutcome;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::middleware::{AuditObject, Feature, RefusedBefore};
use crate::state::AppState;
pub use rat_wire::webhooks::WebhookFired;

/// The header carrying a webhook token.
pub const TOKEN_HEADER: &str = "x-webhook-token";

/// The route, answering 404 while `pipeline_triggers` is off, behind its own
/// per-client rate limit (one limiter per router built, sized by the settings).
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let settings = &state.settings;
    let limiter = Arc::new(RateLimiter::new(
        settings.webhook_rate_per_second,
        settings.webhook_burst,
        settings.webhook_max_clients,
    ));
    let routes = OpenApiRouter::new().routes(routes!(fire));
    // Added after the feature gate, so it wraps it and runs first: a flood is
    // refused before it costs a database round trip.
    crate::app::gated(Feature::PipelineTriggers, state, routes).route_layer(from_fn(
        move |request: Request, next: Next| {
            let limiter = limiter.clone();
            async move { limiter.guard(request, next).await }
        },
    ))
}

/// The token of a webhook call: `X-Webhook-Token`, else the bearer of
/// `Authorization`; `None` when neither carries a non-empty token.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let from_header = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok());
    let from_bearer = || {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::middleware::bearer_credential)
    };
    from_header
        .or_else(from_bearer)
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Fires the webhook trigger whose token is presented, creating a run of its
/// pipeline (label `trigger:webhook:{first 8 hex of the token's SHA-256}`).
#[utoipa::path(post, path = "/webhooks", tag = "triggers",
    params(
        ("X-Webhook-Token" = Option<String>, Header, description = "the trigger's token (or `Authorization: Bearer <token>`)")),
    responses(
        (status = 201, body = WebhookFired),
        (status = 401, description = "no token", body = ErrorEnvelope),
        (status = 404, description = "no enabled webhook trigger has this token", body = ErrorEnvelope),
        (status = 409, description = "the trigger's pipeline was never published (or was deleted)",
            body = ErrorEnvelope),
        (status = 429, description = "the trigger is in its cooldown, or this client called too often",
            body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope)))]
pub async fn fire(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let token = presented_token(&headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "a webhook token is required (X-Webhook-Token or Authorization: Bearer)",
        )
    })?;
    let fired = rat_service::firing::fire_webhook(&state.services, token, OffsetDateTime::now_utc()).await?;
    let audit = Extension(AuditObject::new(
        "webhook.fire",
        "trigger",
        Some(fired.trigger_id.into()),
    ));
    let answer = match fired.outcome {
        FireOutcome::Fired(run_id) => {
            return Ok((StatusCode::CREATED, audit, Json(WebhookFired { run_id: run_id.into() })).into_response());
        }
        FireOutcome::Cooldown => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "the trigger fired less than its cooldown ago; try again later",
        ),
        FireOutcome::NotRunnable(reason) => ApiError::new(StatusCode::CONFLICT, "FAILED_PRECONDITION", reason),
        // Disabled or deleted between the lookup and the fire.
        FireOutcome::Disabled => ApiError::not_found("webhook trigger not found"),
        // A webhook has no slot; a failure was logged by the fire path.
        FireOutcome::SlotTaken | FireOutcome::Failed(_) => ApiError::internal(),
    };
    Ok((audit, answer).into_response())
}

/// A client's bucket: tokens left, as of `updated`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Per-client token buckets: each client (IP address) may make `burst` calls
/// at once and `rate` calls per second sustained.
///
/// Memory is bounded: at most `max_clients` buckets are kept. When a new
/// client arrives at the bound, buckets that have refilled completely are
/// dropped (a full bucket answers exactly as a missing one, so this changes
/// no answer); if every tracked client is still active, the new client is
/// refused until one of them goes idle.
///
/// Why not the `governor` crate (tried, issue 14): its keyed limiter adds
/// every address it is asked about and cannot say whether one is already
/// tracked, so the bound above needs a lock and a handle on its store around
/// every check; and its `retain_recent` keeps a fully refilled client for one
/// more refill interval, so `memory_is_bounded_and_idle_clients_are_evicted`
/// fails unless the eviction is called with a clock moved ahead, which
/// depends on how the crate computes its cut-off. The result was 130 lines
/// longer than this bucket and fragile across upgrades.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    max_clients: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// A limiter refilling `rate_per_second` tokens per second (at least one
    /// token an hour), holding at most `burst` (at least 1), tracking at most
    /// `max_clients` clients (at least 1).
    pub fn new(rate_per_second: f64, burst: u32, max_clients: usize) -> Self {
        let rate = if rate_per_second.is_finite() {
            rate_per_second.max(1.0 / 3600.0)
        } else {
            1.0 / 3600.0
        };
        RateLimiter {
            rate,
            burst: f64::from(burst.max(1)),
            max_clients: max_clients.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `client` may make a call at `now`; takes a token when it may.
    pub fn allow(&self, client: IpAddr, now: Instant) -> bool {
        // The map is only ever touched by these few lines: a panic cannot
        // leave it half-updated, so a poisoned lock is still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if !buckets.contains_key(&client) && buckets.len() >= self.max_clients {
            buckets.retain(|_, bucket| self.refilled(*bucket, now) < self.burst);
            if buckets.len() >= self.max_clients {
                return false;
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        bucket.tokens = self.refilled(*bucket, now);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.rate).min(self.burst)
    }

    /// Lets the request through, or answers 429 when its client is over the
    /// limit. Without connection info (an embedding that provides none),
    /// every client shares one bucket.
    async fn guard(&self, request: Request, next: Next) -> Response {
        let client = crate::middleware::client_ip(&request).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if self.allow(client, Instant::now()) {
            return next.run(request).await;
        }
        tracing::debug!(%client, "webhook call refused: rate limit");
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "too many webhook calls from this client; slow down",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        // Counted by the audit layer, not written as a row of its own.
        response
            .extensions_mut()
            .insert(RefusedBefore(crate::refusals::Refusal::WebhookRateLimited));
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn a_client_gets_its_burst_then_the_rate() {
        let limiter = RateLimiter::new(2.0, 3, 100);
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.allow(ip(1), t0)));
        assert!(!limiter.allow(ip(1), t0), "the burst is spent");
        assert!(limiter.allow(ip(2), t0), "another client has its own bucket");
        assert!(
            !limiter.allow(ip(1), t0 + Duration::from_millis(400)),
            "0.8 token refilled"
        );
        assert!(
            limiter.allow(ip(1), t0 + Duration::from_millis(500)),
            "one token refilled"
        );
        assert!(!limiter.allow(ip(1), t0 + Duration::from_millis(500)));
        // A long pause refills to the burst, never beyond.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| limiter.allow(ip(1), later)));
        assert!(!limiter.allow(ip(1), later));
    }

    #[test]
    fn memory_is_bounded_and_idle_clients_are_evicted() {
        let limiter = RateLimiter::new(1.0, 2, 2);
        let t0 = Instant::now();
        assert!(limiter.allow(ip(1), t0));
        assert!(limiter.allow(ip(2), t0));
        assert!(
            !limiter.allow(ip(3), t0),
            "both tracked clients are active: a third is refused"
        );
        assert_eq!(limiter.tracked(), 2);
        // After a second, both buckets are full again: they are dropped for the newcomer.
        let later = t0 + Duration::from_secs(1);
        assert!(limiter.allow(ip(3), later));
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn the_token_comes_from_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(presented_token(&headers), Some("abc"));
        headers.insert(TOKEN_HEADER, HeaderValue::from_static("def"));
        assert_eq!(presented_token(&headers), Some("def"), "X-Webhook-Token wins");
        headers.insert(TOKEN_HEADER, HeaderValue::from_static(""));
        assert_eq!(presented_token(&headers), None, "an empty token is no token");
        headers.remove(TOKEN_HEADER);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_token(&headers), None);
    }
}
