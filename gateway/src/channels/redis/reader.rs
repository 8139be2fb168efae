//! Reading a channel's history and position from Redis (shared by the broker and its listeners'
//! recoveries).

use std::sync::Arc;

use sidestream_events::control::MessageKind;

use super::payload::{decode_meta, kind_of, now_ms};
use super::scripts::{HISTORY_SCRIPT, keys};
use crate::channels::{BrokerError, History, Payload, Position, Publication, Retention, message};
use crate::redis_conn::Commands;

/// A command's error, told to the connection (which may need rebuilding) and as the broker's.
pub(super) fn failed(commands: &Commands, error: ::redis::RedisError) -> BrokerError {
    commands.failed(&error);
    BrokerError(format!("redis: {error}"))
}

/// A stream entry: its id and fields.
type Entry = (String, Vec<(String, Vec<u8>)>);

/// An entry's number, tag (entries written before tags were kept have none) and time.
fn entry_of(entry: &Entry) -> (u64, Option<&[u8]>, u64) {
    let (id, fields) = entry;
    let n: u64 = id.split_once('-').and_then(|(n, _)| n.parse().ok()).unwrap_or(0);
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice());
    let at: u64 = field("t").and_then(|t| std::str::from_utf8(t).ok()?.parse().ok()).unwrap_or(0);
    (n, field("i"), at)
}

/// An entry's publication, at `position`.
fn publication(channel: &str, (_, fields): &Entry, position: Position) -> Publication {
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice());
    let kind = field("k").and_then(|k| kind_of(std::str::from_utf8(k).ok()?)).unwrap_or(MessageKind::Text);
    Publication {
        channel: channel.to_owned(),
        position: Some(position),
        payload: Payload::Message(message(kind, field("c").unwrap_or_default().to_vec())),
        meta: decode_meta(field("m").unwrap_or_default()),
    }
}

/// What reads a channel's history.
#[derive(Clone)]
pub(in crate::channels) struct Reader {
    pub(super) commands: Commands,
    pub(super) retention: Retention,
}

impl Reader {
    /// What `channel` published after `since` (all it holds for `None`). A tagged `since` must
    /// still be the publication Redis holds at its position: one the history no longer has there
    /// (a promoted replica that never had it numbered another the same) is a gap, as is a
    /// position of another epoch, past the newest, or older than the history reaches.
    pub(super) async fn history(
        &self,
        channel: &str,
        since: Option<&Position>,
    ) -> Result<History, BrokerError> {
        let [stream, seq, epoch] = keys(channel);
        // Its own entry is read too, to compare.
        let check = since.filter(|since| since.n > 0).and_then(|since| since.tag.as_deref());
        let from = since.map_or(1, |since| if check.is_some() { since.n } else { since.n + 1 });
        let mut conn = self.commands.get();
        let (current, last, entries): (Option<String>, Option<u64>, Vec<Entry>) = HISTORY_SCRIPT
            .key(&stream)
            .key(&seq)
            .key(&epoch)
            .arg(from)
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
        let mut entries = entries.into_iter().peekable();
        if let (Some(since), Some(tag)) = (since, check) {
            let held = entries.next_if(|entry| entry_of(entry).0 == since.n);
            if held.is_none_or(|entry| entry_of(&entry).1 != Some(tag.as_bytes())) {
                return Ok(History::Gap);
            }
        }
        let oldest = now_ms().saturating_sub(self.retention.ttl.as_millis() as u64);
        let mut missed = Vec::with_capacity(entries.len());
        // With `since`, each entry must follow the one before: a hole is what trimming took.
        let mut expected = since.map(|since| since.n + 1);
        for entry in entries {
            let (n, tag, at) = entry_of(&entry);
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
            let tag = tag.and_then(|tag| std::str::from_utf8(tag).ok()).map(str::to_owned);
            let position = Position { n, epoch: current.clone(), tag };
            missed.push(Arc::new(publication(channel, &entry, position)));
        }
        if expected.is_some_and(|expected| expected <= last) {
            return Ok(History::Gap);
        }
        Ok(History::Since(missed))
    }

    /// The channel's newest position, if it has a history (without its tag).
    pub(super) async fn position(&self, channel: &str) -> Result<Option<Position>, BrokerError> {
        let [_, seq, epoch] = keys(channel);
        let mut conn = self.commands.get();
        let (n, epoch): (Option<u64>, Option<String>) = ::redis::pipe()
            .get(&seq)
            .get(&epoch)
            .query_async(&mut conn)
            .await
            .map_err(|e| failed(&self.commands, e))?;
        Ok(n.zip(epoch).map(|(n, epoch)| Position { n, epoch, tag: None }))
    }
}
