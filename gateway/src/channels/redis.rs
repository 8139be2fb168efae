//! The Redis broker (`--redis URL`): publications go through Redis to every gateway whose
//! connections joined the channel, and each channel's history is a Redis Stream.
//!
//! A publish is one Lua script ([`scripts`]), so it is atomic and ordered: it drops a repeated item
//! id, numbers the publication in the channel (`INCR`; a history that was lost starts a new
//! epoch), appends it to the channel's stream with a random tag of its own (`XADD`, trimmed to the
//! retention's size; the keys expire after its age), and `PUBLISH`es it ([`payload`]). Each gateway keeps one pub/sub connection and subscribes it to just
//! the channels its connections joined. When that connection is lost, the gateway reconnects with
//! backoff, subscribes again, and reads what it missed on each channel from the channel's history,
//! so a Redis restart (with its data kept, see the README) loses nothing that was published.
//!
//! On a Redis Cluster (`redis+cluster://`) every key of a channel and its pub/sub channel share
//! the hash tag `{channel}`, so the channel's scripts run on the primary that owns its slot, the
//! script publishes with `SPUBLISH`, and the gateway `SSUBSCRIBE`s on that primary
//! ([`cluster_listener`]): a publication goes to the gateways subscribed on its shard only.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sidestream_events::publish::{Action, Item, around_id};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod cluster_listener;
mod listener;
mod payload;
mod reader;
mod scripts;
mod watch;

use listener::{Requests, Subscribe, Unsubscribes, listen};
use payload::{encode_meta, kind_code, now_ms, parse_payload};
use reader::{Reader, failed};
use scripts::{PUBLISH_SCRIPT, channel_of, keys, topic};

use super::hub::Hub;
use super::{Broker, BrokerError, History, Position, Retention, new_epoch};
use crate::channels::metrics::Metrics;
use crate::drain::Tasks;
use crate::redis_conn::{COMMAND_TIMEOUT, Commands, Target};

/// How many subscribe and unsubscribe requests wait for the pub/sub task.
const INTEREST_QUEUE: usize = 1024;

pub struct RedisBroker {
    commands: Commands,
    interest: mpsc::Sender<Subscribe>,
    unsubscribes: Arc<Unsubscribes>,
    retention: Retention,
    /// `PUBLISH`, or `SPUBLISH` on a Redis Cluster.
    publish: &'static str,
    /// Replicas that must have a publication before it is answered (`--redis-wait-replicas`).
    wait_replicas: u32,
    connected: Arc<AtomicBool>,
    listener: JoinHandle<()>,
}

/// How long a publish waits for its replicas (`WAIT`).
const WAIT_REPLICAS_MS: u64 = 1000;

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl RedisBroker {
    /// Prepares the broker; nothing is connected yet (a Redis that is down at start-up is waited
    /// for, not a reason not to start).
    pub fn new(
        commands: Commands,
        hub: Arc<Hub>,
        (retention, wait_replicas): (Retention, u32),
        metrics: Arc<Metrics>,
        tasks: &Tasks,
    ) -> anyhow::Result<Self> {
        let (interest, requests) = mpsc::channel(INTEREST_QUEUE);
        let unsubscribes = Arc::new(Unsubscribes::default());
        let connected = Arc::new(AtomicBool::new(false));
        let reader = Reader { commands: commands.clone(), retention };
        let requests = Requests { subscribes: requests, unsubscribes: unsubscribes.clone() };
        let (listener, publish) = match commands.target() {
            Target::Single(info) => {
                let client =
                    ::redis::Client::open(info.clone()).map_err(|e| anyhow::anyhow!("--redis: {e}"))?;
                let listening =
                    listen(client, (hub, reader, metrics), requests, connected.clone(), tasks.clone());
                (tasks.spawn(listening), "PUBLISH")
            }
            Target::Cluster(nodes) => {
                let (push, pushes) = mpsc::unbounded_channel();
                let client = crate::redis_conn::cluster_client(nodes, Some(push))?;
                let conn = crate::redis_conn::cluster_connection(&client);
                let asked = cluster_listener::Asked::default();
                let parts = cluster_listener::Parts {
                    conn,
                    pushes,
                    hub,
                    reader,
                    metrics,
                    asked,
                    tasks: tasks.clone(),
                };
                (tasks.spawn(cluster_listener::listen(parts, requests, connected.clone())), "SPUBLISH")
            }
        };
        Ok(RedisBroker {
            commands,
            interest,
            unsubscribes,
            retention,
            publish,
            wait_replicas,
            connected,
            listener,
        })
    }

    /// Whether the pub/sub connection is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn reader(&self) -> Reader {
        Reader { commands: self.commands.clone(), retention: self.retention }
    }
}

impl RedisBroker {
    /// Runs the publish script; with `--redis-wait-replicas`, followed by `WAIT` on the same
    /// connection of the same primary (one pipeline, routed by the script's keys), so the answer
    /// comes once that many replicas have the publication.
    async fn run_publish(&self, evalsha: ::redis::Cmd) -> Result<Vec<String>, ::redis::RedisError> {
        let mut conn = self.commands.get();
        let mut pipe = ::redis::pipe();
        pipe.add_command(evalsha);
        if self.wait_replicas > 0 {
            pipe.cmd("WAIT").arg(self.wait_replicas).arg(WAIT_REPLICAS_MS);
        }
        let no_script = ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript);
        let values: Vec<::redis::Value> = match pipe.query_async(&mut conn).await {
            Err(error) if error.kind() == no_script => {
                PUBLISH_SCRIPT.prepare_invoke().load_async(&mut conn).await?;
                pipe.query_async(&mut conn).await?
            }
            other => other?,
        };
        let mut values = values.into_iter();
        let answer: Vec<String> = ::redis::from_redis_value(values.next().unwrap_or(::redis::Value::Nil))?;
        let acked: u32 = values.next().map(::redis::from_redis_value).transpose()?.unwrap_or(0);
        if acked < self.wait_replicas && answer.first().is_some_and(|a| a == "ok") {
            let why =
                format!("{acked} of {} replicas had it after {WAIT_REPLICAS_MS} ms", self.wait_replicas);
            return Err(::redis::RedisError::from((::redis::ErrorKind::Io, "WAIT", why)));
        }
        Ok(answer)
    }
}

impl Broker for RedisBroker {
    async fn publish(&self, item: &Item) -> Result<Option<Position>, BrokerError> {
        let Some(action) = &item.action else { return Ok(None) };
        let [stream, seq, epoch] = keys(&item.channel);
        let (kind, head, tail, inject) = match action {
            Action::Close { code, reason } => (
                "x",
                code.map(|c| c.to_string()).unwrap_or_default().into_bytes(),
                reason.clone().into_bytes(),
                "0",
            ),
            Action::Send { kind, content, id_key } => {
                match id_key.as_deref().and_then(|key| around_id(content, key)) {
                    Some((head, tail)) => (kind_code(*kind), head.into_bytes(), tail.into_bytes(), "1"),
                    None => (kind_code(*kind), content.clone(), Vec::new(), "0"),
                }
            }
        };
        let mut evalsha = ::redis::cmd("EVALSHA");
        evalsha.arg(PUBLISH_SCRIPT.get_hash());
        evalsha.arg(3).arg(&stream).arg(&seq).arg(&epoch);
        evalsha
            .arg(item.id.as_deref().unwrap_or(""))
            .arg(topic(&item.channel))
            .arg(kind)
            .arg(head)
            .arg(tail)
            .arg(inject)
            .arg(self.retention.size)
            .arg(self.retention.ttl.as_millis() as u64)
            .arg(new_epoch())
            .arg(now_ms())
            .arg(encode_meta(&item.meta))
            .arg(self.publish)
            .arg(new_epoch());
        let answer = self.run_publish(evalsha).await.map_err(|e| failed(&self.commands, e))?;
        match answer.as_slice() {
            [ok, position] if ok == "ok" => {
                Ok(Some(position.parse().map_err(|_| BrokerError(format!("bad position {position:?}")))?))
            }
            _ => Ok(None),
        }
    }

    async fn history(&self, channel: &str, since: Option<&Position>) -> Result<History, BrokerError> {
        self.reader().history(channel, since).await
    }

    async fn position(&self, channel: &str) -> Result<Option<Position>, BrokerError> {
        self.reader().position(channel).await
    }

    async fn subscribe(&self, channel: &str) -> Result<(), BrokerError> {
        // Looked up before the subscription is asked for: whatever is published after it either
        // arrives through the subscription or is recovered from this position.
        // (Unknown while Redis is away: then its recovery reads the channel's whole history.)
        let before = self.reader().position(channel).await.unwrap_or(None);
        let (done, subscribed) = oneshot::channel();
        self.interest
            .send(Subscribe(channel.to_owned(), before, done))
            .await
            .map_err(|_| BrokerError("the Redis listener has stopped".into()))?;
        match tokio::time::timeout(COMMAND_TIMEOUT, subscribed).await {
            Ok(Ok(())) => Ok(()),
            // Still on its way: the listener subscribes every channel the hub has once it is back.
            _ => Err(BrokerError("Redis did not confirm the subscription in time".into())),
        }
    }

    fn unsubscribe(&self, channel: &str) {
        self.unsubscribes.add(channel);
    }
}
