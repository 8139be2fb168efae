//! One WebSocket connection: one task, one loop over one future that polls every source in order.
//!
//! The loop reads frames (echoing data), fires random-timed pushes, sends keepalive pings, watches
//! for silence, and closes with 1001 when the gateway drains. All outbound traffic goes through the
//! [`Outbox`], which is where backpressure is decided: echoes are never dropped, so when the outbox
//! is full the loop stops reading from the client; pushes that do not fit are dropped and counted.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, Waker, ready};
use std::time::SystemTime;

use futures_util::{Sink, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tracing::{debug, info};

use super::push::Schedule;
use super::{OUTBOX_BUDGET, Settings};
use crate::metrics::Metrics;

/// What a connection task is given.
#[derive(Debug)]
pub struct Context {
    pub id: u64,
    pub pushes: bool,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// Fires when the gateway starts draining: close with 1001.
    pub drain: oneshot::Receiver<()>,
    /// Set before `drain` fires, so the loop need not poll `drain` on every turn.
    pub draining: Arc<AtomicBool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Echo,
    Push,
    Control,
}

/// Outbound frames waiting for the socket, with their byte total.
struct Outbox {
    queue: VecDeque<(Message, Kind)>,
    bytes: usize,
    /// What this connection last added to the shared `outbox_bytes` gauge. Published once per
    /// flush attempt, so an echo that goes straight out costs the shared gauge nothing.
    published: usize,
    /// Frames were handed to the writer since the last flush.
    unflushed: bool,
}

impl Outbox {
    fn has_room(&self) -> bool {
        self.bytes < OUTBOX_BUDGET
    }

    fn has_work(&self) -> bool {
        !self.queue.is_empty() || self.unflushed
    }

    /// Drops everything queued (the connection can send nothing more).
    fn discard(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }

    fn push(&mut self, message: Message, kind: Kind) {
        self.bytes += message.len();
        self.queue.push_back((message, kind));
    }

    /// The common case: nothing is waiting and the writer is ready, so the frame goes straight to
    /// it (the flush step then writes it out) and the queue never allocates. Otherwise it queues.
    fn send_or_queue<W>(&mut self, sink: &mut W, message: Message, kind: Kind, metrics: &Metrics)
    where
        W: Sink<Message, Error = WsError> + Unpin,
    {
        if self.queue.is_empty() {
            // Asking without a waker is enough: on Pending, the flush step asks again properly.
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if let Poll::Ready(Ok(())) = sink.poll_ready_unpin(&mut cx) {
                let len = message.len() as u64;
                if sink.start_send_unpin(message).is_ok() {
                    self.unflushed = true;
                    Self::count(kind, len, metrics);
                }
                // A failed start_send means the connection is gone; the next read or flush ends it.
                return;
            }
        }
        self.push(message, kind);
    }

    fn count(kind: Kind, len: u64, metrics: &Metrics) {
        match kind {
            Kind::Echo => metrics.messages_echoed.inc(),
            Kind::Push => metrics.pushes_sent.inc(),
            Kind::Control => return,
        };
        metrics.bytes_sent.inc_by(len);
    }

    fn publish(&mut self, metrics: &Metrics) {
        if self.bytes != self.published {
            metrics.outbox_bytes.inc_by(self.bytes as i64 - self.published as i64);
            self.published = self.bytes;
        }
    }

    /// Hands queued frames to the writer as it accepts them, then flushes, so a burst becomes one
    /// write. Cancel-safe: a frame leaves the queue only in the same poll that the writer takes it.
    fn poll_flush<W>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        sink: &mut W,
        metrics: &Metrics,
    ) -> Poll<Result<(), WsError>>
    where
        W: Sink<Message, Error = WsError> + Unpin,
    {
        while !self.queue.is_empty() {
            ready!(sink.poll_ready_unpin(cx))?;
            let Some((message, kind)) = self.queue.pop_front() else { break };
            let len = message.len();
            self.bytes -= len;
            sink.start_send_unpin(message)?;
            self.unflushed = true;
            Self::count(kind, len as u64, metrics);
        }
        if self.unflushed {
            ready!(sink.poll_flush_unpin(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }
}

/// Who closed the connection, and how.
#[derive(Clone, Copy, Debug)]
struct Closed {
    by: &'static str,
    code: Option<u16>,
}

/// Every deadline a connection keeps, behind one tokio timer: one registration in the runtime's
/// timer wheel per connection instead of four, and one timer for the loop to check.
struct Deadlines {
    /// The next push, when pushes are on.
    push: Option<Instant>,
    ping: Instant,
    /// When to look for silence: the idle timeout counts from the last frame heard, but this only
    /// moves when it is reached (moving a timer per frame would cost more than one timestamp).
    idle: Instant,
    /// Once closing: when to stop waiting for the close handshake. The others no longer count.
    close: Option<Instant>,
}

impl Deadlines {
    fn next(&self) -> Instant {
        match self.close {
            Some(close) => close,
            None => self.push.map_or(self.ping, |push| push.min(self.ping)).min(self.idle),
        }
    }
}

/// What woke the connection loop: the first ready source, in priority order.
enum Event {
    Drain,
    Flushed(Result<(), WsError>),
    /// The earliest of the [`Deadlines`] has passed.
    Timer,
    Frame(Option<Result<Message, WsError>>),
}

/// Runs one WebSocket until it closes. Never panics on anything the client sends.
///
/// One future polls everything in a fixed order (like a biased `select!`), with the socket owned
/// whole: reading and writing need no `split()` and no lock between the two halves.
pub async fn serve<S>(mut ws: WebSocketStream<S>, cx: Context)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Context { id, pushes, settings, metrics, mut drain, draining } = cx;
    let mut outbox = Outbox { queue: VecDeque::new(), bytes: 0, published: 0, unflushed: false };
    let mut schedule =
        settings.push.filter(|_| pushes).map(|(min, max)| Schedule::new(min, max, settings.seed, id));

    let start = Instant::now();
    let mut deadlines = Deadlines {
        push: schedule.as_mut().map(|schedule| start + schedule.next_delay()),
        ping: start + settings.ping_interval,
        idle: start + settings.idle_timeout,
        close: None,
    };
    // A copy of the timer's deadline, kept beside the loop's other state: comparing it after each
    // event does not touch the timer's own memory.
    let mut timer_at = deadlines.next();
    let timer = sleep_until(timer_at);
    tokio::pin!(timer);
    let mut last_heard = start;

    // The drain signal and the timer keep the waker they were last polled with and wake it when
    // they fire, so while the task's waker stays the same (`will_wake`), polling them again on every
    // turn only re-checks state in memory of its own (a cache miss per message at a thousand
    // connections). They are polled when the waker changes, when the timer is reset, and once
    // their cheap checks (the shared `draining` flag, `Sleep::is_elapsed`) say they fired.
    let mut armed_with: Option<Waker> = None;
    let mut drain_armed = false;
    let mut timer_armed = false;

    let mut closed: Option<Closed> = None;
    let mut closing = false;
    let mut reading = true;

    loop {
        let mut timer_fired = false;
        let event = poll_fn(|cx| {
            if !armed_with.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
                armed_with = Some(cx.waker().clone());
                drain_armed = false;
                timer_armed = false;
            }
            // A oneshot must not be polled after it fired: only until closing starts.
            if !closing && (!drain_armed || draining.load(Ordering::Acquire)) {
                if Pin::new(&mut drain).poll(cx).is_ready() {
                    return Poll::Ready(Event::Drain);
                }
                drain_armed = true;
            }
            if outbox.has_work() {
                let flushed = outbox.poll_flush(cx, &mut ws, &metrics);
                // The shared gauge learns the queue's size once per attempt, not per frame.
                outbox.publish(&metrics);
                if let Poll::Ready(result) = flushed {
                    return Poll::Ready(Event::Flushed(result));
                }
            }
            if !timer_armed || timer.is_elapsed() {
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Timer);
                }
                timer_armed = true;
            }
            // Reading comes last: a client that never stops sending must not starve its own
            // pushes, pings or timers.
            if reading
                && outbox.has_room()
                && let Poll::Ready(frame) = ws.poll_next_unpin(cx)
            {
                return Poll::Ready(Event::Frame(frame));
            }
            Poll::Pending
        })
        .await;

        match event {
            Event::Drain => {
                start_close(&mut outbox, &mut closed, &mut closing, 1001, "going away");
                deadlines.close = Some(Instant::now() + settings.drain_close_timeout);
            }
            Event::Flushed(Ok(())) => {}
            Event::Flushed(Err(e)) => {
                log_error(id, "write", &e);
                break;
            }
            Event::Timer => {
                // Re-armed below even if no deadline moved, so a fired timer can never spin.
                timer_fired = true;
                let now = Instant::now();
                if deadlines.close.is_some_and(|close| close <= now) {
                    break;
                }
                if deadlines.close.is_none() {
                    if let Some((schedule, due)) = schedule.as_mut().zip(deadlines.push)
                        && due <= now
                    {
                        // Stamp the time the push was scheduled for, so a client measuring
                        // lateness against `ts` sees timer lag as well as the network.
                        let text = schedule.next_message(SystemTime::now() - (now - due));
                        if outbox.bytes + text.len() <= OUTBOX_BUDGET {
                            outbox.send_or_queue(&mut ws, Message::text(text), Kind::Push, &metrics);
                        } else {
                            metrics.pushes_dropped.inc();
                        }
                        // The next delay counts from this push, so two pushes are never closer
                        // than --push-min, however late this one was.
                        deadlines.push = Some(now + schedule.next_delay());
                    }
                    if deadlines.ping <= now {
                        outbox.push(Message::Ping(Bytes::new()), Kind::Control);
                        deadlines.ping = now + settings.ping_interval;
                    }
                    if deadlines.idle <= now {
                        deadlines.idle = last_heard + settings.idle_timeout;
                        if deadlines.idle <= now {
                            metrics.idle_timeouts.inc();
                            debug!(conn = id, "idle timeout");
                            start_close(&mut outbox, &mut closed, &mut closing, 1000, "idle timeout");
                            deadlines.close = Some(now + settings.close_timeout);
                        }
                    }
                }
            }
            Event::Frame(frame) => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(message)) => match message {
                        Message::Text(_) | Message::Binary(_) => {
                            metrics.messages_received.inc();
                            metrics.bytes_received.inc_by(message.len() as u64);
                            // After our Close, the protocol forbids sending data: drop late echoes.
                            if !closing {
                                outbox.send_or_queue(&mut ws, message, Kind::Echo, &metrics);
                            }
                        }
                        Message::Close(frame) => {
                            if closed.is_none() {
                                // A Close without a code reads as 1005, "no status received" (RFC 6455 §7.1.5).
                                let code = frame.map_or(1005, |f| u16::from(f.code));
                                closed = Some(Closed { by: "client", code: Some(code) });
                            }
                            if !closing {
                                closing = true;
                                deadlines.close = Some(Instant::now() + settings.close_timeout);
                            }
                            // After the client's Close nothing more may be sent (RFC 6455 §5.5.1):
                            // whatever still waits in the outbox is dropped, and only the reply
                            // Close that tungstenite queued goes out, completing the handshake.
                            outbox.discard();
                            outbox.unflushed = true;
                            // Nothing more is read either. The flush step writes the reply and
                            // ends; a read could end the connection first, with the reply still
                            // unwritten behind a slow writer (tungstenite's read does not flush
                            // what a blocked flush left in its buffer).
                            reading = false;
                        }
                        // Pongs to our pings are queued by tungstenite; a pong just proves liveness.
                        Message::Ping(_) => outbox.unflushed = true,
                        Message::Pong(_) | Message::Frame(_) => {}
                    },
                    Some(Err(error)) => {
                        reading = false;
                        match violation(&error) {
                            Some((code, reason)) => {
                                info!(conn = id, %error, code, "closing on a client error");
                                start_close(&mut outbox, &mut closed, &mut closing, code, reason);
                                deadlines.close = Some(Instant::now() + settings.close_timeout);
                            }
                            None => {
                                log_error(id, "read", &error);
                                break;
                            }
                        }
                    }
                    // The close handshake is complete, or the client vanished.
                    None => break,
                }
            }
        }
        if !reading && !outbox.has_work() {
            break;
        }
        if timer_fired || deadlines.next() != timer_at {
            timer_at = deadlines.next();
            timer.as_mut().reset(timer_at);
            timer_armed = false;
        }
    }

    metrics.outbox_bytes.dec_by(outbox.published as i64);
    let closed = closed.unwrap_or(Closed { by: "client", code: None });
    metrics.closed(closed.by, closed.code);
    debug!(conn = id, by = closed.by, code = closed.code, "ws closed");
}

/// Queues our Close frame (after whatever is already queued, so no echo is lost).
fn start_close(
    outbox: &mut Outbox,
    closed: &mut Option<Closed>,
    closing: &mut bool,
    code: u16,
    reason: &'static str,
) {
    *closing = true;
    if closed.is_none() {
        *closed = Some(Closed { by: "server", code: Some(code) });
    }
    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
    outbox.push(Message::Close(Some(frame)), Kind::Control);
}

/// The close code for an error the client caused, or `None` when the connection is just gone.
fn violation(error: &WsError) -> Option<(u16, &'static str)> {
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
fn log_error(id: u64, op: &str, error: &WsError) {
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
