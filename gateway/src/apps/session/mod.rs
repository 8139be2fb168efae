//! One WebSocket-over-HTTP connection's protocol state, without I/O: the requests it sends the
//! component and what the component's answers mean. What the spec leaves open follows Pushpin.

pub mod record;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use sidestream_events::control::{Control, ControlError, PREFIX as CONTROL_PREFIX};
use sidestream_events::extension::grip_message_prefix;
use sidestream_events::reply::{
    CONNECTION_ID, CONTENT_TYPE, KEEP_ALIVE_INTERVAL, META_PREFIX, SET_META_PREFIX,
};
use sidestream_events::{Close, Event, parse};
use tokio_tungstenite::tungstenite::{Bytes as WsBytes, Message};

use crate::headers;

/// A retried request says which attempt it is (absent on the first): a component can tell a
/// repeated `DISCONNECT` from a new one.
pub const ATTEMPT: HeaderName = HeaderName::from_static("sidestream-attempt");

/// The shortest keep-alive interval a component can ask for (Pushpin's is 20 s; shorter ones
/// cost one request per interval and connection, which is the component's choice to make).
const MIN_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// Headers of the client's handshake that never reach the component: they describe the WebSocket
/// handshake itself (the gateway answers it), or are the protocol's own, which only the gateway
/// may set (as Pushpin removes them).
const NOT_FORWARDED: [HeaderName; 7] = [
    header::SEC_WEBSOCKET_EXTENSIONS,
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::CONTENT_ENCODING,
    header::EXPECT,
    HeaderName::from_static("connection-id"),
];

/// Headers of the component's first answer that are not passed on in the `101`.
const NOT_PASSED_ON: [HeaderName; 4] = [
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::SEC_WEBSOCKET_EXTENSIONS,
    HeaderName::from_static("keep-alive-interval"),
];

/// What the component asked for, in one answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// A message for the client.
    Send(Message),
    /// A GRIP control message.
    Control(Control),
    /// Close the client's connection with this code and reason (`None`: 1000).
    Close(Option<(u16, String)>),
    /// Drop the client's connection without a close.
    Drop,
}

/// Something in an answer that was ignored, as Pushpin ignores it (counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// A control message of a type the gateway does not know.
    UnknownControl,
    /// A control message that is not valid.
    BadControl,
    /// A message without the `grip` message prefix.
    Unprefixed,
    /// An event the protocol does not define.
    UnknownEvent,
}

/// Why an answer could not be used: the connection closes with 1011.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Not `200 application/websocket-events`.
    Status(StatusCode),
    /// The body is not a sequence of events.
    Malformed(sidestream_events::Error),
    /// An `OPEN` after the first answer.
    LateOpen,
}

/// What the first answer decided.
#[derive(Debug)]
pub enum Opened {
    /// Accepted: the headers for the `101`, and the answer's other actions.
    Accepted { headers: HeaderMap, actions: Vec<Action>, ignored: Vec<Ignored> },
    /// Refused: this is the client's answer.
    Refused(Response<Bytes>),
}

/// One connection's side of the protocol.
#[derive(Debug)]
pub struct Session {
    /// `Connection-Id`: random and unguessable, stable for the connection.
    pub id: String,
    uri: Uri,
    /// The client's end-to-end handshake headers, as they go with every request.
    headers: HeaderMap,
    meta: BTreeMap<String, HeaderValue>,
    /// Whether an answer changed `meta` since [`Session::take_meta_changed`] last looked.
    meta_changed: bool,
    /// With `grip` negotiated: the prefix of messages meant for the client.
    grip: Option<String>,
    keep_alive: Option<Duration>,
    /// Encoded events waiting for the next request.
    pending: Vec<u8>,
}

impl Session {
    /// A session for a client's upgrade request to `uri`, whose headers the caller has already
    /// stripped of hop-by-hop headers and given their forwarding headers.
    pub fn new(uri: &Uri, client: &HeaderMap) -> Self {
        let mut headers = client.clone();
        headers::strip_hop_by_hop(&mut headers);
        for name in &NOT_FORWARDED {
            headers.remove(name);
        }
        // Only the gateway speaks for a connection: nothing it owns comes from the client.
        crate::signing::strip_gateway_owned(&mut headers);
        headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, HeaderValue::from_static("grip"));
        let uri = uri.path_and_query().map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));
        Session {
            id: connection_id(),
            uri,
            headers,
            meta: BTreeMap::new(),
            meta_changed: false,
            grip: None,
            keep_alive: None,
            pending: Vec::new(),
        }
    }

    /// A request carrying `body`; `attempt` counts from 1.
    pub fn request(&self, body: Bytes, attempt: u32) -> Request<Bytes> {
        let mut request = Request::new(body);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.clone_from(&self.headers);
        headers.insert(header::ACCEPT, HeaderValue::from_static(CONTENT_TYPE));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Ok(id) = HeaderValue::from_str(&self.id) {
            headers.insert(HeaderName::from_static(CONNECTION_ID), id);
        }
        for (name, value) in &self.meta {
            if let Ok(name) = HeaderName::from_bytes(format!("{META_PREFIX}{name}").as_bytes()) {
                headers.insert(name, value.clone());
            }
        }
        if attempt > 1 {
            headers.insert(ATTEMPT, HeaderValue::from(attempt));
        }
        request
    }

    /// The first request: `OPEN`.
    pub fn open_request(&self) -> Request<Bytes> {
        self.request(sidestream_events::encode(&[Event::Open]).into(), 1)
    }

    /// Queues a client's message for the next request.
    pub fn queue(&mut self, message: &Message) {
        match message {
            Message::Text(text) => Event::Text(text.as_str()).encode(&mut self.pending),
            Message::Binary(bytes) => Event::Binary(bytes).encode(&mut self.pending),
            _ => {}
        }
    }

    /// Bytes of events waiting for the next request.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Every queued event, for the next request (none: a keep-alive).
    pub fn take_events(&mut self) -> Bytes {
        // Without its doubling's slack: the request is held (for a retry) until it is answered.
        let mut pending = std::mem::take(&mut self.pending);
        pending.shrink_to_fit();
        pending.into()
    }

    /// The connection's last request: `CLOSE` with the client's code and reason, or `DISCONNECT`.
    pub fn last_request(&self, close: Option<(u16, &str)>, attempt: u32) -> Request<Bytes> {
        let event = match close {
            // 1005 means the client's Close had no code: the event has none either.
            Some((1005, _)) => Event::Close(None),
            Some((code, reason)) => Event::Close(Some(Close { code, reason: reason.as_bytes() })),
            None => Event::Disconnect,
        };
        self.request(sidestream_events::encode(&[event]).into(), attempt)
    }

    /// Whether an answer changed the connection's meta since the last call.
    pub fn take_meta_changed(&mut self) -> bool {
        std::mem::take(&mut self.meta_changed)
    }

    /// How often an idle connection sends an empty request, if the component asked.
    pub fn keep_alive(&self) -> Option<Duration> {
        self.keep_alive
    }

    /// Reads the first answer: accepted with `OPEN` (and then what else it says), or refused.
    pub fn open(&mut self, response: Response<Bytes>) -> Result<Opened, Failure> {
        let accepted = response.status() == StatusCode::OK
            && is_events(response.headers())
            && parse(response.body()).next().is_some_and(|first| first == Ok(Event::Open));
        if !accepted {
            let (mut parts, body) = response.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers);
            parts.headers.remove(header::CONTENT_LENGTH);
            return Ok(Opened::Refused(Response::from_parts(parts, body)));
        }
        self.grip = grip_message_prefix(
            response
                .headers()
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let (actions, ignored) = self.answer(&response, true)?;
        let mut headers = response.headers().clone();
        headers::strip_hop_by_hop(&mut headers);
        for name in &NOT_PASSED_ON {
            headers.remove(name);
        }
        let meta: Vec<HeaderName> =
            headers.keys().filter(|name| name.as_str().starts_with(SET_META_PREFIX)).cloned().collect();
        for name in meta {
            headers.remove(name);
        }
        Ok(Opened::Accepted { headers, actions, ignored })
    }

    /// Reads a later answer.
    pub fn apply(&mut self, response: &Response<Bytes>) -> Result<(Vec<Action>, Vec<Ignored>), Failure> {
        if response.status() != StatusCode::OK || !is_events(response.headers()) {
            return Err(Failure::Status(response.status()));
        }
        self.answer(response, false)
    }

    /// What an accepted answer says: meta, keep-alive, and its events as actions.
    fn answer(
        &mut self,
        response: &Response<Bytes>,
        first: bool,
    ) -> Result<(Vec<Action>, Vec<Ignored>), Failure> {
        // All events are read before anything is done, so a malformed body changes nothing.
        let events: Vec<Event<'_>> =
            parse(response.body()).collect::<Result<_, _>>().map_err(Failure::Malformed)?;
        let mut changed = false;
        for (name, value) in response.headers() {
            if let Some(meta) = name.as_str().strip_prefix(SET_META_PREFIX).filter(|m| !m.is_empty()) {
                changed |= if value.is_empty() {
                    self.meta.remove(meta).is_some()
                } else {
                    self.meta.insert(meta.to_owned(), value.clone()).as_ref() != Some(value)
                };
            }
        }
        self.meta_changed |= changed;
        if let Some(value) = response.headers().get(KEEP_ALIVE_INTERVAL) {
            // Present but not a positive number of seconds turns it off, as in Pushpin.
            self.keep_alive = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(s).max(MIN_KEEP_ALIVE));
        }
        let mut actions = Vec::new();
        let mut ignored = Vec::new();
        for (i, event) in events.into_iter().enumerate() {
            match event {
                Event::Open if first && i == 0 => {}
                Event::Open => return Err(Failure::LateOpen),
                Event::Text(text) => match (&self.grip, text.strip_prefix(CONTROL_PREFIX)) {
                    (Some(_), Some(json)) => match Control::parse(json.as_bytes()) {
                        Ok(control) => actions.push(Action::Control(control)),
                        Err(ControlError::UnknownType(_)) => ignored.push(Ignored::UnknownControl),
                        Err(_) => ignored.push(Ignored::BadControl),
                    },
                    (Some(prefix), None) => match text.strip_prefix(prefix.as_str()) {
                        Some(text) => actions.push(Action::Send(Message::text(text))),
                        None => ignored.push(Ignored::Unprefixed),
                    },
                    (None, _) => actions.push(Action::Send(Message::text(text))),
                },
                Event::Binary(bytes) => match &self.grip {
                    Some(prefix) => match bytes.strip_prefix(prefix.as_bytes()) {
                        Some(bytes) => {
                            actions.push(Action::Send(Message::binary(WsBytes::copy_from_slice(bytes))))
                        }
                        None => ignored.push(Ignored::Unprefixed),
                    },
                    None => actions.push(Action::Send(Message::binary(WsBytes::copy_from_slice(bytes)))),
                },
                Event::Ping(bytes) => {
                    actions.push(Action::Send(Message::Ping(WsBytes::copy_from_slice(bytes))))
                }
                Event::Pong(bytes) => {
                    actions.push(Action::Send(Message::Pong(WsBytes::copy_from_slice(bytes))))
                }
                // Nothing after a CLOSE or a DISCONNECT counts.
                Event::Close(close) => {
                    let close = close.map(|c| (c.code, String::from_utf8_lossy(c.reason).into_owned()));
                    actions.push(Action::Close(close));
                    break;
                }
                Event::Disconnect => {
                    actions.push(Action::Drop);
                    break;
                }
                Event::Other { .. } => ignored.push(Ignored::UnknownEvent),
            }
        }
        Ok((actions, ignored))
    }
}

/// Whether a response is of `application/websocket-events` (parameters and case aside).
fn is_events(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

/// 128 random bits as a version-4 UUID, like Pushpin's connection ids.
fn connection_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use super::record::MAX_RECORD;
    use super::*;

    fn client_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("host", "app.example"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade, x-hop"),
            ("x-hop", "1"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "chat"),
            ("sec-websocket-extensions", "permessage-deflate"),
            ("cookie", "session=abc"),
            ("authorization", "Bearer t"),
            ("meta-user", "mallory"),
            ("grip-sig", "forged"),
            ("connection-id", "forged"),
        ] {
            h.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        h
    }

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &[u8]) -> Response<Bytes> {
        let mut r = Response::new(Bytes::copy_from_slice(body));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        for (name, value) in headers {
            r.headers_mut().append(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
        }
        r
    }

    const EVENTS: (&str, &str) = ("content-type", CONTENT_TYPE);
    const GRIP: (&str, &str) = ("sec-websocket-extensions", "grip");

    #[test]
    fn a_record_gives_another_gateway_the_disconnect_without_what_could_be_a_secret() {
        let mut headers = client_headers();
        headers.insert("x-api-key", HeaderValue::from_static("k"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        let mut session = Session::new(&Uri::from_static("/chat?room=1&token=t0ken"), &headers);
        let set = answer(200, &[EVENTS, ("set-meta-user", "ada")], b"");
        session.apply(&set).unwrap();
        assert!(session.take_meta_changed());
        assert!(!session.take_meta_changed(), "told once");
        session.apply(&set).unwrap();
        assert!(!session.take_meta_changed(), "the same value again changes nothing");

        let restored = Session::from_record(&session.id, session.record().as_bytes()).unwrap();
        let (mine, theirs) = (session.last_request(None, 1), restored.last_request(None, 1));
        assert_eq!(theirs.uri(), "/chat", "the query may hold a token");
        assert_eq!(theirs.body(), mine.body());
        for name in ["connection-id", "meta-user", "host", "content-type", "sec-websocket-extensions"] {
            assert_eq!(theirs.headers().get(name), mine.headers().get(name), "{name}");
        }
        assert_eq!(theirs.headers().get("meta-user").unwrap(), "ada");
        for secret in ["cookie", "authorization", "sec-websocket-protocol", "x-api-key", "x-forwarded-for"] {
            assert!(mine.headers().contains_key(secret), "{secret}");
            assert!(!theirs.headers().contains_key(secret), "{secret} is not kept in Redis");
        }
        assert!(Session::from_record("x", b"{not json").is_none());
        assert!(
            Session::from_record("x", br#"{"uri":"/","headers":[["bad name","v"]],"meta":[]}"#).is_none()
        );
    }

    #[test]
    fn a_record_stays_within_its_cap() {
        let mut headers = client_headers();
        headers.insert(header::USER_AGENT, HeaderValue::from_str(&"u".repeat(400)).unwrap());
        let mut session = Session::new(&Uri::from_static("/chat"), &headers);
        let big = "m".repeat(MAX_RECORD - 200);
        session.apply(&answer(200, &[EVENTS, ("set-meta-big", &big)], b"")).unwrap();
        let record = session.record();
        assert!(record.len() <= MAX_RECORD, "{}", record.len());
        let restored = Session::from_record("x", record.as_bytes()).unwrap();
        let request = restored.last_request(None, 1);
        assert_eq!(request.headers()["meta-big"], big.as_str(), "the meta is kept before the headers");
        assert!(request.headers().get(header::USER_AGENT).is_none());

        let huge = "m".repeat(MAX_RECORD);
        session.apply(&answer(200, &[EVENTS, ("set-meta-big", &huge)], b"")).unwrap();
        assert!(session.record().len() <= MAX_RECORD);
    }

    #[test]
    fn requests_carry_the_handshake_end_to_end_and_only_the_gateways_own_headers() {
        let session = Session::new(&Uri::from_static("/chat?room=1"), &client_headers());
        let open = session.open_request();
        assert_eq!(open.method(), Method::POST);
        assert_eq!(open.uri(), "/chat?room=1");
        assert_eq!(open.body().as_ref(), b"OPEN\r\n");
        let h = open.headers();
        let get = |name: &str| h.get(name).map(|v| v.to_str().unwrap());
        for (name, value) in [
            ("cookie", "session=abc"),
            ("authorization", "Bearer t"),
            ("sec-websocket-protocol", "chat"),
            ("host", "app.example"),
        ] {
            assert_eq!(get(name), Some(value), "{name} reaches the component");
        }
        for hop in ["upgrade", "connection", "x-hop", "meta-user", "grip-sig"] {
            assert_eq!(get(hop), None, "{hop} must not reach the component");
        }
        assert_eq!(get("sec-websocket-extensions"), Some("grip"));
        assert_eq!(get("content-type"), Some(CONTENT_TYPE));
        assert_eq!(get("accept"), Some(CONTENT_TYPE));
        let id = get("connection-id").unwrap();
        assert_ne!(id, "forged");
        assert_eq!(id.len(), 36);
        assert_ne!(
            Session::new(&Uri::from_static("/"), &HeaderMap::new()).id,
            session.id,
            "unguessable, so unique"
        );
    }

    #[test]
    fn a_first_answer_without_open_refuses_the_handshake_with_its_own_status_and_body() {
        let mut session = Session::new(&Uri::from_static("/"), &client_headers());
        for (status, headers, body) in [
            (403, vec![("content-type", "text/plain"), ("x-reason", "nope")], &b"go away\n"[..]),
            (200, vec![("content-type", "text/plain")], b"not events"),
            (200, vec![EVENTS], b"TEXT 2\r\nhi\r\n"),
        ] {
            let Ok(Opened::Refused(refusal)) = session.open(answer(status, &headers, body)) else {
                panic!("{status} refused")
            };
            assert_eq!(refusal.status().as_u16(), status);
            assert_eq!(refusal.body().as_ref(), body);
        }
        let Ok(Opened::Refused(refusal)) =
            session.open(answer(403, &[("x-reason", "nope"), ("connection", "close")], b""))
        else {
            panic!()
        };
        assert_eq!(refusal.headers().get("x-reason").unwrap(), "nope");
        assert!(refusal.headers().get("connection").is_none());
    }

    #[test]
    fn an_accepted_first_answer_sets_grip_meta_and_the_101s_headers() {
        let mut session = Session::new(&Uri::from_static("/"), &client_headers());
        let first = answer(
            200,
            &[
                EVENTS,
                ("sec-websocket-extensions", "grip; message-prefix=\"\""),
                ("sec-websocket-protocol", "chat"),
                ("set-meta-user", "ada"),
                ("set-cookie", "a=b"),
                ("keep-alive-interval", "30"),
            ],
            b"OPEN\r\nTEXT 5\r\nhello\r\n",
        );
        let Ok(Opened::Accepted { headers, actions, ignored }) = session.open(first) else {
            panic!("accepted")
        };
        assert_eq!(actions, [Action::Send(Message::text("hello"))]);
        assert!(ignored.is_empty());
        assert_eq!(headers.get("sec-websocket-protocol").unwrap(), "chat");
        assert_eq!(headers.get("set-cookie").unwrap(), "a=b");
        for private in ["content-type", "sec-websocket-extensions", "set-meta-user", "keep-alive-interval"] {
            assert!(headers.get(private).is_none(), "{private} stays between gateway and component");
        }
        assert_eq!(session.keep_alive(), Some(Duration::from_secs(30)));
        session.queue(&Message::text("a"));
        let events = session.take_events();
        let next = session.request(events, 1);
        assert_eq!(next.headers().get("meta-user").unwrap(), "ada");
        assert_eq!(next.body().as_ref(), b"TEXT 1\r\na\r\n");
        assert_eq!(session.pending(), 0);
        // An empty Set-Meta removes it; a keep-alive header that is not a positive number turns it off.
        session
            .apply(&answer(200, &[EVENTS, ("set-meta-user", ""), ("keep-alive-interval", "0")], b""))
            .unwrap();
        assert!(session.request(Bytes::new(), 1).headers().get("meta-user").is_none());
        assert_eq!(session.keep_alive(), None);
        session.apply(&answer(200, &[EVENTS, ("keep-alive-interval", "0.5")], b"")).unwrap();
        assert_eq!(session.keep_alive(), None);
    }

    #[test]
    fn grip_sorts_control_messages_from_messages_and_drops_the_unprefixed() {
        let mut session = Session::new(&Uri::from_static("/"), &HeaderMap::new());
        let Ok(Opened::Accepted { .. }) = session.open(answer(200, &[EVENTS, GRIP], b"OPEN\r\n")) else {
            panic!()
        };
        let body = sidestream_events::encode(&[
            Event::Text(r#"c:{"type":"subscribe","channel":"room"}"#),
            Event::Text("m:hello"),
            Event::Text("hello"),
            Event::Binary(b"m:\x00"),
            Event::Text(r#"c:{"type":"teleport"}"#),
            Event::Text("c:{bad"),
            Event::Other { name: "WHAT", content: None },
            Event::Close(Some(Close { code: 4000, reason: b"bye" })),
            Event::Text("m:after the close"),
        ]);
        let (actions, ignored) = session.apply(&answer(200, &[EVENTS], &body)).unwrap();
        assert_eq!(
            actions,
            [
                Action::Control(Control::Subscribe {
                    channel: "room".into(),
                    filters: vec![],
                    since: None,
                    gap: None
                }),
                Action::Send(Message::text("hello")),
                Action::Send(Message::binary(vec![0u8])),
                Action::Close(Some((4000, "bye".into()))),
            ]
        );
        assert_eq!(
            ignored,
            [Ignored::Unprefixed, Ignored::UnknownControl, Ignored::BadControl, Ignored::UnknownEvent]
        );
    }

    #[test]
    fn answers_that_cannot_be_used_are_failures() {
        let mut session = Session::new(&Uri::from_static("/"), &HeaderMap::new());
        let Ok(Opened::Accepted { .. }) = session.open(answer(200, &[EVENTS], b"OPEN\r\n")) else { panic!() };
        assert_eq!(
            session.apply(&answer(500, &[EVENTS], b"")),
            Err(Failure::Status(StatusCode::INTERNAL_SERVER_ERROR))
        );
        assert_eq!(
            session.apply(&answer(200, &[("content-type", "text/plain")], b"")),
            Err(Failure::Status(StatusCode::OK))
        );
        assert!(matches!(
            session.apply(&answer(200, &[EVENTS], b"TEXT 9\r\nshort\r\n")),
            Err(Failure::Malformed(_))
        ));
        assert_eq!(session.apply(&answer(200, &[EVENTS], b"OPEN\r\n")), Err(Failure::LateOpen));
        // Without grip, `c:` is just text for the client.
        let (actions, _) = session.apply(&answer(200, &[EVENTS], b"TEXT 3\r\nc:x\r\n")).unwrap();
        assert_eq!(actions, [Action::Send(Message::text("c:x"))]);
    }

    #[test]
    fn the_last_request_is_close_with_the_clients_code_or_disconnect() {
        let session = Session::new(&Uri::from_static("/"), &HeaderMap::new());
        assert_eq!(
            session.last_request(Some((4001, "bye")), 1).body().as_ref(),
            b"CLOSE 5\r\n\x0f\xa1bye\r\n"
        );
        assert_eq!(session.last_request(Some((1005, "")), 1).body().as_ref(), b"CLOSE\r\n");
        let retried = session.last_request(None, 3);
        assert_eq!(retried.body().as_ref(), b"DISCONNECT\r\n");
        assert_eq!(retried.headers().get(ATTEMPT).unwrap(), "3");
        assert!(session.last_request(None, 1).headers().get(ATTEMPT).is_none());
    }
}
