//! Validation of a WebSocket upgrade request (RFC 6455 §4.2.1) and the Origin check against
//! cross-site WebSocket hijacking. Pure functions of the request head, so they are fuzzed directly.

use base64::Engine as _;
use http::{HeaderMap, Method, StatusCode, header};

use super::metrics::Reject;

/// Why an upgrade was refused: the HTTP answer and the metrics label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadHandshake {
    pub status: StatusCode,
    /// `handshake_rejections` label.
    pub reason: Reject,
    /// One line for the client.
    pub message: &'static str,
}

const fn reject(status: StatusCode, reason: Reject, message: &'static str) -> BadHandshake {
    BadHandshake { status, reason, message }
}

/// Which origins may open WebSockets.
#[derive(Clone, Debug, Default)]
pub struct OriginPolicy {
    any: bool,
    allowed: Vec<Origin>,
}

/// A parsed `scheme://host[:port]` origin, lower-cased, with the port made explicit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl OriginPolicy {
    /// Builds the policy from `--allowed-origin` values (already validated by the config).
    pub fn new(allowed: &[String]) -> Self {
        OriginPolicy {
            any: allowed.iter().any(|o| o == "*"),
            allowed: allowed.iter().filter_map(|o| parse_origin(o)).collect(),
        }
    }

    /// Whether a request with this `Origin` and `Host`, that reached the gateway over `scheme`
    /// (`http`, or `https` behind a trusted TLS proxy), may upgrade. Same origin means same scheme,
    /// host and port: an `http://` page must not open the sockets of the `https://` site. No
    /// `Origin` header means a non-browser client, which cross-site hijacking cannot involve, so
    /// it is allowed.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>, scheme: &str) -> bool {
        let Some(origin) = origin else { return true };
        if self.any {
            return true;
        }
        let Some(origin) = parse_origin(origin) else { return false };
        if self.allowed.contains(&origin) {
            return true;
        }
        let Some((host, port)) = host.and_then(parse_host) else { return false };
        let same_scheme = match origin.scheme.as_str() {
            "http" | "ws" => scheme.eq_ignore_ascii_case("http"),
            _ => scheme.eq_ignore_ascii_case("https"),
        };
        same_scheme && host == origin.host && port.unwrap_or(origin.port) == origin.port
    }
}

/// Parses an origin such as `https://example.com:8443`. `None` for `null`, paths, or other schemes.
pub fn parse_origin(value: &str) -> Option<Origin> {
    let (scheme, authority) = value.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        _ => return None,
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let (host, port) = parse_host(authority)?;
    Some(Origin { scheme, host, port: port.unwrap_or(default_port) })
}

/// Splits `host[:port]` (IPv6 in brackets) into a lower-cased host and optional port.
fn parse_host(value: &str) -> Option<(String, Option<u16>)> {
    let value = value.trim();
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{ip}]"), port)
    } else {
        match value.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (value.to_owned(), None),
        }
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || "-._~[]:%".contains(c);
    if host.is_empty() || !host.chars().all(valid) {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Whether a comma-separated header contains `token` (case-insensitive), across repeated headers.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether a request asks to become a WebSocket (`Upgrade: websocket`), valid or not.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    has_token(headers, header::UPGRADE, "websocket")
}

/// Checks an upgrade request that arrived over `scheme` and returns the `Sec-WebSocket-Accept`
/// value to answer with.
pub fn validate(
    method: &Method,
    headers: &HeaderMap,
    origins: &OriginPolicy,
    scheme: &str,
) -> Result<String, BadHandshake> {
    if method != Method::GET {
        return Err(reject(StatusCode::BAD_REQUEST, Reject::Method, "WebSocket handshakes use GET"));
    }
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err(reject(
            StatusCode::UPGRADE_REQUIRED,
            Reject::Upgrade,
            "this endpoint needs Upgrade: websocket",
        ));
    }
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(reject(StatusCode::BAD_REQUEST, Reject::Connection, "missing Connection: Upgrade"));
    }
    match headers.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) {
        Some(b"13") => {}
        None => {
            return Err(reject(StatusCode::BAD_REQUEST, Reject::Version, "missing Sec-WebSocket-Version"));
        }
        Some(_) => {
            return Err(reject(
                StatusCode::UPGRADE_REQUIRED,
                Reject::Version,
                "only Sec-WebSocket-Version 13 is supported",
            ));
        }
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key.as_bytes(),
        _ => {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                Reject::Key,
                "exactly one Sec-WebSocket-Key is required",
            ));
        }
    };
    // The key is base64 of 16 random bytes (RFC 6455 §4.1).
    let decoded = base64::engine::general_purpose::STANDARD.decode(key.trim_ascii());
    if !decoded.is_ok_and(|k| k.len() == 16) {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            Reject::Key,
            "Sec-WebSocket-Key must be base64 of 16 bytes",
        ));
    }
    let origin = headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("\u{0}"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !origins.allows(origin, host, scheme) {
        return Err(reject(StatusCode::FORBIDDEN, Reject::Origin, "cross-origin WebSocket refused"));
    }
    Ok(tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.trim_ascii()))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn request(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("host", "127.0.0.1:8080"),
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]
    }

    fn check(pairs: &[(&'static str, &str)]) -> Result<String, BadHandshake> {
        validate(&Method::GET, &request(pairs), &OriginPolicy::default(), "http")
    }

    #[test]
    fn accepts_a_valid_handshake_with_the_rfc_example_key() {
        assert_eq!(check(&good()).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn each_missing_piece_has_its_status() {
        let without = |name: &str| {
            let h: Vec<_> = good().into_iter().filter(|(k, _)| *k != name).collect();
            check(&h).unwrap_err()
        };
        assert_eq!(without("upgrade").status, StatusCode::UPGRADE_REQUIRED);
        assert_eq!(without("connection").status, StatusCode::BAD_REQUEST);
        assert_eq!(without("sec-websocket-version").status, StatusCode::BAD_REQUEST);
        assert_eq!(without("sec-websocket-key").reason, Reject::Key);
        let post = validate(&Method::POST, &request(&good()), &OriginPolicy::default(), "http").unwrap_err();
        assert_eq!(post.reason, Reject::Method);
    }

    #[test]
    fn bad_version_and_keys() {
        let with = |name: &'static str, value: &'static str| {
            let mut h: Vec<_> = good().into_iter().filter(|(k, _)| *k != name).collect();
            h.push((name, value));
            check(&h)
        };
        assert_eq!(with("sec-websocket-version", "8").unwrap_err().status, StatusCode::UPGRADE_REQUIRED);
        for key in ["", "not base64!", "c2hvcnQ=", "dGhlIHNhbXBsZSBub25jZXg="] {
            assert_eq!(with("sec-websocket-key", key).unwrap_err().reason, Reject::Key, "{key}");
        }
        let mut twice = good();
        twice.push(("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(check(&twice).unwrap_err().reason, Reject::Key);
    }

    #[test]
    fn origin_must_match_host_by_default() {
        let with_origin = |origin: &'static str| {
            let mut h = good();
            h.push(("origin", origin));
            check(&h)
        };
        assert!(with_origin("http://127.0.0.1:8080").is_ok());
        assert!(with_origin("HTTP://127.0.0.1:8080/").is_ok());
        assert_eq!(with_origin("http://evil.example").unwrap_err().status, StatusCode::FORBIDDEN);
        assert!(with_origin("http://127.0.0.1:8081").is_err());
        assert!(with_origin("null").is_err());
        assert!(with_origin("http://127.0.0.1:8080/path").is_err());
        assert!(with_origin("https://127.0.0.1:8080").is_err(), "another scheme is another origin");
        let mut h = good();
        h.push(("origin", "http://127.0.0.1:8080"));
        let over_tls = validate(&Method::GET, &request(&h), &OriginPolicy::default(), "https");
        assert_eq!(over_tls.unwrap_err().status, StatusCode::FORBIDDEN, "an http page on the https site");
    }

    #[test]
    fn origin_policy_forms() {
        let policy = OriginPolicy::new(&["https://app.example.com".into()]);
        assert!(policy.allows(Some("https://app.example.com"), Some("internal:8080"), "http"));
        assert!(policy.allows(Some("https://app.example.com:443"), Some("internal:8080"), "http"));
        assert!(!policy.allows(Some("http://app.example.com"), Some("internal:8080"), "http"));
        assert!(policy.allows(None, None, "http"));
        // Same host with default ports on either side, over the scheme the origin names.
        assert!(policy.allows(Some("https://site.example"), Some("site.example"), "https"));
        assert!(!policy.allows(Some("https://site.example"), Some("site.example"), "http"));
        assert!(policy.allows(Some("http://[::1]:9000"), Some("[::1]:9000"), "http"));
        assert!(!policy.allows(Some("http://[::1]:9000"), Some("[::1]:9001"), "http"));
        assert!(!policy.allows(Some("http://a.example"), None, "http"));
        assert!(OriginPolicy::new(&["*".into()]).allows(Some("http://anything"), None, "https"));
    }

    #[test]
    fn origin_parsing_is_strict() {
        assert_eq!(
            parse_origin("https://Example.COM:8443"),
            Some(Origin { scheme: "https".into(), host: "example.com".into(), port: 8443 })
        );
        for bad in
            ["", "null", "example.com", "ftp://x", "http://", "http://a:b", "http://a b", "http://[::1"]
        {
            assert_eq!(parse_origin(bad), None, "{bad}");
        }
    }
}
