//! `/echo`: every message back to its sender as `{"type":"echo","n":N,"text":...}`, where `N`
//! counts the connection's messages. The count lives in the connection's meta (`Set-Meta-N`), so
//! the component keeps nothing between requests. A Close is answered with the same Close.

use std::collections::BTreeMap;

use sidestream_events::{Event, Reply, parse};

pub const PATH: &str = "/echo";

/// The fault-injection build marks its echoes, so the gateway's reload tests can tell the two
/// builds apart by their answers alone.
const BUILD: &str = if cfg!(feature = "fault-injection") { r#","build":"fault""# } else { "" };

/// One request of an `/echo` connection: its meta and events; the response's headers and body.
pub fn handle(meta: BTreeMap<String, String>, body: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let mut reply = Reply::new(meta);
    let mut n: u64 = reply.meta("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    for event in parse(body) {
        match event {
            Ok(Event::Open) => reply.accept(),
            Ok(Event::Text(text)) => {
                n += 1;
                // A string serialises as JSON without fail.
                let text = serde_json::to_string(text).unwrap_or_default();
                reply.text(&format!(r#"{{"type":"echo","n":{n},"text":{text}{BUILD}}}"#));
            }
            Ok(Event::Binary(bytes)) => {
                n += 1;
                reply.binary(bytes);
            }
            Ok(Event::Close(close)) => {
                match close {
                    Some(close) => reply.close(close.code, &String::from_utf8_lossy(close.reason)),
                    None => reply.close(1000, ""),
                }
                break;
            }
            Ok(Event::Disconnect) => break,
            Ok(_) => {}
            Err(_) => {
                reply.close(1002, "malformed events");
                break;
            }
        }
    }
    if n > 0 {
        reply.set_meta("n", &n.to_string());
    }
    reply.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(body: &[u8]) -> Vec<Event<'_>> {
        parse(body).collect::<Result<_, _>>().unwrap()
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn accepts_with_grip_and_no_prefix() {
        let (headers, body) = handle(BTreeMap::new(), b"OPEN\r\n");
        assert_eq!(events(&body), [Event::Open]);
        assert_eq!(header(&headers, "content-type"), Some("application/websocket-events"));
        assert_eq!(header(&headers, "sec-websocket-extensions"), Some("grip; message-prefix=\"\""));
        assert_eq!(header(&headers, "set-meta-n"), None, "nothing counted yet");
    }

    #[test]
    fn counts_messages_across_requests_in_meta() {
        let (headers, body) = handle(BTreeMap::new(), b"TEXT 2\r\nhi\r\nTEXT 4\r\n\"q\"\\\r\n");
        assert_eq!(
            events(&body),
            [
                Event::Text(r#"{"type":"echo","n":1,"text":"hi"}"#),
                Event::Text(r#"{"type":"echo","n":2,"text":"\"q\"\\"}"#),
            ]
        );
        assert_eq!(header(&headers, "set-meta-n"), Some("2"));
        let meta = BTreeMap::from([("n".to_owned(), "2".to_owned())]);
        let (headers, body) = handle(meta, b"BINARY 3\r\n\x00\x01\x02\r\nTEXT 1\r\nx\r\n");
        assert_eq!(
            events(&body),
            [Event::Binary(&[0, 1, 2]), Event::Text(r#"{"type":"echo","n":4,"text":"x"}"#)]
        );
        assert_eq!(header(&headers, "set-meta-n"), Some("4"));
    }

    #[test]
    fn answers_a_close_with_the_same_close() {
        let (_, body) = handle(BTreeMap::new(), b"TEXT 1\r\na\r\nCLOSE 5\r\n\x0f\xa0bye\r\nTEXT 1\r\nb\r\n");
        let events = events(&body);
        assert_eq!(events.len(), 2, "nothing after the close: {events:?}");
        assert_eq!(events[1], Event::Close(Some(sidestream_events::Close { code: 4000, reason: b"bye" })));
        let (_, body) = handle(BTreeMap::new(), b"CLOSE\r\n");
        assert!(matches!(
            self::events(&body)[..],
            [Event::Close(Some(sidestream_events::Close { code: 1000, .. }))]
        ));
        let (_, body) = handle(BTreeMap::new(), b"DISCONNECT\r\n");
        assert!(body.is_empty());
    }
}
