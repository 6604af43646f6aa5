//! Uploads as streams: a multipart file part goes to the store as it
//! arrives (never whole in memory), and only
//! [`ApiSettings::max_concurrent_uploads`](crate::state::ApiSettings) of them
//! are received at once. An upload waiting for its slot has not read its
//! body, which stays in the kernel's buffers.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::multipart::{Field, MultipartError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::ApiError;
use crate::state::AppState;

/// An upload slot, held while the upload is received.
#[derive(Debug)]
pub struct UploadSlot(#[allow(dead_code, reason = "held for its drop")] OwnedSemaphorePermit);

/// Refusal when no slot frees up in time: 503 with `Retry-After`.
#[derive(Debug)]
pub struct Busy;

impl IntoResponse for Busy {
    fn into_response(self) -> Response {
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "too many uploads in progress; retry shortly",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        response
    }
}

/// Waits for an upload slot, at most the configured wait.
pub async fn slot(state: &AppState) -> Result<UploadSlot, Response> {
    let wait = state.settings.upload_slot_wait;
    match tokio::time::timeout(wait, state.uploads.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(UploadSlot(permit)),
        _ => {
            metrics::counter!("rat_upload_slot_timeouts_total").increment(1);
            Err(Busy.into_response())
        }
    }
}

/// The answer to a multipart body that could not be read: 413 over the
/// upload limit, 408 when it stopped arriving, 400 otherwise.
pub fn multipart_error(error: &MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RESOURCE_EXHAUSTED",
            "upload is larger than the allowed size",
        )
    } else if crate::body::is_timeout(error) {
        crate::extract::body_timeout()
    } else {
        ApiError::invalid(format!("invalid multipart body: {}", error.body_text()))
    }
}

/// A file part as the store's byte source. The first error of the part is
/// kept ([`FieldSource::failure`]), so the answer can say why the upload
/// stopped (too large, too slow) rather than only that it did.
pub struct FieldSource<'a> {
    field: Field<'a>,
    failure: Option<ApiError>,
}

impl<'a> FieldSource<'a> {
    /// Reads `field`.
    pub fn new(field: Field<'a>) -> Self {
        FieldSource { field, failure: None }
    }

    /// The answer to the failure that ended the part, if one did.
    pub fn failure(&mut self) -> Option<ApiError> {
        self.failure.take()
    }
}

impl Stream for FieldSource<'_> {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.field).poll_next(cx) {
            Poll::Ready(Some(Err(error))) => {
                let answer = multipart_error(&error);
                let text = answer.message.clone();
                this.failure = Some(answer);
                Poll::Ready(Some(Err(std::io::Error::other(text))))
            }
            Poll::Ready(Some(Ok(bytes))) => Poll::Ready(Some(Ok(bytes))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The answer to a failed upload: why its content stopped, when it did, or
/// the service's error.
pub fn upload_failed(source: &mut FieldSource<'_>, error: rat_service::ServiceError) -> ApiError {
    source.failure().unwrap_or_else(|| ApiError::from(error))
}
