//! Header rules every hop applies, whoever the hop is (the proxy, the embedded host, a WebSocket
//! app's requests): no I/O.

use http::header::{self, HeaderMap, HeaderName};

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1, and `Upgrade` §7.8, which only
/// means something on the hop that negotiates it).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), those the `Connection` header names among them.
/// Applied both ways: nothing the client says about its hop reaches the upstream, and nothing the
/// upstream says about its hop (an `Upgrade` offer, say) reaches the client.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}
