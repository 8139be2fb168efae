//! The component's `Accept-Encoding` chooser (`component/src/negotiate.rs`, `choose_coding`).
//!
//! Input: one header value. Header values reach the component as `&str`, so non-UTF-8 input is
//! skipped. Besides not panicking, the answer must follow RFC 9110 where it is unambiguous: only a
//! coding the asset has (or identity), the same answer whatever the letter case or the optional
//! whitespace around `,` and `;`.
#![no_main]

// The component is a `cdylib` only, so its pure module is compiled into the target directly.
#[allow(dead_code)]
#[path = "../../component/src/negotiate.rs"]
mod negotiate;

use libfuzzer_sys::fuzz_target;
use negotiate::{Coding, choose_coding};

/// Every set of pre-compressed variants an asset can have.
const OFFERS: [&[Coding]; 4] = [&[], &[Coding::Gzip], &[Coding::Brotli], &[Coding::Brotli, Coding::Gzip]];

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else { return };
    let upper = header.to_ascii_uppercase();
    let spaced = header.replace(',', ", ").replace(';', "; ");
    for available in OFFERS {
        let chosen = choose_coding(Some(header), available);
        assert!(chosen == Coding::Identity || available.contains(&chosen), "{header:?} chose {chosen:?}");
        // Content codings and the `q` parameter are case-insensitive tokens.
        assert_eq!(choose_coding(Some(&upper), available), chosen, "case changed the answer for {header:?}");
        // Optional whitespace around list and parameter separators means nothing.
        assert_eq!(
            choose_coding(Some(&spaced), available),
            chosen,
            "whitespace changed the answer for {header:?}"
        );
        // A coding that wins among several still wins when it is the only one on offer.
        if chosen != Coding::Identity {
            assert_eq!(choose_coding(Some(header), &[chosen]), chosen);
        }
    }
});
