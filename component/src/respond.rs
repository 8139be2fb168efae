//! The whole request-to-response logic, as a pure function of the request head.

use crate::assets::{self, Asset};
use crate::negotiate::{self, Coding};

/// The parts of a request the component looks at.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// The URI path, without the query.
    pub path: &'a str,
    pub accept_encoding: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
}

/// A complete response. The body is always `'static`: everything served is embedded.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: &'static [u8],
}

impl Reply {
    /// The first value of header `name` (lower-case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// `/health`'s body, fixed at compile time.
pub const HEALTH_BODY: &str = concat!(
    r#"{"status":"ok","service":""#,
    env!("CARGO_PKG_NAME"),
    r#"","version":""#,
    env!("CARGO_PKG_VERSION"),
    r#""}"#
);

/// The path of the component's health endpoint (probes point here).
pub const HEALTH_PATH: &str = "/health";

/// Same-origin only, WebSockets included: under CSP Level 3 `'self'` also matches `ws:`/`wss:` to the
/// page's own host and port, so a link with a crafted `?ws=` cannot make the page hand what the user
/// types to a foreign socket (bare `ws: wss:` here would allow any host).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; \
                   frame-ancestors 'none'; form-action 'self'";

/// Answers one request.
pub fn respond(req: &RequestHead<'_>) -> Reply {
    let is_head = req.method == "HEAD";
    if req.path == HEALTH_PATH {
        if req.method != "GET" && !is_head {
            return method_not_allowed();
        }
        return Reply {
            status: 200,
            headers: vec![
                ("content-type", "application/json".into()),
                ("cache-control", "no-store".into()),
                ("x-content-type-options", "nosniff".into()),
            ],
            body: if is_head { b"" } else { HEALTH_BODY.as_bytes() },
        };
    }
    if crate::apps::is_app(req.path) {
        // A WebSocket app: reached through the gateway's upgrade, never as a page. (`wasi:http`
        // forbids a guest's `Upgrade` header: the gateway adds it to a 426.)
        return Reply {
            status: 426,
            headers: vec![
                ("content-type", "text/plain; charset=utf-8".into()),
                ("x-content-type-options", "nosniff".into()),
            ],
            body: if is_head { b"" } else { b"a WebSocket app: open it with a WebSocket\n" },
        };
    }
    let Some(asset) = assets::find(req.path) else {
        return Reply {
            status: 404,
            headers: vec![
                ("content-type", "text/plain; charset=utf-8".into()),
                ("x-content-type-options", "nosniff".into()),
            ],
            body: if is_head { b"" } else { b"not found\n" },
        };
    };
    if req.method != "GET" && !is_head {
        return method_not_allowed();
    }
    serve_asset(asset, req, is_head)
}

fn serve_asset(asset: &'static Asset, req: &RequestHead<'_>, is_head: bool) -> Reply {
    let mut available = Vec::with_capacity(2);
    if asset.br.is_some() {
        available.push(Coding::Brotli);
    }
    if asset.gzip.is_some() {
        available.push(Coding::Gzip);
    }
    let coding = negotiate::choose_coding(req.accept_encoding, &available);
    let (body, suffix) = match coding {
        Coding::Brotli => (asset.br.unwrap_or(asset.identity), "-br"),
        Coding::Gzip => (asset.gzip.unwrap_or(asset.identity), "-gz"),
        Coding::Identity => (asset.identity, ""),
    };
    // A strong ETag names one representation, so each coding gets its own tag.
    let etag = format!("\"{}{suffix}\"", asset.tag);

    let mut headers = vec![("etag", etag), ("cache-control", "no-cache".into())];
    if !available.is_empty() {
        headers.push(("vary", "Accept-Encoding".into()));
    }
    if let Some(inm) = req.if_none_match
        && negotiate::none_match(inm, &headers[0].1)
    {
        return Reply { status: 304, headers, body: b"" };
    }
    headers.push(("content-type", asset.content_type.into()));
    if let Some(token) = coding.token() {
        headers.push(("content-encoding", token.into()));
    }
    headers.push(("x-content-type-options", "nosniff".into()));
    if asset.content_type.starts_with("text/html") {
        headers.push(("content-security-policy", CSP.into()));
        headers.push(("referrer-policy", "no-referrer".into()));
    }
    Reply { status: 200, headers, body: if is_head { b"" } else { body } }
}

fn method_not_allowed() -> Reply {
    Reply {
        status: 405,
        headers: vec![("allow", "GET, HEAD".into()), ("content-type", "text/plain; charset=utf-8".into())],
        body: b"method not allowed\n",
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn get(path: &str) -> RequestHead<'_> {
        RequestHead { method: "GET", path, ..Default::default() }
    }

    fn static_file(name: &str) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../static/");
        std::fs::read(format!("{path}{name}")).expect("static file exists")
    }

    #[test]
    fn root_and_index_serve_the_page() {
        let page = static_file("index.html");
        for path in ["/", "/index.html"] {
            let reply = respond(&get(path));
            assert_eq!(reply.status, 200, "{path}");
            assert_eq!(reply.header("content-type"), Some("text/html; charset=utf-8"));
            assert_eq!(reply.body, page.as_slice());
            assert_eq!(reply.header("cache-control"), Some("no-cache"));
            assert!(reply.header("content-encoding").is_none());
        }
    }

    #[test]
    fn html_carries_security_headers() {
        let reply = respond(&get("/"));
        let csp = reply.header("content-security-policy").expect("CSP on HTML");
        assert_eq!(csp_directive(csp, "default-src"), Some("'self'"));
        assert_eq!(csp_directive(csp, "script-src"), Some("'self'"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        // Not needed on scripts: CSP applies to documents.
        assert!(respond(&get("/app.js")).header("content-security-policy").is_none());
    }

    /// The sources of one CSP directive, whitespace-normalised.
    fn csp_directive<'a>(csp: &'a str, name: &str) -> Option<&'a str> {
        csp.split(';').map(str::trim).find_map(|d| {
            let (n, sources) = d.split_once(' ').unwrap_or((d, ""));
            (n == name).then(|| sources.trim())
        })
    }

    #[test]
    fn the_page_may_connect_to_its_own_origin_only() {
        let csp = respond(&get("/")).header("content-security-policy").expect("CSP on HTML").to_owned();
        // `'self'` covers the page's own ws:/wss: (CSP Level 3); anything more lets a link aim it elsewhere.
        assert_eq!(csp_directive(&csp, "connect-src"), Some("'self'"));
        for directive in csp.split(';') {
            for source in directive.split_whitespace().skip(1) {
                assert!(
                    !matches!(source, "*" | "ws:" | "wss:" | "http:" | "https:"),
                    "{source} in `{}` allows any host",
                    directive.trim()
                );
            }
        }
    }

    #[test]
    fn every_static_file_is_served_with_its_type() {
        for (name, ty) in
            [("app.js", "text/javascript; charset=utf-8"), ("style.css", "text/css; charset=utf-8")]
        {
            let reply = respond(&get(&format!("/{name}")));
            assert_eq!(reply.status, 200);
            assert_eq!(reply.header("content-type"), Some(ty));
            assert_eq!(reply.body, static_file(name).as_slice());
        }
        for asset in assets::ASSETS {
            assert_eq!(respond(&get(asset.path)).status, 200, "{}", asset.path);
        }
    }

    #[test]
    fn health_reports_name_and_version() {
        let reply = respond(&get("/health"));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let body: serde_json::Value = serde_json::from_slice(reply.body).expect("JSON");
        assert_eq!(body["status"], "ok");
        assert_eq!(body["service"], "sidestream-component");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in ["/nope", "/index.htm", "/../Cargo.toml", "/static/app.js", "", "/health/"] {
            let reply = respond(&get(path));
            assert_eq!(reply.status, 404, "{path}");
            assert_eq!(reply.body, b"not found\n");
        }
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get"] {
            for path in ["/", "/app.js", "/health"] {
                let reply = respond(&RequestHead { method, path, ..Default::default() });
                assert_eq!(reply.status, 405, "{method} {path}");
                assert_eq!(reply.header("allow"), Some("GET, HEAD"));
            }
        }
        // An unknown path stays 404 whatever the method.
        let reply = respond(&RequestHead { method: "POST", path: "/nope", ..Default::default() });
        assert_eq!(reply.status, 404);
    }

    #[test]
    fn head_has_the_headers_of_get_and_no_body() {
        for path in ["/", "/app.js", "/style.css", "/health", "/nope"] {
            for ae in [None, Some("gzip"), Some("br")] {
                let full = respond(&RequestHead { accept_encoding: ae, ..get(path) });
                let head = respond(&RequestHead { method: "HEAD", accept_encoding: ae, ..get(path) });
                assert_eq!(head.status, full.status, "{path}");
                assert_eq!(head.headers, full.headers, "{path}");
                assert!(head.body.is_empty(), "{path}");
                assert!(!full.body.is_empty(), "{path}");
            }
        }
    }

    #[test]
    fn gzip_and_brotli_decode_to_the_file() {
        let page = static_file("index.html");
        let reply = respond(&RequestHead { accept_encoding: Some("gzip"), ..get("/") });
        assert_eq!(reply.header("content-encoding"), Some("gzip"));
        assert_eq!(reply.header("vary"), Some("Accept-Encoding"));
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(reply.body).read_to_end(&mut decoded).expect("valid gzip");
        assert_eq!(decoded, page);

        let reply = respond(&RequestHead { accept_encoding: Some("gzip, deflate, br"), ..get("/") });
        assert_eq!(reply.header("content-encoding"), Some("br"));
        let mut decoded = Vec::new();
        brotli::Decompressor::new(reply.body, 4096).read_to_end(&mut decoded).expect("valid br");
        assert_eq!(decoded, page);
        assert!(reply.body.len() < page.len());

        let reply = respond(&RequestHead { accept_encoding: Some("br;q=0, gzip;q=0"), ..get("/") });
        assert_eq!(reply.header("content-encoding"), None);
        assert_eq!(reply.body, page.as_slice());
        assert_eq!(reply.header("vary"), Some("Accept-Encoding"));
    }

    #[test]
    fn each_representation_has_its_own_strong_etag() {
        let plain = respond(&get("/"));
        let gz = respond(&RequestHead { accept_encoding: Some("gzip"), ..get("/") });
        let br = respond(&RequestHead { accept_encoding: Some("br"), ..get("/") });
        let tags: Vec<&str> = [&plain, &gz, &br].iter().map(|r| r.header("etag").unwrap()).collect();
        for tag in &tags {
            assert!(tag.starts_with('"') && tag.ends_with('"') && !tag.starts_with("W/"), "{tag}");
        }
        assert_ne!(tags[0], tags[1]);
        assert_ne!(tags[0], tags[2]);
        assert_ne!(tags[1], tags[2]);
        assert_ne!(tags[0], respond(&get("/app.js")).header("etag").unwrap());
    }

    #[test]
    fn if_none_match_answers_304() {
        let first = respond(&get("/app.js"));
        let etag = first.header("etag").unwrap().to_owned();
        let weak = format!("W/{etag}");
        let list = format!("\"other\", {etag}");
        for inm in [etag.as_str(), weak.as_str(), list.as_str(), "*"] {
            for method in ["GET", "HEAD"] {
                let reply = respond(&RequestHead { method, if_none_match: Some(inm), ..get("/app.js") });
                assert_eq!(reply.status, 304, "{inm}");
                assert!(reply.body.is_empty());
                assert_eq!(reply.header("etag"), Some(etag.as_str()));
                assert_eq!(reply.header("cache-control"), Some("no-cache"));
            }
        }
        for inm in ["\"other\"", "", "garbage", "\"\""] {
            let reply = respond(&RequestHead { if_none_match: Some(inm), ..get("/app.js") });
            assert_eq!(reply.status, 200, "{inm}");
        }
        // A cached identity copy does not validate the gzip representation.
        let reply = respond(&RequestHead {
            if_none_match: Some(&etag),
            accept_encoding: Some("gzip"),
            ..get("/app.js")
        });
        assert_eq!(reply.status, 200);
    }
}
