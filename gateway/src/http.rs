//! One accepted TCP connection served as HTTP/1: hyper's set-up, its end during a drain, and the
//! sorting of the ways a connection can fail.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::debug;

use crate::body::{self, Body};
use crate::metrics::ConnErrorLabels;
use crate::server::Shared;
use crate::{admin, public, routes};

/// Largest request head accepted; beyond it hyper answers 431.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// What hyper serves each accepted connection as; WebSocket upgrades are downcast back to it.
pub type ConnIo = TokioIo<TcpStream>;

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// What the internet may reach: WebSockets and the component.
    Public,
    /// What only the cluster may reach: probes and metrics.
    Admin,
}

/// Serves one TCP connection's requests (upgraded ones are handed over to their WebSocket task).
pub async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, surface: Surface) {
    let _open = HttpConnection::open(&shared);
    // Echoes and small answers are latency-bound: never wait to coalesce them.
    let _ = stream.set_nodelay(true);
    // Marked when the first request arrives: a drain lets a connection that has not sent one yet
    // send it, rather than closing it under a client that is about to.
    let first = Arc::new(Notify::new());
    let service = {
        let (shared, first) = (shared.clone(), first.clone());
        service_fn(move |req| {
            first.notify_one();
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(answer(&shared, req, peer, surface).await) }
        })
    };
    // A connection accepted during the drain answers one request and closes.
    let draining = shared.drain.is_draining();
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(!draining)
        .serve_connection(ConnIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let stop = shared.drain.http_signal();
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
        shared.metrics.http_connection_errors.get_or_create(&ConnErrorLabels { kind }).inc();
        debug!(%peer, %error, kind, "http connection ended with an error");
    }
}

/// One request: its authority checked, then routed by surface, then counted.
async fn answer(
    shared: &Arc<Shared>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    surface: Surface,
) -> Response<Body> {
    let hosts = match surface {
        Surface::Public => &shared.public_hosts,
        Surface::Admin => &shared.admin_hosts,
    };
    let (version, uri) = (req.version(), req.uri().clone());
    let (label, response) = match hosts.check(version, &uri, req.headers_mut()) {
        Err(refusal) => (routes::REFUSED, body::text(refusal.status, refusal.message)),
        Ok(()) => match surface {
            Surface::Public => public::route(shared, req, peer).await,
            Surface::Admin => admin::route(shared, req).await,
        },
    };
    shared.metrics.http(label, response.status().as_u16());
    response
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
