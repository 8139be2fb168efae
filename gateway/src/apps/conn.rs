//! A connection served by an app in the component: the handler its connection loop runs.
//!
//! The client's messages queue as events; at most one request is in flight, and whatever arrived
//! meanwhile goes, in order, into the next one. Each answer's events are carried out in order:
//! messages go to the client through the outbox (never dropped, so a client that does not read
//! stops its own requests), control messages act on the connection, a `CLOSE` closes it. A request
//! that never reached the component is tried again with backoff; one that failed, timed out or
//! got an unusable answer closes the connection with 1011. The connection's end is always told to
//! the component ([`super::delivery`]).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use sidestream_events::control::{Control, KeepAlive, Message as ControlMessage, MessageKind};
use sidestream_events::publish::is_channel_name;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Bytes as WsBytes, Message};
use tracing::{debug, warn};

use super::lease::Reaped;
use super::session::{Action, Failure, Ignored, Session};
use crate::backend::ExchangeError;
use crate::channels::filter::Filters;
use crate::channels::hub::Mailbox;
use crate::channels::{Broker, Payload, Publication};
use crate::metrics::{BudgetAction, BudgetPath};
use crate::server::Shared;
use crate::stages;
use crate::ws::handler::{Closer, End, Flow, Handler};
use crate::ws::outbox::{Kind, Out};

/// The most meta values (`set-meta`) a connection keeps for its filters.
const MAX_META: usize = 32;

/// The least an answer may be given, whatever the connection holds: a budget filled by what its
/// client does not read still lets a short answer through.
pub const MIN_ANSWER: usize = 16 * 1024;

/// An answer on its way, as a future the connection polls.
pub type Answer = Pin<Box<dyn Future<Output = Result<Response<Bytes>, ExchangeError>> + Send>>;

/// A request in flight: what it carries (for another attempt) and its answer to come.
pub struct InFlight {
    kind: &'static str,
    body: Bytes,
    attempt: u32,
    answer: Answer,
    /// When it was sent, for the `total` stage ([`crate::stages`]).
    sent: Instant,
}

impl InFlight {
    /// Waits for the answer of a request whose connection has ended.
    pub async fn finish(self) -> Result<Response<Bytes>, ExchangeError> {
        self.answer.await
    }
}

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
    Answered {
        kind: &'static str,
        body: Bytes,
        attempt: u32,
        sent: Instant,
        result: Result<Response<Bytes>, ExchangeError>,
    },
}

/// A request to send again after a wait.
struct Retry {
    at: Instant,
    kind: &'static str,
    body: Bytes,
    attempt: u32,
}

/// Keeps `app_connections_active` true while the handler lives.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.metrics.app_connections_active.dec();
    }
}

pub struct ComponentApp {
    shared: Arc<Shared>,
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
    /// After `detach`: the client's messages no longer go to the component.
    detached: bool,
    /// Nothing more is told to the component: it ended the connection with `DISCONNECT`, or the
    /// gateway that reaped this one has sent the connection's `DISCONNECT`.
    dropped: bool,
    /// A GRIP keep-alive for the client, and when it is due.
    keep_alive_message: Option<(KeepAlive, Instant)>,
    delayed: Option<(Message, Instant)>,
    /// The channels it joined with their filters, and the mailbox publications to them arrive in.
    subscriptions: HashMap<String, Filters>,
    /// What `set-meta` set, for the filters.
    meta: HashMap<String, String>,
    mailbox: mpsc::Receiver<Arc<Publication>>,
    mailbox_tx: Mailbox,
    /// A publication that did not fit the outbox: it goes once the client catches up, and
    /// meanwhile the mailbox is not read (when it is full, the hub drops and counts).
    waiting: Option<Arc<Publication>>,
    /// Fires if this gateway is found reaped.
    reaped: Option<oneshot::Receiver<Reaped>>,
    _active: Active,
}

impl ComponentApp {
    /// The handler of a connection whose `OPEN` was accepted, with that answer's other actions.
    pub fn new(shared: Arc<Shared>, conn: u64, mut session: Session, opened: Vec<Action>) -> Self {
        shared.metrics.app_connections_active.inc();
        let keep_alive_at = session.keep_alive().map(|every| Instant::now() + every);
        let (mailbox_tx, mailbox) = Mailbox::new();
        // Its record is written with the meta as it stands; later changes update it.
        session.take_meta_changed();
        let reaped = shared.leases.register(&session);
        ComponentApp {
            waiting: None,
            reaped,
            subscriptions: HashMap::new(),
            meta: HashMap::new(),
            mailbox,
            mailbox_tx,
            _active: Active(shared.clone()),
            shared,
            conn,
            session,
            opened: Some(opened),
            starting: None,
            in_flight: None,
            answer_room: 0,
            retry: None,
            keep_alive_at,
            detached: false,
            dropped: false,
            keep_alive_message: None,
            delayed: None,
        }
    }

    /// Bytes held for or from the client, the answer in flight aside: `queued` in the outbox,
    /// the events waiting, the request in flight or to retry, a delayed message, a held
    /// publication.
    fn holds(&self, queued: usize) -> usize {
        let publication = |p: &Arc<Publication>| match &p.payload {
            Payload::Message(message) => message.len(),
            Payload::Close { .. } => 0,
        };
        queued
            + self.session.pending()
            + self.in_flight.as_ref().map_or(0, |f| f.body.len())
            + self.retry.as_ref().map_or(0, |r| r.body.len())
            + self.delayed.as_ref().map_or(0, |(m, _)| m.len())
            + self.waiting.as_ref().map_or(0, publication)
    }

    /// Sends a request. Its answer may take what the budget has left beside what is held and a
    /// batch for what the client sends meanwhile: the answer is counted as it arrives, before
    /// anything of it is queued.
    fn start(&mut self, kind: &'static str, body: Bytes, attempt: u32, queued: usize) {
        let apps = &self.shared.apps;
        let reserve = apps.batch_bytes;
        let held = self.holds(queued) + body.len();
        let limit = apps.budget.saturating_sub(held + reserve).max(MIN_ANSWER).min(apps.max_answer_bytes);
        self.answer_room = limit;
        let request = self.session.request(body.clone(), attempt);
        let shared = self.shared.clone();
        let answer: Answer =
            Box::pin(async move { shared.backend.exchange(request, limit, &shared.metrics).await });
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
            self.start("events", events, 1, out.queued());
        }
    }

    fn sent_to_client(&mut self, now: Instant) {
        if let Some((keep_alive, due)) = &mut self.keep_alive_message
            && keep_alive.mode == sidestream_events::control::KeepAliveMode::Idle
        {
            *due = now + keep_alive.timeout;
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
                    self.sent_to_client(now);
                }
                Action::Control(control) => {
                    if let Some(started) = self.control(control, now, out) {
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

    /// Carries out one control message; a `subscribe` returns what fires once it has its
    /// starting position.
    fn control(
        &mut self,
        control: Control,
        now: Instant,
        out: &mut Out<'_>,
    ) -> Option<oneshot::Receiver<()>> {
        let metrics = &self.shared.metrics;
        let what = match &control {
            Control::Subscribe { .. } => "subscribe",
            Control::Unsubscribe { .. } => "unsubscribe",
            Control::Detach => "detach",
            Control::Session { .. } => "session",
            Control::SetMeta { .. } => "set_meta",
            Control::KeepAlive(_) => "keep_alive",
            Control::SendDelayed { .. } => "send_delayed",
            Control::FlushDelayed => "flush_delayed",
        };
        metrics.app_controls.get_or_create(&crate::metrics::WhatLabels { what }).inc();
        match control {
            Control::Subscribe { channel, filters, since, gap } => {
                return self.subscribe(channel, filters, since, gap);
            }
            Control::Unsubscribe { channel } => {
                if self.subscriptions.remove(&channel).is_some() {
                    self.leave(&channel);
                }
            }
            Control::SetMeta { name, value } => match value {
                Some(value) if self.meta.len() < MAX_META || self.meta.contains_key(&name) => {
                    self.meta.insert(name, value);
                }
                Some(_) => debug!(conn = self.conn, "set-meta over the limit of {MAX_META} values ignored"),
                None => {
                    self.meta.remove(&name);
                }
            },
            // The session id serves Pushpin's Grip-Last, which sidestream's `since` replaces.
            Control::Session { .. } => debug!(conn = self.conn, "session control message without effect"),
            Control::Detach => self.detached = true,
            Control::KeepAlive(keep_alive) => {
                self.keep_alive_message = keep_alive.map(|k| {
                    let due = now + k.timeout;
                    (k, due)
                });
            }
            Control::SendDelayed { message, timeout } => {
                // One delayed message at a time: a new one sends the one before it now.
                if let Some((earlier, _)) = self.delayed.take() {
                    out.send(earlier, Kind::App);
                }
                self.delayed = Some((to_message(message), now + timeout));
            }
            Control::FlushDelayed => {
                if let Some((message, _)) = self.delayed.take() {
                    out.send(message, Kind::App);
                }
            }
        }
        None
    }

    /// Joins `channel`, and with `since`, recovers what the client missed first. Without
    /// `since` the subscription starts where the channel stands once the broker has said so; the
    /// receiver fires then.
    fn subscribe(
        &mut self,
        channel: String,
        filters: Vec<String>,
        since: Option<String>,
        gap: Option<String>,
    ) -> Option<oneshot::Receiver<()>> {
        let metrics = &self.shared.metrics;
        if !is_channel_name(&channel) {
            metrics.app_ignored.get_or_create(&crate::metrics::WhatLabels { what: "bad_channel" }).inc();
            return None;
        }
        if let Some(existing) = self.subscriptions.get_mut(&channel) {
            // Joined already: as in Pushpin, a repeat changes nothing but the filters.
            *existing = Filters::from_names(&filters);
            return None;
        }
        if self.subscriptions.len() >= self.shared.config.max_subscriptions {
            metrics
                .app_ignored
                .get_or_create(&crate::metrics::WhatLabels { what: "too_many_subscriptions" })
                .inc();
            return None;
        }
        self.subscriptions.insert(channel.clone(), Filters::from_names(&filters));
        let gap = Message::text(
            gap.unwrap_or_else(|| serde_json::json!({"type": "gap", "channel": channel}).to_string()),
        );
        // Live publications wait while the subscription starts: it delivers what came since the
        // client's `since`, or since it joined, from the history first.
        let channels = &self.shared.channels;
        channels.hub.join(&channel, self.conn, self.mailbox_tx.clone(), gap.clone());
        let (hub, broker, subscriber) =
            (channels.hub.clone(), channels.broker.clone(), (self.mailbox_tx.clone(), self.conn));
        let (started_tx, started) = oneshot::channel();
        let waits = since.is_none();
        tokio::spawn(async move {
            crate::channels::subscriber::start(&broker, &hub, subscriber, channel, since, gap, started_tx)
                .await;
        });
        waits.then_some(started)
    }

    fn leave(&self, channel: &str) {
        let channels = &self.shared.channels;
        if channels.hub.leave(channel, self.conn) {
            channels.broker.unsubscribe(channel);
        }
    }

    pub(super) fn count_ignored(&self, ignored: &[Ignored]) {
        for what in ignored {
            let what = match what {
                Ignored::UnknownControl => "unknown_control",
                Ignored::BadControl => "bad_control",
                Ignored::Unprefixed => "unprefixed",
                Ignored::UnknownEvent => "unknown_event",
            };
            self.shared.metrics.app_ignored.get_or_create(&crate::metrics::WhatLabels { what }).inc();
        }
    }
}

impl ComponentApp {
    /// Sends a publication on, or keeps it until the client catches up.
    fn published(&mut self, publication: Arc<Publication>, out: &mut Out<'_>) -> Flow {
        let subscriptions = &self.subscriptions;
        let filters = subscriptions.get(&publication.channel).copied().unwrap_or_default();
        if !filters.pass(&publication.meta, &self.meta, |c| subscriptions.contains_key(c)) {
            return Flow::Continue;
        }
        match &publication.payload {
            Payload::Message(message) => {
                if out.offer(message.clone(), Kind::Publish) {
                    self.sent_to_client(Instant::now());
                } else {
                    self.waiting = Some(publication);
                }
                Flow::Continue
            }
            Payload::Close { code, reason } => Flow::Close(code.unwrap_or(1000), reason.clone().into()),
        }
    }
}

fn to_message(message: ControlMessage) -> Message {
    let bytes = WsBytes::from(message.content);
    match message.kind {
        MessageKind::Text => match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Message::text(text),
            Err(_) => Message::binary(bytes),
        },
        MessageKind::Binary => Message::binary(bytes),
        MessageKind::Ping => Message::Ping(bytes),
        MessageKind::Pong => Message::Pong(bytes),
    }
}

/// The metrics label of a failed exchange.
fn result_label(error: &ExchangeError) -> &'static str {
    match error {
        ExchangeError::Unavailable(_) => "unavailable",
        ExchangeError::Timeout => "timeout",
        ExchangeError::Failed(_) | ExchangeError::TooLarge(_) => "failed",
    }
}

impl Handler for ComponentApp {
    type Ready = Ready;

    fn deadline(&self) -> Option<Instant> {
        let keep_alive = self.keep_alive_at.filter(|_| self.in_flight.is_none() && self.retry.is_none());
        [
            self.retry.as_ref().map(|r| r.at),
            keep_alive,
            self.keep_alive_message.as_ref().map(|(_, at)| *at),
            self.delayed.as_ref().map(|(_, at)| *at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Out<'_>) -> Flow {
        if let Some(retry) = self.retry.take_if(|r| r.at <= now) {
            self.start(retry.kind, retry.body, retry.attempt, out.queued());
        }
        if self.keep_alive_at.is_some_and(|at| at <= now) && self.in_flight.is_none() && self.retry.is_none()
        {
            let events = self.session.take_events();
            let kind = if events.is_empty() { "keepalive" } else { "events" };
            self.start(kind, events, 1, out.queued());
        }
        if let Some((keep_alive, due)) = &mut self.keep_alive_message
            && *due <= now
        {
            *due = now + keep_alive.timeout;
            out.send(to_message(keep_alive.message.clone()), Kind::App);
        }
        if let Some((message, _)) = self.delayed.take_if(|(_, at)| *at <= now) {
            out.send(message, Kind::App);
            self.sent_to_client(now);
        }
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
            let (_, rest) = self.starting.take().expect("just polled");
            return Poll::Ready(Ready::Started(rest));
        }
        if !self.subscriptions.is_empty() && self.waiting.is_none() {
            if let Poll::Ready(Some(publication)) = self.mailbox.poll_recv(cx) {
                self.mailbox_tx.taken(&publication);
                return Poll::Ready(Ready::Published(publication));
            }
            // The mailbox is empty: subscriptions that lost publications are told now, before
            // anything newer (the notice arrives in the mailbox, read on the next turn).
            if self.mailbox_tx.lost.swap(false, std::sync::atomic::Ordering::AcqRel) {
                self.shared.channels.hub.tell_lost(self.conn, self.subscriptions.keys());
                if let Poll::Ready(Some(publication)) = self.mailbox.poll_recv(cx) {
                    self.mailbox_tx.taken(&publication);
                    return Poll::Ready(Ready::Published(publication));
                }
            }
        }
        let Some(in_flight) = &mut self.in_flight else { return Poll::Pending };
        let result = std::task::ready!(in_flight.answer.as_mut().poll(cx));
        let InFlight { kind, body, attempt, sent, .. } = self.in_flight.take().expect("polled just now");
        self.answer_room = 0;
        Poll::Ready(Ready::Answered { kind, body, attempt, sent, result })
    }

    fn on_ready(&mut self, ready: Ready, out: &mut Out<'_>) -> Flow {
        let metrics = self.shared.metrics.clone();
        let (kind, body, attempt, sent, result) = match ready {
            Ready::Opened(actions) | Ready::Started(actions) => return self.act(actions, out),
            Ready::Reaped(reaped) => {
                // The reaper told the component of what it knew; the rest is told from here.
                self.dropped = reaped == Reaped::Ended;
                return Flow::Fail(1012, "the gateway restarts this connection".into());
            }
            Ready::Published(publication) => return self.published(publication, out),
            Ready::Answered { kind, body, attempt, sent, result } => (kind, body, attempt, sent, result),
        };
        let now = Instant::now();
        match result {
            Ok(response) => match self.session.apply(&response) {
                Ok((actions, ignored)) => {
                    let stages = &metrics.stages;
                    stages::observe(&stages.parse, now.elapsed());
                    metrics.app_request(kind, "ok");
                    if self.session.take_meta_changed() {
                        self.shared.leases.update(&self.session);
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
                Err(failure) => {
                    metrics.app_request(kind, "bad_answer");
                    let why = match failure {
                        Failure::Status(status) => {
                            format!("status {status}, not 200 {}", sidestream_events::reply::CONTENT_TYPE)
                        }
                        Failure::Malformed(error) => error.to_string(),
                        Failure::LateOpen => "an OPEN after the first answer".into(),
                    };
                    warn!(conn = self.conn, kind, %why, "WebSocket app answered badly; closing with 1011");
                    Flow::Fail(1011, "the app's answer was not usable".into())
                }
            },
            Err(ExchangeError::Unavailable(why)) if attempt <= self.shared.apps.retries => {
                metrics.app_retries.inc();
                let at = now + self.shared.apps.backoff(attempt + 1);
                debug!(conn = self.conn, kind, attempt, %why, "WebSocket app unavailable; trying again");
                self.retry = Some(Retry { at, kind, body, attempt: attempt + 1 });
                Flow::Continue
            }
            Err(ExchangeError::TooLarge(limit)) if limit < self.shared.apps.max_answer_bytes => {
                metrics.app_request(kind, "too_large");
                metrics.budget(BudgetPath::App, BudgetAction::Close);
                warn!(
                    conn = self.conn,
                    kind, limit, "WebSocket app's answer over the connection's budget; closing with 1009"
                );
                Flow::Fail(1009, "the app's answer is over the connection's memory budget".into())
            }
            Err(error) => {
                metrics.app_request(kind, result_label(&error));
                warn!(conn = self.conn, kind, attempt, %error, "WebSocket app request failed; closing with 1011");
                Flow::Fail(1011, "the app failed".into())
            }
        }
    }

    /// Below a batch, and within the budget with the answer in flight's part of it.
    fn takes_messages(&self, queued: usize) -> bool {
        let apps = &self.shared.apps;
        let held = self.holds(queued);
        // Near the gateway's budget, only a connection that holds nothing is read from.
        let pressed = self.shared.ws.budget.is_over() && held + self.answer_room > 0;
        self.session.pending() < apps.batch_bytes && held + self.answer_room < apps.budget && !pressed
    }

    /// What it holds, not what it reserved for an answer.
    fn holding(&self) -> usize {
        self.holds(0)
    }

    fn on_flushed(&mut self, out: &mut Out<'_>) {
        if let Some(publication) = self.waiting.take() {
            // A close among publications closes from `published`; here only messages wait.
            let _ = self.published(publication, out);
        }
        self.next(out);
    }

    fn on_message(&mut self, message: Message, out: &mut Out<'_>) -> Flow {
        if !self.detached {
            self.session.queue(&message);
            self.next(out);
        }
        Flow::Continue
    }

    fn on_end(self, end: End) {
        for channel in self.subscriptions.keys() {
            self.leave(channel);
        }
        if self.dropped {
            self.shared.leases.release(&self.session.id);
            return;
        }
        // A closing handshake the client or the app began, that the client completed, is a
        // CLOSE with the client's code; anything else (the gateway's own closes, a vanished client)
        // is a DISCONNECT.
        let close = match end.by {
            Some(Closer::Client | Closer::Handler) => end.client_close,
            Some(Closer::Gateway) | None => None,
        };
        let shared = self.shared.clone();
        shared.drain.deliveries.spawn(super::delivery::deliver(
            self.shared,
            self.session,
            self.in_flight,
            close,
        ));
    }
}
