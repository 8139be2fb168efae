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
//!
//! A Redis Cluster's failover can make a channel's history diverge: a dying primary delivered a
//! publication it never replicated (its publisher was refused), and the promoted replica numbers
//! its next one the same. Positions carry the publication's tag, so the second is told from a
//! repeat of the first ([`seen`]): its subscribers get their gap notice, then it.
//!
//! [`mailbox`] is a connection's queue, [`give`] what one subscriber is given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio_tungstenite::tungstenite::Message;
use tracing::info;

use super::{Position, Publication};
use crate::channels::metrics::Metrics;

mod give;
mod mailbox;
mod seen;
#[cfg(test)]
mod tests;

use give::Subscriber;
pub use mailbox::{MAILBOX, MAILBOX_BYTES, Mailbox};

/// How many live publications a starting subscriber, or a channel recovering after the broker's
/// connection came back, holds back before it gives up on them (and tells of a gap instead).
pub const HELD: usize = 1024;

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
    /// What was delivered here lately: a repeat is told from a divergence by it.
    seen: seen::Seen,
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
        let subscriber = Subscriber::new(mailbox, gap);
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
    /// after a reconnect overlaps the live stream), so the channel itself drops nothing. One at a
    /// position where another was delivered here means the history diverged there: where to
    /// recover from is the new one, and the subscribers given the other are told of a gap. A late
    /// copy of one the divergence replaced goes to nobody.
    fn fan_out(channel: &mut Channel, publication: Arc<Publication>, metrics: &Metrics) {
        if let Some(position) = &publication.position {
            if channel.seen.replaced(position) {
                return;
            }
            if channel.seen.delivered(position) {
                info!(channel = %crate::logging::clip(&publication.channel, 64), n = position.n, "the channel's history diverged (a failover); its subscribers are told of a gap");
                metrics.channel_divergences.inc();
                channel.last = Some(position.clone());
            } else if newer(position, channel.last.as_ref()) {
                channel.last = Some(position.clone());
            }
        }
        for subscriber in channel.subscribers.values_mut() {
            subscriber.give(&publication, &channel.seen, metrics);
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
                subscriber.lose();
            }
        }
        for publication in held {
            Self::fan_out(channel, publication, &self.metrics);
        }
    }

    /// Ends a subscriber's recovery: `delivered` is the newest position its history gave it; the
    /// publications held back meanwhile that come after it follow, and it is live.
    pub fn recovered(&self, channel: &str, conn: u64, delivered: Option<Position>) {
        let mut channels = self.channels();
        let Some(channel) = channels.get_mut(channel) else { return };
        let Some(subscriber) = channel.subscribers.get_mut(&conn) else { return };
        subscriber.last = delivered;
        let held = subscriber.held.take().unwrap_or_default();
        if subscriber.lost {
            subscriber.lose();
        }
        // Those of a history that diverged while it started are not its history's.
        let alive = |p: &&Arc<Publication>| p.position.as_ref().is_none_or(|p| !channel.seen.replaced(p));
        for publication in held.iter().filter(alive) {
            subscriber.give(publication, &channel.seen, &self.metrics);
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
                subscriber.tell(channel);
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
            } else if !subscriber.tell(channel) {
                subscriber.lose();
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
