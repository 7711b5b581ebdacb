//! Server wiring: one HTTP connection's timeouts (Vault's `http_read_header_timeout`,
//! `http_write_timeout`, `http_idle_timeout`). Wraps the socket so reads and writes fail with
//! `TimedOut` past their deadline, which makes hyper close the connection. Does socket I/O.
//!
//! The deadlines follow Go's `net/http` server, which Vault uses:
//! - no request in flight, and no byte of the next request yet: the idle timeout, counted
//!   from the end of the last response (a new connection gets the header timeout instead);
//! - the first byte of a request has arrived: the header timeout, counted from that byte;
//! - a request is in flight: no read deadline here (the body read timeout is enforced by the
//!   router's body reader, which answers 408), and the write timeout, when set, counted from
//!   the end of the request's headers.
//!
//! A reader parked while a request is in flight gets a *check point* instead of a deadline:
//! the idle deadline of the request's end (its end + the idle timeout) cannot come before the
//! request's start + the idle timeout, so the read timer is armed there and re-evaluated when
//! it fires. Nothing has to wake the connection when a request ends (a wake per request costs
//! a cross-thread unpark, measurably so in the KV write benchmark).
//!
//! On HTTP/2 (TLS with ALPN `h2`) there are no request heads to time: the idle timeout applies
//! while no stream is open, and the write timeout bounds each stalled write.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::server::config::HttpTimeouts;

/// No head in progress.
const NONE: u64 = u64::MAX;

/// What one connection is doing, shared by its socket wrapper and its requests.
#[derive(Debug)]
pub(super) struct ConnState {
    start: Instant,
    timeouts: HttpTimeouts,
    h2: bool,
    inflight: AtomicUsize,
    /// Milliseconds after `start`: when the connection last became idle.
    idle_since: AtomicU64,
    /// Milliseconds after `start` of the first byte of the next request head, or [`NONE`].
    head_since: AtomicU64,
    /// Milliseconds after `start`: when the request in flight had its head read.
    busy_since: AtomicU64,
}

impl ConnState {
    pub(super) fn new(timeouts: HttpTimeouts, h2: bool) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            timeouts,
            h2,
            inflight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            // A new connection owes its first request head from the start (as Go).
            head_since: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
        })
    }

    pub(super) fn is_h2(&self) -> bool {
        self.h2
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// The read deadline: `None` while a request is in flight (see [`Self::read_check_point`]).
    fn read_deadline(&self) -> Option<Instant> {
        if self.inflight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_since.load(Ordering::Acquire);
        if !self.h2 && head != NONE {
            return Some(self.at(head) + self.timeouts.read_header);
        }
        Some(self.at(self.idle_since.load(Ordering::Acquire)) + self.timeouts.idle)
    }

    /// While a request is in flight: the earliest time its connection's idle deadline can come
    /// (the request's start + the idle timeout), when a parked reader looks again.
    fn read_check_point(&self) -> Instant {
        self.at(self.busy_since.load(Ordering::Acquire)) + self.timeouts.idle
    }

    /// Bytes arrived: on an idle HTTP/1 connection they start the next request's head.
    fn on_read(&self) {
        if !self.h2 && self.inflight.load(Ordering::Acquire) == 0 {
            let _ = self.head_since.compare_exchange(
                NONE,
                self.now_ms(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// The write deadline of HTTP/1 (from the request head); HTTP/2 uses stalls instead.
    fn write_deadline(&self) -> Option<Instant> {
        let limit = self.timeouts.write?;
        if self.h2 || self.inflight.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(self.at(self.busy_since.load(Ordering::Acquire)) + limit)
    }
}

/// Marks one request in flight from its head until its response body is written or dropped.
#[derive(Debug)]
pub(super) struct Inflight(Arc<ConnState>);

impl Inflight {
    pub(super) fn begin(state: &Arc<ConnState>) -> Self {
        if state.inflight.fetch_add(1, Ordering::AcqRel) == 0 {
            state.busy_since.store(state.now_ms(), Ordering::Release);
        }
        state.head_since.store(NONE, Ordering::Release);
        Self(Arc::clone(state))
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_since.store(self.0.now_ms(), Ordering::Release);
            self.0.head_since.store(NONE, Ordering::Release);
        }
    }
}

/// A response body that keeps its request marked in flight until it is finished.
pub(super) struct GuardedBody {
    inner: Body,
    _inflight: Inflight,
}

impl GuardedBody {
    pub(super) fn new(inner: Body, inflight: Inflight) -> Self {
        Self {
            inner,
            _inflight: inflight,
        }
    }
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket whose reads and writes fail with `TimedOut` past the connection's deadlines.
pub(super) struct TimedIo<S> {
    inner: S,
    state: Arc<ConnState>,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    /// HTTP/2: when the current write started to wait.
    write_stalled_since: Option<Instant>,
}

impl<S> TimedIo<S> {
    pub(super) fn new(inner: S, state: Arc<ConnState>) -> Self {
        let far = Instant::now() + Duration::from_secs(86_400);
        Self {
            inner,
            state,
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            write_timer: Box::pin(tokio::time::sleep_until(far)),
            write_stalled_since: None,
        }
    }
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"))
}

/// Pending until `deadline`, then ready; arms `timer` for it.
fn expired(timer: &mut Pin<Box<Sleep>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    timer.as_mut().poll(cx).is_ready()
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.state.on_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.state.read_deadline() {
                Some(d) if expired(&mut this.read_timer, d, cx) => {
                    Poll::Ready(Err(timed_out("reading the request")))
                }
                Some(_) => Poll::Pending,
                None => {
                    // In flight: no deadline, only a point to look again (a request longer
                    // than the idle timeout moves it one idle timeout on).
                    let (check, now) = (this.state.read_check_point(), Instant::now());
                    let at = if check > now {
                        check
                    } else {
                        now + this.state.timeouts.idle
                    };
                    let _ = expired(&mut this.read_timer, at, cx);
                    Poll::Pending
                }
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> TimedIo<S> {
    /// Runs one write-side operation under the write deadline.
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        let deadline = self.state.write_deadline();
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Poll::Ready(Err(timed_out("writing the response")));
        }
        let result = op(Pin::new(&mut self.inner), cx);
        if result.is_ready() {
            self.write_stalled_since = None;
            return result;
        }
        let deadline = match (deadline, self.state.timeouts.write) {
            (Some(d), _) => d,
            (None, Some(limit)) if self.state.h2 => {
                *self.write_stalled_since.get_or_insert_with(Instant::now) + limit
            }
            _ => return Poll::Pending,
        };
        if expired(&mut self.write_timer, deadline, cx) {
            return Poll::Ready(Err(timed_out("writing the response")));
        }
        Poll::Pending
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().timed(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut()
            .timed(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().timed(cx, AsyncWrite::poll_flush)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> HttpTimeouts {
        HttpTimeouts {
            read_header: Duration::from_secs(2),
            read: Duration::from_secs(3),
            write: Some(Duration::from_secs(4)),
            idle: Duration::from_secs(60),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_request_cycle() {
        let s = ConnState::new(timeouts(), false);
        let t0 = s.start;
        assert_eq!(
            s.read_deadline(),
            Some(t0 + Duration::from_secs(2)),
            "first head"
        );
        assert_eq!(s.write_deadline(), None);
        let req = Inflight::begin(&s);
        assert_eq!(s.read_deadline(), None, "the body reader times the body");
        assert_eq!(
            s.read_check_point(),
            t0 + Duration::from_secs(60),
            "a parked reader looks again one idle timeout after the request started"
        );
        assert_eq!(s.write_deadline(), Some(t0 + Duration::from_secs(4)));
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(req);
        let idle_from = t0 + Duration::from_secs(1);
        assert_eq!(
            s.read_deadline(),
            Some(idle_from + Duration::from_secs(60)),
            "idle"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        s.on_read();
        assert_eq!(
            s.read_deadline(),
            Some(t0 + Duration::from_secs(11) + Duration::from_secs(2)),
            "the next head is timed from its first byte"
        );
        let again = Inflight::begin(&s);
        assert_eq!(s.write_deadline(), Some(t0 + Duration::from_secs(15)));
        drop(again);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_uses_the_idle_timeout_only() {
        let s = ConnState::new(timeouts(), true);
        s.on_read();
        assert_eq!(s.read_deadline(), Some(s.start + Duration::from_secs(60)));
        let a = Inflight::begin(&s);
        let b = Inflight::begin(&s);
        drop(a);
        assert_eq!(s.read_deadline(), None, "a stream is still open");
        assert_eq!(
            s.write_deadline(),
            None,
            "HTTP/2 times stalled writes instead"
        );
        drop(b);
        assert!(s.read_deadline().is_some());
    }
}
