//! A connection served by an app in the component: the handler its connection loop runs.
//!
//! The client's messages queue as events; at most one request is in flight, and whatever arrived
//! meanwhile goes, in order, into the next one. Each answer's events are carried out in order:
//! messages go to the client through the outbox (never dropped, so a client that does not read
//! stops its own requests), control messages act on the connection, a `CLOSE` closes it. A request
//! that never reached the component is tried again with backoff; one that failed, timed out or
//! got an unusable answer closes the connection with 1011. The connection's end is always told to
//! the component ([`super::delivery`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, warn};

use super::MIN_ANSWER;
use super::context::AppContext;
use super::exchange::{AnswerFuture, InFlight, result_label};
use super::grip::Grip;
use super::lease::Reaped;
use super::metrics::{Ignored as IgnoredPart, RequestKind, RequestResult};
use super::session::{Action, Failure, Ignored, Session};
use crate::backend::ExchangeError;
use crate::budget::{BudgetAction, BudgetPath};
use crate::channels::Publication;
use crate::stages;
use crate::ws::handler::{Closer, End, Flow, Handler};
use crate::ws::outbox::{Kind, Out};

/// What the handler's own work delivers to the loop.
pub enum Ready {
    /// The first answer's actions, carried out once the socket is up.
    Opened(Vec<Action>),
    /// Another gateway reaped this one while it was cut off from Redis ([`super::lease`]).
    Reaped(Reaped),
    /// The rest of an answer, held while a subscription took its starting position.
    Started(Vec<Action>),
    /// A publication to a channel the connection joined.
    Published(Arc<Publication>),
    Answered(Answered),
}

/// A request's answer, with what the request carried (for another attempt).
pub struct Answered {
    kind: RequestKind,
    body: Bytes,
    attempt: u32,
    sent: Instant,
    result: Result<Response<Bytes>, ExchangeError>,
}

/// A request to send again after a wait.
struct Retry {
    at: Instant,
    kind: RequestKind,
    body: Bytes,
    attempt: u32,
}

/// Keeps `app_connections_active` true while the handler lives.
struct Active(Arc<AppContext>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.metrics.app_connections_active.dec();
    }
}

pub struct ComponentApp {
    cx: Arc<AppContext>,
    conn: u64,
    session: Session,
    opened: Option<Vec<Action>>,
    /// An answer's actions after a `subscribe`, until the subscription knows where it starts: what
    /// the answer says next (a welcome, say) must not reach the client before that, or a
    /// publication the client could take for one it was there for would be left out.
    starting: Option<(oneshot::Receiver<()>, Vec<Action>)>,
    in_flight: Option<InFlight>,
    /// The most bytes the answer of the request in flight may have: the budget's part reserved
    /// for it (0 with nothing in flight).
    answer_room: usize,
    retry: Option<Retry>,
    keep_alive_at: Option<Instant>,
    /// Nothing more is told to the component: it ended the connection with `DISCONNECT`, or the
    /// gateway that reaped this one has sent the connection's `DISCONNECT`.
    dropped: bool,
    /// What its answers' control messages set.
    grip: Grip,
    /// Fires if this gateway is found reaped.
    reaped: Option<oneshot::Receiver<Reaped>>,
    _active: Active,
}

impl ComponentApp {
    /// The handler of a connection whose `OPEN` was accepted, with that answer's other actions.
    pub fn new(cx: Arc<AppContext>, conn: u64, mut session: Session, opened: Vec<Action>) -> Self {
        cx.metrics.app_connections_active.inc();
        let keep_alive_at = session.keep_alive().map(|every| Instant::now() + every);
        // Its record is written with the meta as it stands; later changes update it.
        session.take_meta_changed();
        let reaped = cx.leases.register(&session);
        ComponentApp {
            reaped,
            grip: Grip::new(cx.clone(), conn),
            _active: Active(cx.clone()),
            cx,
            conn,
            session,
            opened: Some(opened),
            starting: None,
            in_flight: None,
            answer_room: 0,
            retry: None,
            keep_alive_at,
            dropped: false,
        }
    }

    /// Bytes held for or from the client, the answer in flight aside: `queued` in the outbox,
    /// the events waiting, the request in flight or to retry, a delayed message, a held
    /// publication.
    fn holds(&self, queued: usize) -> usize {
        queued
            + self.session.pending()
            + self.in_flight.as_ref().map_or(0, |f| f.body.len())
            + self.retry.as_ref().map_or(0, |r| r.body.len())
            + self.grip.holds()
    }

    /// Sends a request. Its answer may take what the budget has left beside what is held and a
    /// batch for what the client sends meanwhile: the answer is counted as it arrives, before
    /// anything of it is queued.
    fn start(&mut self, kind: RequestKind, body: Bytes, attempt: u32, queued: usize) {
        let apps = &self.cx.settings;
        let reserve = apps.batch_bytes;
        let held = self.holds(queued) + body.len();
        let limit = apps.budget.saturating_sub(held + reserve).max(MIN_ANSWER).min(apps.max_answer_bytes);
        self.answer_room = limit;
        let request = self.session.request(body.clone(), attempt);
        let cx = self.cx.clone();
        let answer: AnswerFuture = Box::pin(async move { cx.backend.exchange(request, limit).await });
        self.in_flight = Some(InFlight { kind, body, attempt, answer, sent: Instant::now() });
        self.keep_alive_at = None;
    }

    /// Sends what waits, if nothing is in flight and the client keeps up with the answers: the
    /// outbox has room and the writer is not waiting for the client (a client that does not read
    /// makes no more requests, so the answers it would not read are never asked for).
    fn next(&mut self, out: &Out<'_>) {
        let keeps_up = out.has_room() && out.writer_ready();
        if self.in_flight.is_none() && self.retry.is_none() && self.session.pending() > 0 && keeps_up {
            let events = self.session.take_events();
            self.start(RequestKind::Events, events, 1, out.queued());
        }
    }

    /// Carries out an answer's actions, in order.
    fn act(&mut self, actions: Vec<Action>, out: &mut Out<'_>) -> Flow {
        let now = Instant::now();
        let mut actions = actions.into_iter();
        while let Some(action) = actions.next() {
            match action {
                Action::Send(message) => {
                    out.send(message, Kind::App);
                    self.grip.sent_to_client(now);
                }
                Action::Control(control) => {
                    if let Some(started) = self.grip.control(control, now, out) {
                        let rest: Vec<Action> = actions.collect();
                        if !rest.is_empty() {
                            self.starting = Some((started, rest));
                        }
                        return Flow::Continue;
                    }
                }
                Action::Close(close) => {
                    let (code, reason) = close.unwrap_or((1000, String::new()));
                    return Flow::Close(code, reason.into());
                }
                Action::Drop => {
                    self.dropped = true;
                    return Flow::Abort;
                }
            }
        }
        Flow::Continue
    }

    pub(super) fn count_ignored(&self, ignored: &[Ignored]) {
        for what in ignored {
            self.cx.metrics.ignored(match what {
                Ignored::UnknownControl => IgnoredPart::UnknownControl,
                Ignored::BadControl => IgnoredPart::BadControl,
                Ignored::Unprefixed => IgnoredPart::Unprefixed,
                Ignored::UnknownEvent => IgnoredPart::UnknownEvent,
            });
        }
    }

    /// A request's answer: its actions carried out, or another attempt, or the connection closed.
    fn answered(&mut self, answered: Answered, out: &mut Out<'_>) -> Flow {
        let Answered { kind, body, attempt, sent, result } = answered;
        let metrics = self.cx.metrics.clone();
        let now = Instant::now();
        let response = match result {
            Ok(response) => response,
            Err(ExchangeError::Unavailable(why)) if attempt <= self.cx.settings.retries => {
                metrics.app_retries.inc();
                let at = now + self.cx.settings.backoff(attempt + 1);
                debug!(conn = self.conn, kind = kind.as_str(), attempt, %why, "WebSocket app unavailable; trying again");
                self.retry = Some(Retry { at, kind, body, attempt: attempt + 1 });
                return Flow::Continue;
            }
            Err(ExchangeError::TooLarge(limit)) if limit < self.cx.settings.max_answer_bytes => {
                metrics.request(kind, RequestResult::TooLarge);
                self.cx.admission.ws.budget.count(BudgetPath::App, BudgetAction::Close);
                warn!(
                    conn = self.conn,
                    kind = kind.as_str(),
                    limit,
                    "WebSocket app's answer over the connection's budget; closing with 1009"
                );
                return Flow::Fail(1009, "the app's answer is over the connection's memory budget".into());
            }
            Err(error) => {
                metrics.request(kind, result_label(&error));
                warn!(conn = self.conn, kind = kind.as_str(), attempt, %error, "WebSocket app request failed; closing with 1011");
                return Flow::Fail(1011, "the app failed".into());
            }
        };
        let (actions, ignored) = match self.session.apply(&response) {
            Ok(applied) => applied,
            Err(failure) => {
                metrics.request(kind, RequestResult::BadAnswer);
                let why = match failure {
                    Failure::Status(status) => {
                        format!("status {status}, not 200 {}", sidestream_events::reply::CONTENT_TYPE)
                    }
                    Failure::Malformed(error) => error.to_string(),
                    Failure::LateOpen => "an OPEN after the first answer".into(),
                };
                warn!(conn = self.conn, kind = kind.as_str(), %why, "WebSocket app answered badly; closing with 1011");
                return Flow::Fail(1011, "the app's answer was not usable".into());
            }
        };
        let backend = self.cx.backend.clone();
        let stages = backend.stages();
        stages::observe(&stages.parse, now.elapsed());
        metrics.request(kind, RequestResult::Ok);
        if self.session.take_meta_changed() {
            self.cx.leases.update(&self.session);
        }
        self.count_ignored(&ignored);
        let acting = Instant::now();
        let flow = self.act(actions, out);
        stages::observe(&stages.write, acting.elapsed());
        stages::observe(&stages.total, sent.elapsed());
        self.keep_alive_at = self.session.keep_alive().map(|every| now + every);
        if flow == Flow::Continue {
            self.next(out);
        }
        flow
    }
}

impl Handler for ComponentApp {
    type Ready = Ready;

    fn deadline(&self) -> Option<Instant> {
        let keep_alive = self.keep_alive_at.filter(|_| self.in_flight.is_none() && self.retry.is_none());
        [self.retry.as_ref().map(|r| r.at), keep_alive, self.grip.deadline()].into_iter().flatten().min()
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Out<'_>) -> Flow {
        if let Some(retry) = self.retry.take_if(|r| r.at <= now) {
            self.start(retry.kind, retry.body, retry.attempt, out.queued());
        }
        if self.keep_alive_at.is_some_and(|at| at <= now) && self.in_flight.is_none() && self.retry.is_none()
        {
            let events = self.session.take_events();
            let kind = if events.is_empty() { RequestKind::KeepAlive } else { RequestKind::Events };
            self.start(kind, events, 1, out.queued());
        }
        self.grip.on_deadline(now, out);
        Flow::Continue
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Ready> {
        if let Some(actions) = self.opened.take() {
            return Poll::Ready(Ready::Opened(actions));
        }
        if let Some(reaped) = &mut self.reaped
            && let Poll::Ready(result) = Pin::new(reaped).poll(cx)
        {
            self.reaped = None;
            if let Ok(reaped) = result {
                return Poll::Ready(Ready::Reaped(reaped));
            }
        }
        // Nothing else moves while an answer waits for its subscription's start: it keeps order.
        if let Some((started, _)) = &mut self.starting {
            if Pin::new(started).poll(cx).is_pending() {
                return Poll::Pending;
            }
            if let Some((_, rest)) = self.starting.take() {
                return Poll::Ready(Ready::Started(rest));
            }
        }
        if let Poll::Ready(publication) = self.grip.poll_publication(cx) {
            return Poll::Ready(Ready::Published(publication));
        }
        let Some(in_flight) = &mut self.in_flight else { return Poll::Pending };
        let result = std::task::ready!(in_flight.answer.as_mut().poll(cx));
        let Some(InFlight { kind, body, attempt, sent, .. }) = self.in_flight.take() else {
            return Poll::Pending;
        };
        self.answer_room = 0;
        Poll::Ready(Ready::Answered(Answered { kind, body, attempt, sent, result }))
    }

    fn on_ready(&mut self, ready: Ready, out: &mut Out<'_>) -> Flow {
        match ready {
            Ready::Opened(actions) | Ready::Started(actions) => self.act(actions, out),
            Ready::Reaped(reaped) => {
                // The reaper told the component of what it knew; the rest is told from here.
                self.dropped = reaped == Reaped::Ended;
                Flow::Fail(1012, "the gateway restarts this connection".into())
            }
            Ready::Published(publication) => self.grip.published(publication, out),
            Ready::Answered(answered) => self.answered(answered, out),
        }
    }

    /// Below a batch, and within the budget with the answer in flight's part of it.
    fn takes_messages(&self, queued: usize) -> bool {
        let apps = &self.cx.settings;
        let held = self.holds(queued);
        // Near the gateway's budget, only a connection that holds nothing is read from.
        let pressed = self.cx.admission.ws.budget.is_over() && held + self.answer_room > 0;
        self.session.pending() < apps.batch_bytes && held + self.answer_room < apps.budget && !pressed
    }

    /// What it holds, not what it reserved for an answer.
    fn holding(&self) -> usize {
        self.holds(0)
    }

    fn on_flushed(&mut self, out: &mut Out<'_>) {
        self.grip.on_flushed(out);
        self.next(out);
    }

    fn on_message(&mut self, message: Message, out: &mut Out<'_>) -> Flow {
        if !self.grip.detached {
            self.session.queue(&message);
            self.next(out);
        }
        Flow::Continue
    }

    fn on_end(self, end: End) {
        self.grip.leave_all();
        if self.dropped {
            self.cx.leases.release(&self.session.id);
            return;
        }
        // A closing handshake the client or the app began, that the client completed, is a
        // CLOSE with the client's code; anything else (the gateway's own closes, a vanished client)
        // is a DISCONNECT.
        let close = match end.by {
            Some(Closer::Client | Closer::Handler) => end.client_close,
            Some(Closer::Gateway) | None => None,
        };
        let ComponentApp { cx, session, in_flight, .. } = self;
        let (last, leases) = (cx.last.clone(), cx.leases.clone());
        cx.deliveries.spawn(async move {
            last.send(&session, in_flight, close).await;
            leases.release(&session.id);
        });
    }
}
