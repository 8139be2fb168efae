//! What a WebSocket's messages go to. The connection loop ([`super::conn`]) owns the socket, the
//! outbox, pings, the idle timeout, the close handshake and the drain; a handler decides what the
//! client's messages mean and what else is sent: the built-in echo and pushes ([`super::builtin`]),
//! or an app in the component ([`crate::apps`]).

use std::borrow::Cow;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::outbox::Out;

/// What the loop should do after a handler's turn.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Start the closing handshake with this code and reason (at most 123 bytes are sent).
    Close(u16, Cow<'static, str>),
    /// The same, on the gateway's behalf rather than the handler's (the handler's work failed, or
    /// the gateway restarts the connection).
    Fail(u16, Cow<'static, str>),
    /// End the connection now, without a closing handshake.
    Abort,
}

/// Who started a connection's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closer {
    /// The client sent the first Close.
    Client,
    /// The gateway: a limit, a timeout, a protocol error, the drain.
    Gateway,
    /// The handler (a component's `CLOSE`).
    Handler,
}

/// How a connection ended, for the handler's last word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    /// Who started the close; `None` when the stream just ended (a reset, a vanished client).
    pub by: Option<Closer>,
    /// The client's Close frame, if one arrived: its code (1005 without one) and reason.
    pub client_close: Option<(u16, String)>,
}

/// A connection's handler. Its methods are called from the connection's one loop, never
/// concurrently; they send through [`Out`].
pub trait Handler {
    /// What the handler's own work in flight (a request to a component) delivers.
    type Ready;

    /// The handler's next deadline (the next push, a keep-alive), kept on the connection's timer.
    fn deadline(&self) -> Option<Instant>;

    /// Its deadline has passed.
    fn on_deadline(&mut self, now: Instant, out: &mut Out<'_>) -> Flow;

    /// Polled on every turn of the loop, before the socket is read.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Self::Ready>;

    fn on_ready(&mut self, ready: Self::Ready, out: &mut Out<'_>) -> Flow;

    /// Whether the handler takes another message now (its own backpressure, besides the outbox's),
    /// with `queued` bytes waiting in the outbox.
    fn takes_messages(&self, queued: usize) -> bool;

    /// Bytes the handler holds for or from its client besides the outbox (a WebSocket app's
    /// events, request and answer), for the gateway-wide budget's choice of whom to shed.
    fn holding(&self) -> usize {
        0
    }

    /// The outbox was written out: what waited for the client to catch up may go on.
    fn on_flushed(&mut self, out: &mut Out<'_>);

    /// A Text or Binary message from the client (never after the closing handshake has begun).
    fn on_message(&mut self, message: Message, out: &mut Out<'_>) -> Flow;

    /// The connection is over.
    fn on_end(self, end: End);
}
