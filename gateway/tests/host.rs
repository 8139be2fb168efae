//! The embedded wasm host, tested with the real release component over real sockets: every route
//! of the component answers as the component's own unit tests (`component/src/respond.rs`) expect,
//! hundreds of requests run at once beside live WebSockets, and a guest that traps, loops or runs
//! out of memory costs only its own request.
//!
//! `cargo test -p sidestream-gateway --test host`, after `make component fault-component` (the
//! fault tests use the test-only build of the component with `/fault/*` routes, see
//! `component/src/fault.rs`).

mod common;

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{Reply, STEP, TestGateway, Ws, fault_component, next_echo, post, request, send, within};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

/// Starts capturing the gateway's warnings (this process's, once) and returns what has been logged.
fn warnings() -> String {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let log = LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || LogWriter(sink.clone()))
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        log
    });
    String::from_utf8_lossy(&log.lock().expect("log lock")).into_owned()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The warnings logged about requests to `path`.
fn warnings_about(path: &str) -> Vec<String> {
    let needle = format!("uri={path} ");
    warnings().lines().filter(|l| l.contains(&needle)).map(str::to_owned).collect()
}

/// A file of `static/` as the component embedded it (a mismatch means a stale component: `make component`).
fn static_file(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../static").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn static_names() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../static");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("static/ exists")
        .map(|e| e.expect("dir entry").file_name().into_string().expect("UTF-8 name"))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("valid gzip");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out).expect("valid brotli");
    out
}

/// Asserts `actual == expected` without printing two whole files when they differ.
#[track_caller]
fn assert_bytes(actual: &[u8], expected: &[u8], what: &str) {
    if actual != expected {
        let at =
            actual.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(actual.len().min(expected.len()));
        panic!(
            "{what}: {} bytes, expected {} (first difference at byte {at}); a stale component? run `make component`",
            actual.len(),
            expected.len()
        );
    }
}

/// The headers of a reply but `date` (stamped per response) and the framing headers, which a HEAD
/// answer may leave out (RFC 9110 §9.3.2).
fn end_to_end_headers(reply: &Reply) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = reply
        .headers
        .iter()
        .filter(|(name, _)| !["date", "transfer-encoding", "content-length"].contains(&name.as_str()))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("<binary>").to_owned()))
        .collect();
    headers.sort();
    headers
}

async fn get(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(gw.addr, "GET", path, headers).await
}

#[tokio::test(flavor = "multi_thread")]
async fn page_and_assets_are_the_files_of_static() {
    let gw = TestGateway::start(&["--no-push"]).await;
    let page = static_file("index.html");
    for path in ["/", "/index.html"] {
        let reply = gw.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), Some("text/html; charset=utf-8"), "{path}");
        assert_eq!(reply.header("cache-control"), Some("no-cache"), "{path}");
        assert_eq!(reply.header("content-encoding"), None, "{path}");
        assert_eq!(reply.header("vary"), Some("Accept-Encoding"), "{path}");
        assert_bytes(&reply.body, &page, path);
        let csp = reply.header("content-security-policy").expect("CSP on the page");
        assert!(csp.contains("default-src 'self'") && csp.contains("connect-src 'self';"), "{csp}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        let etag = reply.header("etag").expect("etag");
        assert!(etag.starts_with('"') && etag.ends_with('"'), "strong etag: {etag}");
    }

    for (path, content_type) in
        [("/app.js", "text/javascript; charset=utf-8"), ("/style.css", "text/css; charset=utf-8")]
    {
        let reply = gw.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(reply.header("content-security-policy"), None, "CSP is for documents: {path}");
    }

    // Every file of static/ at its own path, byte for byte.
    let names = static_names();
    assert!(names.len() >= 4, "static/ has the page and its assets: {names:?}");
    for name in names {
        let reply = gw.get(&format!("/{name}")).await;
        assert_eq!(reply.status, 200, "/{name}");
        assert_bytes(&reply.body, &static_file(&name), &name);
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_the_component() {
    let gw = TestGateway::start(&["--no-push"]).await;
    let reply = gw.get("/health").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body: serde_json::Value = serde_json::from_slice(&reply.body).expect("/health is JSON");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["service"], "sidestream-component");
    // The workspace shares one version, so the gateway's is the component's.
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body.as_object().map(|o| o.len()), Some(3), "{body}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn if_none_match_answers_304() {
    let gw = TestGateway::start(&["--no-push"]).await;
    let first = gw.get("/app.js").await;
    let etag = first.header("etag").expect("etag").to_owned();
    let weak = format!("W/{etag}");
    let list = format!("\"other\", {etag}");
    for inm in [etag.as_str(), weak.as_str(), list.as_str(), "*"] {
        for method in ["GET", "HEAD"] {
            let reply = request(gw.addr, method, "/app.js", &[("if-none-match", inm)]).await;
            assert_eq!(reply.status, 304, "{method} If-None-Match: {inm}");
            assert!(reply.body.is_empty(), "{method} {inm}");
            assert_eq!(reply.header("etag"), Some(etag.as_str()), "{method} {inm}");
            assert_eq!(reply.header("cache-control"), Some("no-cache"), "{method} {inm}");
        }
    }
    for inm in ["\"other\"", "garbage", "\"\""] {
        let reply = get(&gw, "/app.js", &[("if-none-match", inm)]).await;
        assert_eq!(reply.status, 200, "If-None-Match: {inm}");
        assert_bytes(&reply.body, &first.body, inm);
    }
    // The identity tag does not validate the gzip representation.
    let reply = get(&gw, "/app.js", &[("if-none-match", &etag), ("accept-encoding", "gzip")]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn other_methods_are_405_and_unknown_paths_404() {
    let gw = TestGateway::start(&["--no-push"]).await;
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get"] {
        for path in ["/", "/app.js", "/health"] {
            let reply = request(gw.addr, method, path, &[]).await;
            assert_eq!(reply.status, 405, "{method} {path}");
            assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
    }
    for path in ["/nope", "/index.htm", "/static/app.js", "/health/", "/app.js/"] {
        let reply = gw.get(path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.text(), "not found\n", "{path}");
        assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"), "{path}");
    }
    // An unknown path stays 404 whatever the method.
    assert_eq!(request(gw.addr, "POST", "/nope", &[]).await.status, 404);
    // A body changes nothing: the component answers from the head alone (only app events are read),
    // and the connection serves the next request.
    for (path, status) in [("/", 405), ("/nope", 404), ("/echo", 426)] {
        let reply = post(gw.addr, path, &[("content-type", "text/plain")], vec![b'x'; 256 << 10]).await;
        assert_eq!(reply.status, status, "POST {path} with a body");
    }
    assert_eq!(gw.get("/health").await.status, 200);
    // A page request to an app: 426, saying what to upgrade to.
    let reply = gw.get("/echo").await;
    assert_eq!((reply.status, reply.header("upgrade")), (426, Some("websocket")));
    assert_eq!(reply.text(), "a WebSocket app: open it with a WebSocket\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_component_has_no_fault_routes() {
    let gw = TestGateway::start(&["--no-push", "--component-timeout", "2s"]).await;
    for path in ["/fault/trap", "/fault/loop", "/fault/oom", "/fault/slow?ms=1"] {
        let started = Instant::now();
        let reply = gw.get(path).await;
        assert_eq!(reply.status, 404, "{path}: the release component must not contain fault injection");
        assert!(started.elapsed() < Duration::from_secs(1), "{path} took {:?}", started.elapsed());
    }
    assert_eq!(gw.metrics().await.get("sidestream_component_errors_total"), 0.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn head_has_the_headers_of_get_and_no_body() {
    let gw = TestGateway::start(&["--no-push"]).await;
    for path in ["/", "/app.js", "/style.css", "/health", "/nope"] {
        for encoding in ["identity", "gzip", "br"] {
            let ae = [("accept-encoding", encoding)];
            let full = get(&gw, path, &ae).await;
            let head = request(gw.addr, "HEAD", path, &ae).await;
            assert_eq!(head.status, full.status, "{path} {encoding}");
            assert_eq!(end_to_end_headers(&head), end_to_end_headers(&full), "{path} {encoding}");
            assert!(head.body.is_empty(), "HEAD {path} {encoding} has a body");
            assert!(!full.body.is_empty(), "GET {path} {encoding} has no body");
        }
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_and_brotli_decode_to_the_files() {
    let gw = TestGateway::start(&["--no-push"]).await;
    for (path, name) in [("/", "index.html"), ("/app.js", "app.js"), ("/style.css", "style.css")] {
        let file = static_file(name);
        let plain = get(&gw, path, &[]).await;

        let gz = get(&gw, path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(gz.status, 200, "{path}");
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(gz.header("vary"), Some("Accept-Encoding"), "{path}");
        assert_bytes(&gunzip(&gz.body), &file, &format!("{path} gzip"));

        let br = get(&gw, path, &[("accept-encoding", "gzip, deflate, br")]).await;
        assert_eq!(br.header("content-encoding"), Some("br"), "{path}");
        assert_bytes(&unbrotli(&br.body), &file, &format!("{path} br"));
        assert!(br.body.len() < file.len(), "{path}: brotli is smaller");

        // q=0 refuses a coding: identity it is.
        let refused = get(&gw, path, &[("accept-encoding", "br;q=0, gzip;q=0")]).await;
        assert_eq!(refused.header("content-encoding"), None, "{path}");
        assert_bytes(&refused.body, &file, path);

        // Each representation has its own strong tag.
        let tags = [&plain, &gz, &br].map(|r| r.header("etag").expect("etag").to_owned());
        assert!(tags[0] != tags[1] && tags[0] != tags[2] && tags[1] != tags[2], "{path}: {tags:?}");
    }
    gw.stop().await;
}

/// One echo on `ws`, checked.
async fn echo(ws: &mut Ws, text: String) {
    send(ws, Message::text(text.clone())).await;
    let mut pushes = Vec::new();
    assert_eq!(next_echo(ws, &mut pushes).await, Message::text(text));
}

/// One request of the concurrent mix, checked against what the component's tests expect.
async fn mixed_request(addr: std::net::SocketAddr, i: usize, app_etag: &str) {
    let page = static_file("index.html");
    match i % 8 {
        0 => {
            let r = request(addr, "GET", "/", &[]).await;
            assert_eq!(r.status, 200, "request {i}");
            assert_bytes(&r.body, &page, "GET /");
        }
        1 => {
            let r = request(addr, "GET", "/app.js", &[("accept-encoding", "gzip")]).await;
            assert_eq!(r.status, 200, "request {i}");
            assert_bytes(&gunzip(&r.body), &static_file("app.js"), "gzip /app.js");
        }
        2 => {
            let r = request(addr, "GET", "/style.css", &[("accept-encoding", "br")]).await;
            assert_eq!(r.status, 200, "request {i}");
            assert_bytes(&unbrotli(&r.body), &static_file("style.css"), "br /style.css");
        }
        3 => {
            let r = request(addr, "GET", "/health", &[]).await;
            assert_eq!(r.status, 200, "request {i}");
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
            assert_eq!(body["status"], "ok", "request {i}");
        }
        4 => {
            let r = request(addr, "GET", "/app.js", &[("if-none-match", app_etag)]).await;
            assert_eq!(r.status, 304, "request {i}");
        }
        5 => {
            let r = request(addr, "GET", "/nope", &[]).await;
            assert_eq!((r.status, r.text().as_str()), (404, "not found\n"), "request {i}");
        }
        6 => {
            let r = request(addr, "HEAD", "/", &[]).await;
            assert_eq!(r.status, 200, "request {i}");
            assert!(r.body.is_empty(), "request {i}");
        }
        _ => {
            let r = request(addr, "POST", "/", &[]).await;
            assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")), "request {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_requests_while_websockets_echo() {
    const REQUESTS: usize = 200;
    const SOCKETS: usize = 10;
    // Pushes on and frequent, so the sockets are as busy as the page makes them.
    let gw = TestGateway::start(&["--push-min", "10ms", "--push-max", "50ms"]).await;
    let app_etag = gw.get("/app.js").await.header("etag").expect("etag").to_owned();

    // WebSocket clients echo in a loop until told to stop; each has echoed once before the burst.
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(SOCKETS + 1));
    let mut sockets = JoinSet::new();
    for c in 0..SOCKETS {
        let mut ws = gw.ws("/ws").await;
        let (stop, ready) = (stop.clone(), ready.clone());
        sockets.spawn(async move {
            echo(&mut ws, format!("client {c} first")).await;
            ready.wait().await;
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                echo(&mut ws, format!("client {c} echo {n} {}", "x".repeat(n as usize % 300))).await;
                n += 1;
            }
            echo(&mut ws, format!("client {c} after")).await;
            n
        });
    }
    within("websockets ready", ready.wait()).await;

    // 200 requests on 200 connections, released at once.
    let start = Arc::new(Barrier::new(REQUESTS));
    let mut burst = JoinSet::new();
    for i in 0..REQUESTS {
        let (start, etag, addr) = (start.clone(), app_etag.clone(), gw.addr);
        burst.spawn(async move {
            start.wait().await;
            mixed_request(addr, i, &etag).await;
        });
    }
    let answered = within("200 concurrent requests", burst.join_all()).await.len();
    assert_eq!(answered, REQUESTS);
    stop.store(true, Ordering::SeqCst);

    let echoes: Vec<u32> = within("websockets finish", sockets.join_all()).await;
    assert_eq!(echoes.len(), SOCKETS, "every WebSocket client kept echoing");
    assert!(echoes.iter().sum::<u32>() > 0, "no echo completed during the burst: {echoes:?}");
    assert_eq!(gw.metrics().await.get("sidestream_component_errors_total"), 0.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_guest_costs_only_its_own_request() {
    // A deadline long enough to see other requests finish while the loops spin, short enough for a
    // quick test; a memory cap well above what the page needs.
    const TIMEOUT: Duration = Duration::from_millis(1000);
    const LOOPS: usize = 3; // more spinning guests than the test machine has cores
    let component = fault_component();
    warnings();
    let gw = TestGateway::start(&[
        "--no-push",
        "--component",
        component.to_str().expect("UTF-8 path"),
        "--component-timeout",
        "1s",
        "--component-memory-mib",
        "16",
    ])
    .await;
    let page = static_file("index.html");
    let mut ws = gw.ws("/ws?push=off").await;
    echo(&mut ws, "before".into()).await;

    // The fault build still serves the page, and a short sleep in the guest is not a fault.
    assert_bytes(&gw.get("/").await.body, &page, "the page");
    let slow = gw.get("/fault/slow?ms=50").await;
    assert_eq!((slow.status, slow.text().as_str()), (200, "slept 50 ms\n"));

    // The memory cap is the instance's: what fits under it is served.
    let fits = gw.get("/fault/oom?mib=8").await;
    assert_eq!((fits.status, fits.text().as_str()), (200, "allocated 8 MiB\n"));

    // A trap and running out of memory fail at once with 500, not at the deadline; so does a call
    // to an interface Spin offers and the host does not (the component loaded all the same).
    for path in ["/fault/trap", "/fault/oom?mib=32", "/fault/oom", "/fault/key-value"] {
        let started = Instant::now();
        let reply = gw.get(path).await;
        assert_eq!(reply.status, 500, "{path}: {}", reply.text());
        assert!(reply.text().contains("the component failed"), "{path}: {}", reply.text());
        assert!(started.elapsed() < TIMEOUT, "{path} took {:?}", started.elapsed());
    }

    // Guests that never answer: spinning in wasm (stopped by epoch interruption) and blocked in a
    // host call (stopped by the deadline on the answer).
    let spinning: Vec<_> = (0..LOOPS)
        .map(|_| tokio::spawn(request(gw.addr, "GET", "/fault/loop", &[])))
        .chain([tokio::spawn(request(gw.addr, "GET", "/fault/slow?ms=5000", &[]))])
        .collect();
    let sent = Instant::now();

    // Meanwhile the page and the WebSocket keep working.
    let mut during = 0;
    let mut n = 0;
    while !spinning.iter().all(|t| t.is_finished()) {
        let started = sent.elapsed();
        let reply = gw.get("/").await;
        assert_eq!(reply.status, 200, "page while guests spin");
        assert_bytes(&reply.body, &page, "page while guests spin");
        echo(&mut ws, format!("during {n}")).await;
        n += 1;
        // Started well after the stuck guests and done before they were stopped.
        if started > TIMEOUT / 4 && !spinning.iter().all(|t| t.is_finished()) {
            during += 1;
        }
    }
    assert!(during > 0, "no request was served while the guests spun ({n} in all)");

    for (i, task) in spinning.into_iter().enumerate() {
        let reply = within("stuck guest answered", task).await.expect("request task");
        assert_eq!(reply.status, 504, "stuck guest {i}: {}", reply.text());
        assert!(reply.text().contains("deadline"), "{}", reply.text());
    }
    let waited = sent.elapsed();
    assert!(waited >= TIMEOUT && waited < TIMEOUT + STEP / 2, "stuck guests answered after {waited:?}");

    // Afterwards everything still works, and every failure was counted.
    assert_bytes(&gw.get("/").await.body, &page, "the page");
    assert_eq!(gw.get("/health").await.status, 200);
    echo(&mut ws, "after".into()).await;

    // One warning per failed request, carrying the guest's own error.
    for (path, count, error) in [
        ("/fault/trap", 1, "wasm trap"),
        ("/fault/oom?mib=32", 1, "memory"),
        ("/fault/loop", LOOPS, "deadline"),
        ("/fault/slow?ms=5000", 1, "deadline"),
        ("/fault/key-value", 1, "`fermyon:spin/key-value@2.0.0#[static]store.open"),
    ] {
        let lines = warnings_about(path);
        assert_eq!(lines.len(), count, "warnings about {path}: {lines:#?}");
        for line in lines {
            assert!(line.contains("component request failed") && line.contains(error), "{line}");
        }
    }
    assert!(warnings_about("/fault/oom?mib=8").is_empty());
    let metrics = gw.metrics().await;
    let failures = 4 + LOOPS + 1;
    assert_eq!(metrics.get("sidestream_component_errors_total"), failures as f64);
    assert_eq!(metrics.get(r#"sidestream_http_requests_total{route="component",status="500"}"#), 4.0);
    assert_eq!(
        metrics.get(r#"sidestream_http_requests_total{route="component",status="504"}"#),
        (LOOPS + 1) as f64
    );
    gw.stop().await;
}

/// Starts the fault build of the component with `args`.
async fn fault_gateway(args: &[&str]) -> TestGateway {
    let component = fault_component();
    let mut all = vec!["--no-push", "--component", component.to_str().expect("UTF-8 path")];
    all.extend_from_slice(args);
    TestGateway::start(&all).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_host_answers_503_with_retry_after_instead_of_queueing() {
    let gw = fault_gateway(&["--component-instances", "2", "--component-timeout", "10s"]).await;
    // Two guests hold both instances for a while. Only once both run does the probe go: a probe
    // that took an instance first could make a slow guest wait past its own 500 ms.
    let busy: Vec<_> =
        (0..2).map(|_| tokio::spawn(request(gw.addr, "GET", "/fault/slow?ms=5000", &[]))).collect();
    common::eventually("both slow guests run", async || {
        gw.metrics().await.get("sidestream_component_guests_running") == 2.0
    })
    .await;
    let started = Instant::now();
    let reply = gw.get("/health").await;
    let waited = started.elapsed();
    assert_eq!(reply.status, 503, "a request finds every instance busy: {reply:?}");
    assert_eq!(reply.header("retry-after"), Some("1"), "{reply:?}");
    assert!(reply.text().contains("busy"), "{}", reply.text());
    // It waited a little for an instance (a burst of quick requests rides it out), not until its
    // own 10 s deadline.
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(3), "waited {waited:?}");
    for task in busy {
        let reply = within("slow guests finish", task).await.expect("request task");
        assert_eq!(reply.status, 200, "the guests holding the instances finish normally");
    }
    assert_eq!(gw.get("/health").await.status, 200, "free instances serve again");
    let m = gw.metrics().await;
    assert!(m.get("sidestream_component_busy_total") >= 1.0);
    assert_eq!(m.get("sidestream_component_errors_total"), 0.0, "load shedding is not a component error");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_bounds_the_whole_response_body() {
    warnings();
    // One instance: a guest still running after its deadline would hold it, and the request after
    // it would get 503.
    let gw = fault_gateway(&["--component-instances", "1", "--component-timeout", "1s"]).await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let started = Instant::now();
    let uri = gw.url("/fault/slow-body?ms=20000").parse().expect("uri");
    let response = within("head", client.get(uri)).await.expect("the head arrives at once");
    assert_eq!(response.status(), 200);
    // The guest sleeps in a host call after its head, using no wasm time: the wall clock stops it.
    let body = within("body ends", http_body_util::BodyExt::collect(response.into_body())).await;
    let elapsed = started.elapsed();
    assert!(body.is_err(), "the body is cut off, not completed: {body:?}");
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(5),
        "cut off after {elapsed:?}"
    );
    let health = gw.get("/health").await;
    assert_eq!(health.status, 200, "the guest was stopped and its instance freed: {}", health.text());
    common::eventually("the cut-off is counted", async || {
        gw.metrics().await.get("sidestream_component_errors_total") == 1.0
    })
    .await;
    let log = warnings();
    assert!(
        log.lines()
            .any(|l| l.contains("ran past its deadline") && l.contains("uri=/fault/slow-body?ms=20000")),
        "{log}"
    );
    gw.stop().await;
}
