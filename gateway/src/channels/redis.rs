//! The Redis broker (`--redis URL`): publications go through Redis to every gateway whose
//! connections joined the channel, and each channel's history is a Redis Stream.
//!
//! A publish is one Lua script, so it is atomic and ordered: it drops a repeated item id, numbers
//! the publication in the channel (`INCR`; a history that was lost starts a new epoch), appends it
//! to the channel's stream (`XADD`, trimmed to the retention's size; the keys expire after its
//! age), and `PUBLISH`es it. Each gateway keeps one pub/sub connection and subscribes it to just
//! the channels its connections joined. When that connection is lost, the gateway reconnects with
//! backoff, subscribes again, and reads what it missed on each channel from the channel's history,
//! so a Redis restart (with its data kept, see the README) loses nothing that was published.
//!
//! On a Redis Cluster (`redis+cluster://`) every key of a channel and its pub/sub channel share
//! the hash tag `{channel}`, so the channel's scripts run on the primary that owns its slot, the
//! script publishes with `SPUBLISH`, and the gateway `SSUBSCRIBE`s on that primary
//! ([`cluster_listener`]): a publication goes to the gateways subscribed on its shard only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use sidestream_events::control::MessageKind;
use sidestream_events::publish::{Action, Item, around_id};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod cluster_listener;
mod listener;
mod watch;

use listener::{Requests, Subscribe, Unsubscribes, listen};

use super::hub::Hub;
use super::{Broker, BrokerError, History, Payload, Position, Publication, Retention, message, new_epoch};
use crate::metrics::Metrics;
use crate::redis_conn::{COMMAND_TIMEOUT, Commands, Target};

/// How many subscribe and unsubscribe requests wait for the pub/sub task.
const INTEREST_QUEUE: usize = 1024;

/// The publish script: see the module's documentation.
const PUBLISH: &str = r#"
local stream, seq, epochkey = KEYS[1], KEYS[2], KEYS[3]
local dedupe, pubchan, kind, head, tail, inject, maxlen, ttl, fresh, now, meta, publish =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]
if dedupe ~= '' and not redis.call('SET', stream .. ':d:' .. dedupe, '1', 'NX', 'PX', 60000) then
  return {'repeat'}
end
if kind == 'x' then
  redis.call(publish, pubchan, 'x\n' .. head .. '\n' .. meta .. '\n' .. tail)
  return {'close'}
end
local epoch = redis.call('GET', epochkey)
if not epoch or redis.call('EXISTS', seq) == 0 then
  epoch = fresh
  redis.call('SET', epochkey, epoch)
  redis.call('DEL', stream, seq)
end
local n = redis.call('INCR', seq)
local id = n .. '.' .. epoch
local content = head
if inject == '1' then content = head .. '"' .. id .. '"' .. tail end
redis.call('XADD', stream, 'MAXLEN', '~', maxlen, n .. '-0', 'k', kind, 'c', content, 't', now, 'm', meta)
redis.call('PEXPIRE', stream, ttl)
redis.call('PEXPIRE', seq, ttl)
redis.call('PEXPIRE', epochkey, ttl)
redis.call(publish, pubchan, kind .. '\n' .. id .. '\n' .. meta .. '\n' .. content)
return {'ok', id}
"#;

/// The history script: the channel's epoch, its newest number, and what came after a number, read
/// at once.
const HISTORY: &str = r#"
local epoch = redis.call('GET', KEYS[3])
local last = redis.call('GET', KEYS[2])
if not epoch or not last then return {false, false, {}} end
return {epoch, last, redis.call('XRANGE', KEYS[1], ARGV[1] .. '-0', '+')}
"#;

/// The scripts, their SHA-1 computed once rather than on every publish and read.
static PUBLISH_SCRIPT: LazyLock<::redis::Script> = LazyLock::new(|| ::redis::Script::new(PUBLISH));
static HISTORY_SCRIPT: LazyLock<::redis::Script> = LazyLock::new(|| ::redis::Script::new(HISTORY));

/// The keys of a channel; the braces keep them together in one slot of a Redis Cluster.
fn keys(channel: &str) -> [String; 3] {
    [
        format!("sidestream:{{{channel}}}:s"),
        format!("sidestream:{{{channel}}}:n"),
        format!("sidestream:{{{channel}}}:e"),
    ]
}

/// The pub/sub channel of a channel.
fn topic(channel: &str) -> String {
    format!("sidestream:{{{channel}}}")
}

fn channel_of(topic: &str) -> Option<&str> {
    topic.strip_prefix("sidestream:{")?.strip_suffix('}')
}

fn kind_code(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Text => "t",
        MessageKind::Binary => "b",
        MessageKind::Ping => "p",
        MessageKind::Pong => "o",
    }
}

fn kind_of(code: &str) -> Option<MessageKind> {
    Some(match code {
        "t" => MessageKind::Text,
        "b" => MessageKind::Binary,
        "p" => MessageKind::Ping,
        "o" => MessageKind::Pong,
        _ => return None,
    })
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A publication's meta as Redis keeps it: a JSON array of pairs (no newline), empty for none.
fn encode_meta(meta: &[(String, String)]) -> String {
    if meta.is_empty() { String::new() } else { serde_json::to_string(meta).unwrap_or_default() }
}

fn decode_meta(meta: &[u8]) -> Vec<(String, String)> {
    serde_json::from_slice(meta).unwrap_or_default()
}

/// A publication as `PUBLISH` carries it: `kind\nposition\nmeta\ncontent`, or
/// `x\ncode\nmeta\nreason`.
fn parse_payload(channel: &str, payload: &[u8]) -> Option<Publication> {
    let mut parts = payload.splitn(4, |b| *b == b'\n');
    let kind = std::str::from_utf8(parts.next()?).ok()?;
    let second = std::str::from_utf8(parts.next()?).ok()?;
    let meta = decode_meta(parts.next()?);
    let rest = parts.next()?;
    let channel = channel.to_owned();
    if kind == "x" {
        let code = second.parse().ok();
        let reason = String::from_utf8_lossy(rest).into_owned();
        return Some(Publication { channel, position: None, payload: Payload::Close { code, reason }, meta });
    }
    Some(Publication {
        channel,
        position: Some(second.parse().ok()?),
        payload: Payload::Message(message(kind_of(kind)?, rest.to_vec())),
        meta,
    })
}

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
                (tokio::spawn(listen(client, hub, requests, connected.clone(), reader, metrics)), "PUBLISH")
            }
            Target::Cluster(nodes) => {
                let (push, pushes) = mpsc::unbounded_channel();
                let client = crate::redis_conn::cluster_client(nodes, Some(push))?;
                let conn = crate::redis_conn::cluster_connection(&client);
                let asked = cluster_listener::Asked::default();
                let parts = cluster_listener::Parts { conn, pushes, hub, reader, metrics, asked };
                (tokio::spawn(cluster_listener::listen(parts, requests, connected.clone())), "SPUBLISH")
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

/// A command's error, told to the connection (which may need rebuilding) and as the broker's.
fn failed(commands: &Commands, error: ::redis::RedisError) -> BrokerError {
    commands.failed(&error);
    BrokerError(format!("redis: {error}"))
}

/// What reads a channel's history (shared by the broker and its listener's recovery).
#[derive(Clone)]
struct Reader {
    commands: Commands,
    retention: Retention,
}

impl Reader {
    async fn history(&self, channel: &str, since: Option<&Position>) -> Result<History, BrokerError> {
        let [stream, seq, epoch] = keys(channel);
        let mut conn = self.commands.get();
        type Entries = Vec<(String, Vec<(String, Vec<u8>)>)>;
        let (current, last, entries): (Option<String>, Option<u64>, Entries) = HISTORY_SCRIPT
            .key(&stream)
            .key(&seq)
            .key(&epoch)
            .arg(since.map_or(1, |since| since.n + 1))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| failed(&self.commands, e))?;
        let (Some(current), Some(last)) = (current, last) else {
            // Nothing published yet: all of the history is nothing, any position is another's.
            return Ok(if since.is_none() { History::Since(Vec::new()) } else { History::Gap });
        };
        if since.is_some_and(|since| current != since.epoch || since.n > last) {
            return Ok(History::Gap);
        }
        let oldest = now_ms().saturating_sub(self.retention.ttl.as_millis() as u64);
        let mut missed = Vec::with_capacity(entries.len());
        // With `since`, each entry must follow the one before: a hole is what trimming took.
        let mut expected = since.map(|since| since.n + 1);
        for (id, fields) in entries {
            let n: u64 = id.split_once('-').and_then(|(n, _)| n.parse().ok()).unwrap_or(0);
            let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice());
            let at: u64 = field("t").and_then(|t| std::str::from_utf8(t).ok()?.parse().ok()).unwrap_or(0);
            if at < oldest {
                if since.is_some() {
                    // Older than the retention allows: not a history that reaches back to `since`.
                    return Ok(History::Gap);
                }
                continue;
            }
            if expected.is_some_and(|expected| n != expected) {
                return Ok(History::Gap);
            }
            expected = expected.map(|_| n + 1);
            let kind =
                field("k").and_then(|k| kind_of(std::str::from_utf8(k).ok()?)).unwrap_or(MessageKind::Text);
            missed.push(Arc::new(Publication {
                channel: channel.to_owned(),
                position: Some(Position { n, epoch: current.clone() }),
                payload: Payload::Message(message(kind, field("c").unwrap_or_default().to_vec())),
                meta: decode_meta(field("m").unwrap_or_default()),
            }));
        }
        if expected.is_some_and(|expected| expected <= last) {
            return Ok(History::Gap);
        }
        Ok(History::Since(missed))
    }

    /// The channel's newest position, if it has a history.
    async fn position(&self, channel: &str) -> Result<Option<Position>, BrokerError> {
        let [_, seq, epoch] = keys(channel);
        let mut conn = self.commands.get();
        let (n, epoch): (Option<u64>, Option<String>) = ::redis::pipe()
            .get(&seq)
            .get(&epoch)
            .query_async(&mut conn)
            .await
            .map_err(|e| failed(&self.commands, e))?;
        Ok(n.zip(epoch).map(|(n, epoch)| Position { n, epoch }))
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
            .arg(self.publish);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back() {
        let p = parse_payload("room", b"t\n3.abc\n\nhello\nworld").unwrap();
        assert_eq!(p.position, Some(Position { n: 3, epoch: "abc".into() }));
        assert_eq!(
            p.payload,
            Payload::Message(tokio_tungstenite::tungstenite::Message::text("hello\nworld"))
        );
        assert!(p.meta.is_empty());
        let meta = vec![("sender".to_owned(), "a\nb".to_owned())];
        let encoded = format!("t\n4.abc\n{}\nhi", encode_meta(&meta));
        assert_eq!(parse_payload("room", encoded.as_bytes()).unwrap().meta, meta);
        let close = parse_payload("room", b"x\n4001\n\nbye").unwrap();
        assert_eq!(close.payload, Payload::Close { code: Some(4001), reason: "bye".into() });
        assert_eq!(parse_payload("room", b"t\nnot a position\nx"), None);
        assert_eq!(channel_of(&topic("room:1")), Some("room:1"));
    }
}
