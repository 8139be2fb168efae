//! This gateway's subscribers, by channel, and the fan-out of a publication to them.
//!
//! Each connection has one mailbox (a bounded queue) that its task drains into its outbox as the
//! client keeps up. The hub only hands publications over: a mailbox that is full means the client
//! has not read for a while (or its task has not run), and the publication is dropped for it and
//! counted; positions are consecutive, so the client can tell, and come back with its last one.
//! A subscriber that is starting (reading from the channel's history what came since its
//! client's position, or since it joined) gets live publications held back until that is
//! delivered, then the ones it has not seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;

use tokio_tungstenite::tungstenite::Message;

use super::{Position, Publication};
use crate::metrics::Metrics;

/// A connection's mailbox.
pub type Mailbox = mpsc::Sender<Arc<Publication>>;

/// How many publications wait in a mailbox before the hub drops more: enough for a burst while
/// the connection's task is scheduled, not a queue that hides a stuck one.
pub const MAILBOX: usize = 256;

struct Subscriber {
    mailbox: Mailbox,
    /// What it is told when the channel's history cannot cover what it missed.
    gap: Message,
    /// While recovering: live publications held back.
    held: Option<Vec<Arc<Publication>>>,
    /// The newest position it was given: nothing at or before it is given again.
    last: Option<Position>,
}

#[derive(Default)]
struct Channel {
    subscribers: HashMap<u64, Subscriber>,
    /// The newest position delivered here, to recover from after the broker was unreachable.
    last: Option<Position>,
    /// While the channel recovers after the broker was unreachable: live publications held back.
    held: Option<Vec<Arc<Publication>>>,
}

/// This gateway's channels.
pub struct Hub {
    channels: Mutex<HashMap<String, Channel>>,
    metrics: Arc<Metrics>,
}

/// Whether `position` comes after `last` (positions of another epoch always do: a new history).
fn newer(position: &Position, last: Option<&Position>) -> bool {
    last.is_none_or(|last| last.epoch != position.epoch || position.n > last.n)
}

impl Hub {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Hub { channels: Mutex::new(HashMap::new()), metrics }
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<String, Channel>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds connection `conn` to `channel`, holding live publications back until
    /// [`Hub::recovered`] says its history has been delivered. True when it is the channel's
    /// first subscriber here: the broker must be told.
    pub fn join(&self, channel: &str, conn: u64, mailbox: Mailbox, gap: Message) -> bool {
        let mut channels = self.channels();
        let entry = channels.entry(channel.to_owned()).or_default();
        let first = entry.subscribers.is_empty();
        let held = Some(Vec::new());
        if entry.subscribers.insert(conn, Subscriber { mailbox, gap, held, last: None }).is_none() {
            self.metrics.channel_subscriptions.inc();
        }
        first
    }

    /// Removes `conn` from `channel`. True when no subscriber is left here: the broker may stop.
    pub fn leave(&self, channel: &str, conn: u64) -> bool {
        let mut channels = self.channels();
        let Some(entry) = channels.get_mut(channel) else { return false };
        if entry.subscribers.remove(&conn).is_some() {
            self.metrics.channel_subscriptions.dec();
        }
        let empty = entry.subscribers.is_empty();
        if empty {
            channels.remove(channel);
        }
        empty
    }

    /// Hands a publication to every subscriber of its channel here.
    pub fn deliver(&self, publication: Arc<Publication>) {
        let mut channels = self.channels();
        let Some(channel) = channels.get_mut(&publication.channel) else { return };
        if let Some(held) = &mut channel.held {
            held.push(publication);
            return;
        }
        Self::fan_out(channel, publication, &self.metrics);
    }

    fn fan_out(channel: &mut Channel, publication: Arc<Publication>, metrics: &Metrics) {
        if let Some(position) = &publication.position {
            if !newer(position, channel.last.as_ref()) {
                // Already delivered here (a recovery after a reconnect overlaps the live stream).
                return;
            }
            channel.last = Some(position.clone());
        }
        for subscriber in channel.subscribers.values_mut() {
            Self::give(subscriber, &publication, metrics);
        }
    }

    /// Holds `channel`'s live publications back while what it missed is read (after the
    /// broker's connection came back), so none of them overtakes what came before it.
    pub fn suspend(&self, channel: &str) {
        if let Some(channel) = self.channels().get_mut(channel) {
            channel.held.get_or_insert_with(Vec::new);
        }
    }

    /// Delivers what `channel` missed, then what was held back meanwhile, without repeats.
    pub fn resume(&self, channel: &str, missed: Vec<Arc<Publication>>) {
        let mut channels = self.channels();
        let Some(channel) = channels.get_mut(channel) else { return };
        let held = channel.held.take().unwrap_or_default();
        for publication in missed.into_iter().chain(held) {
            Self::fan_out(channel, publication, &self.metrics);
        }
    }

    fn give(subscriber: &mut Subscriber, publication: &Arc<Publication>, metrics: &Metrics) {
        if let Some(held) = &mut subscriber.held {
            held.push(publication.clone());
            return;
        }
        if let Some(position) = &publication.position {
            if !newer(position, subscriber.last.as_ref()) {
                return;
            }
            subscriber.last = Some(position.clone());
        }
        if subscriber.mailbox.try_send(publication.clone()).is_err() {
            metrics.publications_dropped.inc();
        }
    }

    /// Ends a subscriber's recovery: `delivered` is the newest position its history gave it; the
    /// publications held back meanwhile that come after it follow, and it is live.
    pub fn recovered(&self, channel: &str, conn: u64, delivered: Option<Position>) {
        let mut channels = self.channels();
        let Some(subscriber) = channels.get_mut(channel).and_then(|c| c.subscribers.get_mut(&conn)) else {
            return;
        };
        subscriber.last = delivered;
        let held = subscriber.held.take().unwrap_or_default();
        for publication in &held {
            Self::give(subscriber, publication, &self.metrics);
        }
    }

    /// Every channel with subscribers here, and the newest position delivered on it: what to
    /// subscribe to and recover from after the broker's connection was lost.
    pub fn interest(&self) -> Vec<(String, Option<Position>)> {
        self.channels().iter().map(|(name, channel)| (name.clone(), channel.last.clone())).collect()
    }

    /// Where `channel` stood when this gateway began receiving it, if nothing has arrived since:
    /// what to recover from should the broker's connection be lost before anything arrives.
    pub fn baseline(&self, channel: &str, position: Position) {
        if let Some(channel) = self.channels().get_mut(channel)
            && channel.last.is_none()
        {
            channel.last = Some(position);
        }
    }

    /// Tells every subscriber of `channel` here that it missed what the history cannot give back.
    pub fn gap(&self, channel: &str) {
        let channels = self.channels();
        let Some(entry) = channels.get(channel) else { return };
        for subscriber in entry.subscribers.values() {
            let notice = Arc::new(Publication::notice(channel, subscriber.gap.clone()));
            if subscriber.mailbox.try_send(notice).is_err() {
                self.metrics.publications_dropped.inc();
            }
        }
    }

    /// Whether `channel` has subscribers here.
    pub fn has(&self, channel: &str) -> bool {
        self.channels().contains_key(channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::Payload;

    fn gap() -> Message {
        Message::text("gap")
    }

    fn publication(n: u64, text: &str) -> Arc<Publication> {
        Arc::new(Publication {
            channel: "room".into(),
            position: Some(Position { n, epoch: "e".into() }),
            payload: Payload::Message(Message::text(text)),
            meta: Vec::new(),
        })
    }

    fn texts(rx: &mut mpsc::Receiver<Arc<Publication>>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|p| match &p.payload {
                Payload::Message(m) => m.to_text().unwrap().to_owned(),
                Payload::Close { .. } => "close".into(),
            })
            .collect()
    }

    #[test]
    fn fans_out_once_in_order_and_drops_repeats() {
        let hub = Hub::new(Arc::new(Metrics::new()));
        let (a, mut rx_a) = mpsc::channel(MAILBOX);
        let (b, mut rx_b) = mpsc::channel(MAILBOX);
        assert!(hub.join("room", 1, a, gap()), "the first subscriber");
        assert!(!hub.join("room", 2, b, gap()));
        hub.recovered("room", 1, None);
        hub.recovered("room", 2, None);
        for (n, text) in [(1, "one"), (2, "two"), (2, "two again"), (1, "old"), (3, "three")] {
            hub.deliver(publication(n, text));
        }
        assert_eq!(texts(&mut rx_a), ["one", "two", "three"]);
        assert_eq!(texts(&mut rx_b), ["one", "two", "three"]);
        assert!(!hub.leave("room", 1));
        assert!(hub.leave("room", 2), "the last one");
        assert!(!hub.has("room"));
        hub.deliver(publication(4, "nobody"));
    }

    #[test]
    fn a_recovering_subscriber_gets_what_was_held_back_after_its_history_without_repeats() {
        let hub = Hub::new(Arc::new(Metrics::new()));
        let (tx, mut rx) = mpsc::channel(MAILBOX);
        hub.join("room", 1, tx.clone(), gap());
        hub.deliver(publication(5, "live 5"));
        hub.deliver(publication(6, "live 6"));
        assert!(texts(&mut rx).is_empty(), "held back while the history is read");
        // The history (delivered by the recovery itself) reached 5.
        tx.try_send(publication(4, "history 4")).unwrap();
        tx.try_send(publication(5, "history 5")).unwrap();
        hub.recovered("room", 1, Some(Position { n: 5, epoch: "e".into() }));
        hub.deliver(publication(7, "live 7"));
        assert_eq!(texts(&mut rx), ["history 4", "history 5", "live 6", "live 7"]);
    }

    #[test]
    fn a_channel_recovering_after_a_reconnect_keeps_its_order() {
        let hub = Hub::new(Arc::new(Metrics::new()));
        let (tx, mut rx) = mpsc::channel(MAILBOX);
        hub.join("room", 1, tx, gap());
        hub.recovered("room", 1, None);
        hub.deliver(publication(1, "one"));
        hub.suspend("room");
        hub.deliver(publication(4, "live 4"));
        hub.resume(
            "room",
            vec![publication(2, "missed 2"), publication(3, "missed 3"), publication(4, "missed 4")],
        );
        hub.deliver(publication(5, "five"));
        assert_eq!(texts(&mut rx), ["one", "missed 2", "missed 3", "missed 4", "five"]);
    }

    #[test]
    fn a_full_mailbox_drops_and_counts() {
        let metrics = Arc::new(Metrics::new());
        let hub = Hub::new(metrics.clone());
        let (tx, mut rx) = mpsc::channel(2);
        hub.join("room", 1, tx, gap());
        hub.recovered("room", 1, None);
        for n in 1..=5 {
            hub.deliver(publication(n, "x"));
        }
        assert_eq!(texts(&mut rx).len(), 2);
        assert_eq!(metrics.publications_dropped.get(), 3);
    }
}
