//! The in-memory broker: one process's channels, their history, delivery straight to the hub,
//! in the order of the positions (numbered and handed over under one lock).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sidestream_events::publish::{Action, Item, around_id};
use tokio::time::Instant;

use super::hub::Hub;
use super::{Broker, BrokerError, History, Payload, Position, Publication, Retention, message, new_epoch};

/// How long an item id is remembered, to drop a repeated publish (as Pushpin's `id_cache_ttl`).
pub const DEDUPE: Duration = Duration::from_secs(60);

struct Channel {
    epoch: String,
    /// The number of the channel's newest publication.
    last: u64,
    history: VecDeque<(Instant, Arc<Publication>)>,
    /// Item ids published recently, and when.
    seen: HashMap<String, Instant>,
}

pub struct MemoryBroker {
    channels: Mutex<HashMap<String, Channel>>,
    retention: Retention,
    hub: Arc<Hub>,
}

impl MemoryBroker {
    pub fn new(hub: Arc<Hub>, retention: Retention) -> Self {
        MemoryBroker { channels: Mutex::new(HashMap::new()), retention, hub }
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<String, Channel>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops what is older than the retention allows.
    fn trim(channel: &mut Channel, retention: Retention, now: Instant) {
        while channel.history.len() > retention.size
            || channel.history.front().is_some_and(|(at, _)| now.duration_since(*at) > retention.ttl)
        {
            channel.history.pop_front();
        }
        channel.seen.retain(|_, at| now.duration_since(*at) <= DEDUPE);
    }
}

impl Broker for MemoryBroker {
    async fn publish(&self, item: &Item) -> Result<Option<Position>, BrokerError> {
        let now = Instant::now();
        // Held until the publication is with the hub: numbering and handing over are one step per
        // channel, so the hub never sees n+1 before n (and drops n as old) when two publish at once.
        let mut channels = self.channels();
        let publication = {
            let channel = channels.entry(item.channel.clone()).or_insert_with(|| Channel {
                epoch: new_epoch(),
                last: 0,
                history: VecDeque::new(),
                seen: HashMap::new(),
            });
            Self::trim(channel, self.retention, now);
            if let Some(id) = &item.id
                && channel.seen.insert(id.clone(), now).is_some()
            {
                return Ok(None);
            }
            match &item.action {
                None => return Ok(None),
                Some(Action::Close { code, reason }) => Arc::new(Publication {
                    channel: item.channel.clone(),
                    position: None,
                    payload: Payload::Close { code: *code, reason: reason.clone() },
                    meta: item.meta.clone(),
                }),
                Some(Action::Send { kind, content, id_key }) => {
                    channel.last += 1;
                    let position = Position { n: channel.last, epoch: channel.epoch.clone() };
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
                    Self::trim(channel, self.retention, now);
                    publication
                }
            }
        };
        let position = publication.position.clone();
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
        Ok(channels
            .get(channel)
            .filter(|c| c.last > 0)
            .map(|c| Position { n: c.last, epoch: c.epoch.clone() }))
    }

    async fn subscribe(&self, _: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    fn unsubscribe(&self, _: &str) {}
}
