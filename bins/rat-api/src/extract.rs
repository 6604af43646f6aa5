//! Request extractors whose every rejection is the error envelope: JSON
//! bodies, query strings, pagination and the identity of the caller.

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use bytes::Bytes;
use rat_domain::{PageRequest, PipelineRef};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;

/// A JSON body. An empty body reads as `{}` (ratd's clients send no body for
/// requests whose fields are all optional, and no content type with it). A
/// body with content must be sent as `application/json` (415 otherwise):
/// browsers send `text/plain` and form bodies to any site without asking
/// it first, so accepting them would let any page post JSON here. Malformed
/// JSON and wrong shapes are 400, an oversized body 413, a body that stops
/// arriving 408, all with the envelope.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// Whether a `Content-Type` value names JSON (`application/json`, or any
/// `application/*+json`), parameters such as `charset` aside.
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// 408: the request body stopped arriving ([`crate::body`]).
pub fn body_timeout() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "DEADLINE_EXCEEDED",
        "the request body did not arrive in time",
    )
}

/// The answer to a body that could not be read: 413 over the limit, 408
/// when it stopped arriving, 400 otherwise.
pub fn body_read_error(status: StatusCode, error: &(dyn std::error::Error + 'static)) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RESOURCE_EXHAUSTED",
            "request body is too large",
        )
    } else if crate::body::is_timeout(error) {
        body_timeout()
    } else {
        ApiError::invalid("cannot read the request body")
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_declared = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_content_type);
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_read_error(rejection.status(), &rejection))?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else if !json_declared {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "INVALID_ARGUMENT",
                "a request body must be sent as Content-Type: application/json",
            ));
        } else {
            &bytes
        };
        let mut value: serde_json::Value =
            serde_json::from_slice(text).map_err(|_| ApiError::invalid("malformed JSON body"))?;
        // serde reads a struct from an array too (`[null, null]`); every
        // body of this API is an object.
        if !value.is_object() {
            return Err(ApiError::invalid("the request body must be a JSON object"));
        }
        integral_numbers(&mut value);
        // serde's message names the field and the expectation; no internals.
        T::deserialize(value)
            .map(ApiJson)
            .map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))
    }
}

/// Turns every number with no fractional part (`160.0`) into the integer it
/// equals: JSON Schema (and so the OpenAPI document) counts `160.0` as an
/// integer, while serde refuses it for integer fields.
fn integral_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(number) => {
            if let Some(float) = number.as_f64().filter(|_| number.is_f64())
                && float.fract() == 0.0
                && float.abs() < 9.0e15
            {
                // Exact: |float| < 2^53, so the cast loses nothing.
                *value = serde_json::Value::from(float as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// A query string parsed into `T`; failures are 400 with the envelope.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|e| ApiError::invalid(format!("invalid query string: {}", e.body_text())))
    }
}

/// `?limit=&offset=` as given; parsed with [`PageParams::page`].
#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Rows per page (default 50, at most 200; larger values are lowered to 200).
    pub limit: Option<String>,
    /// Rows to skip (default 0).
    pub offset: Option<String>,
}

fn parse_number(name: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    value
        .as_deref()
        .map(|text| {
            text.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::invalid(format!("{name} must be a whole number, got {text:?}")))
        })
        .transpose()
}

impl PageParams {
    /// The validated page: non-numbers and values below range are 400.
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest::new(
            parse_number("limit", &self.limit)?,
            parse_number("offset", &self.offset)?,
        )?)
    }
}

/// `?limit=&offset=&cursor=` of a list that also pages by keyset: `cursor`
/// is the `next_cursor` of the previous page, given back as it came.
#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorPageParams {
    /// Rows per page (default 50, at most 200; larger values are lowered to 200).
    pub limit: Option<String>,
    /// Rows to skip (default 0); not with `cursor`.
    pub offset: Option<String>,
    /// Where the page starts: the `next_cursor` of the previous page (opaque).
    pub cursor: Option<String>,
}

impl CursorPageParams {
    /// The validated page and cursor: non-numbers, values below range, and
    /// an offset beside a cursor are 400 (the cursor itself is read by the
    /// service, which knows its list).
    pub fn page(self) -> Result<(PageRequest, Option<String>), ApiError> {
        let cursor = given(self.cursor);
        if cursor.is_some() && given(self.offset.clone()).is_some() {
            return Err(ApiError::invalid(
                "give either cursor or offset, not both: a cursor already says where the page starts",
            ));
        }
        let page = PageParams {
            limit: self.limit,
            offset: self.offset,
        }
        .page()?;
        Ok((page, cursor))
    }
}

/// Builds a pipeline address from path segments, refusing bad names with 400
/// before any database call.
pub fn pipeline_ref(namespace: &str, layer: &str, name: &str) -> Result<PipelineRef, ApiError> {
    Ok(PipelineRef::parse(namespace, layer, name)?)
}

/// An optional text, absent when empty: clients send `""` for "none" (an
/// empty query parameter, ratd's runners' empty error).
pub fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// An id from the path: a malformed id names no `entity`, so it is a 404
/// like an unknown one (contract §7).
pub fn path_id<Id: From<Uuid>>(text: &str, entity: &str) -> Result<Id, ApiError> {
    Uuid::parse_str(text)
        .map(Id::from)
        .map_err(|_| ApiError::not_found(format!("{entity} not found")))
}

/// Who is calling, as established by the authentication middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The actor recorded in audit rows and as owner of what it creates.
    pub actor: String,
    /// The caller, with its roles and whether it is an admin.
    pub caller: rat_service::identity::Caller,
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Identity>().cloned().ok_or_else(|| {
            tracing::error!("no identity on a request: the authentication layer is missing");
            ApiError::internal()
        })
    }
}

/// The request id of the current request (set by the request-id middleware).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The request's `If-Match` condition (seed 004, optimistic locking), when
/// it sent one: 400 for one that is not `*` or a list of entity tags.
pub fn if_match(headers: &axum::http::HeaderMap) -> Result<Option<rat_service::concurrency::IfMatch>, ApiError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::invalid("If-Match must be * or a list of entity tags"))?;
    Ok(Some(rat_service::concurrency::IfMatch::parse(text)?))
}

/// An `ETag` header carrying `version` (quoted, as RFC 9110 writes it).
pub fn etag(version: &str) -> [(axum::http::HeaderName, axum::http::HeaderValue); 1] {
    let value = axum::http::HeaderValue::from_str(&format!("\"{version}\""))
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("\"\""));
    [(axum::http::header::ETAG, value)]
}
