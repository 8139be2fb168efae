//! A guest's response body, bounded by the request's deadline.
//!
//! Once the head is sent the guest may keep writing its body, and a guest that sleeps in a host
//! call between two writes uses no wasm time that epoch interruption could stop. The body is
//! therefore cut off by the wall clock: at the deadline the client sees it end early (as when an
//! upstream drops the connection), the guest is stopped, and the cut-off counts as a component
//! error. The body also owns the guest's task, so a client that leaves mid-body stops the guest.

use std::sync::Arc;

use tokio::time::Instant;
use tracing::warn;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::backend::Metrics;
use crate::backend::guard::Guarded;

/// The guest's body, cut off at the deadline; it keeps the guest's task.
pub type Bounded = Guarded<HyperOutgoingBody, AbortOnDrop>;

impl Guarded<HyperOutgoingBody, AbortOnDrop> {
    /// `target` is the request, for the log line (already clipped).
    pub(super) fn new(
        inner: HyperOutgoingBody,
        deadline: Instant,
        guest: AbortOnDrop,
        metrics: Arc<Metrics>,
        target: String,
    ) -> Self {
        Guarded::deadline(inner, deadline, guest, move || {
            metrics.component_errors.inc();
            warn!(uri = %target, "component response body ran past its deadline; cut off");
            "the component's response ran past its deadline".into()
        })
    }
}

/// Aborts the guest's task when dropped.
pub struct AbortOnDrop(pub Option<tokio::task::JoinHandle<wasmtime::Result<()>>>);

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
