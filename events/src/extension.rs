//! The `grip` WebSocket extension: how a component says it speaks GRIP
//! (<https://pushpin.org/docs/protocols/websocket-over-http/>, "WebSocket extensions").
//!
//! The component answers the `OPEN` with `Sec-WebSocket-Extensions: grip`, optionally with a
//! `message-prefix` parameter. Then its `TEXT`s starting with `c:` are control messages, and its
//! other messages reach the client only if they start with the prefix (`m:` by default), which is
//! removed. `grip; message-prefix=""` lets every other message through as it is.

/// The default prefix of a message for the client, as Pushpin's.
pub const DEFAULT_MESSAGE_PREFIX: &str = "m:";

/// What a component asks for with `grip` in its `Sec-WebSocket-Extensions`: the prefix of its
/// messages for the client. `None` when the header does not name `grip`.
pub fn grip_message_prefix<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    for value in values {
        for extension in value.split(',') {
            let mut parts = extension.split(';').map(str::trim);
            if !parts.next().is_some_and(|name| name.eq_ignore_ascii_case("grip")) {
                continue;
            }
            for parameter in parts {
                let (name, raw) = parameter.split_once('=').unwrap_or((parameter, ""));
                if name.trim().eq_ignore_ascii_case("message-prefix") {
                    let raw = raw.trim();
                    let unquoted = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw);
                    return Some(unquoted.replace("\\\"", "\"").replace("\\\\", "\\"));
                }
            }
            return Some(DEFAULT_MESSAGE_PREFIX.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grip_with_and_without_a_prefix() {
        assert_eq!(grip_message_prefix(["grip"]).as_deref(), Some("m:"));
        assert_eq!(grip_message_prefix(["grip; message-prefix=\"\""]).as_deref(), Some(""));
        assert_eq!(
            grip_message_prefix(["permessage-deflate, GRIP;message-prefix=x:"]).as_deref(),
            Some("x:")
        );
        assert_eq!(grip_message_prefix(["foo", "grip; other=1"]).as_deref(), Some("m:"));
        assert_eq!(grip_message_prefix(["permessage-deflate"]), None);
        assert_eq!(grip_message_prefix(["gripper"]), None);
        assert_eq!(grip_message_prefix([]), None);
    }
}
