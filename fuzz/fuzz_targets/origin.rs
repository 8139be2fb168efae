//! The gateway's Origin check (`sidestream_gateway::ws::handshake`: `parse_origin`, `OriginPolicy`).
//!
//! Input: lines `<Origin header>\n<Host header>\n<allowed origin>...`. Besides not panicking: a parsed
//! origin is canonical (re-parsing its own `scheme://host:port` gives it back), no Origin header is
//! always allowed, `*` allows everything, an origin on the allow list is allowed whatever the Host,
//! and the request's own host is allowed without any list when it arrived over the origin's scheme
//! (and refused over the other one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sidestream_gateway::ws::handshake::{OriginPolicy, parse_origin};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let origin = lines.next().unwrap_or_default();
    let host = lines.next();
    let allowed: Vec<String> = lines.map(str::to_owned).collect();

    let parsed = parse_origin(origin);
    if let Some(o) = &parsed {
        assert!(matches!(o.scheme.as_str(), "http" | "https" | "ws" | "wss"), "{o:?}");
        assert!(!o.host.is_empty());
        assert_eq!(o.host, o.host.to_ascii_lowercase());
        let canonical = format!("{}://{}:{}", o.scheme, o.host, o.port);
        assert_eq!(parse_origin(&canonical).as_ref(), Some(o), "{origin:?} -> {canonical:?}");
    }

    let policy = OriginPolicy::new(&allowed);
    let allows = policy.allows(Some(origin), host, "http");
    assert!(policy.allows(None, host, "https"));
    if allowed.iter().any(|a| a == "*") {
        assert!(allows);
    }
    // An unparseable origin (`null`, a path, another scheme) only passes the `*` policy.
    if parsed.is_none() && !allowed.iter().any(|a| a == "*") {
        assert!(!allows, "{origin:?} allowed by {allowed:?}");
    }
    if let Some(o) = &parsed {
        assert!(
            OriginPolicy::new(&[origin.to_owned()]).allows(Some(origin), host, "http"),
            "{origin:?} listed but refused"
        );
        let own_host = format!("{}:{}", o.host, o.port);
        let (own, other) = if matches!(o.scheme.as_str(), "http" | "ws") { ("http", "https") } else { ("https", "http") };
        assert!(
            OriginPolicy::default().allows(Some(origin), Some(&own_host), own),
            "{origin:?} refused on {own_host}"
        );
        assert!(
            !OriginPolicy::default().allows(Some(origin), Some(&own_host), other),
            "{origin:?} allowed on {own_host} over {other}"
        );
        // Adding to the allow list never refuses what was allowed.
        if OriginPolicy::default().allows(Some(origin), host, "http") {
            assert!(allows, "{origin:?} on {host:?}: allowed by default, refused with {allowed:?}");
        }
    }
});
