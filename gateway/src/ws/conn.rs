//! One WebSocket connection: one task, one loop over one future that polls every source in order.
//!
//! The loop owns the socket: it reads frames and hands the client's messages to its [`Handler`]
//! (the built-in echo, or an app in the component), sends keepalive pings, watches for silence,
//! completes closing handshakes, and closes with 1001 when the gateway drains. Everything it sends
//! goes through the [`Outbox`], which is where backpressure is decided.

use std::borrow::Cow;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::oneshot;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tracing::{debug, info};

use super::Settings;
use super::handler::{Closer, End, Flow, Handler};
use super::outbox::{Kind, Out, Outbox};
use super::websocket::WebSocket;
use crate::metrics::{BudgetAction, BudgetPath, Metrics};

/// What a connection task is given.
#[derive(Debug)]
pub struct Context {
    pub id: u64,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// Fires when the gateway starts draining: close with 1001.
    pub drain: oneshot::Receiver<()>,
}

/// Every deadline the loop keeps, behind one tokio timer: one registration in the runtime's timer
/// wheel per connection, and one timer for the loop to check. The handler's own deadline (the
/// next push, a keep-alive) joins them.
struct Deadlines {
    ping: Instant,
    /// When to look for silence: the idle timeout counts from the last frame heard, but this only
    /// moves when it is reached (moving a timer per frame would cost more than one timestamp).
    idle: Instant,
    /// Once closing: when to stop waiting for the close handshake. The others no longer count.
    close: Option<Instant>,
}

impl Deadlines {
    fn next(&self, handler: Option<Instant>) -> Instant {
        match self.close {
            Some(close) => close,
            None => handler.map_or(self.ping, |h| h.min(self.ping)).min(self.idle),
        }
    }
}

/// What woke the connection loop: the first ready source, in priority order.
enum Event<R> {
    Drain,
    Flushed(Result<(), WsError>),
    /// The earliest of the deadlines has passed.
    Timer,
    /// The handler's work in flight is done.
    Ready(R),
    Frame(Option<Result<Message, WsError>>),
}

/// The close handshake as far as it has come.
#[derive(Default)]
struct Closing {
    /// Who sent the first Close, and its code.
    started: Option<(Closer, u16)>,
    /// The client's Close frame, once it arrived.
    client_close: Option<(u16, String)>,
}

impl Closing {
    fn begun(&self) -> bool {
        self.started.is_some()
    }
}

/// Runs one WebSocket until it closes. Never panics on anything the client sends.
///
/// One future polls everything in a fixed order (like a biased `select!`), with the socket owned
/// whole: reading and writing need no `split()` and no lock between the two halves.
pub async fn serve<H: Handler>(mut ws: WebSocket, cx: Context, mut handler: H) {
    let Context { id, settings, metrics, mut drain } = cx;
    let mut outbox = Outbox::default();

    let start = Instant::now();
    let mut deadlines =
        Deadlines { ping: start + settings.ping_interval, idle: start + settings.idle_timeout, close: None };
    let timer = sleep_until(deadlines.next(handler.deadline()));
    tokio::pin!(timer);
    let mut last_heard = start;

    let mut closing = Closing::default();
    let mut reading = true;

    loop {
        let mut timer_fired = false;
        let event = poll_fn(|cx| {
            // A oneshot must not be polled after it fired: only until closing starts.
            if !closing.begun() && Pin::new(&mut drain).poll(cx).is_ready() {
                return Poll::Ready(Event::Drain);
            }
            if outbox.has_work() {
                let flushed = outbox.poll_flush(cx, &mut ws, &metrics);
                // The shared gauge learns the queue's size once per attempt, not per frame.
                outbox.publish(&metrics);
                if let Poll::Ready(result) = flushed {
                    return Poll::Ready(Event::Flushed(result));
                }
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Timer);
            }
            if let Poll::Ready(ready) = handler.poll_ready(cx) {
                return Poll::Ready(Event::Ready(ready));
            }
            // Reading comes last: a client that never stops sending must not starve its own
            // pushes, pings or timers.
            if reading
                && outbox.has_room()
                && !(settings.budget.is_over() && outbox.queued() > 0)
                && handler.takes_messages(outbox.queued())
                && let Poll::Ready(frame) = ws.poll_read(cx)
            {
                return Poll::Ready(Event::Frame(frame));
            }
            Poll::Pending
        })
        .await;

        // What to do next, and who asked for it (a handler's Close is the handler's; the drain,
        // the idle timeout and protocol errors are the gateway's).
        let drained = matches!(event, Event::Drain);
        let (flow, origin) = match event {
            Event::Drain => (Flow::Close(1001, "going away".into()), Closer::Gateway),
            Event::Flushed(Ok(())) => {
                if !closing.begun() {
                    handler.on_flushed(&mut Out::new(&mut outbox, &mut ws, &metrics));
                }
                (Flow::Continue, Closer::Gateway)
            }
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
                let mut flow = (Flow::Continue, Closer::Handler);
                if handler.deadline().is_some_and(|due| due <= now) {
                    flow.0 = handler.on_deadline(now, &mut Out::new(&mut outbox, &mut ws, &metrics));
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
                        flow = (Flow::Close(1000, "idle timeout".into()), Closer::Gateway);
                    }
                }
                flow
            }
            Event::Ready(ready) => {
                (handler.on_ready(ready, &mut Out::new(&mut outbox, &mut ws, &metrics)), Closer::Handler)
            }
            Event::Frame(frame) => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(message)) => match message {
                        Message::Text(_) | Message::Binary(_) => {
                            metrics.messages_received.inc();
                            metrics.bytes_received.inc_by(message.len() as u64);
                            // After a Close, the protocol forbids sending data: late messages go
                            // nowhere.
                            let flow = if closing.begun() {
                                Flow::Continue
                            } else {
                                handler.on_message(message, &mut Out::new(&mut outbox, &mut ws, &metrics))
                            };
                            (flow, Closer::Handler)
                        }
                        Message::Close(frame) => {
                            // A Close without a code reads as 1005, "no status received" (RFC 6455 §7.1.5).
                            let (code, reason) = frame
                                .map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                            closing.started.get_or_insert((Closer::Client, code));
                            closing.client_close = Some((code, reason));
                            if deadlines.close.is_none() {
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
                            (Flow::Continue, Closer::Client)
                        }
                        // Pongs to our pings are queued by tungstenite; a pong just proves liveness.
                        Message::Ping(_) => {
                            outbox.unflushed = true;
                            (Flow::Continue, Closer::Client)
                        }
                        Message::Pong(_) | Message::Frame(_) => (Flow::Continue, Closer::Client),
                    },
                    Some(Err(error)) => {
                        reading = false;
                        match violation(&error) {
                            Some((code, reason)) => {
                                info!(conn = id, %error, code, "closing on a client error");
                                (Flow::Close(code, reason.into()), Closer::Gateway)
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
        };
        let (flow, origin) = match flow {
            Flow::Fail(code, reason) => (Flow::Close(code, reason), Closer::Gateway),
            Flow::Continue if shed(&settings, &outbox, &handler, &closing) => {
                metrics.budget(BudgetPath::Gateway, BudgetAction::Close);
                debug!(conn = id, "shed: the gateway is near its memory budget");
                (Flow::Close(1008, "the gateway is over its memory budget".into()), Closer::Gateway)
            }
            flow => (flow, origin),
        };
        match flow {
            Flow::Continue => {}
            Flow::Close(code, reason) if !closing.begun() => {
                start_close(&mut outbox, code, reason);
                closing.started = Some((origin, code));
                // A drain's closing handshake never outlasts the drain itself.
                let wait = if drained { settings.drain_close_timeout } else { settings.close_timeout };
                deadlines.close = Some(Instant::now() + wait);
            }
            Flow::Close(..) | Flow::Fail(..) => {}
            Flow::Abort => break,
        }
        if !reading && !outbox.has_work() {
            break;
        }
        let next = deadlines.next(handler.deadline());
        if timer_fired || next != timer.deadline() {
            timer.as_mut().reset(next);
        }
    }

    outbox.unpublish(&metrics);
    let (by, code) = match closing.started {
        Some((closer, code)) => (Some(closer), Some(code)),
        None => (None, None),
    };
    let label = match by {
        Some(Closer::Client) | None => "client",
        Some(Closer::Gateway) => "server",
        Some(Closer::Handler) => "component",
    };
    metrics.closed(label, code);
    debug!(conn = id, by = label, code, "ws closed");
    handler.on_end(End { by, client_close: closing.client_close });
}

/// Whether a connection goes to keep the gateway within its memory budget: near it, one that holds
/// a fair amount for a client that does not read.
fn shed<H: Handler>(settings: &Settings, outbox: &Outbox, handler: &H, closing: &Closing) -> bool {
    settings.budget.is_over()
        && !closing.begun()
        && outbox.queued() + handler.holding() >= crate::budget::SHED_BYTES
}

/// Queues our Close frame (after whatever is already queued, so no message is lost). The reason is
/// cut to what a Close frame holds (123 bytes), at a character boundary.
fn start_close(outbox: &mut Outbox, code: u16, reason: Cow<'static, str>) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame { code: CloseCode::from(code), reason: reason[..end].to_owned().into() };
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
