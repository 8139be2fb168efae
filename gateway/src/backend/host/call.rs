//! One request through the component: a free instance within [`SLOT_WAIT`], a fresh Store with
//! its memory cap and its deadline, the guest run on the guests' runtime, and its answer (or its
//! real error) handed back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};
use tracing::warn;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use super::Host;
use super::bounded::{AbortOnDrop, Bounded};
use crate::backend::Metrics;
use crate::backend::outcome::ExchangeError;
use crate::body::{self, Body};
use crate::logging::clip;
use crate::stages::{self, Stages};

/// How long a request waits for a free instance before the host answers 503: long enough to ride
/// out a burst of quick requests, short enough that a full host sheds load instead of queueing it
/// without bound.
const SLOT_WAIT: Duration = Duration::from_millis(500);

/// Why a call failed, when the caller answers differently for it: carried in the `anyhow::Error`
/// (as its error or as a context) and found again with [`CallError::of`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallError {
    /// Every instance was busy for the whole of [`SLOT_WAIT`].
    Busy,
    /// The guest ran past its deadline.
    DeadlineExceeded,
}

impl CallError {
    fn of(error: &anyhow::Error) -> Option<Self> {
        error.downcast_ref().copied()
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CallError::Busy => "every component instance is busy",
            CallError::DeadlineExceeded => "request deadline exceeded",
        })
    }
}

impl std::error::Error for CallError {}

impl Host {
    /// Runs the component on one request. A guest that traps, exceeds its memory or never answers
    /// costs this request a 500 (504 past the deadline) and one log line; a host whose instances
    /// are all busy answers 503 with `Retry-After`; nothing else is affected.
    pub async fn serve(&self, req: Request<Incoming>, metrics: &Arc<Metrics>) -> Response<Body> {
        let method = req.method().clone();
        // Clipped: the client chooses it, up to the 32 KiB of a request head.
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let target = clip(target, 256).into_owned();
        match self.call(req, metrics, &target, Arc::default()).await {
            Ok(response) => response,
            Err(error) if CallError::of(&error) == Some(CallError::Busy) => {
                metrics.component_busy.inc();
                let mut r = body::text(StatusCode::SERVICE_UNAVAILABLE, "every component instance is busy");
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            Err(error) => {
                metrics.component_errors.inc();
                // `of` sees a context too, where a deadline that interrupted the guest is recorded.
                let deadline = CallError::of(&error) == Some(CallError::DeadlineExceeded);
                let error = format!("{error:#}");
                warn!(%method, uri = %target, error = %clip(&error, 512), "component request failed");
                if deadline {
                    body::text(
                        StatusCode::GATEWAY_TIMEOUT,
                        "gateway timeout: the component ran past its deadline",
                    )
                } else {
                    body::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error: the component failed")
                }
            }
        }
    }

    /// One request of a WebSocket app, buffered both ways: its answer, at most `limit` bytes of
    /// body, within the same deadline as any request.
    pub async fn exchange(
        &self,
        req: Request<Bytes>,
        limit: usize,
        metrics: &Arc<Metrics>,
    ) -> Result<Response<Bytes>, ExchangeError> {
        let target = clip(req.uri().path(), 256).into_owned();
        let returned = Arc::new(OnceLock::new());
        let response = match self.call(req.map(Full::new), metrics, &target, returned.clone()).await {
            Ok(response) => response,
            Err(error) if CallError::of(&error) == Some(CallError::Busy) => {
                metrics.component_busy.inc();
                return Err(ExchangeError::Unavailable("every component instance is busy".into()));
            }
            Err(error) if CallError::of(&error) == Some(CallError::DeadlineExceeded) => {
                return Err(ExchangeError::Timeout);
            }
            Err(error) => return Err(ExchangeError::Failed(clip(&format!("{error:#}"), 512).into_owned())),
        };
        let (parts, body) = response.into_parts();
        match body::read_limited(body, limit).await {
            Ok(body) => {
                let back = returned.get().map_or(Duration::ZERO, |end| end.elapsed());
                stages::observe(&metrics.stages.answer, back);
                Ok(Response::from_parts(parts, body))
            }
            Err(body::ReadError::TooLarge(limit)) => Err(ExchangeError::TooLarge(limit)),
            // The body guard ends a body that runs past the deadline.
            Err(body::ReadError::Broken(_)) => Err(ExchangeError::Timeout),
        }
    }

    async fn call<B>(
        &self,
        req: Request<B>,
        metrics: &Arc<Metrics>,
        target: &str,
        returned: Arc<OnceLock<Instant>>,
    ) -> anyhow::Result<Response<Body>>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        // One deadline for everything: the wait for an instance, the guest's work before its
        // answer, and the body it streams after it.
        let arrived = Instant::now();
        let deadline = arrived + self.timeout;
        let version = self.current();
        let slot =
            match timeout_at((arrived + SLOT_WAIT).min(deadline), self.slots.clone().acquire_owned()).await {
                Ok(slot) => slot.context("the wasm host is shutting down")?,
                Err(_) => return Err(CallError::Busy.into()),
            };
        stages::observe(&metrics.stages.queue, arrived.elapsed());
        let deadline_hit = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = oneshot::channel();
        // This request's version, to its end: a reload meanwhile does not change it.
        let pre = version.pre.clone();
        let guests = self.guests.as_ref().context("the wasm host is shutting down")?;
        let (stores, guest_metrics, hit) = (self.stores.clone(), metrics.clone(), deadline_hit.clone());
        // The guest runs in its own task so it can keep streaming the body after the head is sent.
        let guest_end = returned.clone();
        let spawned = Instant::now();
        let task = guests.spawn(async move {
            let _slot = slot;
            let stages = &guest_metrics.stages;
            let _running = Running::start(stages);
            let started = Instant::now();
            stages::observe(&stages.schedule, started - spawned);
            let mut store = stores.fresh(deadline, hit, stages.guest_yields.clone());
            let handing = "cannot hand the request to the component";
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, req)
                .map_err(|e| e.context(handing))?;
            let out =
                store.data_mut().http().new_response_outparam(sender).map_err(|e| e.context(handing))?;
            let proxy = pre.instantiate_async(&mut store).await?;
            let instantiated = Instant::now();
            stages::observe(&stages.instantiate, instantiated - started);
            let result = proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await;
            let _ = guest_end.set(Instant::now());
            stages::observe(&stages.guest, guest_end.get().map_or(Duration::ZERO, |end| *end - instantiated));
            result
        });

        // If the client goes away before the head is ready, the guest has nobody to answer: stop
        // it rather than let it run to its deadline.
        let mut task = AbortOnDrop(Some(task));
        match timeout_at(deadline, receiver).await {
            Ok(Ok(Ok(response))) => {
                // From here the guest may still be streaming the body: the body owns the task,
                // stops it when the client leaves, and cuts the body off at the deadline.
                let (parts, body) = response.into_parts();
                let body = Bounded::new(body, deadline, task, metrics.clone(), target.to_owned());
                Ok(Response::from_parts(parts, body.boxed_unsync()))
            }
            Ok(Ok(Err(code))) => anyhow::bail!("the component answered with an error: {code:?}"),
            // The sender was dropped without an answer: the guest returned or trapped (or the
            // request could not be handed to it). Its own error is the one worth reporting.
            Ok(Err(_)) => match task.join().await {
                Ok(Ok(())) => anyhow::bail!("the component returned without setting a response"),
                Ok(Err(error)) if deadline_hit.load(Ordering::Relaxed) => {
                    Err(anyhow::Error::from(error).context(CallError::DeadlineExceeded))
                }
                Ok(Err(error)) => Err(anyhow::Error::from(error).context("the component trapped")),
                Err(join) => Err(anyhow::Error::from(join).context("the component task failed")),
            },
            Err(_) => Err(anyhow::Error::new(CallError::DeadlineExceeded)),
        }
    }
}

/// Counts a guest on the guests' runtime while it lives (an aborted one too).
struct Running<'a>(&'a Stages);

impl<'a> Running<'a> {
    fn start(stages: &'a Stages) -> Self {
        stages.guests_running.inc();
        stages.guests_in_flight.observe(stages.guests_running.get() as f64);
        Running(stages)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.guests_running.dec();
    }
}
