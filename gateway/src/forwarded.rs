//! Who sent a request, when proxies stand in front of the gateway: the `--trusted-proxy` networks,
//! and the `X-Forwarded-*` and `Via` headers passed on to the component.
//!
//! A client can write any header it likes, so forwarding headers are believed only from a peer in a
//! trusted network (an ingress controller, a load balancer). From anyone else they are replaced with
//! what the gateway itself saw: the peer's address, plain `http`, the request's own `Host`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// RFC 7239's header: never produced here, and dropped from untrusted peers like the others.
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// What this gateway adds to `Via` (RFC 9110 §7.6.3): protocol version and a pseudonym, no host
/// name or version number to fingerprint.
const VIA_ENTRY: &str = "1.1 sidestream";

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is a network of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // A v4 peer accepted on a dual-stack socket arrives as `::ffff:a.b.c.d`.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let bad = || format!("{value:?} is not a network like 10.0.0.0/8 or fd00::/8");
        let (address, prefix) = match value.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (value.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The peers whose forwarding headers are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(networks: &[Cidr]) -> Self {
        TrustedProxies(networks.to_vec())
    }

    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(peer))
    }

    /// The scheme the client used: a trusted proxy's `X-Forwarded-Proto` when it names one,
    /// otherwise `http` (the gateway itself serves no TLS).
    pub fn scheme(&self, headers: &HeaderMap, peer: IpAddr) -> &'static str {
        let forwarded = headers.get(X_FORWARDED_PROTO).map(HeaderValue::as_bytes);
        match forwarded {
            Some(proto) if self.trusts(peer) && proto.eq_ignore_ascii_case(b"https") => "https",
            _ => "http",
        }
    }

    /// Rewrites a request's forwarding headers for the next hop. From a trusted peer the chain is
    /// extended: every `X-Forwarded-For` line joined, then the peer. From anyone else the
    /// client's own `X-Forwarded-*` and `Forwarded` are dropped and replaced. Either way the
    /// gateway appends itself to `Via`.
    pub fn rewrite(&self, headers: &mut HeaderMap, peer: SocketAddr) {
        let trusted = self.trusts(peer.ip());
        let peer_ip = peer.ip().to_canonical().to_string();

        // Joined as bytes: one value with bytes outside visible ASCII must not drop the others.
        let mut chain = Vec::new();
        if trusted {
            for value in headers.get_all(X_FORWARDED_FOR) {
                let value = value.as_bytes().trim_ascii();
                if !value.is_empty() {
                    chain.extend_from_slice(value);
                    chain.extend_from_slice(b", ");
                }
            }
        }
        chain.extend_from_slice(peer_ip.as_bytes());
        let proto = self.scheme(headers, peer.ip());
        let forwarded_host = match headers.get(X_FORWARDED_HOST) {
            Some(host) if trusted => Some(host.clone()),
            _ => headers.get(header::HOST).cloned(),
        };
        let mut via = Vec::new();
        for value in headers.get_all(header::VIA) {
            via.extend_from_slice(value.as_bytes().trim_ascii());
            via.extend_from_slice(b", ");
        }
        via.extend_from_slice(VIA_ENTRY.as_bytes());

        for name in [X_FORWARDED_FOR, X_FORWARDED_PROTO, X_FORWARDED_HOST, FORWARDED, header::VIA] {
            headers.remove(name);
        }
        if let Ok(chain) = HeaderValue::from_bytes(&chain) {
            headers.insert(X_FORWARDED_FOR, chain);
        }
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        if let Some(host) = forwarded_host {
            headers.insert(X_FORWARDED_HOST, host);
        }
        if let Ok(via) = HeaderValue::from_bytes(&via) {
            headers.insert(header::VIA, via);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        assert!(cidr("10.0.0.0/8").contains("10.255.0.1".parse().unwrap()));
        assert!(!cidr("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
        assert!(cidr("192.168.1.7").contains("192.168.1.7".parse().unwrap()));
        assert!(!cidr("192.168.1.7").contains("192.168.1.8".parse().unwrap()));
        assert!(cidr("0.0.0.0/0").contains("8.8.8.8".parse().unwrap()));
        assert!(cidr("fd00::/8").contains("fd12::1".parse().unwrap()));
        assert!(!cidr("fd00::/8").contains("fe80::1".parse().unwrap()));
        assert!(cidr("127.0.0.0/8").contains("::ffff:127.0.0.1".parse().unwrap()), "v4-mapped peers");
        assert!(!cidr("10.0.0.0/8").contains("fd00::1".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "10.0.0/8", "::/129", "10.0.0.0/", "10.0.0.0/+8", "host/8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(cidr("10.1.2.3/16").to_string(), "10.1.2.3/16");
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn values(h: &HeaderMap, name: &str) -> Vec<Vec<u8>> {
        h.get_all(name).iter().map(|v| v.as_bytes().to_vec()).collect()
    }

    #[test]
    fn untrusted_peers_cannot_forge_the_chain() {
        let proxies = TrustedProxies::new(&[cidr("10.0.0.0/8")]);
        let mut h = headers(&[
            ("host", b"app.example"),
            ("x-forwarded-for", b"1.2.3.4"),
            ("x-forwarded-proto", b"https"),
            ("x-forwarded-host", b"bank.example"),
            ("forwarded", b"for=1.2.3.4"),
        ]);
        proxies.rewrite(&mut h, "203.0.113.9:5000".parse().unwrap());
        assert_eq!(values(&h, "x-forwarded-for"), [b"203.0.113.9".to_vec()]);
        assert_eq!(values(&h, "x-forwarded-proto"), [b"http".to_vec()]);
        assert_eq!(values(&h, "x-forwarded-host"), [b"app.example".to_vec()]);
        assert!(h.get("forwarded").is_none());
        assert_eq!(values(&h, "via"), [b"1.1 sidestream".to_vec()]);
    }

    #[test]
    fn trusted_peers_extend_every_line_of_the_chain() {
        let proxies = TrustedProxies::new(&[cidr("10.0.0.0/8")]);
        let mut h = headers(&[
            ("host", b"internal:8080"),
            ("x-forwarded-for", b"1.2.3.4, 5.6.7.8"),
            ("x-forwarded-for", b"\xe2\x80\x8b9.9.9.9"),
            ("x-forwarded-proto", b"https"),
            ("x-forwarded-host", b"app.example"),
            ("via", b"1.1 ingress"),
        ]);
        proxies.rewrite(&mut h, "10.1.2.3:5000".parse().unwrap());
        assert_eq!(
            values(&h, "x-forwarded-for"),
            [b"1.2.3.4, 5.6.7.8, \xe2\x80\x8b9.9.9.9, 10.1.2.3".to_vec()]
        );
        assert_eq!(values(&h, "x-forwarded-proto"), [b"https".to_vec()]);
        assert_eq!(values(&h, "x-forwarded-host"), [b"app.example".to_vec()]);
        assert_eq!(values(&h, "via"), [b"1.1 ingress, 1.1 sidestream".to_vec()]);
        assert_eq!(
            proxies.scheme(&headers(&[("x-forwarded-proto", b"HTTPS")]), "10.0.0.1".parse().unwrap()),
            "https"
        );
        assert_eq!(
            proxies.scheme(&headers(&[("x-forwarded-proto", b"https")]), "8.8.8.8".parse().unwrap()),
            "http"
        );
    }
}
