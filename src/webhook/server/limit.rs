//! A cap on open connections. Each accepted connection takes a permit for as long as it
//! is open; when none is left, a new connection is closed at once (and counted and
//! logged) instead of holding a file descriptor until the process runs out and new
//! connections stall, unanswered, in the kernel's backlog. The API server keeps a few
//! keep-alive connections per replica, so the cap is only ever met by a flood.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::webhook::metrics::Metrics;

/// An acceptor that lets at most `permits` connections be open at once.
#[derive(Clone)]
pub struct Limited<A> {
    inner: A,
    permits: Arc<Semaphore>,
    limit: usize,
    metrics: Arc<Metrics>,
    /// Unix second of the last "limit reached" log line: one a second at most.
    last_logged: Arc<AtomicU64>,
}

impl<A> Limited<A> {
    pub fn new(inner: A, limit: usize, metrics: Arc<Metrics>) -> Self {
        Limited {
            inner,
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            metrics,
            last_logged: Arc::new(AtomicU64::new(0)),
        }
    }

    fn refused(&self) {
        self.metrics.connection_refused();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if self.last_logged.swap(now, Ordering::Relaxed) != now {
            tracing::warn!(
                limit = self.limit,
                "connection limit reached: closing new connections until some close (--max-connections)"
            );
        }
    }
}

impl<A, I, S> Accept<I, S> for Limited<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Permitted<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.refused();
            drop(stream);
            return Box::pin(async { Err(io::Error::other("connection limit reached")) });
        };
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            Ok((
                Permitted {
                    inner: stream,
                    _permit: permit,
                },
                service,
            ))
        })
    }
}

/// A connection that holds its permit until it is dropped.
pub struct Permitted<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Permitted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Permitted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
