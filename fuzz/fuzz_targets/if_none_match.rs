//! The component's `If-None-Match` matcher (`component/src/negotiate.rs`, `none_match`).
//!
//! Input: `<etag body>\n<header value>`, or just a header value (matched against a tag shaped like
//! the component's own, a quoted hex digest). Besides not panicking: the tag itself, its weak form, a
//! list that starts with it and `*` always match; a header without any quote never matches but `*`.
#![no_main]

#[allow(dead_code)]
#[path = "../../component/src/negotiate.rs"]
mod negotiate;

use libfuzzer_sys::fuzz_target;
use negotiate::none_match;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (etag, header) = match text.split_once('\n') {
        // An entity tag is a quoted string without quotes inside (RFC 9110 §8.8.3).
        Some((body, header)) if !body.contains('"') => (format!("\"{body}\""), header),
        Some(_) => return,
        None => ("\"9f86d081884c7d65\"".to_owned(), text),
    };
    let matched = none_match(header, &etag);
    if !header.contains('"') {
        assert_eq!(matched, header.trim() == "*", "{header:?} vs {etag}");
    }
    assert!(none_match(&etag, &etag));
    assert!(none_match(&format!("W/{etag}"), &etag));
    assert!(none_match(&format!(" {etag} , {header}"), &etag), "{header:?} vs {etag}");
    assert!(none_match("*", &etag));
});
