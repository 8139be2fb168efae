//! The in-memory broker: one process's channels, their history, delivery straight to the hub.
//!
//! A publication is numbered and handed to the hub in one step under the broker's lock, so the
//! hub sees each channel's publications in the order of their positions however many publish at
//! once. It forgets as the retention says without being asked: a sweep drops what is older than
//! `--history-ttl` from every channel, and a channel with no history and no recent item ids goes
//! (a client coming back with one of its positions is told of a gap). At most [`MAX_CHANNELS`] are
//! kept: a new one beyond that evicts the one published to longest ago (counted in
//! `channels_evicted`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use sidestream_events::publish::{Action, Item, around_id};
use tokio::time::Instant;

use super::hub::Hub;
use super::{Broker, BrokerError, History, Payload, Position, Publication, Retention, message, new_epoch};
use crate::channels::metrics::Metrics;
use crate::drain::Tasks;

/// How long an item id is remembered, to drop a repeated publish (as Pushpin's `id_cache_ttl`).
pub const DEDUPE: Duration = Duration::from_secs(60);

/// The most channels the broker keeps.
pub const MAX_CHANNELS: usize = 100_000;

/// The longest wait between two sweeps.
const SWEEP: Duration = Duration::from_secs(10);

struct Channel {
    epoch: String,
    /// The number of the channel's newest publication.
    last: u64,
    history: VecDeque<(Instant, Arc<Publication>)>,
    /// Item ids published recently, and when.
    seen: HashMap<String, Instant>,
    /// When it was last published to.
    touched: Instant,
}

type Channels = HashMap<String, Channel>;

pub struct MemoryBroker {
    channels: Arc<Mutex<Channels>>,
    retention: Retention,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    max_channels: usize,
}

fn lock(channels: &Mutex<Channels>) -> MutexGuard<'_, Channels> {
    channels.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryBroker {
    /// The broker, with its sweep running among `tasks` for as long as it lives.
    pub fn new(hub: Arc<Hub>, retention: Retention, tasks: &Tasks) -> Self {
        Self::bounded(hub, retention, MAX_CHANNELS, tasks)
    }

    /// The same with another bound on channels (for tests).
    pub fn bounded(hub: Arc<Hub>, retention: Retention, max_channels: usize, tasks: &Tasks) -> Self {
        let metrics = hub.metrics().clone();
        let channels = Arc::new(Mutex::new(HashMap::new()));
        tasks.spawn(sweep(Arc::downgrade(&channels), retention));
        MemoryBroker { channels, retention, hub, metrics, max_channels: max_channels.max(1) }
    }

    fn channels(&self) -> MutexGuard<'_, Channels> {
        lock(&self.channels)
    }

    /// Drops what is older than the retention allows; true when nothing is left to keep.
    fn trim(channel: &mut Channel, retention: Retention, now: Instant) -> bool {
        while channel.history.len() > retention.size
            || channel.history.front().is_some_and(|(at, _)| now.duration_since(*at) > retention.ttl)
        {
            channel.history.pop_front();
        }
        channel.seen.retain(|_, at| now.duration_since(*at) <= DEDUPE);
        channel.history.is_empty() && channel.seen.is_empty()
    }

    /// Room for one more channel: the empty ones go first, then the one published to longest ago.
    fn make_room(&self, channels: &mut Channels, now: Instant) {
        if channels.len() < self.max_channels {
            return;
        }
        channels.retain(|_, channel| !Self::trim(channel, self.retention, now));
        while channels.len() >= self.max_channels {
            let Some(oldest) = channels.iter().min_by_key(|(_, c)| c.touched).map(|(name, _)| name.clone())
            else {
                return;
            };
            channels.remove(&oldest);
            self.metrics.channels_evicted.inc();
        }
    }

    fn publication(item: &Item, channel: &mut Channel, now: Instant) -> Option<Arc<Publication>> {
        match &item.action {
            None => None,
            Some(Action::Close { code, reason }) => Some(Arc::new(Publication {
                channel: item.channel.clone(),
                position: None,
                payload: Payload::Close { code: *code, reason: reason.clone() },
                meta: item.meta.clone(),
            })),
            Some(Action::Send { kind, content, id_key }) => {
                channel.last += 1;
                let position = Position::at(channel.last, &channel.epoch);
                let content = match id_key.as_deref().and_then(|key| around_id(content, key)) {
                    Some((head, tail)) => format!("{head}\"{position}\"{tail}").into_bytes(),
                    None => content.clone(),
                };
                let publication = Arc::new(Publication {
                    channel: item.channel.clone(),
                    position: Some(position),
                    payload: Payload::Message(message(*kind, content)),
                    meta: item.meta.clone(),
                });
                channel.history.push_back((now, publication.clone()));
                Some(publication)
            }
        }
    }
}

/// Trims every channel now and then, and forgets those with nothing left, until the broker goes.
async fn sweep(channels: Weak<Mutex<Channels>>, retention: Retention) {
    let every = retention.ttl.clamp(Duration::from_millis(100), SWEEP);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(channels) = channels.upgrade() else { return };
        let now = Instant::now();
        lock(&channels).retain(|_, channel| !MemoryBroker::trim(channel, retention, now));
    }
}

impl Broker for MemoryBroker {
    async fn publish(&self, item: &Item) -> Result<Option<Position>, BrokerError> {
        let now = Instant::now();
        let mut channels = self.channels();
        if !channels.contains_key(&item.channel) {
            self.make_room(&mut channels, now);
        }
        let channel = channels.entry(item.channel.clone()).or_insert_with(|| Channel {
            epoch: new_epoch(),
            last: 0,
            history: VecDeque::new(),
            seen: HashMap::new(),
            touched: now,
        });
        channel.touched = now;
        Self::trim(channel, self.retention, now);
        if let Some(id) = &item.id
            && channel.seen.insert(id.clone(), now).is_some()
        {
            return Ok(None);
        }
        let Some(publication) = Self::publication(item, channel, now) else { return Ok(None) };
        Self::trim(channel, self.retention, now);
        let position = publication.position.clone();
        // Still under the lock: the hub gets the channel's publications in their order.
        self.hub.deliver(publication);
        Ok(position)
    }

    async fn history(&self, channel: &str, since: Option<&Position>) -> Result<History, BrokerError> {
        let now = Instant::now();
        let mut channels = self.channels();
        let Some(channel) = channels.get_mut(channel) else {
            // Nothing published yet: all of the history is nothing, any position is another's.
            return Ok(if since.is_none() { History::Since(Vec::new()) } else { History::Gap });
        };
        Self::trim(channel, self.retention, now);
        let all = channel.history.iter().map(|(_, p)| p.clone());
        let Some(since) = since else { return Ok(History::Since(all.collect())) };
        if channel.epoch != since.epoch || since.n > channel.last {
            return Ok(History::Gap);
        }
        let oldest =
            channel.history.front().and_then(|(_, p)| p.position.as_ref()).map_or(channel.last + 1, |p| p.n);
        if since.n + 1 < oldest {
            return Ok(History::Gap);
        }
        let missed = all.filter(|p| p.position.as_ref().is_some_and(|pos| pos.n > since.n)).collect();
        Ok(History::Since(missed))
    }

    async fn position(&self, channel: &str) -> Result<Option<Position>, BrokerError> {
        let channels = self.channels();
        Ok(channels.get(channel).filter(|c| c.last > 0).map(|c| Position::at(c.last, &c.epoch)))
    }

    async fn subscribe(&self, _: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    fn unsubscribe(&self, _: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use sidestream_events::control::MessageKind;

    fn item(channel: &str, text: &str) -> Item {
        Item {
            channel: channel.into(),
            id: None,
            prev_id: None,
            action: Some(Action::Send { kind: MessageKind::Text, content: text.into(), id_key: None }),
            meta: Vec::new(),
        }
    }

    #[tokio::test]
    async fn idle_channels_are_forgotten_and_their_number_is_bounded() {
        let metrics = Arc::new(Metrics::default());
        let hub = Arc::new(Hub::new(metrics.clone()));
        let retention = Retention { size: 10, ttl: Duration::from_millis(200) };
        let broker = MemoryBroker::bounded(hub, retention, 3, &Tasks::default());
        for channel in ["a", "b", "c", "d"] {
            broker.publish(&item(channel, "x")).await.unwrap();
            // Distinct times of publication, so that "oldest" is one channel.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(broker.channels().len(), 3, "one was evicted for the fourth");
        assert_eq!(metrics.channels_evicted.get(), 1);
        assert_eq!(broker.position("a").await.unwrap(), None, "the oldest went");
        let b = broker.position("b").await.unwrap().unwrap();
        // Nothing is published or read: the sweep alone empties and removes them.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !broker.channels().is_empty() {
            assert!(Instant::now() < deadline, "the idle channels were never forgotten");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(broker.history("b", Some(&b)).await.unwrap(), History::Gap, "told, not silent");
    }
}
