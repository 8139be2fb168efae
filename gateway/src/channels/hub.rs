//! This gateway's subscribers, by channel, and the fan-out of a publication to them.
//!
//! Each connection has one mailbox (a bounded queue) that its task drains into its outbox as the
//! client keeps up. The hub only hands publications over: a mailbox that is full means the client
//! has not read for a while, and the publication is dropped for it and counted; the subscriber is
//! then *lost*: nothing more goes to it until its gap notice has gone into its mailbox (its
//! connection asks for that as soon as it has room), so what it gets after a loss is always the gap
//! notice first, then nothing older. A subscriber that is starting (reading from the channel's
//! history what came since its client's position, or since it joined) gets live publications held
//! back until that is delivered, then the ones it has not seen; at most [`HELD`] of them, after
//! which it is lost too, rather than holding the channel's publications for as long as it reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;

use tokio_tungstenite::tungstenite::Message;

use super::{Position, Publication};
use crate::metrics::Metrics;

/// A connection's mailbox: where its publications go, and the flag its connection watches to ask
/// for the gap notices of the subscriptions that lost publications ([`Hub::tell_lost`]).
#[derive(Clone, Debug)]
pub struct Mailbox {
    pub tx: mpsc::Sender<Arc<Publication>>,
    pub lost: Arc<AtomicBool>,
    /// Bytes of the messages in it (issue 23): a publication that would take it past
    /// [`MAILBOX_BYTES`] is dropped like one that finds it full. Added by whoever puts a
    /// publication in ([`Mailbox::add`]), taken off by the connection that reads it.
    pub bytes: Arc<AtomicUsize>,
}

impl Mailbox {
    /// A mailbox of [`MAILBOX`] places and its receiving end.
    pub fn new() -> (Self, mpsc::Receiver<Arc<Publication>>) {
        let (tx, rx) = mpsc::channel(MAILBOX);
        (Mailbox { tx, lost: Arc::new(AtomicBool::new(false)), bytes: Default::default() }, rx)
    }

    /// Whether `publication` fits its byte budget: an empty mailbox takes any one.
    fn fits(&self, publication: &Publication) -> bool {
        let held = self.bytes.load(Ordering::Relaxed);
        held == 0 || held + publication.size() <= MAILBOX_BYTES
    }

    /// Counts a publication put in.
    pub fn add(&self, publication: &Publication) {
        self.bytes.fetch_add(publication.size(), Ordering::Relaxed);
    }

    /// Takes a publication the connection read out of the count.
    pub fn taken(&self, publication: &Publication) {
        let size = publication.size();
        let _ =
            self.bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(size)));
    }
}

/// Bytes of messages a mailbox holds before the hub drops more for it (and tells of the gap):
/// what a subscriber that does not read can make the gateway hold of the channel's publications,
/// beside its outbox, whatever their count.
pub const MAILBOX_BYTES: usize = 1024 * 1024;

/// How many publications wait in a mailbox before the hub drops more: enough for a burst while
/// the connection's task is scheduled, not a queue that hides a stuck one.
pub const MAILBOX: usize = 256;

/// How many live publications a starting subscriber, or a channel recovering after the broker's
/// connection came back, holds back before it gives up on them (and tells of a gap instead).
pub const HELD: usize = 1024;

struct Subscriber {
    mailbox: Mailbox,
    /// What it is told when the channel's history cannot cover what it missed.
    gap: Message,
    /// While recovering: live publications held back.
    held: Option<Vec<Arc<Publication>>>,
    /// The newest position it was given: nothing at or before it is given again.
    last: Option<Position>,
    /// It lost publications and has not been told yet: nothing goes to it before its gap notice.
    lost: bool,
}

#[derive(Default)]
struct Channel {
    subscribers: HashMap<u64, Subscriber>,
    /// At most the newest position delivered here: what to recover from after the broker was
    /// unreachable (never more, or what came in between would not be recovered).
    last: Option<Position>,
    /// While the channel recovers after the broker was unreachable: live publications held back.
    held: Option<Vec<Arc<Publication>>>,
    /// Recoveries under way: a second loss while the first is still reading (a shard's connection
    /// lost twice) keeps the live publications held until the last of them is done.
    recovering: u32,
    /// More than [`HELD`] came while it recovered: its subscribers are told of a gap.
    overflowed: bool,
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

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<String, Channel>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds connection `conn` to `channel`, holding live publications back until
    /// [`Hub::recovered`] says its history has been delivered. True when it is the channel's
    /// first subscriber here.
    pub fn join(&self, channel: &str, conn: u64, mailbox: Mailbox, gap: Message) -> bool {
        let mut channels = self.channels();
        let entry = channels.entry(channel.to_owned()).or_default();
        let first = entry.subscribers.is_empty();
        let subscriber = Subscriber { mailbox, gap, held: Some(Vec::new()), last: None, lost: false };
        if entry.subscribers.insert(conn, subscriber).is_none() {
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
            if held.len() < HELD {
                held.push(publication);
            } else {
                held.clear();
                channel.overflowed = true;
                self.metrics.publications_dropped.inc();
            }
            return;
        }
        Self::fan_out(channel, publication, &self.metrics);
    }

    /// Gives a publication to each subscriber; each drops what it was given already (a recovery
    /// after a reconnect overlaps the live stream), so the channel itself drops nothing.
    fn fan_out(channel: &mut Channel, publication: Arc<Publication>, metrics: &Metrics) {
        if let Some(position) = &publication.position
            && newer(position, channel.last.as_ref())
        {
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
            channel.recovering += 1;
        }
    }

    /// Delivers what `channel` missed, then what was held back meanwhile, without repeats; when
    /// more was held back than [`HELD`], each subscriber's gap notice comes between the two.
    pub fn resume(&self, channel: &str, missed: Vec<Arc<Publication>>) {
        let mut channels = self.channels();
        let Some(channel) = channels.get_mut(channel) else { return };
        for publication in missed {
            Self::fan_out(channel, publication, &self.metrics);
        }
        channel.recovering = channel.recovering.saturating_sub(1);
        if channel.recovering > 0 {
            // Another recovery reads from an older point: the live ones wait for it.
            return;
        }
        let held = channel.held.take().unwrap_or_default();
        if std::mem::take(&mut channel.overflowed) {
            for subscriber in channel.subscribers.values_mut() {
                Self::lose(subscriber);
            }
        }
        for publication in held {
            Self::fan_out(channel, publication, &self.metrics);
        }
    }

    fn give(subscriber: &mut Subscriber, publication: &Arc<Publication>, metrics: &Metrics) {
        if let Some(held) = &mut subscriber.held {
            if subscriber.lost {
                metrics.publications_dropped.inc();
            } else if held.len() < HELD {
                held.push(publication.clone());
            } else {
                metrics.publications_dropped.inc_by(held.len() as u64 + 1);
                held.clear();
                subscriber.lost = true;
            }
            return;
        }
        if let Some(position) = &publication.position {
            if !newer(position, subscriber.last.as_ref()) {
                return;
            }
            if subscriber.last.as_ref().is_some_and(|last| last.epoch != position.epoch) {
                // Another history (Redis lost its data, or a promoted replica lacked the last
                // publications): what came between the two is unknown, so the gap notice first.
                subscriber.lost = true;
            }
            subscriber.last = Some(position.clone());
        }
        if subscriber.lost && !Self::tell(subscriber, &publication.channel) {
            metrics.publications_dropped.inc();
            return;
        }
        if !subscriber.mailbox.fits(publication)
            || subscriber.mailbox.tx.try_send(publication.clone()).is_err()
        {
            metrics.publications_dropped.inc();
            Self::lose(subscriber);
            return;
        }
        subscriber.mailbox.add(publication);
    }

    /// Marks a subscriber as lost: its connection asks for its gap notice once it has room.
    fn lose(subscriber: &mut Subscriber) {
        subscriber.lost = true;
        subscriber.mailbox.lost.store(true, Ordering::Release);
    }

    /// Puts a lost subscriber's gap notice in its mailbox, if there is room: true when it did.
    fn tell(subscriber: &mut Subscriber, channel: &str) -> bool {
        let notice = Arc::new(Publication::notice(channel, subscriber.gap.clone()));
        subscriber.mailbox.add(&notice);
        if subscriber.mailbox.tx.try_send(notice.clone()).is_err() {
            subscriber.mailbox.taken(&notice);
            subscriber.mailbox.lost.store(true, Ordering::Release);
            return false;
        }
        subscriber.lost = false;
        true
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
        if subscriber.lost {
            Self::lose(subscriber);
        }
        for publication in &held {
            Self::give(subscriber, publication, &self.metrics);
        }
    }

    /// Connection `conn`'s mailbox has room: the subscriptions among `channels` that lost
    /// publications get their gap notices now.
    pub fn tell_lost<'a>(&self, conn: u64, channels: impl Iterator<Item = &'a String>) {
        let mut all = self.channels();
        for channel in channels {
            if let Some(subscriber) = all.get_mut(channel).and_then(|c| c.subscribers.get_mut(&conn))
                && subscriber.lost
                && subscriber.held.is_none()
            {
                Self::tell(subscriber, channel);
            }
        }
    }

    /// Every channel with subscribers here, and the position to recover it from after the
    /// broker's connection was lost (`None`: all of its history; each subscriber drops what it
    /// has had).
    pub fn interest(&self) -> Vec<(String, Option<Position>)> {
        self.channels().iter().map(|(name, channel)| (name.clone(), channel.last.clone())).collect()
    }

    /// Where `channel` stood before this gateway's subscription to it was made, if nothing has
    /// arrived since: what to recover from should the broker's connection be lost before anything
    /// arrives (all of its history otherwise).
    pub fn baseline(&self, channel: &str, position: Position) {
        if let Some(channel) = self.channels().get_mut(channel)
            && channel.last.is_none()
        {
            channel.last = Some(position);
        }
    }

    /// Tells every subscriber of `channel` here that it missed what the history cannot give back.
    pub fn gap(&self, channel: &str) {
        let mut channels = self.channels();
        let Some(entry) = channels.get_mut(channel) else { return };
        for subscriber in entry.subscribers.values_mut() {
            if subscriber.held.is_some() {
                // Starting: told once it is live.
                subscriber.lost = true;
            } else if !Self::tell(subscriber, channel) {
                Self::lose(subscriber);
            }
        }
    }

    /// Whether a live `publication` skips positions after the newest delivered here (same epoch,
    /// not the next number): the broker lost some on the way, and they are to be read from the
    /// history before it is delivered.
    pub fn skips(&self, publication: &Publication) -> bool {
        let Some(position) = &publication.position else { return false };
        let channels = self.channels();
        let Some(last) = channels.get(&publication.channel).and_then(|c| c.last.as_ref()) else {
            return false;
        };
        last.epoch == position.epoch && position.n > last.n + 1
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

    /// A hub with one subscriber of "room" whose history is read, and what it receives.
    fn subscribed() -> (Hub, mpsc::Receiver<Arc<Publication>>) {
        let hub = Hub::new(Arc::new(Metrics::new()));
        let (tx, rx) = Mailbox::new();
        hub.join("room", 1, tx, gap());
        hub.recovered("room", 1, None);
        (hub, rx)
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
        let (a, mut rx_a) = Mailbox::new();
        let (b, mut rx_b) = Mailbox::new();
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
    fn a_publication_of_another_epoch_comes_after_a_gap_notice() {
        let (hub, mut rx) = subscribed();
        hub.deliver(publication(1, "one"));
        let mut other = (*publication(1, "another history")).clone();
        other.position = Some(Position { n: 1, epoch: "f".into() });
        hub.deliver(Arc::new(other));
        hub.deliver(publication(2, "old history again"));
        assert_eq!(texts(&mut rx), ["one", "gap", "another history", "gap", "old history again"]);
    }

    #[test]
    fn a_live_publication_past_the_next_position_is_a_skip() {
        let hub = Hub::new(Arc::new(Metrics::new()));
        let (tx, _rx) = Mailbox::new();
        hub.join("room", 1, tx, gap());
        hub.recovered("room", 1, None);
        assert!(!hub.skips(&publication(5, "first")), "nothing delivered yet: no skip to see");
        hub.deliver(publication(5, "first"));
        assert!(!hub.skips(&publication(6, "next")));
        assert!(hub.skips(&publication(8, "two missing")));
        let mut other = (*publication(9, "another epoch")).clone();
        other.position = Some(Position { n: 9, epoch: "f".into() });
        assert!(!hub.skips(&other), "another epoch is a gap notice, not a recovery");
    }

    #[test]
    fn a_second_loss_during_a_recovery_holds_the_live_ones_until_both_recoveries_are_done() {
        let (hub, mut rx) = subscribed();
        hub.deliver(publication(1, "one"));
        hub.suspend("room");
        hub.suspend("room");
        // The first recovery ends; publication 3 arrives live but 2 was lost the second time.
        hub.resume("room", Vec::new());
        hub.deliver(publication(3, "three"));
        assert_eq!(texts(&mut rx), ["one"], "still held: the second recovery reads from 1");
        hub.resume("room", vec![publication(2, "two")]);
        assert_eq!(texts(&mut rx), ["two", "three"]);
    }

    #[test]
    fn a_recovering_subscriber_gets_what_was_held_back_after_its_history_without_repeats() {
        let hub = Hub::new(Arc::new(Metrics::new()));
        let (tx, mut rx) = Mailbox::new();
        hub.join("room", 1, tx.clone(), gap());
        hub.deliver(publication(5, "live 5"));
        hub.deliver(publication(6, "live 6"));
        assert!(texts(&mut rx).is_empty(), "held back while the history is read");
        // The history (delivered by the recovery itself) reached 5.
        tx.tx.try_send(publication(4, "history 4")).unwrap();
        tx.tx.try_send(publication(5, "history 5")).unwrap();
        hub.recovered("room", 1, Some(Position { n: 5, epoch: "e".into() }));
        hub.deliver(publication(7, "live 7"));
        assert_eq!(texts(&mut rx), ["history 4", "history 5", "live 6", "live 7"]);
    }

    #[test]
    fn a_channel_recovering_after_a_reconnect_keeps_its_order() {
        let (hub, mut rx) = subscribed();
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
    fn a_channel_that_held_back_too_much_while_recovering_tells_of_the_gap_before_what_follows() {
        let (hub, mut rx) = subscribed();
        hub.deliver(publication(1, "one"));
        hub.suspend("room");
        for n in 2..=HELD as u64 + 2 {
            hub.deliver(publication(n, "dropped or held"));
        }
        hub.deliver(publication(HELD as u64 + 3, "held"));
        hub.resume("room", vec![publication(2, "missed")]);
        let got = texts(&mut rx);
        assert_eq!(got[..3], ["one", "missed", "gap"], "{got:?}");
        assert_eq!(got.last().map(String::as_str), Some("held"));
    }

    #[test]
    fn a_full_mailbox_drops_and_counts() {
        let metrics = Arc::new(Metrics::new());
        let hub = Hub::new(metrics.clone());
        let (tx, mut rx) = mpsc::channel(2);
        let mailbox = Mailbox { tx, lost: Arc::new(AtomicBool::new(false)), bytes: Default::default() };
        hub.join("room", 1, mailbox.clone(), gap());
        hub.recovered("room", 1, None);
        for n in 1..=5 {
            hub.deliver(publication(n, "x"));
        }
        assert_eq!(texts(&mut rx), ["x", "x"]);
        assert_eq!(metrics.publications_dropped.get(), 3);
        // Its connection has room again and asks: the gap notice comes before anything newer.
        assert!(mailbox.lost.swap(false, Ordering::AcqRel));
        hub.tell_lost(1, ["room".to_owned()].iter());
        hub.deliver(publication(6, "six"));
        assert_eq!(texts(&mut rx), ["gap", "six"]);
    }

    #[test]
    fn a_mailbox_holds_at_most_its_bytes_and_an_empty_one_takes_any_publication() {
        let metrics = Arc::new(Metrics::new());
        let hub = Hub::new(metrics.clone());
        let (mailbox, mut rx) = Mailbox::new();
        hub.join("room", 1, mailbox.clone(), gap());
        hub.recovered("room", 1, None);
        let big = "x".repeat(MAILBOX_BYTES / 2 + 1);
        for n in 1..=3 {
            hub.deliver(publication(n, &big));
        }
        // The first fits the empty mailbox; the second would take it past its bytes, so the
        // subscriber is lost; its gap notice goes in before the third, which does not fit either.
        let held = mailbox.bytes.load(Ordering::Relaxed);
        assert_eq!(texts(&mut rx), [big.as_str(), "gap"]);
        assert_eq!(metrics.publications_dropped.get(), 2);
        assert_eq!(held, big.len() + "gap".len(), "what is in it, until its connection reads it");
    }

    #[test]
    fn a_lost_subscriber_is_told_before_the_next_publication_even_unasked() {
        let hub = Hub::new(Arc::new(Metrics::new()));
        let (tx, mut rx) = mpsc::channel(2);
        let mailbox = Mailbox { tx, lost: Arc::new(AtomicBool::new(false)), bytes: Default::default() };
        hub.join("room", 1, mailbox, gap());
        hub.recovered("room", 1, None);
        for (n, text) in [(1, "one"), (2, "two"), (3, "three")] {
            hub.deliver(publication(n, text));
        }
        assert_eq!(texts(&mut rx), ["one", "two"]);
        hub.deliver(publication(4, "four"));
        assert_eq!(texts(&mut rx), ["gap", "four"]);
    }

    #[test]
    fn a_starting_subscriber_holds_a_bounded_number_then_is_told_of_the_gap() {
        let metrics = Arc::new(Metrics::new());
        let hub = Hub::new(metrics.clone());
        let (tx, mut rx) = Mailbox::new();
        hub.join("room", 1, tx, gap());
        for n in 1..=HELD as u64 + 10 {
            hub.deliver(publication(n, "held"));
        }
        assert_eq!(metrics.publications_dropped.get(), HELD as u64 + 10);
        hub.recovered("room", 1, None);
        hub.deliver(publication(HELD as u64 + 11, "live"));
        assert_eq!(texts(&mut rx), ["gap", "live"]);
    }
}
