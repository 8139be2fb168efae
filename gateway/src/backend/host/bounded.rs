//! A guest's response body, bounded by the request's deadline.
//!
//! Once the head is sent the guest may keep writing its body, and a guest that sleeps in a host
//! call between two writes uses no wasm time that epoch interruption could stop. The body is
//! therefore cut off by the wall clock: at the deadline the client sees it end early (as when an
//! upstream drops the connection), the guest is stopped, and the cut-off counts as a component
//! error. The body also owns the guest's task, so a client that leaves mid-body stops the guest.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tracing::warn;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::backend::Metrics;
use crate::body::BoxError;

pub struct Bounded {
    inner: HyperOutgoingBody,
    deadline: Pin<Box<Sleep>>,
    /// Dropped with the body: stops the guest if it is still running.
    _guest: AbortOnDrop,
    metrics: Arc<Metrics>,
    /// The request, for the log line (already clipped).
    target: String,
}

impl Bounded {
    pub(super) fn new(
        inner: HyperOutgoingBody,
        deadline: Instant,
        guest: AbortOnDrop,
        metrics: Arc<Metrics>,
        target: String,
    ) -> Self {
        Bounded {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            _guest: guest,
            metrics,
            target,
        }
    }
}

impl hyper::body::Body for Bounded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|result| result.map_err(BoxError::from)));
        }
        ready!(this.deadline.as_mut().poll(cx));
        this.metrics.component_errors.inc();
        warn!(uri = %this.target, "component response body ran past its deadline; cut off");
        Poll::Ready(Some(Err("the component's response ran past its deadline".into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Aborts the guest's task when dropped.
pub(super) struct AbortOnDrop(pub Option<tokio::task::JoinHandle<wasmtime::Result<()>>>);

impl AbortOnDrop {
    pub async fn join(&mut self) -> Result<wasmtime::Result<()>, tokio::task::JoinError> {
        match self.0.as_mut() {
            Some(handle) => handle.await,
            None => Ok(Ok(())),
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}
