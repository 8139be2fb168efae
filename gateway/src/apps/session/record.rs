//! A connection's record, which another gateway reads to send its `DISCONNECT` should this one
//! die ([`crate::apps::lease`]).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::Session;

/// The handshake headers a [`Session::record`] keeps: it lives in Redis for as long as the
/// connection, so it keeps what says where a connection came from and nothing that could be a
/// credential (cookies, `Authorization`, `Sec-WebSocket-Protocol` bearer tokens, API keys) or
/// personal (client addresses). `Sec-WebSocket-Extensions` is the gateway's own `grip` offer.
const RECORDED: [HeaderName; 4] =
    [header::HOST, header::ORIGIN, header::USER_AGENT, header::SEC_WEBSOCKET_EXTENSIONS];

/// A recorded header value longer than this is left out.
const MAX_RECORDED_VALUE: usize = 512;

/// The largest record: past it the headers are left out, then the meta (the `DISCONNECT` still
/// goes, without them). Meta is the app's own, kept to a few values in practice.
pub const MAX_RECORD: usize = 16 * 1024;

impl Session {
    /// What another gateway needs to send this connection's `DISCONNECT` should this one die: the
    /// path (not the query, which may hold a token), the [`RECORDED`] headers and the meta, as one
    /// line of JSON of at most [`MAX_RECORD`] bytes.
    pub fn record(&self) -> String {
        let text = |v: &HeaderValue| v.to_str().ok().map(str::to_owned);
        let headers: Vec<(&str, String)> = self
            .headers
            .iter()
            .filter(|(name, value)| RECORDED.contains(name) && value.len() <= MAX_RECORDED_VALUE)
            .filter_map(|(name, value)| Some((name.as_str(), text(value)?)))
            .collect();
        let meta: Vec<(&str, String)> =
            self.meta.iter().filter_map(|(name, value)| Some((name.as_str(), text(value)?))).collect();
        let path = self.uri.path();
        let record = serde_json::json!({"uri": path, "headers": headers, "meta": meta}).to_string();
        if record.len() <= MAX_RECORD {
            return record;
        }
        let record = serde_json::json!({"uri": path, "headers": [], "meta": meta}).to_string();
        if record.len() <= MAX_RECORD {
            return record;
        }
        serde_json::json!({"uri": path, "headers": [], "meta": []}).to_string()
    }

    /// The session of connection `id` kept as [`Session::record`] wrote it; `None` if it is not one.
    pub fn from_record(id: &str, record: &[u8]) -> Option<Session> {
        let value: serde_json::Value = serde_json::from_slice(record).ok()?;
        let pairs = |field: &str| -> Option<Vec<(HeaderName, HeaderValue)>> {
            value[field]
                .as_array()?
                .iter()
                .map(|pair| {
                    let name = HeaderName::from_bytes(pair.get(0)?.as_str()?.as_bytes()).ok()?;
                    let value = HeaderValue::from_str(pair.get(1)?.as_str()?).ok()?;
                    Some((name, value))
                })
                .collect()
        };
        let mut headers = HeaderMap::new();
        for (name, value) in pairs("headers")? {
            headers.append(name, value);
        }
        let meta =
            pairs("meta")?.into_iter().map(|(name, value)| (name.as_str().to_owned(), value)).collect();
        Some(Session {
            id: id.to_owned(),
            uri: value["uri"].as_str()?.parse().ok()?,
            headers,
            meta,
            meta_changed: false,
            grip: None,
            keep_alive: None,
            pending: Vec::new(),
        })
    }
}
