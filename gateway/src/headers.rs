//! Header rules every hop applies, whoever the hop is (the proxy, the embedded host, a WebSocket
//! app's requests): no I/O.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

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

/// What a `426 Upgrade Required` says on this hop (RFC 9110 §15.5.22: it must name the protocol to
/// upgrade to): WebSocket. The gateway's own 426s and the component's get it here, the component's
/// because `Upgrade` is hop-by-hop, and `wasi:http` does not let a guest send it at all.
pub fn offer_websocket(headers: &mut HeaderMap) {
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
}
