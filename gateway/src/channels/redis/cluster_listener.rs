//! The Redis Cluster broker's pub/sub: sharded pub/sub (`SSUBSCRIBE`) on the primary that owns
//! each channel's slot, through redis-rs's cluster connection (RESP3: the publications arrive as
//! pushes on one queue, whichever primary sends them).
//!
//! redis-rs subscribes again by itself when it reconnects to a node or reads a new slot map; what
//! it cannot know is what was published meanwhile. So whenever a connection to a node is lost
//! (its `Disconnection` push), or a node drops a subscription itself (a `sunsubscribe` this
//! gateway did not ask for: the slot moved, or the node became a replica in a failover), each
//! channel concerned is held back, subscribed again (confirmed by the slot's current owner, retried
//! until a shard that is down comes back or its replica is promoted) and recovered from its
//! history: what a single Redis's reconnect does, per channel. And when redis-rs moves a
//! subscription by itself (it read a new slot map after a failover, and subscribed again on the
//! new owner: a `ssubscribe` confirmation this gateway did not ask for), what the old owner did not
//! deliver meanwhile is recovered the same way.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::redis::cluster_async::ClusterConnection;
use ::redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::listener::{Requests, Subscribe, recover};
use super::{Reader, channel_of, parse_payload, topic};
use crate::channels::hub::Hub;
use crate::channels::metrics::Metrics;
use crate::drain::Tasks;
use crate::redis_conn::{COMMAND_TIMEOUT, MAX_RECONNECT_WAIT};

/// What the listener works with.
pub(in crate::channels) struct Parts {
    pub conn: ClusterConnection,
    pub pushes: mpsc::UnboundedReceiver<PushInfo>,
    pub hub: Arc<Hub>,
    pub reader: Reader,
    pub metrics: Arc<Metrics>,
    /// Confirmations this gateway's own `SSUBSCRIBE`s are still owed, by channel: any other is
    /// redis-rs moving a subscription.
    pub asked: Asked,
    /// The gateway's background tasks, where recoveries run.
    pub tasks: Tasks,
}

/// See [`Parts::asked`].
#[derive(Clone, Default)]
pub(in crate::channels) struct Asked(Arc<Mutex<HashMap<String, u32>>>);

impl Asked {
    fn add(&self, channel: &str) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner).entry(channel.to_owned()).or_default() += 1;
    }

    /// One confirmation of `channel` taken: true when it was one of this gateway's own.
    fn take(&self, channel: &str) -> bool {
        let mut asked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match asked.get_mut(channel) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            Some(_) => {
                asked.remove(channel);
                true
            }
            None => false,
        }
    }

    /// An `SSUBSCRIBE` of this gateway that failed: no confirmation comes for it.
    fn failed(&self, channel: &str) {
        self.take(channel);
    }
}

/// `SSUBSCRIBE`s `channel`, within [`COMMAND_TIMEOUT`], owed its confirmation.
async fn ssubscribe(conn: &mut ClusterConnection, asked: &Asked, channel: &str) -> Result<(), String> {
    asked.add(channel);
    let result = match tokio::time::timeout(COMMAND_TIMEOUT, conn.ssubscribe(topic(channel))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no confirmation in time".to_owned()),
    };
    if result.is_err() {
        asked.failed(channel);
    }
    result
}

/// Ends the watcher with the listener.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves the broker's subscriptions until the broker is gone.
pub(in crate::channels) async fn listen(
    mut parts: Parts,
    mut requests: Requests,
    connected: Arc<AtomicBool>,
) {
    let mut subscribed: HashSet<String> = HashSet::new();
    connected.store(true, Ordering::Relaxed);
    parts.metrics.broker_connected.set(1);
    let (stuck_tx, mut stuck) = mpsc::channel(64);
    // Among the drain's tasks, so its stop waits for the watcher too; and ended with this listener,
    // its owner, when the broker goes first.
    let watcher = parts.tasks.spawn(super::watch::watch(parts.hub.clone(), parts.reader.clone(), stuck_tx));
    let _stop = AbortOnDrop(watcher);
    loop {
        tokio::select! {
            channel = stuck.recv() => {
                let Some(channel) = channel else { continue };
                if subscribed.contains(&channel) && parts.hub.has(&channel) {
                    warn!(channel = %crate::logging::clip(&channel, 64), "a channel's history moved on and nothing arrived here; subscribing it again");
                    parts.metrics.broker_reconnects.inc();
                    parts.resync(&channel);
                }
            }
            push = parts.pushes.recv() => {
                let Some(push) = push else { return };
                parts.pushed(push, &subscribed);
            }
            request = requests.subscribes.recv() => {
                let Some(Subscribe(channel, before, done)) = request else { return };
                if !parts.hub.has(&channel) || subscribed.contains(&channel) {
                    let _ = done.send(());
                    continue;
                }
                subscribed.insert(channel.clone());
                let mut conn = parts.conn.clone();
                match ssubscribe(&mut conn, &parts.asked, &channel).await {
                    Ok(()) => {
                        if let Some(before) = before {
                            parts.hub.baseline(&channel, before);
                        }
                        let _ = done.send(());
                    }
                    // Its subscriber is told of a gap (`done` goes unanswered); the channel is
                    // subscribed again once its shard answers, and recovered from where it stood.
                    _ => {
                        if let Some(before) = before {
                            parts.hub.baseline(&channel, before);
                        }
                        parts.resync(&channel);
                    }
                }
            }
            () = requests.unsubscribes.notify.notified() => {
                for channel in requests.unsubscribes.take() {
                    if parts.hub.has(&channel) || !subscribed.remove(&channel) {
                        continue;
                    }
                    // A shard that is down has dropped the subscription anyway.
                    let _ = tokio::time::timeout(COMMAND_TIMEOUT, parts.conn.sunsubscribe(topic(&channel))).await;
                }
            }
        }
    }
}

impl Parts {
    /// One push from the cluster: a publication, or news that subscriptions may have lapsed.
    fn pushed(&self, push: PushInfo, subscribed: &HashSet<String>) {
        match push.kind {
            PushKind::SMessage => {
                let mut data = push.data.into_iter();
                let (Some(Value::BulkString(name)), Some(Value::BulkString(payload))) =
                    (data.next(), data.next())
                else {
                    return;
                };
                let Some(channel) = std::str::from_utf8(&name).ok().and_then(channel_of) else { return };
                if let Some(publication) = parse_payload(channel, &payload) {
                    if self.hub.skips(&publication) {
                        // A subscription moved between nodes without a word (a failover): what
                        // the old node did not deliver is in the history; this one waits for it.
                        info!(channel = %crate::logging::clip(channel, 64), "publications skipped on a Redis Cluster subscription; recovering");
                        self.metrics.broker_reconnects.inc();
                        self.recover(channel);
                    }
                    self.hub.deliver(Arc::new(publication));
                }
            }
            PushKind::Disconnection => {
                // Which node is not told: every channel is subscribed again and recovered (a
                // channel whose node is still there loses nothing and reads a short history).
                warn!(channels = subscribed.len(), "lost a Redis Cluster node's connection; recovering");
                self.metrics.broker_reconnects.inc();
                for channel in subscribed {
                    self.resync(channel);
                }
            }
            PushKind::SSubscribe => {
                let Some(Value::BulkString(name)) = push.data.first() else { return };
                let Some(channel) = std::str::from_utf8(name).ok().and_then(channel_of) else { return };
                if !self.asked.take(channel) && subscribed.contains(channel) && self.hub.has(channel) {
                    // redis-rs subscribed it again on its slot's new owner: what the old one did
                    // not deliver in between is in the history.
                    info!(channel = %crate::logging::clip(channel, 64), "a subscription moved to another Redis Cluster node; recovering");
                    self.metrics.broker_reconnects.inc();
                    self.recover(channel);
                }
            }
            PushKind::SUnsubscribe => {
                let Some(Value::BulkString(name)) = push.data.first() else { return };
                let Some(channel) = std::str::from_utf8(name).ok().and_then(channel_of) else { return };
                // One this gateway still wants: the node dropped it (its slot is served elsewhere now).
                if subscribed.contains(channel) && self.hub.has(channel) {
                    info!(channel = %crate::logging::clip(channel, 64), "a Redis Cluster node dropped a subscription; moving it");
                    self.metrics.broker_reconnects.inc();
                    self.resync(channel);
                }
            }
            _ => {}
        }
    }

    /// Holds `channel`'s live publications back, subscribes it again on its slot's owner, and
    /// recovers what it missed from where it stood.
    fn resync(&self, channel: &str) {
        self.hold_then(channel, true);
    }

    /// The same without subscribing again (redis-rs already has).
    fn recover(&self, channel: &str) {
        self.hold_then(channel, false);
    }

    fn hold_then(&self, channel: &str, resubscribe_first: bool) {
        let last = self.hub.interest().into_iter().find(|(name, _)| name == channel).map(|(_, last)| last);
        let Some(last) = last else { return };
        self.hub.suspend(channel);
        let (conn, hub, reader, channel) =
            (self.conn.clone(), self.hub.clone(), self.reader.clone(), channel.to_owned());
        let asked = self.asked.clone();
        self.tasks.spawn(async move {
            if resubscribe_first {
                resubscribe(conn, &asked, &hub, &channel).await;
            }
            recover(reader, hub, channel, last).await;
        });
    }
}

/// Subscribes `channel` again until its shard confirms it (or no subscriber is left here).
async fn resubscribe(mut conn: ClusterConnection, asked: &Asked, hub: &Hub, channel: &str) {
    let mut wait = Duration::from_millis(100);
    loop {
        match ssubscribe(&mut conn, asked, channel).await {
            Ok(()) => return,
            Err(error) => {
                warn!(%error, channel = %crate::logging::clip(channel, 64), "cannot subscribe a channel on its Redis Cluster shard; trying again");
            }
        }
        if !hub.has(channel) {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RECONNECT_WAIT);
    }
}
