//! `/fault/ws`: a WebSocket app that fails the ways an app can, as its query asks, for the
//! gateway's tests of WebSocket apps (fault-injection builds only, like [`crate::fault`]).
//!
//! It accepts with GRIP and no message prefix, and echoes every message as it came, unless:
//! `refuse=STATUS` refuses the handshake; `on=trap|garbage|status|sleep|control|close` fails each
//! request with messages that way (`ms=N` for `sleep`, `code=N` for `close`); `last-fails=N` fails
//! the first N attempts at a connection's last event (`Sidestream-Attempt` counts them);
//! `keepalive=N` asks for a keep-alive request every N seconds.

use std::collections::BTreeMap;
use std::time::Duration;

use sidestream_events::{Event, Reply, parse};

use crate::apps::Answer;
use crate::query::param;

pub const PATH: &str = "/fault/ws";

fn status(code: u16, body: &str) -> Answer {
    Answer {
        status: code,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: body.as_bytes().to_vec(),
    }
}

/// Answers one request; `attempt` is the request's `Sidestream-Attempt` (1 when absent).
pub fn handle(query: &str, attempt: u32, meta: BTreeMap<String, String>, body: &[u8]) -> Answer {
    let events: Vec<Event<'_>> = match parse(body).collect() {
        Ok(events) => events,
        Err(_) => return status(400, "malformed events\n"),
    };
    let opening = events.first() == Some(&Event::Open);
    let last = events.iter().any(|e| matches!(e, Event::Close(_) | Event::Disconnect));
    let messages = events.iter().any(|e| matches!(e, Event::Text(_) | Event::Binary(_)));
    if opening && let Some(code) = param(query, "refuse").and_then(|c| c.parse().ok()) {
        return status(code, "refused by the app\n");
    }
    if last && param(query, "last-fails").and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| attempt <= n) {
        return status(500, "failing this attempt on purpose\n");
    }
    let mut reply = Reply::new(meta);
    if messages {
        match param(query, "on").as_deref() {
            Some("trap") => panic!("fault injection: the app traps"),
            Some("status") => return status(500, "the app fails\n"),
            Some("garbage") => {
                return Answer {
                    status: 200,
                    headers: vec![("content-type".into(), sidestream_events::reply::CONTENT_TYPE.into())],
                    body: b"TEXT 99\r\nshort\r\n".to_vec(),
                };
            }
            Some("sleep") => {
                let ms = param(query, "ms").and_then(|ms| ms.parse().ok()).unwrap_or(1000);
                std::thread::sleep(Duration::from_millis(ms));
            }
            Some("control") => {
                reply.text(r#"c:{"type":"teleport"}"#);
                reply.text("c:{not json");
            }
            Some("close") => {
                let code = param(query, "code").and_then(|c| c.parse().ok()).unwrap_or(4000);
                reply.close(code, "closed by the app");
                let (headers, body) = reply.finish();
                return Answer { status: 200, headers, body };
            }
            _ => {}
        }
    }
    for event in events {
        match event {
            Event::Open => {
                reply.accept();
                if let Some(seconds) = param(query, "keepalive").and_then(|s| s.parse().ok()) {
                    reply.keep_alive_every(seconds);
                }
            }
            Event::Text(text) => reply.text(text),
            Event::Binary(bytes) => reply.binary(bytes),
            _ => {}
        }
    }
    let (headers, body) = reply.finish();
    Answer { status: 200, headers, body }
}
