//! A request's query string: one parameter's value, percent-decoded (`+` is a space, as browsers
//! write forms and `URLSearchParams`).

use std::borrow::Cow;

/// The first value of `name` in `query` (without the `?`), decoded; `None` when absent or when
/// the decoded bytes are not UTF-8.
pub fn param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    let raw = query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))?;
    if !raw.contains(['%', '+']) {
        return Some(Cow::Borrowed(raw));
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => bytes.push(b' '),
            b'%' => match rest
                .get(..2)
                .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())
            {
                Some(decoded) => {
                    bytes.push(decoded);
                    rest = &rest[2..];
                }
                None => bytes.push(b'%'),
            },
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_browsers_encode() {
        assert_eq!(param("name=ada&room=x", "room").as_deref(), Some("x"));
        assert_eq!(param("name=Ada+L%C3%B8vlace", "name").as_deref(), Some("Ada Løvlace"));
        assert_eq!(param("names=x&name=y", "name").as_deref(), Some("y"), "the whole name");
        assert_eq!(param("a=100%", "a").as_deref(), Some("100%"), "a stray % kept");
        assert_eq!(param("a=%ff", "a"), None, "not UTF-8");
        assert_eq!(param("", "a"), None);
    }
}
