//! Request bodies with deadlines: a body that stalls longer than its idle
//! timeout between two frames, or is still arriving its total timeout after
//! it was first read, fails with [`BodyTimeout`] (answered 408). Both clocks
//! start at the first read, so a handler that waits before reading (for an
//! upload slot) does not eat into the client's time.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The error of a body that did not arrive in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// Whether `error`, or any error it was caused by, is a [`BodyTimeout`].
pub fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimeout>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// How long a request body may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDeadlines {
    /// Longest pause between two pieces of the body.
    pub idle: Duration,
    /// Longest time the whole body may take.
    pub total: Duration,
}

/// A body failing with [`BodyTimeout`] when it misses a deadline.
pub struct DeadlineBody {
    inner: Body,
    deadlines: BodyDeadlines,
    idle: Option<Pin<Box<Sleep>>>,
    total: Option<Pin<Box<Sleep>>>,
}

impl DeadlineBody {
    /// Wraps `inner`.
    pub fn new(inner: Body, deadlines: BodyDeadlines) -> Self {
        DeadlineBody {
            inner,
            deadlines,
            idle: None,
            total: None,
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(idle) = &mut this.idle {
                idle.as_mut().reset(Instant::now() + this.deadlines.idle);
            }
            return Poll::Ready(frame);
        }
        let now = Instant::now();
        let idle = this
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(now + this.deadlines.idle)));
        let total = this
            .total
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(now + this.deadlines.total)));
        if idle.as_mut().poll(cx).is_ready() || total.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
