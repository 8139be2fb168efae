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
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::debug;

use crate::authority::HostPolicy;
use crate::body::{self, Body};
use crate::drain::Drain;
use crate::metrics::{ConnErrorLabels, Metrics};
use crate::routes;
use crate::ws::upgrade::ConnIo;

/// Largest request head accepted; beyond it hyper answers 431.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// What answers a listener's requests once their authority has been checked: the public or the
/// admin surface.
pub trait Router: Send + Sync + 'static {
    /// Answers one request; returns the route's metrics label with the response.
    fn route(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = (&'static str, Response<Body>)> + Send;
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
        listener.metrics.http_connection_errors.get_or_create(&ConnErrorLabels { kind }).inc();
        debug!(%peer, %error, kind, "http connection ended with an error");
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
        Err(refusal) => (routes::REFUSED, body::text(refusal.status, refusal.message)),
        Ok(()) => listener.router.route(req, peer).await,
    };
    listener.metrics.http(label, response.status().as_u16());
    response
}

/// Counts a TCP connection as served over HTTP for as long as it lives.
struct HttpConnection(Arc<Metrics>);

impl HttpConnection {
    fn open(metrics: &Arc<Metrics>) -> Self {
        metrics.http_connections_active.inc();
        HttpConnection(metrics.clone())
    }
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        self.0.http_connections_active.dec();
    }
}
