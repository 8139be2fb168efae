//! One WebSocket connection: one task, one loop over one future that polls every source in order.
//!
//! The loop owns the socket: it reads frames and hands the client's messages to its [`Handler`]
//! (the built-in echo, or an app in the component), sends keepalive pings, watches for silence,
//! completes closing handshakes, and closes with 1001 when the gateway drains. Everything it sends
//! goes through the [`Outbox`], which is where backpressure is decided.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep, sleep_until};
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tracing::{debug, info};

use super::Settings;
use super::close::{log_error, start_close, violation};
use super::handler::{Closer, End, Flow, Handler};
use super::metrics::{ClosedBy, Metrics};
use super::outbox::{Kind, Out, Outbox};
use super::websocket::WebSocket;
use crate::budget::{BudgetAction, BudgetPath};

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

/// One connection's loop state: the socket, its outbox, its handler, its deadlines and how far
/// its close has come.
struct Conn<H> {
    id: u64,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    drain: oneshot::Receiver<()>,
    ws: WebSocket,
    outbox: Outbox,
    handler: H,
    deadlines: Deadlines,
    last_heard: Instant,
    closing: Closing,
    reading: bool,
}

/// What a turn decided: what to do, and who asked for it (a handler's Close is the handler's; the
/// drain, the idle timeout and protocol errors are the gateway's). `None` ends the connection now.
type Turn = Option<(Flow, Closer)>;

/// Runs one WebSocket until it closes. Never panics on anything the client sends.
///
/// One future polls everything in a fixed order (like a biased `select!`), with the socket owned
/// whole: reading and writing need no `split()` and no lock between the two halves.
pub async fn serve<H: Handler>(ws: WebSocket, cx: Context, handler: H) {
    let mut conn = Conn::new(ws, cx, handler);
    let timer = sleep_until(conn.next_deadline());
    tokio::pin!(timer);
    loop {
        let event = conn.next_event(timer.as_mut()).await;
        // Re-armed below even if no deadline moved, so a fired timer can never spin.
        let timer_fired = matches!(event, Event::Timer);
        let drained = matches!(event, Event::Drain);
        let turn = match event {
            Event::Drain => Some((Flow::Close(1001, "going away".into()), Closer::Gateway)),
            Event::Flushed(result) => conn.on_flushed(result),
            Event::Timer => conn.on_timer(),
            Event::Ready(ready) => conn.on_ready(ready),
            Event::Frame(frame) => conn.on_frame(frame),
        };
        let Some((flow, origin)) = turn else { break };
        if !conn.carry_out(flow, origin, drained) {
            break;
        }
        let next = conn.next_deadline();
        if timer_fired || next != timer.deadline() {
            timer.as_mut().reset(next);
        }
    }
    conn.end();
}

impl<H: Handler> Conn<H> {
    fn new(ws: WebSocket, cx: Context, handler: H) -> Self {
        let Context { id, settings, metrics, drain } = cx;
        let start = Instant::now();
        let deadlines = Deadlines {
            ping: start + settings.ping_interval,
            idle: start + settings.idle_timeout,
            close: None,
        };
        Conn {
            id,
            settings,
            metrics,
            drain,
            ws,
            outbox: Outbox::default(),
            handler,
            deadlines,
            last_heard: start,
            closing: Closing::default(),
            reading: true,
        }
    }

    fn next_deadline(&self) -> Instant {
        self.deadlines.next(self.handler.deadline())
    }

    /// The handler's own work is done.
    fn on_ready(&mut self, ready: H::Ready) -> Turn {
        let flow = self.handler.on_ready(ready, &mut Out::new(&mut self.outbox, &mut self.ws, &self.metrics));
        Some((flow, Closer::Handler))
    }

    /// The first ready source, in priority order.
    async fn next_event(&mut self, mut timer: Pin<&mut Sleep>) -> Event<H::Ready> {
        poll_fn(|cx| {
            // A oneshot must not be polled after it fired: only until closing starts.
            if !self.closing.begun() && Pin::new(&mut self.drain).poll(cx).is_ready() {
                return Poll::Ready(Event::Drain);
            }
            if self.outbox.has_work() {
                let flushed = self.outbox.poll_flush(cx, &mut self.ws, &self.metrics);
                // The shared gauge learns the queue's size once per attempt, not per frame.
                self.outbox.publish(&self.metrics);
                if let Poll::Ready(result) = flushed {
                    return Poll::Ready(Event::Flushed(result));
                }
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Timer);
            }
            if let Poll::Ready(ready) = self.handler.poll_ready(cx) {
                return Poll::Ready(Event::Ready(ready));
            }
            // Reading comes last: a client that never stops sending must not starve its own
            // pushes, pings or timers.
            if self.reading
                && self.outbox.has_room()
                && !(self.settings.budget.is_over() && self.outbox.queued() > 0)
                && self.handler.takes_messages(self.outbox.queued())
                && let Poll::Ready(frame) = self.ws.poll_read(cx)
            {
                return Poll::Ready(Event::Frame(frame));
            }
            Poll::Pending
        })
        .await
    }

    fn on_flushed(&mut self, result: Result<(), WsError>) -> Turn {
        if let Err(error) = result {
            log_error(self.id, "write", &error);
            return None;
        }
        if !self.closing.begun() {
            self.handler.on_flushed(&mut Out::new(&mut self.outbox, &mut self.ws, &self.metrics));
        }
        Some((Flow::Continue, Closer::Gateway))
    }

    /// The earliest deadline passed: the close handshake's, the handler's, the ping's, silence's.
    fn on_timer(&mut self) -> Turn {
        let now = Instant::now();
        if self.deadlines.close.is_some_and(|close| close <= now) {
            return None;
        }
        let mut turn = (Flow::Continue, Closer::Handler);
        if self.handler.deadline().is_some_and(|due| due <= now) {
            turn.0 =
                self.handler.on_deadline(now, &mut Out::new(&mut self.outbox, &mut self.ws, &self.metrics));
        }
        if self.deadlines.ping <= now {
            self.outbox.push(Message::Ping(Bytes::new()), Kind::Control);
            self.deadlines.ping = now + self.settings.ping_interval;
        }
        if self.deadlines.idle <= now {
            self.deadlines.idle = self.last_heard + self.settings.idle_timeout;
            if self.deadlines.idle <= now {
                self.metrics.idle_timeouts.inc();
                debug!(conn = self.id, "idle timeout");
                turn = (Flow::Close(1000, "idle timeout".into()), Closer::Gateway);
            }
        }
        Some(turn)
    }

    fn on_frame(&mut self, frame: Option<Result<Message, WsError>>) -> Turn {
        self.last_heard = Instant::now();
        match frame {
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                self.metrics.messages_received.inc();
                self.metrics.bytes_received.inc_by(message.len() as u64);
                // After a Close, the protocol forbids sending data: late messages go nowhere.
                let flow = if self.closing.begun() {
                    Flow::Continue
                } else {
                    self.handler
                        .on_message(message, &mut Out::new(&mut self.outbox, &mut self.ws, &self.metrics))
                };
                Some((flow, Closer::Handler))
            }
            Some(Ok(Message::Close(frame))) => {
                self.on_client_close(frame);
                Some((Flow::Continue, Closer::Client))
            }
            // Pongs to our pings are queued by tungstenite; a pong just proves liveness.
            Some(Ok(Message::Ping(_))) => {
                self.outbox.unflushed = true;
                Some((Flow::Continue, Closer::Client))
            }
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => Some((Flow::Continue, Closer::Client)),
            Some(Err(error)) => {
                self.reading = false;
                match violation(&error) {
                    Some((code, reason)) => {
                        info!(conn = self.id, %error, code, "closing on a client error");
                        Some((Flow::Close(code, reason.into()), Closer::Gateway))
                    }
                    None => {
                        log_error(self.id, "read", &error);
                        None
                    }
                }
            }
            // The close handshake is complete, or the client vanished.
            None => None,
        }
    }

    fn on_client_close(&mut self, frame: Option<CloseFrame>) {
        // A Close without a code reads as 1005, "no status received" (RFC 6455 §7.1.5).
        let (code, reason) =
            frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
        self.closing.started.get_or_insert((Closer::Client, code));
        self.closing.client_close = Some((code, reason));
        if self.deadlines.close.is_none() {
            self.deadlines.close = Some(Instant::now() + self.settings.close_timeout);
        }
        // After the client's Close nothing more may be sent (RFC 6455 §5.5.1): whatever still
        // waits in the outbox is dropped, and only the reply Close that tungstenite queued goes
        // out, completing the handshake.
        self.outbox.discard();
        self.outbox.unflushed = true;
        // Nothing more is read either. The flush step writes the reply and ends; a read could end
        // the connection first, with the reply still unwritten behind a slow writer
        // (tungstenite's read does not flush what a blocked flush left in its buffer).
        self.reading = false;
    }

    /// Carries out a turn's flow (a failure or the memory budget may turn it into a close);
    /// `false` when the connection ends now.
    fn carry_out(&mut self, flow: Flow, origin: Closer, drained: bool) -> bool {
        let (flow, origin) = match flow {
            Flow::Fail(code, reason) => (Flow::Close(code, reason), Closer::Gateway),
            Flow::Continue if shed(&self.settings, &self.outbox, &self.handler, &self.closing) => {
                self.settings.budget.count(BudgetPath::Gateway, BudgetAction::Close);
                debug!(conn = self.id, "shed: the gateway is near its memory budget");
                (Flow::Close(1008, "the gateway is over its memory budget".into()), Closer::Gateway)
            }
            flow => (flow, origin),
        };
        match flow {
            Flow::Continue => {}
            Flow::Close(code, reason) if !self.closing.begun() => {
                start_close(&mut self.outbox, code, reason);
                self.closing.started = Some((origin, code));
                // A drain's closing handshake never outlasts the drain itself.
                let wait =
                    if drained { self.settings.drain_close_timeout } else { self.settings.close_timeout };
                self.deadlines.close = Some(Instant::now() + wait);
            }
            Flow::Close(..) | Flow::Fail(..) => {}
            Flow::Abort => return false,
        }
        self.reading || self.outbox.has_work()
    }

    /// The connection's end: counted, logged, and told to the handler.
    fn end(self) {
        let Conn { id, metrics, mut outbox, closing, handler, .. } = self;
        outbox.unpublish(&metrics);
        let (by, code) = match closing.started {
            Some((closer, code)) => (Some(closer), Some(code)),
            None => (None, None),
        };
        let label = match by {
            Some(Closer::Client) | None => ClosedBy::Client,
            Some(Closer::Gateway) => ClosedBy::Server,
            Some(Closer::Handler) => ClosedBy::Component,
        };
        metrics.closed(label, code);
        debug!(conn = id, by = label.as_str(), code, "ws closed");
        handler.on_end(End { by, client_close: closing.client_close });
    }
}

/// Whether a connection goes to keep the gateway within its memory budget: near it, one that holds
/// a fair amount for a client that does not read.
fn shed<H: Handler>(settings: &Settings, outbox: &Outbox, handler: &H, closing: &Closing) -> bool {
    settings.budget.is_over()
        && !closing.begun()
        && outbox.queued() + handler.holding() >= crate::budget::SHED_BYTES
}
