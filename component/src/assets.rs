//! The files of `static/`, embedded at compile time by `build.rs`.

/// One embedded file and its pre-compressed variants.
#[derive(Debug)]
pub struct Asset {
    /// URL path, starting with `/`.
    pub path: &'static str,
    pub content_type: &'static str,
    /// Hex digest of the identity bytes; the ETag of each variant derives from it.
    pub tag: &'static str,
    pub identity: &'static [u8],
    /// Present only when compressing made the file smaller.
    pub gzip: Option<&'static [u8]>,
    pub br: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The asset served at `path`, if any. `/` is the page itself.
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}
