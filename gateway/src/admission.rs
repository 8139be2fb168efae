//! WebSocket admission, shared by `/ws` and the component's apps: a validated handshake, a free
//! connection slot and a drain registration become a `101` and the connection's own task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio::sync::oneshot;
use tracing::{Instrument, Span, debug};

use crate::body::{self, Body};
use crate::budget::{BudgetAction, BudgetPath};
use crate::drain::Drain;
use crate::forwarded::TrustedProxies;
use crate::ws::handler::{End, Handler};
use crate::ws::handshake::{self, BadHandshake, OriginPolicy};
use crate::ws::metrics::{Metrics, Reject};
use crate::ws::upgrade::{switching_protocols, take_socket};
use crate::ws::websocket::WebSocket;
use crate::ws::{self, conn};

/// What every upgrade is checked against, and what an admitted connection runs with.
pub struct Admission {
    pub ws: Arc<ws::Settings>,
    origins: OriginPolicy,
    proxies: Arc<TrustedProxies>,
    drain: Arc<Drain>,
    metrics: Arc<Metrics>,
    max_connections: usize,
    /// Open WebSockets, against `--max-connections`.
    active: AtomicUsize,
    next_id: AtomicU64,
}

/// A WebSocket's claim on the gateway: its slot under `--max-connections` and its drain signal.
/// Dropped when the connection task ends, however it ends.
pub struct Slot {
    admission: Arc<Admission>,
    pub id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let admission = &self.admission;
        admission.drain.unregister(self.id);
        admission.active.fetch_sub(1, Ordering::SeqCst);
        admission.metrics.connections_active.dec();
    }
}

/// What admission gives a connection: its slot, its drain signal and the `Sec-WebSocket-Accept`.
pub struct Admitted {
    pub slot: Slot,
    drain: oneshot::Receiver<()>,
    accept: String,
}

/// Why an upgrade was turned away; each is counted under its reason when it happens.
#[derive(Clone, Debug)]
pub enum TurnedAway {
    Handshake(BadHandshake),
    Draining,
    Capacity,
    /// Near the gateway-wide memory budget.
    Memory,
}

impl TurnedAway {
    pub fn response(&self) -> Response<Body> {
        match self {
            TurnedAway::Handshake(rejection) => {
                let mut r = body::text(rejection.status, rejection.message);
                if rejection.status == StatusCode::UPGRADE_REQUIRED {
                    let headers = r.headers_mut();
                    headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
                    crate::headers::offer_websocket(headers);
                }
                r
            }
            TurnedAway::Draining => unavailable("the gateway is shutting down", 5),
            TurnedAway::Capacity => unavailable("too many connections", 1),
            TurnedAway::Memory => unavailable("the gateway is near its memory budget", 5),
        }
    }
}

impl Admission {
    pub fn new(
        ws: Arc<ws::Settings>,
        origins: OriginPolicy,
        proxies: Arc<TrustedProxies>,
        drain: Arc<Drain>,
        metrics: Arc<Metrics>,
        max_connections: usize,
    ) -> Self {
        Admission {
            ws,
            origins,
            proxies,
            drain,
            metrics,
            max_connections,
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        }
    }

    /// Counts an upgrade refused after admission (a WebSocket app that said no).
    pub fn reject(&self, reason: Reject) {
        self.metrics.reject(reason);
    }

    /// Checks the handshake, the drain and the connection limit, in that order.
    pub fn admit(
        self: &Arc<Self>,
        req: &Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Admitted, TurnedAway> {
        let metrics = &self.metrics;
        let scheme = self.proxies.scheme(req.headers(), peer.ip());
        let accept = handshake::validate(req.method(), req.headers(), &self.origins, scheme)
            .inspect_err(|rejection| metrics.reject(rejection.reason))
            .map_err(TurnedAway::Handshake)?;
        if self.drain.is_draining() {
            metrics.reject(Reject::Draining);
            return Err(TurnedAway::Draining);
        }
        if self.ws.budget.is_over() {
            metrics.reject(Reject::Memory);
            self.ws.budget.count(BudgetPath::Gateway, BudgetAction::Refuse);
            return Err(TurnedAway::Memory);
        }
        if self.active.fetch_add(1, Ordering::SeqCst) >= self.max_connections {
            self.active.fetch_sub(1, Ordering::SeqCst);
            metrics.reject(Reject::Capacity);
            return Err(TurnedAway::Capacity);
        }
        metrics.connections_active.inc();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Slot { admission: self.clone(), id };
        let Some(drain) = self.drain.register(id) else {
            metrics.reject(Reject::Draining);
            return Err(TurnedAway::Draining);
        };
        metrics.connections_total.inc();
        Ok(Admitted { slot, drain, accept })
    }
}

impl Admitted {
    /// Answers `101` and hands the connection to its own tracked task, which takes over once hyper
    /// gives the socket back and runs `handler` on it. A client that leaves before that still ends
    /// the handler (an app hears that its connection ended).
    pub fn serve<H>(self, req: &mut Request<Incoming>, handler: H, span: Span) -> Response<Body>
    where
        H: Handler + Send + 'static,
        H::Ready: Send,
    {
        let Admitted { slot, drain, accept } = self;
        let admission = slot.admission.clone();
        let id = slot.id;
        let settings = admission.ws.clone();
        let cx = conn::Context { id, settings: settings.clone(), metrics: admission.metrics.clone(), drain };
        let on_upgrade = hyper::upgrade::on(req);
        admission.drain.websockets.spawn(
            async move {
                let _slot = slot;
                let Some((io, early)) = take_socket(on_upgrade, id, settings.socket_buffer).await else {
                    handler.on_end(End { by: None, client_close: None });
                    return;
                };
                debug!(conn = id, "opened");
                let ws = WebSocket::new(io, early, settings.protocol);
                conn::serve(ws, cx, handler).await;
            }
            .instrument(span),
        );
        switching_protocols(&accept)
    }
}

fn unavailable(message: &str, retry_after_secs: u32) -> Response<Body> {
    let mut r = body::text(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    r
}
