//! A body from the component cut off by a timer: the one guard both backends put on what they
//! pass on. The embedded host's ends at the request's deadline, however it goes (a guest asleep in
//! a host call between two writes uses no wasm time that epoch interruption could stop); the
//! proxy's ends when the upstream has sent nothing for its limit (only time spent waiting on the
//! upstream counts, never time hyper spends waiting for a slow client). Either way the client sees
//! the body end early, as when an upstream drops the connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;

/// What a cut-off does (count it, log it) and the error the body ends with.
type Cut = Box<dyn FnMut() -> BoxError + Send>;

/// `inner`, cut off by its timer; `K` is kept for as long as the body (the host's guest task).
pub struct Guarded<B, K = ()> {
    inner: B,
    timer: Pin<Box<Sleep>>,
    /// `Some(limit)` for a stall guard: the timer is armed when a poll finds nothing, and
    /// disarmed by the next frame.
    stall: Option<Duration>,
    waiting: bool,
    cut: Cut,
    _keep: K,
}

impl<B, K> Guarded<B, K> {
    /// Cut off at `deadline`.
    pub fn deadline(
        inner: B,
        deadline: Instant,
        keep: K,
        cut: impl FnMut() -> BoxError + Send + 'static,
    ) -> Self {
        let timer = Box::pin(tokio::time::sleep_until(deadline));
        Guarded { inner, timer, stall: None, waiting: false, cut: Box::new(cut), _keep: keep }
    }

    /// Cut off once it has waited `limit` for its next frame.
    pub fn stall(inner: B, limit: Duration, keep: K, cut: impl FnMut() -> BoxError + Send + 'static) -> Self {
        let timer = Box::pin(tokio::time::sleep(limit));
        Guarded { inner, timer, stall: Some(limit), waiting: false, cut: Box::new(cut), _keep: keep }
    }
}

impl<B, K> Body for Guarded<B, K>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    K: Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        if let Some(limit) = this.stall
            && !this.waiting
        {
            this.waiting = true;
            this.timer.as_mut().reset(Instant::now() + limit);
        }
        ready!(this.timer.as_mut().poll(cx));
        Poll::Ready(Some(Err((this.cut)())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
