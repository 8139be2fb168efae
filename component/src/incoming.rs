//! A request's head as the handler reads it: its method, its path and query, and its headers, each
//! read from the `wasi:http` request once.
//!
//! The SDK's `Request` would also rebuild and parse the whole URI, lower-case every header name
//! into a hash map and read the body of every request; the component needs none of that to route,
//! and an app message (one request per WebSocket message) pays for it each time.

use spin_sdk::http::IncomingRequest;

/// The head of one incoming request.
pub struct Head {
    /// `GET`, `POST`, ... as the client sent it.
    pub method: String,
    /// The path and the query, as the client sent them.
    target: String,
    headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// Reads the head of `req`, leaving its body to be read (or not).
    pub fn of(req: &IncomingRequest) -> Self {
        Head {
            method: req.method().to_string(),
            target: req.path_with_query().unwrap_or_else(|| "/".to_owned()),
            headers: req.headers().entries(),
        }
    }

    /// The URI path, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(path, _)| path)
    }

    /// The query, without the `?` (empty when there is none).
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }

    /// The value of header `name` (any case) when it is text; the last one when it is repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        let (_, value) = self.headers.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
        std::str::from_utf8(value).ok()
    }

    /// Every header whose value is text, in the order they came (a repeated name each time:
    /// `meta_of` keeps the last of a repeated meta header, and the gateway sends none twice).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), std::str::from_utf8(value).ok()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(target: &str, headers: &[(&str, &str)]) -> Head {
        Head {
            method: "POST".to_owned(),
            target: target.to_owned(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect(),
        }
    }

    #[test]
    fn the_path_and_the_query_split_at_the_first_question_mark() {
        let h = head("/room?name=a?b&x=1", &[]);
        assert_eq!((h.path(), h.query()), ("/room", "name=a?b&x=1"));
        let h = head("/echo", &[]);
        assert_eq!((h.path(), h.query()), ("/echo", ""));
        let h = head("/echo?", &[]);
        assert_eq!((h.path(), h.query()), ("/echo", ""));
    }

    #[test]
    fn a_header_is_found_in_any_case_and_the_last_of_a_repeat_wins() {
        let h = head("/", &[("Content-Type", "a"), ("grip-sig", "old"), ("Grip-Sig", "new")]);
        assert_eq!(h.header("content-type"), Some("a"));
        assert_eq!(h.header("grip-sig"), Some("new"));
        assert_eq!(h.header("accept"), None);
    }

    #[test]
    fn a_value_that_is_not_text_is_not_a_header_value() {
        let mut h = head("/", &[("meta-a", "1")]);
        h.headers.push(("meta-b".to_owned(), vec![0xff, 0xfe]));
        assert_eq!(h.header("meta-b"), None);
        assert_eq!(h.headers().collect::<Vec<_>>(), [("meta-a", "1")]);
    }
}
