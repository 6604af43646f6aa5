//! The accept loop both listeners run on: HTTP/1.1 served by hyper, with the
//! limits a server reachable by strangers needs.
//!
//! - **Connections are capped** ([`ServeLimits::max_connections`]): at the
//!   cap the loop stops accepting until one closes, so further clients wait
//!   in the kernel's backlog instead of costing memory and file descriptors.
//! - **Headers must arrive in time** ([`ServeLimits::header_read_timeout`]):
//!   hyper closes a connection whose request head is not complete that long
//!   after it began waiting for it. A kept-alive connection waits for its
//!   next request's head from the moment the previous answer was written, so
//!   the same limit is the idle keep-alive timeout.
//! - **Request heads are bounded** ([`ServeLimits::max_head_bytes`]): larger
//!   ones are refused by hyper with 431 (URIs: 414) before any handler runs.
//! - **Bodies must keep coming** ([`crate::body`]): a body that stalls, or
//!   takes too long as a whole, ends its request with 408.
//!
//! hyper's own answers to requests it cannot parse (400, 414, 431) carry no
//! body; [`EnvelopeIo`] replaces them on the wire by the error envelope, so
//! every error a client sees has the same shape. HTTP/2 is not served:
//! browsers speak it only over TLS, which a reverse proxy in front
//! terminates.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Connection-level limits of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections served at once; further clients wait to be accepted.
    pub max_connections: usize,
    /// Time a connection has to send a complete request head, counted from
    /// when the server starts waiting for it (so also the idle keep-alive
    /// timeout).
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) hyper reads, in
    /// bytes; at least 8,192.
    pub max_head_bytes: usize,
}

impl Default for ServeLimits {
    /// 1,024 connections, 15 s for a request head, heads up to 64 KiB.
    fn default() -> Self {
        ServeLimits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(15),
            max_head_bytes: 64 * 1024,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting and waits for the open connections to finish their in-flight
/// requests (the caller bounds that wait). Each request carries the peer's
/// address as [`ConnectInfo<SocketAddr>`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_head_bytes.max(8192));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: pause briefly rather than spin.
                    if !is_connection_error(&e) {
                        metrics::counter!("rat_http_accept_errors_total").increment(1);
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = http.serve_connection(TokioIo::new(EnvelopeIo::new(stream)), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Errors here are the client's (a reset, a timeout): nothing to report.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// A connection whose writes are passed through, except hyper's own bodiless
/// answer to a request it could not parse (`400`, `414`, `431`, written just
/// before it closes the connection), which is replaced by the same status
/// with the error envelope. Every answer of the application carries
/// `x-request-id`; a head without it, in exactly hyper's automatic shape, is
/// hyper's.
pub struct EnvelopeIo {
    inner: TcpStream,
    /// Bytes of a replacement still to be written before anything else.
    pending: Vec<u8>,
    written: usize,
}

impl EnvelopeIo {
    fn new(inner: TcpStream) -> Self {
        EnvelopeIo {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

/// The replacement of `head` when it is hyper's automatic answer to an
/// unparsable request, else `None`.
pub fn replace_automatic_answer(head: &[u8]) -> Option<Vec<u8>> {
    let (status, message) = if head.starts_with(b"HTTP/1.1 400 ") {
        (400, "malformed request")
    } else if head.starts_with(b"HTTP/1.1 414 ") {
        (414, "request URI is too long")
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        (431, "request headers are too large")
    } else {
        return None;
    };
    // Exactly one complete head, with no body, and none of our headers.
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    if end + 4 != head.len() {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?.to_ascii_lowercase();
    if !text.contains("\r\ncontent-length: 0\r\n") || text.contains("\r\nx-request-id:") {
        return None;
    }
    let status = axum::http::StatusCode::from_u16(status).ok()?;
    let body = serde_json::to_vec(&crate::error::ApiError::new(status, "INVALID_ARGUMENT", message).envelope()).ok()?;
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\
         x-content-type-options: nosniff\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

impl AsyncRead for EnvelopeIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for EnvelopeIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_drain(cx))?;
        if let Some(replacement) = replace_automatic_answer(buf) {
            self.pending = replacement;
            self.written = 0;
            // hyper's bytes are taken; ours go out in their place.
            let _ = self.poll_drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper's automatic answer is a head alone, in one slice; anything
        // else (a head with its body) passes through untouched.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next()) {
            return self.poll_write(cx, only);
        }
        std::task::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_automatic_answers_are_replaced_by_the_envelope() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 10:00:00 GMT\r\n\r\n";
        let replaced = String::from_utf8(replace_automatic_answer(head).unwrap()).unwrap();
        assert!(replaced.starts_with("HTTP/1.1 431 "), "{replaced}");
        let (_, body) = replaced.split_once("\r\n\r\n").unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["type"], "VALIDATION");
        assert!(replaced.contains(&format!("content-length: {}\r\n", body.len())));
    }

    #[test]
    fn application_answers_and_bodies_are_left_alone() {
        for bytes in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-request-id: abc\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"some body bytes",
        ] {
            assert!(
                replace_automatic_answer(bytes).is_none(),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
