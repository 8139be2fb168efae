//! WebSocket admission: a validated handshake, a free connection slot and a drain registration
//! become a `101` and the connection's own task.

use crate::metrics::{BudgetAction, BudgetPath};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use tracing::{Instrument, debug, debug_span, warn};

use super::builtin::Builtin;
use super::handshake::Rejection;
use super::push::Schedule;
use super::websocket::WebSocket;
use crate::body::{self, Body};
use crate::http::ConnIo;
use crate::server::Shared;

/// A WebSocket's claim on the gateway: its slot under `--max-connections` and its drain signal.
/// Dropped when the connection task ends, however it ends.
pub struct Slot {
    shared: Arc<Shared>,
    pub id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.drain.unregister(self.id);
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
        self.shared.metrics.connections_active.dec();
    }
}

/// What admission gives a connection: its slot, its drain signal and the `Sec-WebSocket-Accept`.
pub struct Admitted {
    pub slot: Slot,
    pub drain: oneshot::Receiver<()>,
    pub accept: String,
}

/// Why an upgrade was refused; each is counted under its reason when it happens.
#[derive(Clone, Debug)]
pub enum Refused {
    Handshake(Rejection),
    Draining,
    Capacity,
    /// Near the gateway-wide memory budget.
    Memory,
}

impl Refused {
    pub fn response(&self) -> Response<Body> {
        match self {
            Refused::Handshake(rejection) => {
                let mut r = body::text(rejection.status, rejection.message);
                if rejection.status == StatusCode::UPGRADE_REQUIRED {
                    let headers = r.headers_mut();
                    headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
                    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
                }
                r
            }
            Refused::Draining => unavailable("the gateway is shutting down", 5),
            Refused::Capacity => unavailable("too many connections", 1),
            Refused::Memory => unavailable("the gateway is near its memory budget", 5),
        }
    }
}

/// Checks the handshake, the drain and the connection limit, in that order.
pub fn admit(shared: &Arc<Shared>, req: &Request<Incoming>, peer: SocketAddr) -> Result<Admitted, Refused> {
    let scheme = shared.proxies.scheme(req.headers(), peer.ip());
    let accept = super::handshake::validate(req.method(), req.headers(), &shared.origins, scheme)
        .inspect_err(|rejection| shared.metrics.reject(rejection.reason))
        .map_err(Refused::Handshake)?;
    if shared.drain.is_draining() {
        shared.metrics.reject("draining");
        return Err(Refused::Draining);
    }
    if shared.ws.budget.is_over() {
        shared.metrics.reject("memory");
        shared.metrics.budget(BudgetPath::Gateway, BudgetAction::Refuse);
        return Err(Refused::Memory);
    }
    if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.config.max_connections {
        shared.active.fetch_sub(1, Ordering::SeqCst);
        shared.metrics.reject("capacity");
        return Err(Refused::Capacity);
    }
    shared.metrics.connections_active.inc();
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let slot = Slot { shared: shared.clone(), id };
    let Some(drain) = shared.drain.register(id) else {
        shared.metrics.reject("draining");
        return Err(Refused::Draining);
    };
    shared.metrics.connections_total.inc();
    Ok(Admitted { slot, drain, accept })
}

/// The built-in `/ws` app: admits the connection and answers `101`; the connection's task takes
/// over once hyper hands the socket back.
pub fn builtin(shared: &Arc<Shared>, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let Admitted { slot, drain, accept } = match admit(shared, &req, peer) {
        Ok(admitted) => admitted,
        Err(refused) => return refused.response(),
    };
    let id = slot.id;
    let pushes = !req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv == "push=off"));
    let settings = shared.ws.clone();
    let schedule =
        settings.push.filter(|_| pushes).map(|(min, max)| Schedule::new(min, max, settings.seed, id));
    let cx = super::conn::Context { id, settings, metrics: shared.metrics.clone(), drain };
    let on_upgrade = hyper::upgrade::on(&mut req);
    // A debug-level span: at the default `info` it is never built, which saves ~0.4 KB per idle
    // connection; the events themselves carry `conn`.
    let span = debug_span!("ws", conn = id, %peer);
    shared.drain.websockets.spawn(
        async move {
            let _slot = slot;
            let Some((io, early)) = take_socket(on_upgrade, id, cx.settings.socket_buffer).await else {
                return;
            };
            debug!(conn = id, %peer, pushes, "ws opened");
            let ws = WebSocket::new(io, early, cx.settings.protocol);
            super::conn::serve(ws, cx, Builtin::new(schedule)).await;
        }
        .instrument(span),
    );
    switching_protocols(&accept)
}

/// Waits for hyper to hand the upgraded connection back, as the bare TCP socket plus whatever the
/// client sent right behind its handshake (WebSocket data, too). `buffers` fixes the kernel's send
/// and receive buffers at that many bytes each (it doubles them for its own bookkeeping), instead of
/// letting autotuning grow them to megabytes for a peer that stops reading.
pub async fn take_socket(
    on_upgrade: hyper::upgrade::OnUpgrade,
    id: u64,
    buffers: Option<usize>,
) -> Option<(TcpStream, Vec<u8>)> {
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            debug!(conn = id, %error, "upgrade did not complete");
            return None;
        }
    };
    // Back to the bare TCP stream: every read and write then skips hyper's `Upgraded` (a boxed,
    // dynamically dispatched IO that rewinds a buffer).
    match upgraded.downcast::<ConnIo>() {
        Ok(hyper::upgrade::Parts { io, read_buf, .. }) => {
            // Copied out and released at once: even empty, `read_buf` keeps hyper's 8 KiB read
            // buffer alive (twice an idle connection's whole footprint).
            let early = read_buf.to_vec();
            drop(read_buf);
            let socket = io.into_inner();
            if let Some(bytes) = buffers
                && let Err(error) = set_buffers(&socket, bytes)
            {
                debug!(conn = id, %error, "cannot size the socket's buffers");
            }
            Some((socket, early))
        }
        // Cannot happen while `serve_connection` serves `ConnIo`; said, not hidden.
        Err(_) => {
            warn!(conn = id, "upgraded connection is not the TCP stream it was accepted as");
            None
        }
    }
}

pub(super) fn set_buffers(socket: &TcpStream, bytes: usize) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(socket);
    socket.set_send_buffer_size(bytes)?;
    socket.set_recv_buffer_size(bytes)
}

/// The `101` that completes a handshake.
pub fn switching_protocols(accept: &str) -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = r.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    r
}

fn unavailable(message: &str, retry_after_secs: u32) -> Response<Body> {
    let mut r = body::text(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    r
}
