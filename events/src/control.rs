//! GRIP control messages: what a component tells the gateway about a connection, inside the
//! connection's own stream (<https://pushpin.org/docs/protocols/grip/>, "WebSocket", "Control
//! messages").
//!
//! With the `grip` extension negotiated, a `TEXT` from the component that starts with `c:` is not
//! for the client: the rest is a JSON object whose `type` says what to do. The types are Pushpin's,
//! with its fields and defaults.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

/// The prefix of a control message.
pub const PREFIX: &str = "c:";

/// A keep-alive's default timeout, as Pushpin's (`DEFAULT_WS_KEEPALIVE_TIMEOUT`).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(55);

/// What a control message asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Join `channel`: the connection receives what is published to it. sidestream's extension:
    /// with `since` (a position a client last saw), what was published after it is delivered
    /// first, in order; if the channel's history no longer reaches back that far, the client gets
    /// `gap` (default `{"type":"gap","channel":...}`) instead, so the app can reload.
    Subscribe { channel: String, filters: Vec<String>, since: Option<String>, gap: Option<String> },
    /// Leave `channel`.
    Unsubscribe { channel: String },
    /// Stop sending the connection's events to the component; publishes still reach the client.
    Detach,
    /// Set (or, with `None`, clear) the connection's session id.
    Session { id: Option<String> },
    /// Set (or, with `None`, remove) one of the connection's meta values used by publish filters.
    SetMeta { name: String, value: Option<String> },
    /// Send `message` to the client when the connection has been quiet for (`Idle`) or every
    /// (`Interval`) `timeout`; `None` turns a keep-alive off.
    KeepAlive(Option<KeepAlive>),
    /// Send `message` after `timeout` unless another `send-delayed` or a `flush-delayed` comes first.
    SendDelayed { message: Message, timeout: Duration },
    /// Send the delayed message now.
    FlushDelayed,
}

/// A message a control message carries for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub kind: MessageKind,
    pub content: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
    Ping,
    Pong,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepAlive {
    pub message: Message,
    pub timeout: Duration,
    pub mode: KeepAliveMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAliveMode {
    /// After `timeout` without a message to the client (the default).
    Idle,
    /// Every `timeout`, whatever else is sent.
    Interval,
}

/// Why a control message was not understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// Not a JSON object.
    NotAnObject,
    /// A `type` this gateway does not know (ignored and counted, as Pushpin ignores it).
    UnknownType(String),
    /// A field missing, of the wrong type, or with a value out of range.
    BadField { field: &'static str, problem: &'static str },
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::NotAnObject => f.write_str("a control message must be a JSON object"),
            ControlError::UnknownType(kind) => write!(f, "unknown control message type {kind:?}"),
            ControlError::BadField { field, problem } => {
                write!(f, "control message field {field:?} {problem}")
            }
        }
    }
}

impl std::error::Error for ControlError {}

fn bad(field: &'static str, problem: &'static str) -> ControlError {
    ControlError::BadField { field, problem }
}

fn string(object: &Map<String, Value>, field: &'static str) -> Result<Option<String>, ControlError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(field, "is not a string")),
    }
}

fn required(object: &Map<String, Value>, field: &'static str) -> Result<String, ControlError> {
    match string(object, field)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(bad(field, "is missing or empty")),
    }
}

/// `timeout` in whole seconds; absent or 0 means `default`.
fn timeout(object: &Map<String, Value>, default: Duration) -> Result<Duration, ControlError> {
    match object.get("timeout") {
        None | Some(Value::Null) => Ok(default),
        Some(value) => match value.as_u64() {
            Some(0) => Ok(default),
            Some(seconds) if seconds <= 7 * 24 * 3600 => Ok(Duration::from_secs(seconds)),
            _ => Err(bad("timeout", "is not a number of seconds up to a week")),
        },
    }
}

/// The message of a `keep-alive` or `send-delayed`: `content` (text) or `content-bin` (base64),
/// `message-type` defaulting to text. `None` when there is no content at all.
fn message(object: &Map<String, Value>) -> Result<Option<Message>, ControlError> {
    let kind = match string(object, "message-type")?.as_deref() {
        None | Some("text") => MessageKind::Text,
        Some("binary") => MessageKind::Binary,
        Some("ping") => MessageKind::Ping,
        Some("pong") => MessageKind::Pong,
        Some(_) => return Err(bad("message-type", "is not text, binary, ping or pong")),
    };
    let content = match (string(object, "content-bin")?, string(object, "content")?) {
        (Some(base64), _) => BASE64.decode(base64).map_err(|_| bad("content-bin", "is not base64"))?,
        (None, Some(text)) => text.into_bytes(),
        (None, None) => return Ok(None),
    };
    if kind == MessageKind::Text && std::str::from_utf8(&content).is_err() {
        return Err(bad("content-bin", "is not UTF-8 for a text message"));
    }
    Ok(Some(Message { kind, content }))
}

impl Control {
    /// Parses the JSON of a control message (the text after `c:`).
    pub fn parse(json: &[u8]) -> Result<Control, ControlError> {
        let value: Value = serde_json::from_slice(json).map_err(|_| ControlError::NotAnObject)?;
        let Value::Object(object) = value else { return Err(ControlError::NotAnObject) };
        let kind = string(&object, "type")?.ok_or(bad("type", "is missing"))?;
        Ok(match kind.as_str() {
            "subscribe" => {
                let filters = match object.get("filters") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|f| {
                            f.as_str()
                                .map(str::to_owned)
                                .ok_or(bad("filters", "holds a value that is not a string"))
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err(bad("filters", "is not a list")),
                };
                Control::Subscribe {
                    channel: required(&object, "channel")?,
                    filters,
                    since: string(&object, "since")?,
                    gap: string(&object, "gap")?,
                }
            }
            "unsubscribe" => Control::Unsubscribe { channel: required(&object, "channel")? },
            "detach" => Control::Detach,
            "session" => Control::Session { id: string(&object, "id")?.filter(|id| !id.is_empty()) },
            "set-meta" => {
                Control::SetMeta { name: required(&object, "name")?, value: string(&object, "value")? }
            }
            "keep-alive" => {
                let mode = match string(&object, "mode")?.as_deref() {
                    Some("interval") => KeepAliveMode::Interval,
                    _ => KeepAliveMode::Idle,
                };
                let timeout = timeout(&object, DEFAULT_KEEP_ALIVE)?;
                Control::KeepAlive(message(&object)?.map(|message| KeepAlive { message, timeout, mode }))
            }
            "send-delayed" => Control::SendDelayed {
                message: message(&object)?.ok_or(bad("content", "is missing"))?,
                timeout: timeout(&object, Duration::from_secs(1))?,
            },
            "flush-delayed" => Control::FlushDelayed,
            _ => return Err(ControlError::UnknownType(kind)),
        })
    }

    /// The control message as the component sends it: `c:` and the JSON.
    pub fn encode(&self) -> String {
        let value = match self {
            Control::Subscribe { channel, filters, since, gap } => {
                let mut value = json!({"type": "subscribe", "channel": channel});
                if !filters.is_empty() {
                    value["filters"] = json!(filters);
                }
                if let Some(since) = since {
                    value["since"] = json!(since);
                }
                if let Some(gap) = gap {
                    value["gap"] = json!(gap);
                }
                value
            }
            Control::Unsubscribe { channel } => json!({"type": "unsubscribe", "channel": channel}),
            Control::Detach => json!({"type": "detach"}),
            Control::Session { id } => json!({"type": "session", "id": id}),
            Control::SetMeta { name, value } => json!({"type": "set-meta", "name": name, "value": value}),
            Control::KeepAlive(None) => json!({"type": "keep-alive"}),
            Control::KeepAlive(Some(KeepAlive { message, timeout, mode })) => {
                let mut value = message_json(message);
                value["type"] = json!("keep-alive");
                value["timeout"] = json!(timeout.as_secs());
                if *mode == KeepAliveMode::Interval {
                    value["mode"] = json!("interval");
                }
                value
            }
            Control::SendDelayed { message, timeout } => {
                let mut value = message_json(message);
                value["type"] = json!("send-delayed");
                value["timeout"] = json!(timeout.as_secs());
                value
            }
            Control::FlushDelayed => json!({"type": "flush-delayed"}),
        };
        format!("{PREFIX}{value}")
    }
}

fn message_json(message: &Message) -> Value {
    let kind = match message.kind {
        MessageKind::Text => "text",
        MessageKind::Binary => "binary",
        MessageKind::Ping => "ping",
        MessageKind::Pong => "pong",
    };
    match std::str::from_utf8(&message.content) {
        Ok(text) if message.kind == MessageKind::Text => json!({"message-type": kind, "content": text}),
        _ => json!({"message-type": kind, "content-bin": BASE64.encode(&message.content)}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Control, ControlError> {
        Control::parse(json.as_bytes())
    }

    #[test]
    fn reads_every_type_pushpin_knows() {
        assert_eq!(
            parse(r#"{"type":"subscribe","channel":"room","filters":["skip-self"]}"#).unwrap(),
            Control::Subscribe {
                channel: "room".into(),
                filters: vec!["skip-self".into()],
                since: None,
                gap: None
            }
        );
        assert_eq!(
            parse(r#"{"type":"subscribe","channel":"room","since":"41.ab"}"#).unwrap(),
            Control::Subscribe {
                channel: "room".into(),
                filters: vec![],
                since: Some("41.ab".into()),
                gap: None
            }
        );
        assert_eq!(
            parse(r#"{"type":"unsubscribe","channel":"room"}"#).unwrap(),
            Control::Unsubscribe { channel: "room".into() }
        );
        assert_eq!(parse(r#"{"type":"detach"}"#).unwrap(), Control::Detach);
        assert_eq!(parse(r#"{"type":"session","id":""}"#).unwrap(), Control::Session { id: None });
        assert_eq!(
            parse(r#"{"type":"set-meta","name":"user","value":"ada"}"#).unwrap(),
            Control::SetMeta { name: "user".into(), value: Some("ada".into()) }
        );
        assert_eq!(
            parse(r#"{"type":"set-meta","name":"user"}"#).unwrap(),
            Control::SetMeta { name: "user".into(), value: None }
        );
        assert_eq!(
            parse(r#"{"type":"keep-alive","content":"{}","timeout":20,"mode":"interval"}"#).unwrap(),
            Control::KeepAlive(Some(KeepAlive {
                message: Message { kind: MessageKind::Text, content: b"{}".to_vec() },
                timeout: Duration::from_secs(20),
                mode: KeepAliveMode::Interval,
            }))
        );
        assert_eq!(
            parse(r#"{"type":"keep-alive","content-bin":"AAE=","message-type":"ping"}"#).unwrap(),
            Control::KeepAlive(Some(KeepAlive {
                message: Message { kind: MessageKind::Ping, content: vec![0, 1] },
                timeout: DEFAULT_KEEP_ALIVE,
                mode: KeepAliveMode::Idle,
            }))
        );
        assert_eq!(parse(r#"{"type":"keep-alive"}"#).unwrap(), Control::KeepAlive(None), "no content: off");
        assert!(matches!(
            parse(r#"{"type":"send-delayed","content":"x"}"#).unwrap(),
            Control::SendDelayed { .. }
        ));
        assert_eq!(parse(r#"{"type":"flush-delayed"}"#).unwrap(), Control::FlushDelayed);
    }

    #[test]
    fn refuses_what_it_cannot_act_on() {
        assert_eq!(parse("[1,2]"), Err(ControlError::NotAnObject));
        assert_eq!(parse("{bad"), Err(ControlError::NotAnObject));
        assert_eq!(parse(r#"{"type":"teleport"}"#), Err(ControlError::UnknownType("teleport".into())));
        assert!(matches!(parse(r#"{}"#), Err(ControlError::BadField { field: "type", .. })));
        assert!(matches!(
            parse(r#"{"type":"subscribe"}"#),
            Err(ControlError::BadField { field: "channel", .. })
        ));
        assert!(matches!(parse(r#"{"type":"subscribe","channel":""}"#), Err(ControlError::BadField { .. })));
        assert!(matches!(parse(r#"{"type":"subscribe","channel":7}"#), Err(ControlError::BadField { .. })));
        assert!(matches!(
            parse(r#"{"type":"subscribe","channel":"a","filters":[1]}"#),
            Err(ControlError::BadField { .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"keep-alive","content":"x","timeout":-5}"#),
            Err(ControlError::BadField { .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"keep-alive","content-bin":"!!"}"#),
            Err(ControlError::BadField { .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"keep-alive","content":"x","message-type":"smoke"}"#),
            Err(ControlError::BadField { .. })
        ));
    }

    #[test]
    fn encodes_what_it_reads() {
        for control in [
            Control::Subscribe { channel: "room".into(), filters: vec![], since: None, gap: None },
            Control::Subscribe {
                channel: "room".into(),
                filters: vec!["skip-self".into()],
                since: Some("3.x".into()),
                gap: Some("{}".into()),
            },
            Control::Unsubscribe { channel: "a\"b".into() },
            Control::Detach,
            Control::SetMeta { name: "n".into(), value: Some("1".into()) },
            Control::KeepAlive(Some(KeepAlive {
                message: Message { kind: MessageKind::Binary, content: vec![0, 255] },
                timeout: Duration::from_secs(30),
                mode: KeepAliveMode::Interval,
            })),
            Control::KeepAlive(None),
            Control::FlushDelayed,
        ] {
            let encoded = control.encode();
            let json = encoded.strip_prefix(PREFIX).expect("c: prefix");
            assert_eq!(Control::parse(json.as_bytes()).unwrap(), control, "{encoded}");
        }
        assert_eq!(
            Control::Subscribe { channel: "room".into(), filters: vec![], since: None, gap: None }.encode(),
            r#"c:{"channel":"room","type":"subscribe"}"#
        );
    }
}
