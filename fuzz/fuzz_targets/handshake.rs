//! The gateway's upgrade validation (`sidestream_gateway::ws::handshake::validate`), fed what hyper
//! would hand it: the input is a raw HTTP/1.1 request head, parsed with httparse as hyper does.
//!
//! Besides not panicking: an accepted handshake is a GET with a 28-character accept key, the Origin
//! policy only ever decides the Origin step (every other answer is the same under every policy), and
//! a policy that allows more never refuses what a stricter one accepted.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use sidestream_gateway::ws::handshake::{OriginPolicy, validate};
use sidestream_gateway::ws::metrics::Reject;

fuzz_target!(|data: &[u8]| {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut slots);
    let Ok(httparse::Status::Complete(_)) = request.parse(data) else { return };
    let Some(method) = request.method.and_then(|m| Method::from_bytes(m.as_bytes()).ok()) else { return };
    let mut headers = HeaderMap::new();
    for h in request.headers.iter() {
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_bytes(h.value))
        else {
            return;
        };
        headers.append(name, value);
    }

    let same_host = validate(&method, &headers, &OriginPolicy::default(), "http");
    let listed = validate(&method, &headers, &OriginPolicy::new(&["https://app.example.com".to_owned()]), "http");
    let any = validate(&method, &headers, &OriginPolicy::new(&["*".to_owned()]), "http");

    if let Ok(accept) = &same_host {
        assert_eq!(method, Method::GET);
        assert_eq!(accept.len(), 28, "{accept:?}");
        assert_eq!(listed.as_ref(), Ok(accept));
    }
    if let Ok(accept) = &listed {
        assert_eq!(any.as_ref(), Ok(accept));
    }
    for (policy, result) in [("listed", &listed), ("any", &any)] {
        match (&same_host, result) {
            (Err(a), Err(b)) if a.reason != Reject::Origin => assert_eq!(a, b, "{policy}"),
            (Err(a), Ok(_)) => assert_eq!(a.reason, Reject::Origin, "{policy}"),
            _ => {}
        }
    }
    if let Err(r) = &any {
        assert_ne!(r.reason, Reject::Origin, "`*` refused an origin");
    }
});
