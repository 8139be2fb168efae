//! A publication as Redis carries it: on pub/sub `kind\nposition\nmeta\ncontent` (or
//! `x\ncode\nmeta\nreason` for a close), and its fields in a stream entry.

use std::time::{SystemTime, UNIX_EPOCH};

use sidestream_events::control::MessageKind;

use crate::channels::{Payload, Publication, message};

pub(super) fn kind_code(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Text => "t",
        MessageKind::Binary => "b",
        MessageKind::Ping => "p",
        MessageKind::Pong => "o",
    }
}

pub(super) fn kind_of(code: &str) -> Option<MessageKind> {
    Some(match code {
        "t" => MessageKind::Text,
        "b" => MessageKind::Binary,
        "p" => MessageKind::Ping,
        "o" => MessageKind::Pong,
        _ => return None,
    })
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A publication's meta as Redis keeps it: a JSON array of pairs (no newline), empty for none.
pub(super) fn encode_meta(meta: &[(String, String)]) -> String {
    if meta.is_empty() { String::new() } else { serde_json::to_string(meta).unwrap_or_default() }
}

pub(super) fn decode_meta(meta: &[u8]) -> Vec<(String, String)> {
    serde_json::from_slice(meta).unwrap_or_default()
}

/// A publication as `PUBLISH` carries it.
pub(super) fn parse_payload(channel: &str, payload: &[u8]) -> Option<Publication> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::Position;

    #[test]
    fn payloads_read_back() {
        let p = parse_payload("room", b"t\n3.abc.t1\n\nhello\nworld").unwrap();
        assert_eq!(p.position, Some(Position { n: 3, epoch: "abc".into(), tag: Some("t1".into()) }));
        assert_eq!(
            p.payload,
            Payload::Message(tokio_tungstenite::tungstenite::Message::text("hello\nworld"))
        );
        assert!(p.meta.is_empty());
        let meta = vec![("sender".to_owned(), "a\nb".to_owned())];
        let encoded = format!("t\n4.abc\n{}\nhi", encode_meta(&meta));
        let p = parse_payload("room", encoded.as_bytes()).unwrap();
        assert_eq!((p.meta, p.position), (meta, Some(Position::at(4, "abc"))));
        let close = parse_payload("room", b"x\n4001\n\nbye").unwrap();
        assert_eq!(close.payload, Payload::Close { code: Some(4001), reason: "bye".into() });
        assert_eq!(parse_payload("room", b"t\nnot a position\nx"), None);
        assert_eq!(super::super::channel_of(&super::super::topic("room:1")), Some("room:1"));
    }
}
