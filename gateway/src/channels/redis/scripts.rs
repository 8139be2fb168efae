//! The Redis broker's scripts and the names it keeps a channel under.

use std::sync::LazyLock;

/// The publish script: it drops a repeated item id, numbers the publication in the channel
/// (`INCR`; a history that was lost starts a new epoch), appends it to the channel's stream with
/// its tag (`XADD`, trimmed to the retention's size; the keys expire after its age), and
/// publishes it (`PUBLISH`, or `SPUBLISH` on a Redis Cluster), its position `n.epoch.tag`.
const PUBLISH: &str = r#"
local stream, seq, epochkey = KEYS[1], KEYS[2], KEYS[3]
local dedupe, pubchan, kind, head, tail, inject, maxlen, ttl, fresh, now, meta, publish, tag =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11],
  ARGV[12], ARGV[13]
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
local id = n .. '.' .. epoch .. '.' .. tag
local content = head
if inject == '1' then content = head .. '"' .. id .. '"' .. tail end
redis.call('XADD', stream, 'MAXLEN', '~', maxlen, n .. '-0', 'k', kind, 'c', content, 't', now, 'm', meta, 'i', tag)
redis.call('PEXPIRE', stream, ttl)
redis.call('PEXPIRE', seq, ttl)
redis.call('PEXPIRE', epochkey, ttl)
redis.call(publish, pubchan, kind .. '\n' .. id .. '\n' .. meta .. '\n' .. content)
return {'ok', id}
"#;

/// The history script: the channel's epoch, its newest number, and its entries from a number
/// on, read at once.
const HISTORY: &str = r#"
local epoch = redis.call('GET', KEYS[3])
local last = redis.call('GET', KEYS[2])
if not epoch or not last then return {false, false, {}} end
return {epoch, last, redis.call('XRANGE', KEYS[1], ARGV[1] .. '-0', '+')}
"#;

/// The scripts, their SHA-1 computed once rather than on every publish and read.
pub(super) static PUBLISH_SCRIPT: LazyLock<::redis::Script> = LazyLock::new(|| ::redis::Script::new(PUBLISH));
pub(super) static HISTORY_SCRIPT: LazyLock<::redis::Script> = LazyLock::new(|| ::redis::Script::new(HISTORY));

/// The keys of a channel (stream, counter, epoch); the braces keep them together in one slot of
/// a Redis Cluster.
pub(super) fn keys(channel: &str) -> [String; 3] {
    [
        format!("sidestream:{{{channel}}}:s"),
        format!("sidestream:{{{channel}}}:n"),
        format!("sidestream:{{{channel}}}:e"),
    ]
}

/// The pub/sub channel of a channel.
pub(super) fn topic(channel: &str) -> String {
    format!("sidestream:{{{channel}}}")
}

pub(super) fn channel_of(topic: &str) -> Option<&str> {
    topic.strip_prefix("sidestream:{")?.strip_suffix('}')
}
