//! `/room`: a chat room. Every connection joins the room's channel; every message a client sends
//! is published to it, so everyone in the room (on every gateway replica) gets it, in one order.
//!
//! `?room=NAME` picks the room (default `lobby`), `?name=NAME` the sender's name (default a guest
//! name from the connection id), and `?last=POSITION` says where a client that comes back was:
//! the gateway then sends what it missed first, or a `gap` message when the history no longer
//! reaches back that far. What the room sends:
//!
//! - `{"type":"welcome","room":R,"name":N,"at":MS}` to a client that joined (`at` is when it
//!   joined: a client that came back with `last` tells what it missed, the messages from before
//!   then, from what is said live);
//! - `{"type":"room","id":POSITION,"from":N,"text":T,"at":MS}` to everyone, for each message
//!   (`id` is the message's position in the room's history: the `last` to come back with);
//! - `{"type":"gap","room":R}` to a client whose `last` the history no longer reaches;
//! - `{"type":"error","text":...}` to a sender whose message was not taken.
//!
//! Each message is published with an id made of the connection id and a count kept in the
//! connection's meta, so a request the gateway sends again publishes nothing twice.

use serde_json::json;
use sidestream_events::control::Control;
use sidestream_events::{Event, Reply, parse};

use super::{Outcome, Publish, Request};
use crate::query::param;

pub const PATH: &str = "/room";

/// The longest message, in characters.
pub const MAX_TEXT: usize = 1000;

/// The longest room or sender name, in characters.
pub const MAX_NAME: usize = 32;

/// The channel of room `room`.
pub fn channel(room: &str) -> String {
    format!("room:{room}")
}

/// A room name: 1 to 32 letters, digits, `-` or `_`.
fn valid_room(room: &str) -> bool {
    (1..=MAX_NAME).contains(&room.len())
        && room.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A sender's name as given, trimmed; `None` when empty, too long or holding control characters.
fn valid_name(name: &str) -> Option<&str> {
    let name = name.trim();
    let fine = !name.is_empty() && name.chars().count() <= MAX_NAME && !name.chars().any(char::is_control);
    fine.then_some(name)
}

/// A name for a client that gave none: `guest-` and four hex digits of its connection id.
fn guest(connection_id: &str) -> String {
    // FNV-1a: stable across requests and builds, which the std hasher does not promise.
    let hash = connection_id.bytes().fold(0x811c9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x01000193));
    format!("guest-{:04x}", hash & 0xffff)
}

fn error(reply: &mut Reply, text: &str) {
    reply.text(&json!({"type": "error", "text": text}).to_string());
}

/// Answers one request of a `/room` connection at `now_ms` (Unix time in milliseconds).
pub fn handle(request: &Request<'_>, now_ms: u64) -> Outcome {
    let mut reply = Reply::new(request.meta.clone());
    let mut items = Vec::new();
    for event in parse(request.body) {
        match event {
            Ok(Event::Open) => {
                let room = param(request.query, "room").unwrap_or("lobby".into());
                if !valid_room(&room) {
                    return Outcome::refuse(400, "a room name is 1 to 32 letters, digits, - or _\n");
                }
                let name = match param(request.query, "name") {
                    None => guest(request.connection_id),
                    Some(name) => match valid_name(&name) {
                        Some(name) => name.to_owned(),
                        None => {
                            return Outcome::refuse(
                                400,
                                "a name is 1 to 32 characters, none of them control characters\n",
                            );
                        }
                    },
                };
                reply.accept();
                reply.set_meta("room", &room);
                reply.set_meta("name", &name);
                reply.control(&Control::Subscribe {
                    channel: channel(&room),
                    filters: Vec::new(),
                    since: param(request.query, "last").map(|last| last.chars().take(64).collect()),
                    gap: Some(json!({"type": "gap", "room": room}).to_string()),
                });
                reply.text(&json!({"type": "welcome", "room": room, "name": name, "at": now_ms}).to_string());
            }
            Ok(Event::Text(text)) => {
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                if text.chars().count() > MAX_TEXT {
                    error(&mut reply, &format!("a message holds at most {MAX_TEXT} characters"));
                    continue;
                }
                let (Some(room), Some(name)) = (reply.meta("room"), reply.meta("name")) else {
                    reply.close(1011, "the connection was not opened by this room");
                    break;
                };
                let sent: u64 = reply.meta("sent").and_then(|n| n.parse().ok()).unwrap_or(0) + 1;
                let content = json!({"type": "room", "from": name, "text": text, "at": now_ms});
                items.push(json!({
                    "channel": channel(room),
                    "id": format!("{}:{sent}", request.connection_id),
                    "formats": {"ws-message": {"content": content.to_string(), "id-key": "id"}},
                }));
                reply.set_meta("sent", &sent.to_string());
            }
            Ok(Event::Binary(_)) => error(&mut reply, "the room takes text messages"),
            Ok(Event::Close(close)) => {
                reply.close(close.map_or(1000, |c| c.code), "");
                break;
            }
            Ok(_) => {}
            Err(_) => {
                reply.close(1002, "malformed events");
                break;
            }
        }
    }
    let publish = (!items.is_empty()).then(|| {
        let mut failed = Reply::default();
        error(&mut failed, "your message was not delivered; send it again");
        Publish { body: json!({"items": items}).to_string(), if_failed: failed.finish().1 }
    });
    let (headers, body) = reply.finish();
    Outcome { answer: super::Answer { status: 200, headers, body }, publish }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::*;

    fn request<'a>(query: &'a str, meta: &[(&str, &str)], body: &'a [u8]) -> Request<'a> {
        let meta: BTreeMap<String, String> =
            meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Request { path: PATH, query, connection_id: "conn-7", meta, body }
    }

    fn events(body: &[u8]) -> Vec<String> {
        parse(body)
            .map(|e| match e.unwrap() {
                Event::Open => "OPEN".to_owned(),
                Event::Text(t) => t.to_owned(),
                Event::Close(c) => format!("CLOSE {}", c.map_or(0, |c| c.code)),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn opening_joins_the_rooms_channel_from_where_the_client_was() {
        let out = handle(&request("room=dev&name=Ada+L&last=41.ab", &[], b"OPEN\r\n"), 1234);
        assert!(out.publish.is_none());
        let sent = events(&out.answer.body);
        assert_eq!(sent[0], "OPEN");
        let subscribe: Value = serde_json::from_str(sent[1].strip_prefix("c:").unwrap()).unwrap();
        assert_eq!(subscribe["type"], "subscribe");
        assert_eq!(subscribe["channel"], "room:dev");
        assert_eq!(subscribe["since"], "41.ab");
        assert_eq!(subscribe["gap"], r#"{"room":"dev","type":"gap"}"#);
        assert_eq!(sent[2], r#"{"at":1234,"name":"Ada L","room":"dev","type":"welcome"}"#);
        assert_eq!(header(&out.answer.headers, "set-meta-name"), Some("Ada L"));
        assert_eq!(header(&out.answer.headers, "set-meta-room"), Some("dev"));
    }

    #[test]
    fn a_client_without_a_name_is_a_stable_guest_in_the_lobby() {
        let a = handle(&request("", &[], b"OPEN\r\n"), 0);
        let b = handle(&request("", &[], b"OPEN\r\n"), 0);
        let name = header(&a.answer.headers, "set-meta-name").unwrap();
        assert!(name.starts_with("guest-") && name.len() == 10, "{name}");
        assert_eq!(header(&b.answer.headers, "set-meta-name"), Some(name));
        assert_eq!(header(&a.answer.headers, "set-meta-room"), Some("lobby"));
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        for query in ["room=a%20b", "room=", &format!("room={}", "x".repeat(33)), "name=%0a", "name=+++"] {
            let out = handle(&request(query, &[], b"OPEN\r\n"), 0);
            assert_eq!(out.answer.status, 400, "{query}");
            assert!(!out.answer.body.is_empty());
        }
    }

    #[test]
    fn messages_are_published_with_ids_that_a_repeat_keeps() {
        let meta = [("room", "dev"), ("name", "ada"), ("sent", "4")];
        let body = b"TEXT 4\r\n hi \r\nTEXT 2\r\nyo\r\nTEXT 1\r\n \r\n";
        let out = handle(&request("", &meta, body), 1700);
        let publish = out.publish.expect("two messages to publish");
        let items: Value = serde_json::from_str(&publish.body).unwrap();
        let items = items["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "the blank one is skipped");
        assert_eq!(items[0]["channel"], "room:dev");
        assert_eq!(items[0]["id"], "conn-7:5");
        assert_eq!(items[1]["id"], "conn-7:6");
        let ws = &items[0]["formats"]["ws-message"];
        assert_eq!(ws["id-key"], "id");
        let content: Value = serde_json::from_str(ws["content"].as_str().unwrap()).unwrap();
        assert_eq!(content, json!({"type": "room", "from": "ada", "text": "hi", "at": 1700}));
        assert_eq!(header(&out.answer.headers, "set-meta-sent"), Some("6"));
        assert!(events(&out.answer.body).is_empty(), "the sender gets its message from the channel");
        assert_eq!(
            events(&publish.if_failed),
            [r#"{"text":"your message was not delivered; send it again","type":"error"}"#]
        );

        // The same request again (the gateway retrying it) has the same ids.
        let again = handle(&request("", &meta, body), 1800).publish.unwrap();
        let again: Value = serde_json::from_str(&again.body).unwrap();
        assert_eq!(again["items"][1]["id"], "conn-7:6");
    }

    #[test]
    fn what_the_room_does_not_take_is_said_to_the_sender_alone() {
        let meta = [("room", "dev"), ("name", "ada")];
        let long = "x".repeat(MAX_TEXT + 1);
        let body = format!("TEXT {:x}\r\n{long}\r\nBINARY 1\r\n\x01\r\n", long.len());
        let out = handle(&request("", &meta, body.as_bytes()), 0);
        assert!(out.publish.is_none());
        let sent = events(&out.answer.body);
        assert!(sent[0].contains("at most 1000 characters"), "{sent:?}");
        assert!(sent[1].contains("text messages"), "{sent:?}");
        // Without the meta OPEN sets, the connection is not the room's.
        let out = handle(&request("", &[], b"TEXT 2\r\nhi\r\n"), 0);
        assert_eq!(events(&out.answer.body), ["CLOSE 1011"]);
        let out = handle(&request("", &meta, b"CLOSE 2\r\n\x0f\xa0\r\n"), 0);
        assert_eq!(events(&out.answer.body), ["CLOSE 4000"]);
    }
}
