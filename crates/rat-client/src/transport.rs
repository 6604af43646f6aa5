//! One HTTP transport under both clients: the base URL, the bearer token,
//! the error envelope turned into [`Error::Api`], and bounded retries with
//! exponential backoff for idempotent requests only.
//!
//! A request is retried only when its method is idempotent (`GET`, `HEAD`,
//! `PUT`, `DELETE`) and it failed in a way a later attempt may not: the
//! connection could not be made or timed out, or the server answered 429,
//! 502, 503 or 504. A `POST` is sent once, whatever happens: creating a run
//! or completing one twice is not the same as once, and the runner
//! protocol's routes are all `POST`s the server does not promise to be
//! idempotent.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Error, Result};

/// How idempotent requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retry). At most 10 are made.
    pub max_attempts: u32,
    /// Pause before the first retry; each further retry doubles it.
    pub base_delay: Duration,
    /// Longest pause between two attempts (also caps a `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Four attempts, 100 ms then 200 ms then 400 ms apart, never more than 5 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The pause before attempt `attempt + 1`, given the server's `Retry-After`.
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        retry_after.unwrap_or(backoff).min(self.max_delay)
    }
}

/// What a path segment keeps unescaped: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes one path segment (a name, an id).
pub(crate) fn segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// Percent-encodes a file key segment by segment, keeping its `/`s.
pub(crate) fn key_path(key: &str) -> String {
    key.split('/').map(segment).collect::<Vec<_>>().join("/")
}

/// Longest part of an unexpected body kept in [`Error::Unexpected`].
const MAX_SNIPPET: usize = 500;

#[derive(Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    base: String,
    token: Option<Arc<SecretString>>,
    retry: RetryPolicy,
}

/// A successful answer: its headers and body.
pub(crate) struct Answer {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Decode(e.to_string()))
    }
}

impl Transport {
    pub fn new(http: reqwest::Client, base: &str, token: Option<SecretString>, retry: RetryPolicy) -> Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config(format!(
                "base URL must start with http:// or https://, got {base:?}"
            )));
        }
        Ok(Transport {
            http,
            base,
            token: token.map(Arc::new),
            retry,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method` to `path` (below the base URL) with an optional JSON body
    /// and query, and reads the answer's JSON.
    pub async fn json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: Option<&(impl Serialize + ?Sized)>,
        body: Option<&B>,
    ) -> Result<T> {
        self.call(method, path, query, body).await?.json()
    }

    /// Sends a request to a path below the base URL; the answer's body is returned whole.
    pub async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: Option<&(impl Serialize + ?Sized)>,
        body: Option<&B>,
    ) -> Result<Answer> {
        let body = body
            .map(|b| serde_json::to_vec(b).map(Bytes::from))
            .transpose()
            .map_err(|e| Error::Decode(e.to_string()))?;
        let url = format!("{}{path}", self.base);
        let query = query
            .map(serde_urlencoded::to_string)
            .transpose()
            .map_err(|e| Error::Config(format!("query: {e}")))?;
        self.send(method, &url, query.as_deref(), body, true).await
    }

    /// Sends one request, retrying it when it is idempotent and failed in a
    /// way worth retrying. The token goes only with `with_token`.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        query: Option<&str>,
        body: Option<Bytes>,
        with_token: bool,
    ) -> Result<Answer> {
        let idempotent = matches!(method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE);
        let attempts = if idempotent {
            self.retry.max_attempts.clamp(1, 10)
        } else {
            1
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut url = url.to_owned();
            if let Some(query) = query.filter(|q| !q.is_empty()) {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(query);
            }
            let mut request = self.http.request(method.clone(), url);
            if with_token && let Some(token) = &self.token {
                request = request.bearer_auth(token.expose_secret());
            }
            if let Some(body) = &body {
                request = request.header(CONTENT_TYPE, "application/json").body(body.clone());
            }
            let outcome = request.send().await;
            let retry = match &outcome {
                Ok(response) if retryable_status(response.status()) => Some(retry_after(response.headers())),
                Err(e) if e.is_connect() || e.is_timeout() => Some(None),
                _ => None,
            };
            if let Some(hint) = retry
                && attempt < attempts
            {
                tokio::time::sleep(self.retry.delay(attempt, hint)).await;
                continue;
            }
            let response = outcome.map_err(Error::Transport)?;
            return read(response).await;
        }
    }
}

impl Transport {
    /// Sends one request built by `build` (a multipart body, a header of its
    /// own), once: the routes it serves are `POST`s. The token goes only with
    /// `with_token`.
    pub async fn send_once(
        &self,
        method: Method,
        path: &str,
        with_token: bool,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Answer> {
        let response = self.request_once(method, path, with_token, build).await?;
        read(response).await
    }

    /// Like [`Transport::send_once`], but hands back the status and body of
    /// any answer, so a route that answers a body of its own with an error
    /// status (readiness: 503 with the checks) can be read.
    pub async fn send_raw(&self, method: Method, path: &str) -> Result<(StatusCode, Bytes)> {
        let response = self.request_once(method, path, true, |r| r).await?;
        let status = response.status();
        let body = response.bytes().await.map_err(Error::Transport)?;
        Ok((status, body))
    }

    async fn request_once(
        &self,
        method: Method,
        path: &str,
        with_token: bool,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if with_token && let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        build(request).send().await.map_err(Error::Transport)
    }
}

fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A success is returned whole; a failure becomes [`Error::Api`] when it
/// carries the envelope, [`Error::Unexpected`] otherwise.
async fn read(response: reqwest::Response) -> Result<Answer> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(Error::Transport)?;
    if status.is_success() {
        return Ok(Answer { headers, body });
    }
    match serde_json::from_slice::<rat_wire::error::ErrorEnvelope>(&body) {
        Ok(envelope) => Err(Error::Api(ApiError {
            status: status.as_u16(),
            code: envelope.error.code,
            error_type: envelope.error.error_type,
            message: envelope.error.message,
        })),
        Err(_) => Err(Error::Unexpected {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).chars().take(MAX_SNIPPET).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, None), Duration::from_millis(100));
        assert_eq!(policy.delay(2, None), Duration::from_millis(200));
        assert_eq!(policy.delay(3, None), Duration::from_millis(400));
        assert_eq!(policy.delay(40, None), Duration::from_secs(5));
        assert_eq!(policy.delay(1, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(policy.delay(1, Some(Duration::from_secs(600))), Duration::from_secs(5));
    }

    #[test]
    fn keys_keep_their_slashes_and_escape_the_rest() {
        assert_eq!(
            key_path("default/pipelines/silver/a b/x.sql"),
            "default/pipelines/silver/a%20b/x.sql"
        );
        assert_eq!(segment("a/b"), "a%2Fb");
    }
}
