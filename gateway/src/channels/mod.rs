//! Channels: a connection joins a channel when its app subscribes it (GRIP `subscribe`), and
//! whatever is published to the channel reaches every connection in it, on every replica.
//!
//! [`hub`] holds this gateway's own subscribers and fans a publication out to them; a broker carries
//! publications between gateways and keeps each channel's recent history: [`memory`] for one
//! process (the default), [`redis`] across replicas (`--redis`). Both implement [`Broker`], and
//! one test suite runs against both. [`filter`] is Pushpin's publish filters.

pub mod filter;
pub mod hub;
pub mod memory;
pub mod metrics;
pub mod redis;
pub mod subscriber;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sidestream_events::control::MessageKind;
use sidestream_events::publish::Item;
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// Where a publication stands in its channel's history: its number, the history's epoch (a
/// history that was lost and begun again has a new one, so old positions are not mistaken for
/// new ones) and, on Redis, the publication's own tag: a random word that tells two publications
/// at one position apart, when a Redis Cluster's promoted replica numbered a publication again
/// where its dead primary had delivered one it never replicated (see [`Position::diverges`]).
/// Written `n.epoch` or `n.epoch.tag`, the form clients keep and send back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    pub n: u64,
    pub epoch: String,
    pub tag: Option<String>,
}

impl Position {
    /// A position without a tag (the in-memory broker's, or a client's of the older form).
    pub fn at(n: u64, epoch: &str) -> Self {
        Position { n, epoch: epoch.to_owned(), tag: None }
    }

    /// Whether `self` and `other` are the same position of one history holding two different
    /// publications: the history diverged there, and whoever was given one missed the other.
    pub fn diverges(&self, other: &Position) -> bool {
        self.n == other.n
            && self.epoch == other.epoch
            && matches!((&self.tag, &other.tag), (Some(a), Some(b)) if a != b)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.n, self.epoch)?;
        match &self.tag {
            Some(tag) => write!(f, ".{tag}"),
            None => Ok(()),
        }
    }
}

/// A word of a position: 1 to 16 ASCII letters and digits.
fn word(value: &str) -> Result<String, ()> {
    let valid = !value.is_empty() && value.len() <= 16 && value.bytes().all(|b| b.is_ascii_alphanumeric());
    if valid { Ok(value.to_owned()) } else { Err(()) }
}

impl FromStr for Position {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        let (n, rest) = value.split_once('.').ok_or(())?;
        let (epoch, tag) = match rest.split_once('.') {
            Some((epoch, tag)) => (word(epoch)?, Some(word(tag)?)),
            None => (word(rest)?, None),
        };
        Ok(Position { n: n.parse().map_err(|_| ())?, epoch, tag })
    }
}

/// A new random epoch.
pub fn new_epoch() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..8).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])).collect()
}

/// What is published: a message for every subscriber, or a close of their connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    Message(Message),
    Close { code: Option<u16>, reason: String },
}

/// One publication on its way to subscribers; shared by all of them (one allocation however many).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    pub channel: String,
    /// Messages are numbered in the channel's history; closes are not.
    pub position: Option<Position>,
    pub payload: Payload,
    /// The publisher's meta values, for the subscriptions' [`filter`]s.
    pub meta: Vec<(String, String)>,
}

impl Publication {
    /// Bytes of its message (a close has none): what it costs a mailbox that holds it.
    pub fn size(&self) -> usize {
        match &self.payload {
            Payload::Message(message) => message.len(),
            Payload::Close { .. } => 0,
        }
    }

    /// A message for the subscribers of one connection only (a gap notice), outside the history.
    pub fn notice(channel: &str, message: Message) -> Self {
        Publication {
            channel: channel.to_owned(),
            position: None,
            payload: Payload::Message(message),
            meta: Vec::new(),
        }
    }
}

/// A message of `kind` with `content`, as it goes to the client.
pub fn message(kind: MessageKind, content: Vec<u8>) -> Message {
    let bytes = Bytes::from(content);
    match kind {
        MessageKind::Text => match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Message::text(text),
            Err(_) => Message::binary(bytes),
        },
        MessageKind::Binary => Message::binary(bytes),
        MessageKind::Ping => Message::Ping(bytes),
        MessageKind::Pong => Message::Pong(bytes),
    }
}

/// What a channel's history holds after a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum History {
    /// Everything after it, in order (possibly nothing).
    Since(Vec<Arc<Publication>>),
    /// The history no longer reaches back to it (or it is of another epoch).
    Gap,
}

/// Why a broker could not do what it was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerError(pub String);

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BrokerError {}

/// How much history each channel keeps: the last `size` publications, none older than `ttl`.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub size: usize,
    pub ttl: Duration,
}

/// What a broker does. Publications reach this gateway's subscribers through its [`hub::Hub`].
pub trait Broker: Send + Sync {
    /// Publishes one item: its position when it is a message, `None` for a close (or a repeat of
    /// an item id published within the last minute, which is dropped).
    fn publish(&self, item: &Item) -> impl Future<Output = Result<Option<Position>, BrokerError>> + Send;

    /// What `channel` published after `since`; with `None`, all its history holds.
    fn history(
        &self,
        channel: &str,
        since: Option<&Position>,
    ) -> impl Future<Output = Result<History, BrokerError>> + Send;

    /// Where `channel` stands: its newest publication's position (`None` before the first).
    fn position(&self, channel: &str) -> impl Future<Output = Result<Option<Position>, BrokerError>> + Send;

    /// This gateway wants `channel`'s publications (it has a subscriber for it); done once the
    /// broker will deliver them.
    fn subscribe(&self, channel: &str) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// This gateway no longer has a subscriber for `channel`.
    fn unsubscribe(&self, channel: &str);
}

/// This gateway's channels: its own subscribers, and the broker between gateways.
pub struct Channels {
    pub hub: Arc<hub::Hub>,
    pub broker: Arc<AnyBroker>,
}

impl Channels {
    /// The in-memory broker, or Redis when the gateway has a connection to one (`--redis`), whose
    /// publishes wait for `wait_replicas` replicas (`--redis-wait-replicas`).
    pub fn new(
        (retention, wait_replicas): (Retention, u32),
        redis: Option<crate::redis_conn::Commands>,
        metrics: Arc<metrics::Metrics>,
        tasks: &crate::drain::Tasks,
    ) -> anyhow::Result<Self> {
        let hub = Arc::new(hub::Hub::new(metrics.clone()));
        let broker = match redis {
            Some(commands) => AnyBroker::Redis(Box::new(redis::RedisBroker::new(
                commands,
                hub.clone(),
                (retention, wait_replicas),
                metrics,
                tasks,
            )?)),
            None => AnyBroker::Memory(memory::MemoryBroker::new(hub.clone(), retention, tasks)),
        };
        Ok(Channels { hub, broker: Arc::new(broker) })
    }
}

/// The broker this gateway runs with, chosen at start-up.
pub enum AnyBroker {
    Memory(memory::MemoryBroker),
    /// Boxed: the Redis broker carries its connection state, the memory one a map.
    Redis(Box<redis::RedisBroker>),
}

impl Broker for AnyBroker {
    async fn publish(&self, item: &Item) -> Result<Option<Position>, BrokerError> {
        match self {
            AnyBroker::Memory(b) => b.publish(item).await,
            AnyBroker::Redis(b) => b.publish(item).await,
        }
    }

    async fn history(&self, channel: &str, since: Option<&Position>) -> Result<History, BrokerError> {
        match self {
            AnyBroker::Memory(b) => b.history(channel, since).await,
            AnyBroker::Redis(b) => b.history(channel, since).await,
        }
    }

    async fn position(&self, channel: &str) -> Result<Option<Position>, BrokerError> {
        match self {
            AnyBroker::Memory(b) => b.position(channel).await,
            AnyBroker::Redis(b) => b.position(channel).await,
        }
    }

    async fn subscribe(&self, channel: &str) -> Result<(), BrokerError> {
        match self {
            AnyBroker::Memory(b) => b.subscribe(channel).await,
            AnyBroker::Redis(b) => b.subscribe(channel).await,
        }
    }

    fn unsubscribe(&self, channel: &str) {
        match self {
            AnyBroker::Memory(b) => b.unsubscribe(channel),
            AnyBroker::Redis(b) => b.unsubscribe(channel),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_back_as_written() {
        let p = Position::at(42, "ab12cd34");
        assert_eq!(p.to_string(), "42.ab12cd34");
        assert_eq!("42.ab12cd34".parse::<Position>(), Ok(p.clone()));
        let tagged = Position { tag: Some("x7".into()), ..p.clone() };
        assert_eq!(tagged.to_string(), "42.ab12cd34.x7");
        assert_eq!("42.ab12cd34.x7".parse::<Position>(), Ok(tagged.clone()));
        for bad in
            ["", "42", ".ab", "x.ab", "42.", "42.a-b", "-1.ab", "1.abcdefghijklmnopq", "1.ab.", "1.ab.c.d"]
        {
            assert!(bad.parse::<Position>().is_err(), "{bad}");
        }
        let other = Position { tag: Some("y8".into()), ..p.clone() };
        assert!(tagged.diverges(&other) && !tagged.diverges(&tagged), "one position, two publications");
        assert!(!tagged.diverges(&p), "an untagged position is not told apart");
        assert!(!tagged.diverges(&Position { n: 43, ..other }));
        assert_eq!(new_epoch().len(), 8);
        assert_ne!(new_epoch(), new_epoch());
    }
}
