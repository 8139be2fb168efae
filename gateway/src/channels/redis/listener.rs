//! The Redis broker's pub/sub connection: it delivers what Redis publishes to the hub,
//! subscribes as the hub's channels come and go, and after every reconnect subscribes again and
//! recovers what was missed from the channels' histories.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{info, warn};

use super::{Reader, channel_of, parse_payload, topic};
use crate::channels::hub::Hub;
use crate::channels::metrics::Metrics;
use crate::channels::{History, Position};
use crate::drain::Tasks;
use crate::redis_conn::MAX_RECONNECT_WAIT;

/// A subscriber waiting for its channel's subscription: the channel, where it stood before the
/// subscription was asked for (the hub's baseline), and what to tell once Redis confirmed it.
pub(super) struct Subscribe(pub(super) String, pub(super) Option<Position>, pub(super) oneshot::Sender<()>);

/// Channels this gateway may no longer want: a set, so that none is ever dropped and a flood of
/// leaving clients costs one entry per channel.
#[derive(Default)]
pub(super) struct Unsubscribes {
    channels: std::sync::Mutex<HashSet<String>>,
    pub(super) notify: Notify,
}

impl Unsubscribes {
    pub(super) fn add(&self, channel: &str) {
        self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(channel.to_owned());
        self.notify.notify_one();
    }

    pub(super) fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// What the listener is asked for.
pub(super) struct Requests {
    pub(super) subscribes: mpsc::Receiver<Subscribe>,
    pub(super) unsubscribes: Arc<Unsubscribes>,
}

/// The pub/sub connection: delivers what Redis publishes to the hub, subscribes as the hub's
/// channels come and go, and after every reconnect subscribes again and recovers what was missed.
///
/// What it subscribes to follows the hub, not the order requests arrive in: a channel is
/// subscribed when it is asked for and the hub has subscribers for it, unsubscribed when it may
/// be unwanted and the hub has none. So an unsubscribe that overtakes its subscribe (a client that
/// connects and leaves at once) leaves no subscription behind, and every subscriber's request is
/// answered only once its channel's subscription is confirmed. Nothing but the subscription
/// commands themselves is awaited between two reads of the connection.
pub(super) async fn listen(
    client: ::redis::Client,
    (hub, reader, metrics): (Arc<Hub>, Reader, Arc<Metrics>),
    mut requests: Requests,
    connected: Arc<AtomicBool>,
    tasks: Tasks,
) {
    let mut wait = Duration::from_millis(100);
    let mut first = true;
    loop {
        let Some((pubsub, interest)) = connect(&client, &hub, first).await else {
            warn!(?wait, "cannot subscribe this gateway's channels in Redis; trying again");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_RECONNECT_WAIT);
            continue;
        };
        wait = Duration::from_millis(100);
        connected.store(true, Ordering::Relaxed);
        metrics.broker_connected.set(1);
        if !first {
            info!(channels = interest.len(), "Redis pub/sub is back; recovering what was missed");
            metrics.broker_reconnects.inc();
            for (channel, last) in &interest {
                tasks.spawn(recover(reader.clone(), hub.clone(), channel.clone(), last.clone()));
            }
        }
        first = false;
        let subscribed = interest.into_iter().map(|(channel, _)| channel).collect();
        if !serve(pubsub, subscribed, &hub, &mut requests).await {
            return;
        }
        connected.store(false, Ordering::Relaxed);
        metrics.broker_connected.set(0);
        warn!("lost the Redis pub/sub connection; reconnecting");
    }
}

type PubSub = (::redis::aio::PubSubSink, ::redis::aio::PubSubStream);

/// A pub/sub connection subscribed to every channel the hub has, and those channels with the
/// positions to recover them from; after a reconnect (not `first`), their live publications are
/// held back until that is done.
async fn connect(
    client: &::redis::Client,
    hub: &Hub,
    first: bool,
) -> Option<(PubSub, Vec<(String, Option<Position>)>)> {
    let (mut sink, stream) = client.get_async_pubsub().await.ok()?.split();
    let interest = hub.interest();
    for (channel, _) in &interest {
        sink.subscribe(topic(channel)).await.ok()?;
    }
    if !first {
        // Live publications wait until what was missed while away is delivered (each suspend
        // is ended by one recovery: only once the connection is made, none arrived before
        // `serve` reads them).
        for (channel, _) in &interest {
            hub.suspend(channel);
        }
    }
    Some(((sink, stream), interest))
}

/// Serves one pub/sub connection until it is lost (`true`) or the broker is gone (`false`).
async fn serve(
    (mut sink, mut stream): PubSub,
    mut subscribed: HashSet<String>,
    hub: &Hub,
    requests: &mut Requests,
) -> bool {
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return true };
                let Some(channel) = channel_of(message.get_channel_name()) else { continue };
                if let Some(publication) = parse_payload(channel, message.get_payload_bytes()) {
                    hub.deliver(Arc::new(publication));
                }
            }
            request = requests.subscribes.recv() => {
                let Some(Subscribe(channel, before, done)) = request else { return false };
                if hub.has(&channel) && !subscribed.contains(&channel) {
                    if sink.subscribe(topic(&channel)).await.is_err() {
                        return true;
                    }
                    subscribed.insert(channel.clone());
                    if let Some(before) = before {
                        hub.baseline(&channel, before);
                    }
                }
                let _ = done.send(());
            }
            () = requests.unsubscribes.notify.notified() => {
                for channel in requests.unsubscribes.take() {
                    if hub.has(&channel) || !subscribed.remove(&channel) {
                        continue;
                    }
                    if sink.unsubscribe(topic(&channel)).await.is_err() {
                        return true;
                    }
                }
            }
        }
    }
}

/// How many times a recovery reads the history before it gives up and tells of a gap.
const RECOVERY_ATTEMPTS: u32 = 8;

/// Delivers what `channel` published after `last` while the pub/sub connection was down (all of
/// its history for `None`: nothing had arrived here yet), then the publications held back
/// meanwhile. Redis may still be coming back: reading is retried with backoff before the
/// subscribers are told of a gap.
pub(super) async fn recover(reader: Reader, hub: Arc<Hub>, channel: String, last: Option<Position>) {
    let mut wait = Duration::from_millis(100);
    for attempt in 1..=RECOVERY_ATTEMPTS {
        match reader.history(&channel, last.as_ref()).await {
            Ok(History::Since(missed)) => return hub.resume(&channel, missed),
            Ok(History::Gap) => break,
            Err(error) if attempt == RECOVERY_ATTEMPTS => {
                warn!(%error, channel = %crate::logging::clip(&channel, 64), "cannot recover a channel after a reconnect");
            }
            Err(_) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RECONNECT_WAIT);
            }
        }
    }
    hub.gap(&channel);
    hub.resume(&channel, Vec::new());
}
