//! What a connection has to send, and the one place where backpressure is decided.
//!
//! Messages go straight to the socket's writer when it is ready and nothing waits before them;
//! otherwise they queue here. What a client asked for (an echo, its app's answers) is never
//! dropped: while [`OUTBOX_BUDGET`] bytes wait for a client, the connection stops reading from it.
//! What the server offers on its own (pushes, later publishes) is refused when it does not fit
//! behind what waits; an empty outbox takes any one message, however large.

use std::collections::VecDeque;
use std::task::{Context, Poll, ready};

use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::Error as WsError;

use super::OUTBOX_BUDGET;
use super::metrics::Metrics;
use super::websocket::WebSocket;

/// What a message is, for the counters and for whether it may be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The built-in app's echo of a client's message.
    Echo,
    /// A built-in random push: dropped when it does not fit.
    Push,
    /// A component app's message for its client.
    App,
    /// A publication to a channel the connection joined: dropped when it does not fit.
    Publish,
    /// Pings and Closes.
    Control,
}

/// Outbound frames waiting for the socket, with their byte total.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<(Message, Kind)>,
    bytes: usize,
    /// What this connection last added to the shared `outbox_bytes` gauge. Published once per
    /// flush attempt, so a message that goes straight out costs the shared gauge nothing.
    published: usize,
    /// Frames were handed to the writer since the last flush.
    pub unflushed: bool,
}

impl Outbox {
    /// Whether the connection may read another message from its client.
    pub fn has_room(&self) -> bool {
        self.bytes < OUTBOX_BUDGET
    }

    /// Bytes of messages waiting.
    pub fn queued(&self) -> usize {
        self.bytes
    }

    pub fn has_work(&self) -> bool {
        !self.queue.is_empty() || self.unflushed
    }

    /// Queues a frame behind the others, whatever the budget says (control frames, and what was
    /// already promised).
    pub fn push(&mut self, message: Message, kind: Kind) {
        self.bytes += message.len();
        self.queue.push_back((message, kind));
    }

    /// Drops everything queued (the connection can send nothing more).
    pub fn discard(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }

    /// The common case: nothing is waiting and the writer is ready, so the frame goes straight to
    /// it (the flush step then writes it out) and the queue never allocates. Otherwise it queues.
    pub fn send_or_queue(&mut self, ws: &mut WebSocket, message: Message, kind: Kind, metrics: &Metrics) {
        if self.queue.is_empty() && ws.is_ready() {
            let len = message.len() as u64;
            if ws.start_send(message).is_ok() {
                self.unflushed = true;
                Self::count(kind, len, metrics);
            }
            // A failed start_send means the connection is gone; the next read or flush ends it.
            return;
        }
        self.push(message, kind);
    }

    fn count(kind: Kind, len: u64, metrics: &Metrics) {
        match kind {
            Kind::Echo => metrics.messages_echoed.inc(),
            Kind::Push => metrics.pushes_sent.inc(),
            Kind::App => metrics.app_messages_sent.inc(),
            Kind::Publish => metrics.publications_sent.inc(),
            Kind::Control => return,
        };
        metrics.bytes_sent.inc_by(len);
    }

    /// Brings the shared `outbox_bytes` gauge up to date with this connection's queue.
    pub fn publish(&mut self, metrics: &Metrics) {
        if self.bytes != self.published {
            metrics.outbox_bytes.inc_by(self.bytes as i64 - self.published as i64);
            self.published = self.bytes;
        }
    }

    /// Takes this connection's share out of the shared gauge, at its end.
    pub fn unpublish(&mut self, metrics: &Metrics) {
        metrics.outbox_bytes.dec_by(self.published as i64);
        self.published = 0;
    }

    /// Hands queued frames to the writer as it accepts them, then flushes, so a burst becomes one
    /// write. Cancel-safe: a frame leaves the queue only in the same poll that the writer takes it.
    pub fn poll_flush(
        &mut self,
        cx: &mut Context<'_>,
        ws: &mut WebSocket,
        metrics: &Metrics,
    ) -> Poll<Result<(), WsError>> {
        while !self.queue.is_empty() {
            ready!(ws.poll_ready(cx))?;
            let Some((message, kind)) = self.queue.pop_front() else { break };
            let len = message.len();
            self.bytes -= len;
            ws.start_send(message)?;
            self.unflushed = true;
            Self::count(kind, len as u64, metrics);
        }
        if self.unflushed {
            ready!(ws.poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }
}

/// A handler's way to send: every message takes the outbox's path.
pub struct Out<'a> {
    outbox: &'a mut Outbox,
    ws: &'a mut WebSocket,
    metrics: &'a Metrics,
}

impl<'a> Out<'a> {
    pub fn new(outbox: &'a mut Outbox, ws: &'a mut WebSocket, metrics: &'a Metrics) -> Self {
        Out { outbox, ws, metrics }
    }

    /// Sends a message that must not be lost (it counts against the budget, which stops reading).
    pub fn send(&mut self, message: Message, kind: Kind) {
        self.outbox.send_or_queue(self.ws, message, kind, self.metrics);
    }

    /// Sends a message the server offers on its own, if it fits the budget; `false` when it was
    /// refused (the caller drops and counts it, or keeps it for [`Handler::on_flushed`]). An empty
    /// outbox takes one message whatever its size (up to `--max-message-size`): the budget limits
    /// what queues behind it, so a message larger than the budget is not refused for ever.
    ///
    /// [`Handler::on_flushed`]: super::handler::Handler::on_flushed
    pub fn offer(&mut self, message: Message, kind: Kind) -> bool {
        if self.outbox.bytes > 0 && self.outbox.bytes + message.len() > OUTBOX_BUDGET {
            return false;
        }
        self.send(message, kind);
        true
    }

    /// Whether the client is keeping up: nothing over the budget waits for it.
    pub fn has_room(&self) -> bool {
        self.outbox.has_room()
    }

    /// Bytes of messages waiting in the outbox.
    pub fn queued(&self) -> usize {
        self.outbox.bytes
    }

    /// Whether the socket's writer takes another frame now (it is not waiting for the client).
    pub fn writer_ready(&self) -> bool {
        self.ws.is_ready()
    }

    pub fn metrics(&self) -> &Metrics {
        self.metrics
    }
}
