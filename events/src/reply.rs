//! A component's side of one request: the meta it was sent, and the response it builds.
//!
//! ```
//! use sidestream_events::{Event, Reply, parse};
//!
//! // The request: its `Meta-*` headers and its body.
//! let meta = [("meta-n", "1")];
//! let body = b"TEXT 2\r\nhi\r\n";
//! let mut reply = Reply::new(sidestream_events::meta_of(meta));
//! for event in parse(body) {
//!     match event.expect("a well-formed body") {
//!         Event::Open => reply.accept(),
//!         Event::Text(text) => reply.text(&format!("echo: {text}")),
//!         Event::Close(close) => reply.close(close.map_or(1000, |c| c.code), ""),
//!         _ => {}
//!     }
//! }
//! reply.set_meta("n", "2");
//! let (headers, body) = reply.finish();
//! assert!(headers.contains(&("set-meta-n".to_owned(), "2".to_owned())));
//! assert_eq!(body, b"TEXT 8\r\necho: hi\r\n");
//! ```

use std::collections::BTreeMap;

use crate::control::Control;
use crate::event::{Close, Event};

/// The media type of request and response bodies.
pub const CONTENT_TYPE: &str = "application/websocket-events";
/// The header that names the connection, stable across its requests.
pub const CONNECTION_ID: &str = "connection-id";
/// Requests carry each meta value as `Meta-<name>`.
pub const META_PREFIX: &str = "meta-";
/// A response sets (or, empty, removes) a meta value with `Set-Meta-<name>`.
pub const SET_META_PREFIX: &str = "set-meta-";
/// A response asks for a keep-alive request every so many seconds.
pub const KEEP_ALIVE_INTERVAL: &str = "keep-alive-interval";
/// What [`Reply::accept`] negotiates: GRIP, with no prefix needed on messages for the client.
pub const GRIP_WITHOUT_PREFIX: &str = "grip; message-prefix=\"\"";

/// The meta values among a request's headers (names lower-cased, without `meta-`).
pub fn meta_of<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> BTreeMap<String, String> {
    headers
        .into_iter()
        .filter_map(|(name, value)| {
            // Compared in place: every header of every request passes here, and few are meta.
            let prefix = name.get(..META_PREFIX.len())?;
            let rest = &name[META_PREFIX.len()..];
            (prefix.eq_ignore_ascii_case(META_PREFIX) && !rest.is_empty())
                .then(|| (rest.to_ascii_lowercase(), value.to_owned()))
        })
        .collect()
}

/// The response to one request: events for the client and the gateway, and meta changes.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    sent_meta: BTreeMap<String, String>,
    meta: BTreeMap<String, String>,
    accepted: bool,
    body: Vec<u8>,
    keep_alive: Option<u64>,
}

impl Reply {
    /// Starts the reply to a request that carried `meta`.
    pub fn new(meta: BTreeMap<String, String>) -> Self {
        Reply { sent_meta: meta.clone(), meta, ..Reply::default() }
    }

    /// The connection's meta value `name`, as changed so far.
    pub fn meta(&self, name: &str) -> Option<&str> {
        self.meta.get(name).map(String::as_str)
    }

    /// Accepts the connection (answers its `OPEN`), with GRIP and no message prefix.
    pub fn accept(&mut self) {
        if !self.accepted {
            self.accepted = true;
            Event::Open.encode(&mut self.body);
        }
    }

    pub fn text(&mut self, text: &str) {
        Event::Text(text).encode(&mut self.body);
    }

    pub fn binary(&mut self, bytes: &[u8]) {
        Event::Binary(bytes).encode(&mut self.body);
    }

    /// A GRIP control message for the gateway (subscribe, unsubscribe, ...).
    pub fn control(&mut self, control: &Control) {
        Event::Text(&control.encode()).encode(&mut self.body);
    }

    /// Closes the connection with `code` and `reason` (at most 123 bytes of it reach the client).
    pub fn close(&mut self, code: u16, reason: &str) {
        Event::Close(Some(Close { code, reason: reason.as_bytes() })).encode(&mut self.body);
    }

    /// Sets meta value `name` (lower case) for the connection's later requests; empty removes it.
    pub fn set_meta(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            self.meta.remove(name);
        } else {
            self.meta.insert(name.to_owned(), value.to_owned());
        }
    }

    /// Asks for an empty request every `seconds` while nothing else happens.
    pub fn keep_alive_every(&mut self, seconds: u64) {
        self.keep_alive = Some(seconds);
    }

    /// The response's headers (beyond the status, 200) and body.
    pub fn finish(self) -> (Vec<(String, String)>, Vec<u8>) {
        let mut headers = vec![("content-type".to_owned(), CONTENT_TYPE.to_owned())];
        if self.accepted {
            headers.push(("sec-websocket-extensions".to_owned(), GRIP_WITHOUT_PREFIX.to_owned()));
        }
        if let Some(seconds) = self.keep_alive {
            headers.push((KEEP_ALIVE_INTERVAL.to_owned(), seconds.to_string()));
        }
        for (name, value) in &self.meta {
            if self.sent_meta.get(name) != Some(value) {
                headers.push((format!("{SET_META_PREFIX}{name}"), value.clone()));
            }
        }
        for name in self.sent_meta.keys().filter(|name| !self.meta.contains_key(*name)) {
            headers.push((format!("{SET_META_PREFIX}{name}"), String::new()));
        }
        (headers, self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_meta_is_sent_back() {
        let mut reply =
            Reply::new(meta_of([("Meta-A", "1"), ("meta-b", "2"), ("x-other", "3"), ("meta-", "4")]));
        assert_eq!(reply.meta("a"), Some("1"));
        reply.set_meta("a", "1");
        reply.set_meta("b", "");
        reply.set_meta("c", "3");
        let (headers, body) = reply.finish();
        assert!(body.is_empty());
        assert_eq!(
            headers,
            [
                ("content-type".to_owned(), CONTENT_TYPE.to_owned()),
                ("set-meta-c".to_owned(), "3".to_owned()),
                ("set-meta-b".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn accepting_negotiates_grip_once() {
        let mut reply = Reply::new(BTreeMap::new());
        reply.accept();
        reply.accept();
        reply.control(&Control::Subscribe {
            channel: "room".into(),
            filters: vec![],
            since: None,
            gap: None,
        });
        reply.keep_alive_every(30);
        let (headers, body) = reply.finish();
        assert!(headers.contains(&("sec-websocket-extensions".to_owned(), GRIP_WITHOUT_PREFIX.to_owned())));
        assert!(headers.contains(&("keep-alive-interval".to_owned(), "30".to_owned())));
        let events: Vec<_> = crate::parse(&body).collect::<Result<_, _>>().unwrap();
        assert_eq!(events, [Event::Open, Event::Text(r#"c:{"channel":"room","type":"subscribe"}"#)]);
    }
}
