//! One accepted TCP connection served as HTTP/1: hyper's set-up, its end during a drain, and the
//! sorting of the ways a connection can fail.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::debug;

use crate::authority::HostPolicy;
use crate::body::{self, Body};
use crate::drain::Drain;
use crate::metrics::add;
use crate::routes::Route;
use crate::ws::upgrade::ConnIo;
use crate::{label_set, label_values};

/// Largest request head accepted; beyond it hyper answers 431.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// What answers a listener's requests once their authority has been checked: the public or the
/// admin surface.
pub trait Router: Send + Sync + 'static {
    /// Answers one request; returns the route it is counted under with the response.
    fn route(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = (Route, Response<Body>)> + Send;
}

/// One listener's side of every connection it accepts: the names it answers to, what routes its
/// requests, and what HTTP serving needs of the drain and the metrics.
pub struct Listener<R> {
    pub hosts: HostPolicy,
    pub router: R,
    pub drain: Arc<Drain>,
    pub metrics: Arc<Metrics>,
    pub header_read_timeout: Duration,
}

impl<R: Router> Listener<R> {
    /// A listener's side, with what every listener shares: the drain, the metrics, and how long
    /// a request's head may take.
    pub fn shared(
        hosts: HostPolicy,
        router: R,
        (drain, metrics, header_read_timeout): (&Arc<Drain>, &Arc<Metrics>, Duration),
    ) -> Arc<Self> {
        Arc::new(Listener {
            hosts,
            router,
            drain: drain.clone(),
            metrics: metrics.clone(),
            header_read_timeout,
        })
    }
}

/// Serves one TCP connection's requests (upgraded ones are handed over to their WebSocket task).
pub async fn serve_connection<R: Router>(listener: Arc<Listener<R>>, stream: TcpStream, peer: SocketAddr) {
    let _open = HttpConnection::open(&listener.metrics);
    // Echoes and small answers are latency-bound: never wait to coalesce them.
    let _ = stream.set_nodelay(true);
    // Marked when the first request arrives: a drain lets a connection that has not sent one yet
    // send it, rather than closing it under a client that is about to.
    let first = Arc::new(Notify::new());
    let service = {
        let (listener, first) = (listener.clone(), first.clone());
        service_fn(move |req| {
            first.notify_one();
            let listener = listener.clone();
            async move { Ok::<_, Infallible>(answer(&listener, req, peer).await) }
        })
    };
    // A connection accepted during the drain answers one request and closes.
    let draining = listener.drain.is_draining();
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(listener.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(!draining)
        .serve_connection(ConnIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let stop = listener.drain.http_signal();
    let result = if draining {
        conn.await
    } else {
        tokio::select! {
            result = conn.as_mut() => result,
            () = stop.cancelled() => {
                // A connection still to send its first request (accepted as the drain began) gets
                // it answered, within the header read timeout; then the request in flight is
                // answered (with `Connection: close`), and an idle connection closes now. The
                // drain's budget bounds the rest.
                let ended = tokio::select! {
                    result = conn.as_mut() => Some(result),
                    () = first.notified() => None,
                };
                match ended {
                    Some(result) => result,
                    None => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                }
            }
        }
    };
    if let Err(error) = result {
        let kind = if error.is_parse_too_large() {
            ConnError::TooLarge
        } else if error.is_parse() || error.is_parse_status() {
            ConnError::Malformed
        } else if error.is_timeout() {
            ConnError::Timeout
        } else if error.is_incomplete_message() {
            ConnError::Incomplete
        } else {
            ConnError::Io
        };
        listener.metrics.connection_error(kind);
        debug!(%peer, %error, kind = kind.as_str(), "http connection ended with an error");
    }
}

/// One request: its authority checked, then routed by surface, then counted.
async fn answer<R: Router>(
    listener: &Listener<R>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let (version, uri) = (req.version(), req.uri().clone());
    let (label, response) = match listener.hosts.check(version, &uri, req.headers_mut()) {
        Err(refusal) => (Route::Refused, body::text(refusal.status, refusal.message)),
        Ok(()) => listener.router.route(req, peer).await,
    };
    listener.metrics.http(label, response.status().as_u16());
    response
}

/// Counts a TCP connection as served over HTTP for as long as it lives.
struct HttpConnection(Arc<Metrics>);

impl HttpConnection {
    fn open(metrics: &Arc<Metrics>) -> Self {
        metrics.connections_active.inc();
        HttpConnection(metrics.clone())
    }
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        self.0.connections_active.dec();
    }
}

/// What HTTP serving counts: requests by route and status, connections, and how they failed.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Family<HttpLabels, Counter>,
    connections_active: Gauge,
    connection_errors: Family<ConnError, Counter>,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        Metrics {
            requests: add(r, "http_requests", "HTTP requests answered, by route and status"),
            connections_active: add(
                r,
                "http_connections_active",
                "TCP connections being served as HTTP (upgraded ones count as WebSockets)",
            ),
            connection_errors: add(
                r,
                "http_connection_errors",
                "HTTP connections that ended in an error: malformed or oversized requests, timeouts, resets",
            ),
        }
    }

    /// Counts a request answered.
    pub fn http(&self, route: Route, status: u16) {
        // Status codes are the server's own (a proxied upstream's too): 100-999, bounded.
        self.requests.get_or_create(&HttpLabels { route, status }).inc();
    }

    /// Counts a connection that ended in an error before a request could be answered.
    pub fn connection_error(&self, kind: ConnError) {
        self.connection_errors.get_or_create(&kind).inc();
    }
}

label_values! {
    /// Why an HTTP connection ended in error before a request could be answered.
    pub enum ConnError {
        TooLarge = "too_large",
        Malformed = "malformed",
        Timeout = "timeout",
        Incomplete = "incomplete",
        Io = "io",
        /// The admin listener was at its cap of connections.
        Busy = "busy",
    }
}

label_set!(ConnError, "kind");

/// One HTTP request: its route (never the raw path, to keep cardinality bounded) and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: Route,
    status: u16,
}
