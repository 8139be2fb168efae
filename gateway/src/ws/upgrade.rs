//! The socket side of an upgrade: the `101` that completes a handshake, and the bare TCP socket
//! hyper hands back once it has gone out. Who is admitted is [`crate::admission`]'s to decide.

use http::{HeaderValue, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::body::{self, Body};

/// What hyper serves each accepted connection as; WebSocket upgrades are downcast back to it.
pub type ConnIo = TokioIo<TcpStream>;

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
