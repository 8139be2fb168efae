//! The listener, the HTTP/1 connections on it, and the routing of each request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::backend::Backend;
use crate::body::{self, Body};
use crate::config::Config;
use crate::metrics::{ConnErrorLabels, Metrics};
use crate::routes;
use crate::ws::{self, handshake::OriginPolicy, socket::Socket};

/// Largest request head accepted; beyond it hyper answers 431.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// How long open HTTP connections get to finish once the drain is over.
const HTTP_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// State shared by every connection.
struct Shared {
    config: Config,
    metrics: Arc<Metrics>,
    ws: Arc<ws::Settings>,
    origins: OriginPolicy,
    backend: Backend,
    /// Set before the drain signals fire; connection loops read it instead of polling their
    /// signal on every pass.
    draining: Arc<AtomicBool>,
    /// One drain signal per open WebSocket. A oneshot per connection rather than one shared
    /// CancellationToken: polling a shared token takes a lock that every connection contends for.
    drainers: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    websockets: TaskTracker,
    active: AtomicUsize,
    next_id: AtomicU64,
}

/// A bound, not yet serving, gateway. [`crate::run`] is `bind` + `serve`.
pub struct Gateway {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Gateway {
    /// Validates the config, prepares the backend and binds the port.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let backend = Backend::new(&config).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let shared = Arc::new(Shared {
            metrics: Arc::new(Metrics::new()),
            ws: Arc::new(ws::Settings::from_config(&config)),
            origins: OriginPolicy::new(&config.allowed_origins),
            backend,
            draining: Arc::new(AtomicBool::new(false)),
            drainers: Mutex::new(HashMap::new()),
            websockets: TaskTracker::new(),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            config,
        });
        Ok(Gateway { listener, shared })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then drains: readiness turns 503, every WebSocket gets
    /// Close 1001, and this returns once they are gone or `--drain-timeout` has passed. The port
    /// keeps answering during the drain, so probes see 503 rather than a refused connection.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Gateway { listener, shared } = self;
        let addr = listener.local_addr()?;
        info!(backend = %shared.backend, "listening addr={addr}");
        let connections = TaskTracker::new();
        let stop_http = CancellationToken::new();
        let accept = |(stream, peer): (TcpStream, SocketAddr)| {
            connections.spawn(serve_connection(shared.clone(), stream, peer, stop_http.clone()));
        };

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                conn = next_connection(&listener) => accept(conn),
            }
        }

        let open = shared.websockets.len();
        info!(websockets = open, timeout = ?shared.config.drain_timeout, "draining");
        shared.start_drain();
        shared.websockets.close();
        let drained = tokio::time::sleep(shared.config.drain_timeout);
        tokio::pin!(drained);
        let finished = shared.websockets.wait();
        tokio::pin!(finished);
        loop {
            tokio::select! {
                () = &mut finished => {
                    info!("all websockets closed");
                    break;
                }
                () = &mut drained => {
                    // Each connection's closing handshake is bounded by the drain timeout too, so
                    // the stragglers are about to go; do not wait on them beyond a short grace.
                    warn!(remaining = shared.websockets.len(), "drain timeout passed; dropping the rest");
                    let _ = tokio::time::timeout(HTTP_CLOSE_GRACE, &mut finished).await;
                    break;
                }
                conn = next_connection(&listener) => accept(conn),
            }
        }
        drop(listener);
        stop_http.cancel();
        connections.close();
        let _ = tokio::time::timeout(HTTP_CLOSE_GRACE, connections.wait()).await;
        info!("stopped");
        Ok(())
    }
}

/// The next accepted connection. Accept errors (out of file descriptors, say) are logged and
/// retried after a pause instead of spinning; both the serving and the draining loop use this.
async fn next_connection(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(conn) => return conn,
            Err(error) => {
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// What hyper serves each accepted connection as; WebSocket upgrades are downcast back to it.
type ConnIo = TokioIo<TcpStream>;

/// Serves one TCP connection's HTTP/1 requests (and hands over upgraded ones to the WebSocket task).
async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, stop: CancellationToken) {
    let _open = HttpConnection::open(&shared);
    // Echoes are small and latency-bound: never wait to coalesce them.
    let _ = stream.set_nodelay(true);
    let service = {
        let shared = shared.clone();
        service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(route(&shared, req, peer).await) }
        })
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true)
        .serve_connection(ConnIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(HTTP_CLOSE_GRACE, conn.as_mut()).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
    };
    if let Err(error) = result {
        let kind = if error.is_parse_too_large() {
            "too_large"
        } else if error.is_parse() || error.is_parse_status() {
            "malformed"
        } else if error.is_timeout() {
            "timeout"
        } else if error.is_incomplete_message() {
            "incomplete"
        } else {
            "io"
        };
        shared.metrics.http_connection_errors.get_or_create(&ConnErrorLabels { kind }).inc();
        debug!(%peer, %error, kind, "http connection ended with an error");
    }
}

/// Counts a TCP connection as served over HTTP for as long as it lives.
struct HttpConnection(Arc<Shared>);

impl HttpConnection {
    fn open(shared: &Arc<Shared>) -> Self {
        shared.metrics.http_connections_active.inc();
        HttpConnection(shared.clone())
    }
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        self.0.metrics.http_connections_active.dec();
    }
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let path = req.uri().path();
    let label = routes::label(path);
    let is_admin = matches!(path, routes::LIVEZ | routes::READYZ | routes::METRICS);
    let response = if is_admin && req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = body::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    } else {
        match path {
            routes::WS => upgrade(shared, req, peer),
            routes::LIVEZ => body::text(StatusCode::OK, "ok"),
            routes::READYZ => readiness(shared),
            routes::METRICS => {
                let mut r = Response::new(body::full(shared.metrics.encode()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                );
                r
            }
            _ => shared.backend.serve(req, peer, &shared.metrics).await,
        }
    };
    shared.metrics.http(label, response.status().as_u16());
    response
}

fn readiness(shared: &Shared) -> Response<Body> {
    if shared.draining.load(Ordering::SeqCst) {
        body::text(StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if !shared.backend.is_ready() {
        body::text(StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable")
    } else {
        body::text(StatusCode::OK, "ready")
    }
}

impl Shared {
    fn drainers(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<()>>> {
        // The map stays consistent whatever a panicking holder did: recover it.
        self.drainers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses new upgrades and tells every open WebSocket to close with 1001.
    fn start_drain(&self) {
        let senders: Vec<_> = {
            let mut drainers = self.drainers();
            self.draining.store(true, Ordering::SeqCst);
            drainers.drain().map(|(_, tx)| tx).collect()
        };
        for tx in senders {
            let _ = tx.send(());
        }
    }
}

/// Releases a connection slot when the WebSocket task ends, however it ends.
struct Slot {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.drainers().remove(&self.id);
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
        self.shared.metrics.connections_active.dec();
    }
}

fn upgrade(shared: &Arc<Shared>, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let accept = match ws::handshake::validate(req.method(), req.headers(), &shared.origins) {
        Ok(accept) => accept,
        Err(rejection) => {
            shared.metrics.reject(rejection.reason);
            let mut r = body::text(rejection.status, rejection.message);
            if rejection.status == StatusCode::UPGRADE_REQUIRED {
                r.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
                r.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            }
            return r;
        }
    };
    if shared.draining.load(Ordering::SeqCst) {
        shared.metrics.reject("draining");
        return unavailable("the gateway is shutting down", 5);
    }
    if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.config.max_connections {
        shared.active.fetch_sub(1, Ordering::SeqCst);
        shared.metrics.reject("capacity");
        return unavailable("too many connections", 1);
    }
    shared.metrics.connections_active.inc();
    shared.metrics.connections_total.inc();
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let slot = Slot { shared: shared.clone(), id };
    let (drain_tx, drain_rx) = oneshot::channel();
    {
        // Checked under the lock the drain takes, so no connection slips past it unsignalled.
        let mut drainers = shared.drainers();
        if shared.draining.load(Ordering::SeqCst) {
            drop(drainers);
            shared.metrics.reject("draining");
            return unavailable("the gateway is shutting down", 5);
        }
        drainers.insert(id, drain_tx);
    }

    let pushes = !req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv == "push=off"));
    let on_upgrade = hyper::upgrade::on(&mut req);
    let cx = ws::conn::Context {
        id,
        pushes,
        settings: shared.ws.clone(),
        metrics: shared.metrics.clone(),
        drain: drain_rx,
        draining: shared.draining.clone(),
    };
    // A debug-level span: at the default `info` it is never built, which saves ~0.4 KB per idle
    // connection; the events themselves carry `conn`.
    let span = debug_span!("ws", conn = id, %peer);
    shared.websockets.spawn(
        async move {
            let _slot = slot;
            match on_upgrade.await {
                Ok(upgraded) => {
                    debug!(conn = id, %peer, pushes, "ws opened");
                    let protocol = Some(cx.settings.protocol);
                    // Back to the bare TCP stream: every read and write then skips hyper's
                    // `Upgraded` (a boxed, dynamically dispatched IO that rewinds a buffer).
                    match upgraded.downcast::<ConnIo>() {
                        Ok(hyper::upgrade::Parts { io, read_buf, .. }) => {
                            // Whatever the client sent right behind its handshake is WebSocket data.
                            // Copied out and released at once: even empty, `read_buf` keeps hyper's
                            // 8 KiB read buffer alive (twice an idle connection's whole footprint).
                            let early = read_buf.to_vec();
                            drop(read_buf);
                            let socket = Socket::new(io.into_inner());
                            let socket =
                                WebSocketStream::from_partially_read(socket, early, Role::Server, protocol)
                                    .await;
                            ws::conn::serve(socket, cx).await;
                        }
                        // Cannot happen while `serve_connection` serves `ConnIo`; said, not hidden.
                        Err(_) => {
                            warn!(conn = id, "upgraded connection is not the TCP stream it was accepted as")
                        }
                    }
                }
                Err(error) => debug!(%error, "upgrade did not complete"),
            }
        }
        .instrument(span),
    );

    let mut r = Response::new(body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = r.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    r
}

fn unavailable(message: &str, retry_after_secs: u32) -> Response<Body> {
    let mut r = body::text(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    r
}
