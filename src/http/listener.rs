//! The server's bounds below the routes: a cap on open connections (the
//! listener stops accepting while it is reached, so the kernel's backlog
//! holds the rest) and a deadline for every request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use crate::metrics::names;

/// A TCP listener that holds at most `max` connections open, each of
/// which must send its first bytes within `first_byte`.
#[derive(Debug)]
pub struct CappedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    first_byte: Duration,
}

impl CappedListener {
    pub fn new(inner: TcpListener, max: usize, first_byte: Duration) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            first_byte,
        }
    }
}

/// An accepted connection, holding its place until it closes. Until its
/// first bytes arrive it is on a clock: a connection that says nothing
/// is closed, so silent connections cannot hold every place.
#[derive(Debug)]
pub struct CappedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    silent_until: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl axum::serve::Listener for CappedListener {
    type Io = CappedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                metrics::counter!(names::CONNECTIONS_WAITED).increment(1);
                tracing::warn!("http.max_connections reached: accepting again once one closes");
                match self.permits.clone().acquire_owned().await {
                    Ok(permit) => permit,
                    // The semaphore is never closed.
                    Err(_) => std::future::pending().await,
                }
            }
        };
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        CappedStream {
                            stream,
                            _permit: permit,
                            silent_until: Some(Box::pin(tokio::time::sleep(self.first_byte))),
                        },
                        addr,
                    );
                }
                // Out of descriptors and the like: wait, do not spin.
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        match &read {
            Poll::Ready(Ok(())) if buf.filled().len() > before => self.silent_until = None,
            Poll::Pending => {
                if let Some(deadline) = self.silent_until.as_mut()
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    metrics::counter!(names::CONNECTIONS_SILENT).increment(1);
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no request within http.first_byte_timeout_ms",
                    )));
                }
            }
            _ => {}
        }
        read
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Answers a request still unanswered after `limit` with 503 and
/// `Retry-After`. Safe to cut short: every handler that writes runs its
/// work in a task of its own (an order's intake, a cancel, a close, a
/// reconciliation run), which carries on; the retry — under the same
/// Idempotency-Key for an order — gets its outcome.
pub async fn request_deadline(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!(names::REQUESTS_TIMED_OUT).increment(1);
            ApiError::unavailable(
                "the request took longer than http.request_timeout_ms; retry shortly",
            )
            .retry_after(Duration::from_secs(1))
            .into_response()
        }
    }
}
