//! Which `Host` a request names, and whether this listener answers it.
//!
//! RFC 9112 §3.2: an HTTP/1.1 request without exactly one valid `Host` gets `400`; an HTTP/1.0
//! request may omit it, and then names the listener itself. A listener bound to loopback answers
//! only loopback names (`localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`) unless `--allowed-host`
//! says more: otherwise a web page whose domain is made to resolve to 127.0.0.1 (DNS rebinding)
//! could load the developer's gateway as its own origin, read its answers and open its WebSockets.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue, StatusCode, Uri, Version, header};

/// Why a request was refused before routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAuthority {
    pub status: StatusCode,
    pub message: &'static str,
}

/// The Host rules of one listener.
#[derive(Clone, Debug)]
pub struct HostPolicy {
    /// Set when the listener is bound to a loopback address.
    loopback_only: bool,
    any: bool,
    allowed: Vec<String>,
    /// What an HTTP/1.0 request without `Host` names: the listener's own address.
    own: HeaderValue,
}

impl HostPolicy {
    /// `bound` is the address the listener actually bound (its port filled in).
    pub fn new(bound: SocketAddr, allowed: &[String]) -> Self {
        let own = HeaderValue::from_str(&bound.to_string()).unwrap_or(HeaderValue::from_static("localhost"));
        HostPolicy {
            loopback_only: bound.ip().is_loopback(),
            any: allowed.iter().any(|h| h == "*"),
            allowed: allowed.iter().filter(|h| *h != "*").map(|h| h.to_ascii_lowercase()).collect(),
            own,
        }
    }

    /// Checks a request's authority, and gives an HTTP/1.0 request without one the listener's.
    pub fn check(&self, version: Version, uri: &Uri, headers: &mut HeaderMap) -> Result<(), BadAuthority> {
        let mut hosts = headers.get_all(header::HOST).iter();
        let host = match (hosts.next(), hosts.next()) {
            (Some(host), None) => host.to_str().ok().and_then(hostname).ok_or(BAD_HOST)?,
            (Some(_), Some(_)) => {
                return Err(BadAuthority {
                    status: StatusCode::BAD_REQUEST,
                    message: "more than one Host header",
                });
            }
            (None, _) if version <= Version::HTTP_10 => {
                headers.insert(header::HOST, self.own.clone());
                return Ok(());
            }
            (None, _) => {
                return Err(BadAuthority {
                    status: StatusCode::BAD_REQUEST,
                    message: "HTTP/1.1 requests need a Host header",
                });
            }
        };
        // An absolute-form target names the authority itself (RFC 9112 §3.2.2): both must pass.
        let target = uri.host();
        if self.loopback_only && !self.any && !(self.answers(&host) && target.is_none_or(|t| self.answers(t)))
        {
            return Err(BadAuthority {
                status: StatusCode::FORBIDDEN,
                message: "this gateway listens on loopback and answers only loopback host names \
                          (start it with --allowed-host NAME to add one)",
            });
        }
        Ok(())
    }

    fn answers(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if host == "localhost" || host.ends_with(".localhost") {
            return true;
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return ip.to_canonical().is_loopback();
        }
        self.allowed.contains(&host)
    }
}

const BAD_HOST: BadAuthority =
    BadAuthority { status: StatusCode::BAD_REQUEST, message: "the Host header is not a valid host[:port]" };

/// The host part of a `Host` value (`name`, `name:port`, `[v6]:port`), if it is one.
fn hostname(value: &str) -> Option<String> {
    let authority: http::uri::Authority = value.parse().ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host();
    (!host.is_empty()).then(|| host.to_owned())
}

/// Whether `value` is a plain host name or address, as `--allowed-host` takes.
pub fn is_host_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && (value.parse::<IpAddr>().is_ok()
            || value.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        policy: &HostPolicy,
        version: Version,
        host: Option<&str>,
    ) -> Result<Option<String>, StatusCode> {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        policy
            .check(version, &Uri::from_static("/"), &mut headers)
            .map(|()| headers.get(header::HOST).map(|h| h.to_str().unwrap().to_owned()))
            .map_err(|r| r.status)
    }

    #[test]
    fn http11_needs_one_valid_host_and_http10_gets_the_listeners() {
        let policy = HostPolicy::new("0.0.0.0:8080".parse().unwrap(), &[]);
        assert_eq!(check(&policy, Version::HTTP_11, None), Err(StatusCode::BAD_REQUEST));
        assert_eq!(check(&policy, Version::HTTP_11, Some("a b")), Err(StatusCode::BAD_REQUEST));
        assert_eq!(check(&policy, Version::HTTP_11, Some("user@host")), Err(StatusCode::BAD_REQUEST));
        assert_eq!(check(&policy, Version::HTTP_10, None), Ok(Some("0.0.0.0:8080".into())));
        assert_eq!(
            check(&policy, Version::HTTP_11, Some("anything.example")),
            Ok(Some("anything.example".into()))
        );
        let mut twice = HeaderMap::new();
        twice.append(header::HOST, HeaderValue::from_static("a"));
        twice.append(header::HOST, HeaderValue::from_static("b"));
        assert!(policy.check(Version::HTTP_11, &Uri::from_static("/"), &mut twice).is_err());
    }

    #[test]
    fn loopback_listeners_answer_loopback_names_and_the_allowed_ones() {
        let policy = HostPolicy::new("127.0.0.1:8080".parse().unwrap(), &["dev.example".into()]);
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "app.localhost:8080",
            "127.1.2.3",
            "[::1]:8080",
            "dev.example:8080",
            "DEV.example",
        ] {
            assert!(check(&policy, Version::HTTP_11, Some(ok)).is_ok(), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:8080",
            "localhost.evil.example",
            "dev.example.evil",
        ] {
            assert_eq!(
                check(&policy, Version::HTTP_11, Some(refused)),
                Err(StatusCode::FORBIDDEN),
                "{refused}"
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1"));
        let absolute = Uri::from_static("http://evil.example/");
        assert!(
            policy.check(Version::HTTP_11, &absolute, &mut headers).is_err(),
            "absolute-form targets are checked too"
        );
        let any = HostPolicy::new("127.0.0.1:8080".parse().unwrap(), &["*".into()]);
        assert!(check(&any, Version::HTTP_11, Some("evil.example")).is_ok());
    }

    #[test]
    fn allowed_host_values_are_names() {
        for ok in ["app.example.com", "localhost", "10.0.0.1", "::1", "a-b.c"] {
            assert!(is_host_name(ok), "{ok}");
        }
        for bad in ["", "http://x", "a..b", "a b", "host:80", "*.example"] {
            assert!(!is_host_name(bad), "{bad}");
        }
    }
}
