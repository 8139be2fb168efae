//! The component's WebSocket apps. The gateway holds each client's WebSocket and sends its events
//! here as WebSocket-over-HTTP requests (`sidestream-events`); every app is a pure function from a
//! request's meta and events to the response, so it runs on the host in unit tests, and the
//! component stays stateless: what an app remembers about a connection lives in its meta values.

pub mod echo;

use std::collections::BTreeMap;

/// The paths where an app lives.
pub const PATHS: [&str; 1] = [echo::PATH];

/// Whether an app lives at `path` (a plain `GET` there is answered `426`: it is a WebSocket).
pub fn is_app(path: &str) -> bool {
    PATHS.contains(&path)
}

/// A response: status, headers and body.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Answers one WebSocket-over-HTTP request for the app at `path`, or `None` when none lives there.
pub fn handle(path: &str, meta: BTreeMap<String, String>, body: &[u8]) -> Option<Answer> {
    let (headers, body) = match path {
        echo::PATH => echo::handle(meta, body),
        _ => return None,
    };
    Some(Answer { status: 200, headers, body })
}

/// Whether a request is WebSocket-over-HTTP: a `POST` of `application/websocket-events`.
pub fn is_websocket_events(method: &str, content_type: Option<&str>) -> bool {
    method == "POST"
        && content_type.is_some_and(|t| {
            t.split(';').next().is_some_and(|media| {
                media.trim().eq_ignore_ascii_case(sidestream_events::reply::CONTENT_TYPE)
            })
        })
}
