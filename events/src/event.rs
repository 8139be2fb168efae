//! Events, the unit of the WebSocket-over-HTTP protocol
//! (<https://pushpin.org/docs/protocols/websocket-over-http/>, "Protocol").
//!
//! A body of `Content-Type: application/websocket-events` is a sequence of events, each
//! `NAME <content length in hex>\r\n<content>\r\n`, or `NAME\r\n` when it has no content. An empty
//! body is a keep-alive.

use std::fmt;

/// One event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// `OPEN`: the first event of a connection (request), and its acceptance (response).
    Open,
    /// `TEXT`: a text message (its content is UTF-8).
    Text(&'a str),
    /// `BINARY`: a binary message.
    Binary(&'a [u8]),
    /// `PING`, with its optional payload.
    Ping(&'a [u8]),
    /// `PONG`, with its optional payload.
    Pong(&'a [u8]),
    /// `CLOSE`: the content is the 2-byte big-endian close code, then the reason. Without a code
    /// (no content, or less than two bytes, as Pushpin reads it) the close has none.
    Close(Option<Close<'a>>),
    /// `DISCONNECT`: the connection ended without a closing handshake (request), or the
    /// component wants it dropped (response).
    Disconnect,
    /// An event name this crate does not know. Receivers ignore it, as Pushpin does.
    Other { name: &'a str, content: Option<&'a [u8]> },
}

/// The code and reason of a `CLOSE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close<'a> {
    pub code: u16,
    /// UTF-8 in a well-formed close; the bytes as they came.
    pub reason: &'a [u8],
}

impl Event<'_> {
    /// The event's name on the wire.
    pub fn name(&self) -> &str {
        match self {
            Event::Open => "OPEN",
            Event::Text(_) => "TEXT",
            Event::Binary(_) => "BINARY",
            Event::Ping(_) => "PING",
            Event::Pong(_) => "PONG",
            Event::Close(_) => "CLOSE",
            Event::Disconnect => "DISCONNECT",
            Event::Other { name, .. } => name,
        }
    }

    /// Appends the event's encoding to `out`. Empty content is written without a length, as
    /// Pushpin writes it (`TEXT\r\n`); readers accept both forms.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let content: &[u8] = match self {
            Event::Open | Event::Disconnect | Event::Close(None) => &[],
            Event::Text(text) => text.as_bytes(),
            Event::Binary(bytes) | Event::Ping(bytes) | Event::Pong(bytes) => bytes,
            Event::Close(Some(close)) => {
                out.extend_from_slice(b"CLOSE ");
                push_hex(out, 2 + close.reason.len());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&close.code.to_be_bytes());
                out.extend_from_slice(close.reason);
                out.extend_from_slice(b"\r\n");
                return;
            }
            Event::Other { content, .. } => content.unwrap_or_default(),
        };
        out.extend_from_slice(self.name().as_bytes());
        if !content.is_empty() {
            out.push(b' ');
            push_hex(out, content.len());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(content);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// How many bytes [`Event::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let content = match self {
            Event::Open | Event::Disconnect | Event::Close(None) => 0,
            Event::Text(text) => text.len(),
            Event::Binary(bytes) | Event::Ping(bytes) | Event::Pong(bytes) => bytes.len(),
            Event::Close(Some(close)) => 2 + close.reason.len(),
            Event::Other { content, .. } => content.map_or(0, <[u8]>::len),
        };
        let length = if content == 0 { 0 } else { 1 + hex_digits(content) + 2 };
        self.name().len() + length + content + 2
    }
}

/// Encodes `events` into one body.
pub fn encode(events: &[Event<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.iter().map(Event::encoded_len).sum());
    for event in events {
        event.encode(&mut out);
    }
    out
}

fn hex_digits(n: usize) -> usize {
    (usize::BITS - n.leading_zeros()).div_ceil(4).max(1) as usize
}

fn push_hex(out: &mut Vec<u8>, n: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..hex_digits(n)).rev() {
        out.push(DIGITS[(n >> (shift * 4)) & 0xf]);
    }
}

/// Why a body is not a sequence of events, and where it stopped making sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// Byte offset of the event that could not be read.
    pub offset: usize,
    pub kind: ErrorKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No `\r\n` after the event's name.
    UnterminatedLine,
    /// The name is empty or not ASCII letters.
    BadName,
    /// The length is not hexadecimal, or too large.
    BadLength,
    /// The content is shorter than its length says.
    Truncated,
    /// The content is not followed by `\r\n`.
    UnterminatedContent,
    /// A `TEXT` whose content is not UTF-8.
    InvalidUtf8,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::UnterminatedLine => "an event line without CRLF",
            ErrorKind::BadName => "an event name that is not letters",
            ErrorKind::BadLength => "an event length that is not hexadecimal",
            ErrorKind::Truncated => "an event shorter than its length",
            ErrorKind::UnterminatedContent => "event content not followed by CRLF",
            ErrorKind::InvalidUtf8 => "a TEXT event that is not UTF-8",
        };
        write!(f, "{what} at byte {}", self.offset)
    }
}

impl std::error::Error for Error {}

/// Reads the events of a body, in order, without copying their content.
pub fn parse(body: &[u8]) -> Events<'_> {
    Events { body, at: 0, failed: false }
}

/// The iterator [`parse`] returns. After an error it ends.
#[derive(Clone, Debug)]
pub struct Events<'a> {
    body: &'a [u8],
    at: usize,
    failed: bool,
}

impl<'a> Iterator for Events<'a> {
    type Item = Result<Event<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.body.len() {
            return None;
        }
        let start = self.at;
        let result = self.read();
        if result.is_err() {
            self.failed = true;
        }
        Some(result.map_err(|kind| Error { offset: start, kind }))
    }
}

impl<'a> Events<'a> {
    fn read(&mut self) -> Result<Event<'a>, ErrorKind> {
        let rest = &self.body[self.at..];
        let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or(ErrorKind::UnterminatedLine)?;
        let line = &rest[..line_end];
        let (name, length) = match line.iter().position(|b| *b == b' ') {
            Some(space) => (&line[..space], Some(&line[space + 1..])),
            None => (line, None),
        };
        if name.is_empty() || !name.iter().all(u8::is_ascii_alphabetic) {
            return Err(ErrorKind::BadName);
        }
        // Letters only, so this cannot fail.
        let name = std::str::from_utf8(name).map_err(|_| ErrorKind::BadName)?;
        self.at += line_end + 2;
        let content = match length {
            None => None,
            Some(hex) => {
                let len = parse_hex(hex).ok_or(ErrorKind::BadLength)?;
                let rest = &self.body[self.at..];
                let content = rest.get(..len).ok_or(ErrorKind::Truncated)?;
                if rest.get(len..len + 2) != Some(b"\r\n") {
                    return Err(ErrorKind::UnterminatedContent);
                }
                self.at += len + 2;
                Some(content)
            }
        };
        let bytes = content.unwrap_or_default();
        Ok(match name {
            "OPEN" => Event::Open,
            "TEXT" => Event::Text(std::str::from_utf8(bytes).map_err(|_| ErrorKind::InvalidUtf8)?),
            "BINARY" => Event::Binary(bytes),
            "PING" => Event::Ping(bytes),
            "PONG" => Event::Pong(bytes),
            "CLOSE" => Event::Close(match bytes {
                [hi, lo, reason @ ..] => Some(Close { code: u16::from_be_bytes([*hi, *lo]), reason }),
                _ => None,
            }),
            "DISCONNECT" => Event::Disconnect,
            _ => Event::Other { name, content },
        })
    }
}

/// A length in hexadecimal: 1 to 15 digits (no sign, no prefix), so it always fits.
fn parse_hex(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    digits.iter().try_fold(0usize, |n, d| Some(n * 16 + char::from(*d).to_digit(16)? as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(body: &[u8]) -> Result<Vec<Event<'_>>, Error> {
        parse(body).collect()
    }

    #[test]
    fn reads_the_specs_examples() {
        assert_eq!(all(b"TEXT B\r\nhello world\r\n").unwrap(), [Event::Text("hello world")]);
        assert_eq!(all(b"OPEN\r\n").unwrap(), [Event::Open]);
        assert_eq!(
            all(b"OPEN\r\nTEXT 5\r\nhello\r\nBINARY 2\r\n\x00\xff\r\nPING\r\nCLOSE 7\r\n\x03\xe8bye!!\r\n")
                .unwrap(),
            [
                Event::Open,
                Event::Text("hello"),
                Event::Binary(b"\x00\xff"),
                Event::Ping(b""),
                Event::Close(Some(Close { code: 1000, reason: b"bye!!" }))
            ]
        );
        assert_eq!(all(b"").unwrap(), [], "an empty body is a keep-alive");
        assert_eq!(all(b"CLOSE\r\nDISCONNECT\r\n").unwrap(), [Event::Close(None), Event::Disconnect]);
        assert_eq!(
            all(b"TEXT 0\r\n\r\nTEXT\r\n").unwrap(),
            [Event::Text(""), Event::Text("")],
            "both empty forms"
        );
        assert_eq!(all(b"TEXT a\r\n0123456789\r\n").unwrap(), [Event::Text("0123456789")], "lower-case hex");
        assert_eq!(
            all(b"CLOSE 1\r\nx\r\n").unwrap(),
            [Event::Close(None)],
            "one byte is no code, as Pushpin reads it"
        );
        assert_eq!(
            all(b"SOMETHING 1\r\nx\r\nOPEN\r\n").unwrap(),
            [Event::Other { name: "SOMETHING", content: Some(b"x") }, Event::Open]
        );
    }

    #[test]
    fn says_where_a_body_goes_wrong() {
        let error = |body: &[u8]| all(body).unwrap_err();
        assert_eq!(error(b"OPEN"), Error { offset: 0, kind: ErrorKind::UnterminatedLine });
        assert_eq!(error(b"OPEN\r\nTEXT 5\r\nhel").kind, ErrorKind::Truncated);
        assert_eq!(error(b"OPEN\r\nTEXT 5\r\nhel").offset, 6);
        assert_eq!(error(b"TEXT 5\r\nhelloXX").kind, ErrorKind::UnterminatedContent);
        assert_eq!(error(b"TEXT zz\r\nhi\r\n").kind, ErrorKind::BadLength);
        assert_eq!(error(b"TEXT -1\r\n\r\n").kind, ErrorKind::BadLength);
        assert_eq!(error(b"TEXT 1000000000000000\r\n").kind, ErrorKind::BadLength, "16 digits");
        assert_eq!(error(b"TEXT ffffffffffffff\r\nx\r\n").kind, ErrorKind::Truncated);
        assert_eq!(error(b"\r\n").kind, ErrorKind::BadName);
        assert_eq!(error(b"TE XT\r\n").kind, ErrorKind::BadLength);
        assert_eq!(error(b"T3XT\r\n").kind, ErrorKind::BadName);
        assert_eq!(error(b"TEXT 2\r\n\xff\xfe\r\n").kind, ErrorKind::InvalidUtf8);
        let mut events = parse(b"OPEN\r\nbad\nTEXT\r\n");
        assert_eq!(events.next(), Some(Ok(Event::Open)));
        assert!(events.next().unwrap().is_err());
        assert_eq!(events.next(), None, "nothing after an error");
    }

    #[test]
    fn encodes_what_it_reads() {
        let events = [
            Event::Open,
            Event::Text("héllo"),
            Event::Text(""),
            Event::Binary(&[0, 13, 10, 255]),
            Event::Ping(b"p"),
            Event::Pong(b""),
            Event::Close(Some(Close { code: 4000, reason: b"done" })),
            Event::Close(None),
            Event::Disconnect,
        ];
        let body = encode(&events);
        assert_eq!(
            body,
            b"OPEN\r\nTEXT 6\r\nh\xc3\xa9llo\r\nTEXT\r\nBINARY 4\r\n\x00\r\n\xff\r\nPING 1\r\np\r\nPONG\r\n\
              CLOSE 6\r\n\x0f\xa0done\r\nCLOSE\r\nDISCONNECT\r\n"
        );
        assert_eq!(all(&body).unwrap(), events);
        assert_eq!(body.len(), events.iter().map(Event::encoded_len).sum::<usize>());
        let long = "x".repeat(300);
        assert!(encode(&[Event::Text(&long)]).starts_with(b"TEXT 12c\r\n"));
    }
}
