//! A Redis Cluster subscription's safety net: every [`EVERY`], each channel this gateway has
//! subscribers for is compared with where its history stands in Redis. A channel whose history
//! was already ahead of what arrived here at the last look, and to which nothing arrived since,
//! has lost its subscription without a word (a node's connection killed and restored, a slot
//! moved): the listener subscribes it again and recovers it from the history.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Reader;
use crate::channels::hub::Hub;

/// How often the channels are looked at.
const EVERY: Duration = Duration::from_secs(3);

/// Sends the channels that look stuck to the listener until it is gone.
pub(super) async fn watch(hub: Arc<Hub>, reader: Reader, stuck: mpsc::Sender<String>) {
    // Per channel, at the last look: Redis's newest number, and the newest delivered here.
    let mut looked: HashMap<String, (u64, Option<u64>)> = HashMap::new();
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mut now = HashMap::new();
        for (channel, last) in hub.interest() {
            let Ok(Some(position)) = reader.position(&channel).await else { continue };
            let here = last.filter(|l| l.epoch == position.epoch).map(|l| l.n);
            if let Some((redis_then, here_then)) = looked.get(&channel)
                && here_then.is_some_and(|h| *redis_then > h)
                && here <= *here_then
                && stuck.send(channel.clone()).await.is_err()
            {
                return;
            }
            now.insert(channel, (position.n, here));
        }
        looked = now;
    }
}
