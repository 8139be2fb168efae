//! Header parsing for content negotiation: `Accept-Encoding` (RFC 9110 §12.5.3) and
//! `If-None-Match` (RFC 9110 §13.1.2). Both are lenient: a malformed element is skipped, never an
//! error, because a browser extension or proxy mangling one header must not break the page.

/// A content coding the component can serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Identity,
}

impl Coding {
    /// The `Content-Encoding` token, or `None` for identity.
    pub fn token(self) -> Option<&'static str> {
        match self {
            Coding::Brotli => Some("br"),
            Coding::Gzip => Some("gzip"),
            Coding::Identity => None,
        }
    }
}

/// Picks the coding to send among `available` (in order of preference on equal weight).
///
/// Codings with `q=0` are refused; `*` covers codings not named; identity is acceptable unless refused
/// explicitly or through `*;q=0`. When nothing offered is acceptable the answer is identity anyway:
/// a page that loads beats a `406`.
pub fn choose_coding(accept_encoding: Option<&str>, available: &[Coding]) -> Coding {
    let Some(header) = accept_encoding else {
        return Coding::Identity;
    };
    let mut best: Option<(Coding, u16)> = None;
    for &coding in available {
        let q = weight(header, coding);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((coding, q));
        }
    }
    best.map_or(Coding::Identity, |(c, _)| c)
}

/// The weight (0..=1000) the header gives `coding`.
fn weight(header: &str, coding: Coding) -> u16 {
    let mut named = None;
    let mut star = None;
    for element in header.split(',') {
        let mut parts = element.split(';');
        let name = parts.next().unwrap_or_default().trim();
        if name.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            if key.trim().eq_ignore_ascii_case("q") {
                q = parse_qvalue(value.trim());
            }
        }
        let Some(q) = q else { continue };
        let matches = match coding {
            Coding::Brotli => name.eq_ignore_ascii_case("br"),
            Coding::Gzip => name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip"),
            Coding::Identity => name.eq_ignore_ascii_case("identity"),
        };
        if matches {
            // The most specific weight wins; a repeated coding keeps its highest weight.
            named = Some(named.map_or(q, |n: u16| n.max(q)));
        } else if name == "*" {
            star = Some(q);
        }
    }
    match (named, star, coding) {
        (Some(q), _, _) => q,
        (None, Some(q), _) => q,
        (None, None, Coding::Identity) => 1,
        (None, None, _) => 0,
    }
}

/// Parses a qvalue (`0`, `0.5`, `1.000`) into thousandths; `None` when malformed.
fn parse_qvalue(value: &str) -> Option<u16> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut thousandths = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    let q = whole + thousandths;
    (q <= 1000).then_some(q)
}

/// Whether an `If-None-Match` header value matches `etag` (weak comparison, as RFC 9110 requires for
/// this header): `*`, a single tag, or a list; `W/` prefixes are ignored.
pub fn none_match(if_none_match: &str, etag: &str) -> bool {
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    let mut rest = if_none_match.trim();
    if rest == "*" {
        return true;
    }
    while !rest.is_empty() {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        let candidate = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(body) = candidate.strip_prefix('"') else {
            // Not a quoted tag: skip to the next list element.
            rest = rest.split_once(',').map_or("", |(_, r)| r);
            continue;
        };
        let Some(end) = body.find('"') else {
            return false;
        };
        if &candidate[..end + 2] == etag {
            return true;
        }
        rest = &body[end + 1..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Coding] = &[Coding::Brotli, Coding::Gzip];

    #[test]
    fn no_header_means_identity() {
        assert_eq!(choose_coding(None, ALL), Coding::Identity);
        assert_eq!(choose_coding(Some(""), ALL), Coding::Identity);
    }

    #[test]
    fn prefers_brotli_on_equal_weight() {
        assert_eq!(choose_coding(Some("gzip, deflate, br, zstd"), ALL), Coding::Brotli);
        assert_eq!(choose_coding(Some("gzip, deflate, br"), &[Coding::Gzip]), Coding::Gzip);
    }

    #[test]
    fn q_values_order_and_refuse() {
        assert_eq!(choose_coding(Some("br;q=0.5, gzip;q=0.8"), ALL), Coding::Gzip);
        assert_eq!(choose_coding(Some("br;q=0, gzip"), ALL), Coding::Gzip);
        assert_eq!(choose_coding(Some("br;q=0, gzip;q=0"), ALL), Coding::Identity);
        assert_eq!(choose_coding(Some("gzip;q=0.001"), ALL), Coding::Gzip);
        assert_eq!(choose_coding(Some("BR;Q=1.000"), ALL), Coding::Brotli);
    }

    #[test]
    fn star_covers_unnamed_codings() {
        assert_eq!(choose_coding(Some("*"), ALL), Coding::Brotli);
        assert_eq!(choose_coding(Some("br;q=0, *"), ALL), Coding::Gzip);
        assert_eq!(choose_coding(Some("*;q=0"), ALL), Coding::Identity);
        assert_eq!(choose_coding(Some("identity;q=0.5, *;q=0.2"), ALL), Coding::Brotli);
    }

    #[test]
    fn malformed_elements_are_ignored() {
        assert_eq!(choose_coding(Some("br;q=2, gzip"), ALL), Coding::Gzip);
        assert_eq!(choose_coding(Some("br;q=0.12345, gzip;q=abc"), ALL), Coding::Identity);
        assert_eq!(choose_coding(Some(",,;,gzip;;q=1;"), ALL), Coding::Gzip);
        assert_eq!(choose_coding(Some("x-gzip"), ALL), Coding::Gzip);
        assert_eq!(choose_coding(Some("\u{e9}t\u{e9};q=1"), ALL), Coding::Identity);
    }

    #[test]
    fn qvalue_grammar() {
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("0.75"), Some(750));
        assert_eq!(parse_qvalue("1.0"), Some(1000));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue(".5"), None);
        assert_eq!(parse_qvalue("0.-1"), None);
    }

    #[test]
    fn if_none_match_forms() {
        let tag = "\"abc\"";
        assert!(none_match("\"abc\"", tag));
        assert!(none_match("*", tag));
        assert!(none_match("W/\"abc\"", tag));
        assert!(none_match("\"x\", W/\"abc\"", tag));
        assert!(none_match("\"x\",\"abc\"", tag));
        assert!(!none_match("\"abcd\"", tag));
        assert!(!none_match("abc", tag));
        assert!(!none_match("\"ab", tag));
        assert!(!none_match("", tag));
        assert!(!none_match("\"a,bc\", junk, \"y\"", tag));
        assert!(none_match("junk, \"abc\"", tag));
    }
}
