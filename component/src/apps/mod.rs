//! The component's WebSocket apps. The gateway holds each client's WebSocket and sends its events
//! here as WebSocket-over-HTTP requests (`sidestream-events`); every app is a pure function from a
//! request to the response and what to publish, so it runs on the host in unit tests, and the
//! component stays stateless: what an app remembers about a connection lives in its meta values.

pub mod echo;
pub mod room;

use std::collections::BTreeMap;

/// The paths where an app lives.
pub const PATHS: [&str; 2] = [echo::PATH, room::PATH];

/// Where the component publishes, from its Spin variables (`spin.toml`'s `[variables]`), as the
/// keys a request's `Grip-Sig` may be signed with (`grip_key`, and during a rotation
/// `grip_key_previous`) are: never constants in its code, so the same `.wasm` runs embedded,
/// beside the gateway and as a SpinApp. Read only when an app publishes.
pub struct Publishing {
    /// `publish_url`: the gateway's publish API (`spin.toml` allows its origin).
    pub url: String,
    /// `publish_token`: the publish API's bearer token (empty: none is sent).
    pub token: String,
}

/// Checks that a WebSocket-over-HTTP request came from the gateway: its `Grip-Sig` signed with
/// one of `keys`, not expired at `now_s` (Unix seconds). Otherwise the refusal to answer with,
/// before anything of the request is read: `401` without a signature, `403` with a bad one.
pub fn authenticate(signature: Option<&str>, keys: &[String], now_s: u64) -> Result<(), Outcome> {
    let keys: Vec<&[u8]> = keys.iter().map(|key| key.as_bytes()).collect();
    sidestream_events::sig::verify(signature, &keys, now_s)
        .map_err(|refusal| Outcome::refuse(refusal.status(), &format!("{refusal}\n")))
}

/// One WebSocket-over-HTTP request, as the apps read it.
pub struct Request<'a> {
    pub path: &'a str,
    /// The client's query string, without the `?`.
    pub query: &'a str,
    /// The gateway's `Connection-Id`.
    pub connection_id: &'a str,
    pub meta: BTreeMap<String, String>,
    pub body: &'a [u8],
}

/// What an app answers: the response, and a publish to make before it is sent.
pub struct Outcome {
    pub answer: Answer,
    pub publish: Option<Publish>,
}

impl Outcome {
    /// Refuses the connection (an answer to its `OPEN`) with `status` and a text body.
    pub fn refuse(status: u16, text: &str) -> Self {
        let headers = vec![("content-type".to_owned(), "text/plain; charset=utf-8".to_owned())];
        Outcome { answer: Answer { status, headers, body: text.as_bytes().to_vec() }, publish: None }
    }
}

/// A publish body for the publish API, and the events to add to the answer if it is not taken.
pub struct Publish {
    pub body: String,
    pub if_failed: Vec<u8>,
}

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

/// Answers one WebSocket-over-HTTP request for the app at its path, or `None` when none lives
/// there; `now_ms` is the time, in Unix milliseconds.
pub fn handle(request: Request<'_>, now_ms: u64) -> Option<Outcome> {
    match request.path {
        echo::PATH => {
            let (headers, body) = echo::handle(request.meta, request.body);
            Some(Outcome { answer: Answer { status: 200, headers, body }, publish: None })
        }
        room::PATH => Some(room::handle(&request, now_ms)),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_request_signed_with_a_current_key_passes() {
        let keys = vec!["new key of some length".to_owned(), "old key of some length".to_owned()];
        let good = sidestream_events::sig::sign(b"old key of some length", "sidestream", 200);
        assert!(authenticate(Some(&good), &keys, 100).is_ok());
        let status = |outcome: Result<(), Outcome>| outcome.err().map(|o| o.answer.status);
        assert_eq!(status(authenticate(None, &keys, 100)), Some(401));
        assert_eq!(status(authenticate(Some(&good), &keys, 200)), Some(403), "expired");
        let forged = sidestream_events::sig::sign(b"a guess", "sidestream", 200);
        assert_eq!(status(authenticate(Some(&forged), &keys, 100)), Some(403));
        assert_eq!(status(authenticate(Some(&good), &[String::new()], 100)), Some(403), "no key set");
    }
}
