//! The publish API's body, as Pushpin's HTTP publish endpoint takes it
//! (<https://pushpin.org/docs/usage/#publishing>, and GRIP's "Publishing" section): what the
//! gateway's `POST /publish/` reads and what a component writes to publish.
//!
//! `{"items":[{"channel":"room","id":"...","prev-id":"...","formats":{"ws-message":{...}}}]}`, the
//! format also accepted at the item's top level (Python's `gripcontrol` writes it there). A
//! `ws-message` has `content` (text) or `content-bin` (base64), an optional `type` (`text`,
//! `binary`, `ping`, `pong`), or is `{"action":"close","code":N,"reason":"..."}`. `http-stream` and
//! `http-response` formats are accepted and ignored, as Pushpin delivers them to no WebSocket.
//!
//! One extension of sidestream's: `"id-key": "id"` in a `ws-message` whose content is a JSON
//! object asks the gateway to set that key to the item's position in the channel's history, so a
//! client can say where it was when it comes back.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::control::MessageKind;

/// The longest channel name.
pub const MAX_CHANNEL_LEN: usize = 128;

/// Whether `name` may name a channel: 1 to 128 of `A-Z a-z 0-9 . _ - : @ / = +`.
pub fn is_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:@/=+".contains(&b))
}

/// One item to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub channel: String,
    /// The publisher's id for the item: a repeat within a minute is dropped.
    pub id: Option<String>,
    /// Accepted for compatibility; items are delivered in the order they are published.
    pub prev_id: Option<String>,
    /// What WebSocket subscribers get; `None` when the item has no `ws-message` format.
    pub action: Option<Action>,
    /// The item's meta values, read by the subscriptions' filters (`sender` for `skip-self`,
    /// `skip_users`, `require_sub`), sorted by name.
    pub meta: Vec<(String, String)>,
}

/// The most meta values an item carries, and the longest of each.
pub const MAX_META: usize = 16;
pub const MAX_META_LEN: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A message for every subscriber.
    Send { kind: MessageKind, content: Vec<u8>, id_key: Option<String> },
    /// Close every subscriber's connection.
    Close { code: Option<u16>, reason: String },
}

/// Why a publish body was refused: one line for the publisher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

fn refuse(why: impl Into<String>) -> Refusal {
    Refusal(why.into())
}

/// The limits a body must keep.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_items: usize,
    /// The largest message content, in bytes.
    pub max_content: usize,
}

/// Parses a publish body. Any bad item refuses the whole body, as in Pushpin: nothing is
/// published from a body that is refused.
pub fn parse(body: &[u8], limits: Limits) -> Result<Vec<Item>, Refusal> {
    let value: Value = serde_json::from_slice(body).map_err(|_| refuse("Body is not valid JSON."))?;
    let Value::Object(top) = value else {
        return Err(refuse("Invalid format: the body is not a JSON object"));
    };
    let items = match top.get("items") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(refuse("Invalid format: object contains 'items' with wrong type")),
        None => return Err(refuse("Invalid format: object does not contain 'items'")),
    };
    if items.len() > limits.max_items {
        return Err(refuse(format!("Invalid format: more than {} items", limits.max_items)));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_item(item, limits).map_err(|e| refuse(format!("item {i}: {e}"))))
        .collect()
}

fn string<'a>(object: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, Refusal> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(refuse(format!("'{field}' is not a string"))),
    }
}

fn parse_item(item: &Value, limits: Limits) -> Result<Item, Refusal> {
    let Value::Object(item) = item else { return Err(refuse("an item is not a JSON object")) };
    let channel = string(item, "channel")?.ok_or_else(|| refuse("the item has no 'channel'"))?;
    if !is_channel_name(channel) {
        return Err(refuse(format!(
            "'channel' must be 1 to {MAX_CHANNEL_LEN} of letters, digits and . _ - : @ / = +"
        )));
    }
    let formats = match item.get("formats") {
        Some(Value::Object(formats)) => formats,
        Some(_) => return Err(refuse("'formats' is not an object")),
        None => item,
    };
    let known = ["ws-message", "http-stream", "http-response"];
    if !known.iter().any(|f| formats.contains_key(*f)) {
        return Err(refuse("no formats specified"));
    }
    for other in ["http-stream", "http-response"] {
        if formats.get(other).is_some_and(|f| !f.is_object()) {
            return Err(refuse(format!("'{other}' is not an object")));
        }
    }
    let action = match formats.get("ws-message") {
        None => None,
        Some(Value::Object(ws)) => Some(parse_ws_message(ws, limits)?),
        Some(_) => return Err(refuse("'ws-message' is not an object")),
    };
    Ok(Item {
        channel: channel.to_owned(),
        id: string(item, "id")?.map(str::to_owned),
        prev_id: string(item, "prev-id")?.map(str::to_owned),
        action,
        meta: parse_meta(item)?,
    })
}

fn parse_meta(item: &Map<String, Value>) -> Result<Vec<(String, String)>, Refusal> {
    let meta = match item.get("meta") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(meta)) => meta,
        Some(_) => return Err(refuse("'meta' is not an object")),
    };
    if meta.len() > MAX_META {
        return Err(refuse(format!("'meta' has more than {MAX_META} values")));
    }
    let mut values = Vec::with_capacity(meta.len());
    for (name, value) in meta {
        let Value::String(value) = value else {
            return Err(refuse(format!("'meta' contains '{name}' with wrong type")));
        };
        if name.len() + value.len() > MAX_META_LEN {
            return Err(refuse(format!("'meta' value '{name}' is over {MAX_META_LEN} bytes")));
        }
        values.push((name.clone(), value.clone()));
    }
    values.sort();
    Ok(values)
}

fn parse_ws_message(ws: &Map<String, Value>, limits: Limits) -> Result<Action, Refusal> {
    match string(ws, "action")? {
        None | Some("send") | Some("hint") => {}
        Some("close") => {
            let code = match ws.get("code") {
                None | Some(Value::Null) => None,
                Some(code) => Some(
                    code.as_u64()
                        .and_then(|c| u16::try_from(c).ok())
                        .filter(|c| matches!(c, 1000..=1003 | 1007..=1014 | 3000..=4999))
                        .ok_or_else(|| refuse("'code' is not a close code a client may be sent"))?,
                ),
            };
            let reason = string(ws, "reason")?.unwrap_or_default();
            if reason.len() > 123 {
                return Err(refuse("'reason' is longer than a close frame holds (123 bytes)"));
            }
            return Ok(Action::Close { code, reason: reason.to_owned() });
        }
        Some(_) => return Err(refuse("'ws-message' contains 'action' with unknown value")),
    }
    let content = match (string(ws, "content-bin")?, string(ws, "content")?) {
        (Some(base64), _) => BASE64.decode(base64).map_err(|_| refuse("'content-bin' is not base64"))?,
        (None, Some(text)) => text.as_bytes().to_vec(),
        (None, None) => return Err(refuse("'ws-message' does not contain 'content' or 'content-bin'")),
    };
    let kind = match string(ws, "type")? {
        None if ws.contains_key("content-bin") => MessageKind::Binary,
        None | Some("text") => MessageKind::Text,
        Some("binary") => MessageKind::Binary,
        Some("ping") => MessageKind::Ping,
        Some("pong") => MessageKind::Pong,
        Some(_) => return Err(refuse("'ws-message' contains 'type' with unknown value")),
    };
    if content.len() > limits.max_content {
        return Err(refuse(format!("the content is over {} bytes", limits.max_content)));
    }
    if kind == MessageKind::Text && std::str::from_utf8(&content).is_err() {
        return Err(refuse("a text message's content is not UTF-8"));
    }
    if matches!(kind, MessageKind::Ping | MessageKind::Pong) && content.len() > 125 {
        return Err(refuse("a ping or pong holds at most 125 bytes"));
    }
    let id_key = string(ws, "id-key")?.map(str::to_owned);
    if id_key.is_some() {
        let object = std::str::from_utf8(&content).ok().and_then(|c| serde_json::from_str::<Value>(c).ok());
        if !object.is_some_and(|o| o.is_object()) {
            return Err(refuse("'id-key' needs content that is a JSON object"));
        }
    }
    Ok(Action::Send { kind, content, id_key })
}

/// The content with `key` set to `id`, as the two pieces around the id: `head + "\"<id>\"" + tail`.
/// The id goes in first, so the content's own fields (a stale `key` among them) follow it; the id
/// is made of digits, letters and `.`, which JSON needs no escaping for.
pub fn around_id(content: &[u8], key: &str) -> Option<(String, String)> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(content) else { return None };
    let rest: Map<String, Value> = object.into_iter().filter(|(k, _)| k != key).collect();
    let rest = serde_json::to_string(&Value::Object(rest)).ok()?;
    let key = serde_json::to_string(key).ok()?;
    let tail = if rest == "{}" { "}".to_owned() } else { format!(",{}", &rest[1..]) };
    Some((format!("{{{key}:"), tail))
}

/// A publish body of one text message, as a component writes it: with `id_key`, the gateway sets
/// that key of the (JSON object) message to its position.
pub fn text_item(channel: &str, text: &str, id_key: Option<&str>) -> String {
    let mut ws = json!({"content": text});
    if let Some(key) = id_key {
        ws["id-key"] = json!(key);
    }
    json!({"items": [{"channel": channel, "formats": {"ws-message": ws}}]}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_items: 10, max_content: 100 };

    fn one(body: &str) -> Result<Item, Refusal> {
        parse(body.as_bytes(), LIMITS).map(|mut items| items.remove(0))
    }

    #[test]
    fn reads_what_the_grip_libraries_send() {
        // npm @fanoutio/grip
        let item = one(r#"{"items":[{"formats":{"ws-message":{"content":"hi"}},"id":"a","prev-id":"b","channel":"test"}]}"#).unwrap();
        assert_eq!(item.channel, "test");
        assert_eq!((item.id.as_deref(), item.prev_id.as_deref()), (Some("a"), Some("b")));
        assert_eq!(
            item.action,
            Some(Action::Send { kind: MessageKind::Text, content: b"hi".to_vec(), id_key: None })
        );
        // Python gripcontrol: the format at the item's top level, binary as base64
        let item = one(r#"{"items": [{"ws-message": {"content-bin": "AAE="}, "channel": "test", "meta": {"sender": "ada", "a": "1"}}]}"#).unwrap();
        assert_eq!(item.meta, [("a".to_owned(), "1".to_owned()), ("sender".to_owned(), "ada".to_owned())]);
        assert_eq!(
            item.action,
            Some(Action::Send { kind: MessageKind::Binary, content: vec![0, 1], id_key: None })
        );
        let item = one(r#"{"items": [{"ws-message": {"action": "close", "code": 4001, "reason": "bye"}, "channel": "c"}]}"#).unwrap();
        assert_eq!(item.action, Some(Action::Close { code: Some(4001), reason: "bye".into() }));
        // pushpin-publish sends every format at once; only ws-message is for WebSockets.
        let item = one(r#"{"items":[{"channel":"c","formats":{"http-stream":{"content":"x"},"http-response":{"body":"x"}}}]}"#).unwrap();
        assert_eq!(item.action, None);
    }

    #[test]
    fn refuses_with_one_line_that_says_why() {
        for (body, why) in [
            ("{", "not valid JSON"),
            ("[]", "not a JSON object"),
            ("{}", "does not contain 'items'"),
            (r#"{"items":{}}"#, "'items' with wrong type"),
            (r#"{"items":[{"formats":{"ws-message":{"content":"x"}}}]}"#, "no 'channel'"),
            (
                r#"{"items":[{"channel":"a b","formats":{"ws-message":{"content":"x"}}}]}"#,
                "'channel' must be",
            ),
            (
                r#"{"items":[{"channel":7,"formats":{"ws-message":{"content":"x"}}}]}"#,
                "'channel' is not a string",
            ),
            (r#"{"items":[{"channel":"c"}]}"#, "no formats"),
            (r#"{"items":[{"channel":"c","formats":{"ws-message":{}}}]}"#, "does not contain 'content'"),
            (
                r#"{"items":[{"channel":"c","formats":{"ws-message":{"content":5}}}]}"#,
                "'content' is not a string",
            ),
            (r#"{"items":[{"channel":"c","formats":{"ws-message":{"content-bin":"!"}}}]}"#, "not base64"),
            (
                r#"{"items":[{"channel":"c","formats":{"ws-message":{"content":"x","type":"smoke"}}}]}"#,
                "'type' with unknown",
            ),
            (
                r#"{"items":[{"channel":"c","formats":{"ws-message":{"action":"explode"}}}]}"#,
                "'action' with unknown",
            ),
            (
                r#"{"items":[{"channel":"c","formats":{"ws-message":{"action":"close","code":1006}}}]}"#,
                "close code",
            ),
            (
                r#"{"items":[{"channel":"c","formats":{"ws-message":{"content":"x","id-key":"id"}}}]}"#,
                "JSON object",
            ),
            (
                r#"{"items":[{"channel":"c","meta":[],"ws-message":{"content":"x"}}]}"#,
                "'meta' is not an object",
            ),
            (
                r#"{"items":[{"channel":"c","meta":{"sender":1},"ws-message":{"content":"x"}}]}"#,
                "'sender' with wrong type",
            ),
        ] {
            let refusal = parse(body.as_bytes(), LIMITS).unwrap_err().0;
            assert!(refusal.contains(why), "{body}: {refusal}");
            assert!(!refusal.contains('\n'), "one line: {refusal}");
        }
        let big = format!(
            r#"{{"items":[{{"channel":"c","formats":{{"ws-message":{{"content":"{}"}}}}}}]}}"#,
            "x".repeat(101)
        );
        assert!(parse(big.as_bytes(), LIMITS).unwrap_err().0.contains("over 100 bytes"));
        let many =
            format!(r#"{{"items":[{}]}}"#, [r#"{"channel":"c","ws-message":{"content":"x"}}"#; 11].join(","));
        assert!(parse(many.as_bytes(), LIMITS).unwrap_err().0.contains("more than 10 items"));
    }

    #[test]
    fn the_id_goes_first_into_the_object() {
        let (head, tail) = around_id(br#"{"type":"room","id":"stale","text":"hi"}"#, "id").unwrap();
        let content = format!("{head}\"42.ab\"{tail}");
        assert_eq!(content, r#"{"id":"42.ab","text":"hi","type":"room"}"#);
        let (head, tail) = around_id(b"{}", "id").unwrap();
        assert_eq!(format!("{head}\"1.x\"{tail}"), r#"{"id":"1.x"}"#);
        assert_eq!(around_id(b"[1]", "id"), None);
        let body = text_item("room", r#"{"text":"hi"}"#, Some("id"));
        let item = one(&body).unwrap();
        assert!(matches!(item.action, Some(Action::Send { id_key: Some(ref k), .. }) if k == "id"));
        assert!(is_channel_name("room:42/a@b=c+d_e-f.g"));
        assert!(!is_channel_name(&"x".repeat(129)));
        assert!(!is_channel_name("spaces here"));
    }
}
