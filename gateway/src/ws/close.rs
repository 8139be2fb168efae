//! How a connection ends: our Close frame, the close code for what a client broke, and which
//! errors are worth a log line.

use std::borrow::Cow;

use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, info};

use super::outbox::{Kind, Outbox};

/// Queues our Close frame (after whatever is already queued, so no message is lost). The reason is
/// cut to what a Close frame holds (123 bytes), at a character boundary.
pub(super) fn start_close(outbox: &mut Outbox, code: u16, reason: Cow<'static, str>) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame { code: CloseCode::from(code), reason: reason[..end].to_owned().into() };
    outbox.push(Message::Close(Some(frame)), Kind::Control);
}

/// The close code for an error the client caused, or `None` when the connection is just gone.
pub(super) fn violation(error: &WsError) -> Option<(u16, &'static str)> {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => Some((1009, "message too big")),
        WsError::Capacity(_) => Some((1009, "frame too big")),
        WsError::Utf8(_) => Some((1007, "invalid UTF-8")),
        // The TCP stream just ended: the client went away, it did not break the protocol.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some((1002, "protocol error")),
        _ => None,
    }
}

/// Client-went-away errors are expected (debug); anything else is worth a look.
pub(super) fn log_error(id: u64, op: &str, error: &WsError) {
    let expected = match error {
        WsError::ConnectionClosed | WsError::AlreadyClosed => true,
        WsError::Io(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionAborted
        ),
        WsError::Protocol(p) => matches!(p, ProtocolError::ResetWithoutClosingHandshake),
        _ => false,
    };
    if expected {
        debug!(conn = id, %error, op, "ws connection ended");
    } else {
        info!(conn = id, %error, op, "ws connection failed");
    }
}
