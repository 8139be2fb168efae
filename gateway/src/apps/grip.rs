//! What GRIP control messages (<https://pushpin.org/docs/protocols/grip/#control-messages>) set on
//! a connection, and carrying them out: its channels and their filters, its meta, a keep-alive for
//! the client, a delayed message, `detach`; and the publications that reach it through its
//! mailbox.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use sidestream_events::control::{Control, KeepAlive, KeepAliveMode, Message as ControlMessage};
use sidestream_events::publish::is_channel_name;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use super::context::AppContext;
use super::metrics::{Control as Counted, Ignored};
use crate::channels::filter::Filters;
use crate::channels::hub::Mailbox;
use crate::channels::{Broker, Payload, Publication};
use crate::ws::handler::Flow;
use crate::ws::outbox::{Kind, Out};

/// The most meta values (`set-meta`) a connection keeps for its filters.
const MAX_META: usize = 32;

/// A connection's GRIP state.
pub struct Grip {
    cx: Arc<AppContext>,
    conn: u64,
    /// After `detach`: the client's messages no longer go to the component.
    pub detached: bool,
    /// A GRIP keep-alive for the client, and when it is due.
    keep_alive: Option<(KeepAlive, Instant)>,
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
}

impl Grip {
    pub fn new(cx: Arc<AppContext>, conn: u64) -> Self {
        let (mailbox_tx, mailbox) = Mailbox::new();
        Grip {
            cx,
            conn,
            detached: false,
            keep_alive: None,
            delayed: None,
            subscriptions: HashMap::new(),
            meta: HashMap::new(),
            mailbox,
            mailbox_tx,
            waiting: None,
        }
    }

    /// Bytes it holds for the client: a delayed message, a held publication.
    pub fn holds(&self) -> usize {
        let publication = |p: &Arc<Publication>| match &p.payload {
            Payload::Message(message) => message.len(),
            Payload::Close { .. } => 0,
        };
        self.delayed.as_ref().map_or(0, |(m, _)| m.len()) + self.waiting.as_ref().map_or(0, publication)
    }

    /// Something went to the client: an idle keep-alive waits its whole timeout again.
    pub fn sent_to_client(&mut self, now: Instant) {
        if let Some((keep_alive, due)) = &mut self.keep_alive
            && keep_alive.mode == KeepAliveMode::Idle
        {
            *due = now + keep_alive.timeout;
        }
    }

    /// The keep-alive's and the delayed message's deadline, whichever is first.
    pub fn deadline(&self) -> Option<Instant> {
        let keep_alive = self.keep_alive.as_ref().map(|(_, at)| *at);
        let delayed = self.delayed.as_ref().map(|(_, at)| *at);
        keep_alive.into_iter().chain(delayed).min()
    }

    /// Sends the keep-alive and the delayed message when they are due.
    pub fn on_deadline(&mut self, now: Instant, out: &mut Out<'_>) {
        if let Some((keep_alive, due)) = &mut self.keep_alive
            && *due <= now
        {
            *due = now + keep_alive.timeout;
            out.send(to_message(keep_alive.message.clone()), Kind::App);
        }
        if let Some((message, _)) = self.delayed.take_if(|(_, at)| *at <= now) {
            out.send(message, Kind::App);
            self.sent_to_client(now);
        }
    }

    /// Carries out one control message; a `subscribe` returns what fires once it has its
    /// starting position.
    pub fn control(
        &mut self,
        control: Control,
        now: Instant,
        out: &mut Out<'_>,
    ) -> Option<oneshot::Receiver<()>> {
        self.cx.metrics.control(match &control {
            Control::Subscribe { .. } => Counted::Subscribe,
            Control::Unsubscribe { .. } => Counted::Unsubscribe,
            Control::Detach => Counted::Detach,
            Control::Session { .. } => Counted::Session,
            Control::SetMeta { .. } => Counted::SetMeta,
            Control::KeepAlive(_) => Counted::KeepAlive,
            Control::SendDelayed { .. } => Counted::SendDelayed,
            Control::FlushDelayed => Counted::FlushDelayed,
        });
        match control {
            Control::Subscribe { channel, filters, since, gap } => {
                return self.subscribe(channel, filters, since, gap);
            }
            Control::Unsubscribe { channel } => {
                if self.subscriptions.remove(&channel).is_some() {
                    self.leave(&channel);
                }
            }
            Control::SetMeta { name, value } => self.set_meta(name, value),
            // The session id serves Pushpin's Grip-Last, which sidestream's `since` replaces.
            Control::Session { .. } => debug!(conn = self.conn, "session control message without effect"),
            Control::Detach => self.detached = true,
            Control::KeepAlive(keep_alive) => {
                self.keep_alive = keep_alive.map(|k| {
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

    fn set_meta(&mut self, name: String, value: Option<String>) {
        match value {
            Some(value) if self.meta.len() < MAX_META || self.meta.contains_key(&name) => {
                self.meta.insert(name, value);
            }
            Some(_) => debug!(conn = self.conn, "set-meta over the limit of {MAX_META} values ignored"),
            None => {
                self.meta.remove(&name);
            }
        }
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
        let metrics = &self.cx.metrics;
        if !is_channel_name(&channel) {
            metrics.ignored(Ignored::BadChannel);
            return None;
        }
        if let Some(existing) = self.subscriptions.get_mut(&channel) {
            // Joined already: as in Pushpin, a repeat changes nothing but the filters.
            *existing = Filters::from_names(&filters);
            return None;
        }
        if self.subscriptions.len() >= self.cx.settings.max_subscriptions {
            metrics.ignored(Ignored::TooManySubscriptions);
            return None;
        }
        self.subscriptions.insert(channel.clone(), Filters::from_names(&filters));
        let gap = Message::text(
            gap.unwrap_or_else(|| serde_json::json!({"type": "gap", "channel": channel}).to_string()),
        );
        // Live publications wait while the subscription starts: it delivers what came since the
        // client's `since`, or since it joined, from the history first.
        let channels = &self.cx.channels;
        channels.hub.join(&channel, self.conn, self.mailbox_tx.clone(), gap.clone());
        let (hub, broker, subscriber) =
            (channels.hub.clone(), channels.broker.clone(), (self.mailbox_tx.clone(), self.conn));
        let (started_tx, started) = oneshot::channel();
        let waits = since.is_none();
        self.cx.tasks.spawn(async move {
            crate::channels::subscriber::start(&broker, &hub, subscriber, channel, since, gap, started_tx)
                .await;
        });
        waits.then_some(started)
    }

    fn leave(&self, channel: &str) {
        let channels = &self.cx.channels;
        if channels.hub.leave(channel, self.conn) {
            channels.broker.unsubscribe(channel);
        }
    }

    /// Leaves every channel, at the connection's end.
    pub fn leave_all(&self) {
        for channel in self.subscriptions.keys() {
            self.leave(channel);
        }
    }

    /// The next publication from the mailbox, unless one is held or nothing is subscribed.
    pub fn poll_publication(&mut self, cx: &mut Context<'_>) -> Poll<Arc<Publication>> {
        if self.subscriptions.is_empty() || self.waiting.is_some() {
            return Poll::Pending;
        }
        if let Poll::Ready(Some(publication)) = self.mailbox.poll_recv(cx) {
            self.mailbox_tx.taken(&publication);
            return Poll::Ready(publication);
        }
        // The mailbox is empty: subscriptions that lost publications are told now, before
        // anything newer (the notice arrives in the mailbox, read on the next turn).
        if self.mailbox_tx.lost.swap(false, Ordering::AcqRel) {
            self.cx.channels.hub.tell_lost(self.conn, self.subscriptions.keys());
            if let Poll::Ready(Some(publication)) = self.mailbox.poll_recv(cx) {
                self.mailbox_tx.taken(&publication);
                return Poll::Ready(publication);
            }
        }
        Poll::Pending
    }

    /// Sends a publication on, or keeps it until the client catches up.
    pub fn published(&mut self, publication: Arc<Publication>, out: &mut Out<'_>) -> Flow {
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

    /// The client caught up: the publication held for it goes now.
    pub fn on_flushed(&mut self, out: &mut Out<'_>) {
        if let Some(publication) = self.waiting.take() {
            // A close among publications closes from `published`; here only messages wait.
            let _ = self.published(publication, out);
        }
    }
}

fn to_message(message: ControlMessage) -> Message {
    crate::channels::message(message.kind, message.content)
}
