//! `--upstream`: the gateway in front of a real HTTP upstream started by the test. A second gateway
//! with the embedded host stands in for the Spin runtime (proxied answers must be byte-identical to
//! its direct ones); a small hyper server that records what reaches it checks what the proxy
//! forwards; a port that accepts and never answers checks the timeout.
//!
//! `cargo test -p sidestream-gateway --test upstream`, after `make component`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use common::{Reply, TestGateway, eventually, request, within};
use http::{HeaderMap, Method, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sidestream_gateway::Config;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A gateway proxying to `upstream`, with `extra` flags.
async fn proxy_to(upstream: SocketAddr, extra: &[&str]) -> TestGateway {
    let url = format!("http://{upstream}");
    let mut args = vec!["--no-push", "--upstream", url.as_str()];
    args.extend_from_slice(extra);
    TestGateway::start(&args).await
}

/// One HTTP/1.1 request with a body, over a fresh connection.
async fn send_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut builder = http::Request::builder().method(method).uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = within("http request", client.request(builder.body(Full::new(body)).unwrap()))
        .await
        .expect("http response");
    let (parts, body) = response.into_parts();
    let body = within("http body", body.collect()).await.expect("body").to_bytes();
    Reply { status: parts.status.as_u16(), headers: parts.headers, body }
}

/// Request headers of one case.
type Headers<'a> = Vec<(&'a str, &'a str)>;

async fn readyz(gw: &TestGateway) -> u16 {
    gw.admin("/readyz").await.status
}

/// Headers but `date`, which each server stamps with its own clock.
fn headers_but_date(reply: &Reply) -> Vec<(String, Vec<u8>)> {
    let mut headers: Vec<(String, Vec<u8>)> = reply
        .headers
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    headers.sort();
    headers
}

#[tokio::test(flavor = "multi_thread")]
async fn proxied_answers_are_byte_identical_to_direct_ones() {
    let direct = TestGateway::start(&["--no-push"]).await;
    let proxy = proxy_to(direct.addr, &[]).await;
    let page_tag = direct.get("/").await.header("etag").expect("etag").to_owned();
    let app_tag = direct.get("/app.js").await.header("etag").expect("etag").to_owned();
    let weak_list = format!("\"other\", W/{app_tag}");

    let cases: Vec<(&str, &str, Headers)> = vec![
        ("GET", "/", vec![]),
        ("GET", "/index.html", vec![("accept-encoding", "gzip")]),
        ("GET", "/", vec![("accept-encoding", "gzip, deflate, br")]),
        ("GET", "/app.js", vec![]),
        ("GET", "/app.js?v=2", vec![("accept-encoding", "br")]),
        ("GET", "/style.css", vec![("accept-encoding", "br;q=0, gzip;q=0")]),
        ("GET", "/favicon.svg", vec![]),
        ("GET", "/health", vec![]),
        ("GET", "/", vec![("if-none-match", &page_tag)]),
        ("GET", "/app.js", vec![("if-none-match", &weak_list)]),
        ("HEAD", "/app.js", vec![("if-none-match", &app_tag)]),
        ("HEAD", "/", vec![("accept-encoding", "gzip")]),
        ("HEAD", "/health", vec![]),
        ("POST", "/", vec![]),
        ("DELETE", "/health", vec![]),
        ("GET", "/nope", vec![]),
        ("POST", "/nope", vec![]),
    ];
    for (method, path, headers) in &cases {
        let want = request(direct.addr, method, path, headers).await;
        let got = request(proxy.addr, method, path, headers).await;
        let what = format!("{method} {path} {headers:?}");
        assert_eq!(got.status, want.status, "{what}");
        assert!(
            got.body == want.body,
            "{what}: body differs ({} vs {} bytes)",
            got.body.len(),
            want.body.len()
        );
        assert_eq!(headers_but_date(&got), headers_but_date(&want), "{what}");
    }
    // The cases cover what matters: compressed bodies, validators, errors.
    let gz = request(proxy.addr, "GET", "/", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(request(proxy.addr, "GET", "/", &[("if-none-match", &page_tag)]).await.status, 304);

    assert_eq!(proxy.metrics().await.get("sidestream_component_errors_total"), 0.0);
    proxy.stop().await;
    direct.stop().await;
}

/// What reached the recording upstream.
#[derive(Debug)]
struct Seen {
    method: Method,
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A stand-in upstream: records each request (but `/health`), answers with the request's body and
/// with hop-by-hop headers of its own that must not reach the client. `/health` answers with
/// `health_status`.
struct Recorder {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    health_status: Arc<AtomicU16>,
    health_checks: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound address");
        let (tx, seen) = mpsc::unbounded_channel();
        let health_status = Arc::new(AtomicU16::new(200));
        let health_checks = Arc::new(AtomicUsize::new(0));
        let (status, checks) = (health_status.clone(), health_checks.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tx, status, checks) = (tx.clone(), status.clone(), checks.clone());
                let service = service_fn(move |req: http::Request<Incoming>| {
                    let (tx, status, checks) = (tx.clone(), status.clone(), checks.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await?.to_bytes();
                        if parts.uri.path() == "/health" {
                            checks.fetch_add(1, Ordering::SeqCst);
                            let mut r = Response::new(Full::new(Bytes::from_static(b"{}")));
                            *r.status_mut() = http::StatusCode::from_u16(status.load(Ordering::SeqCst))
                                .expect("valid status");
                            return Ok::<_, hyper::Error>(r);
                        }
                        let target = parts.uri.path_and_query().map_or("", |p| p.as_str()).to_owned();
                        let _ = tx.send(Seen {
                            method: parts.method,
                            target,
                            headers: parts.headers,
                            body: body.clone(),
                        });
                        let r = Response::builder()
                            .status(201)
                            .header("x-end-to-end", "kept")
                            .header("cache-control", "private, max-age=7")
                            .header("connection", "x-upstream-hop")
                            .header("x-upstream-hop", "secret")
                            .header("keep-alive", "timeout=5")
                            .header("proxy-authenticate", "Basic realm=\"upstream\"")
                            .header("upgrade", "h2c")
                            .body(Full::new(body))
                            .expect("valid response");
                        Ok(r)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Recorder { addr, seen, health_status, health_checks, task }
    }

    async fn next(&mut self) -> Seen {
        within("upstream sees the request", self.seen.recv()).await.expect("recorder running")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_reach_the_upstream_intact() {
    let mut upstream = Recorder::start().await;
    let proxy = proxy_to(upstream.addr, &[]).await;
    let host = proxy.addr.to_string();

    // A binary body larger than any buffer on the way, with a query that must not be re-encoded.
    let body: Bytes = (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let target = "/api/items/%E2%9C%93?a=1&b=two%20words&c=&d=%2F";
    let headers = [
        ("content-type", "application/octet-stream"),
        ("authorization", "Bearer token"),
        ("cookie", "a=b"),
        ("x-custom", "1"),
        // Forwarding headers from a client no proxy vouches for: replaced, never believed.
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "bank.example"),
        // Hop-by-hop: only for the link between the client and the gateway.
        ("connection", "keep-alive, x-client-hop"),
        ("x-client-hop", "secret"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
    ];
    let hop_request = ["x-client-hop", "keep-alive", "te", "proxy-authorization"];
    let hop_response = ["x-upstream-hop", "keep-alive", "proxy-authenticate", "upgrade"];

    // Control: straight to the upstream, the hop-by-hop headers do travel both ways, so their
    // absence below is the proxy's doing.
    let reply = send_request(upstream.addr, "POST", target, &headers, body.clone()).await;
    let seen = upstream.next().await;
    for hop in hop_request {
        assert!(seen.headers.contains_key(hop), "the client did not send {hop}");
    }
    for hop in hop_response {
        assert!(reply.headers.contains_key(hop), "the upstream did not answer {hop}");
    }

    let reply = send_request(proxy.addr, "POST", target, &headers, body.clone()).await;

    let seen = upstream.next().await;
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.target, target);
    assert!(seen.body == body, "body arrived with {} of {} bytes", seen.body.len(), body.len());
    let header = |name: &str| seen.headers.get(name).map(|v| v.to_str().expect("ASCII header"));
    assert_eq!(header("content-type"), Some("application/octet-stream"));
    assert_eq!(header("authorization"), Some("Bearer token"));
    assert_eq!(header("cookie"), Some("a=b"));
    assert_eq!(header("x-custom"), Some("1"));
    assert_eq!(header("host"), Some(host.as_str()), "Host is the one the client asked for");
    assert_eq!(header("x-forwarded-for"), Some("127.0.0.1"), "the client's own claim is replaced");
    assert_eq!(header("x-forwarded-proto"), Some("http"));
    assert_eq!(header("x-forwarded-host"), Some(host.as_str()));
    assert_eq!(header("via"), Some("1.1 sidestream"), "RFC 9110 §7.6.3");
    for hop in hop_request.iter().chain(&["upgrade"]) {
        assert_eq!(header(hop), None, "hop-by-hop request header {hop} was forwarded");
    }
    assert!(
        header("connection").is_none_or(|c| !c.contains("x-client-hop")),
        "Connection forwarded: {:?}",
        header("connection")
    );

    // The answer comes back whole, without the upstream's hop-by-hop headers.
    assert_eq!(reply.status, 201);
    assert!(reply.body == body, "echoed body has {} of {} bytes", reply.body.len(), body.len());
    assert_eq!(reply.header("x-end-to-end"), Some("kept"));
    assert_eq!(reply.header("cache-control"), Some("private, max-age=7"));
    for hop in hop_response {
        assert_eq!(reply.header(hop), None, "hop-by-hop response header {hop} reached the client");
    }
    assert!(reply.header("connection").is_none_or(|c| !c.contains("x-upstream-hop")));

    // Every method and an empty body; without X-Forwarded-For the client's address starts it.
    for method in ["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let reply = send_request(proxy.addr, method, "/m?x=1", &[], Bytes::new()).await;
        assert_eq!(reply.status, 201, "{method}");
        let seen = upstream.next().await;
        assert_eq!(seen.method.as_str(), method);
        assert_eq!(seen.target, "/m?x=1");
        assert!(seen.body.is_empty(), "{method}");
        assert_eq!(seen.headers.get("x-forwarded-for").map(|v| v.as_bytes()), Some(&b"127.0.0.1"[..]));
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_from_a_trusted_proxy_extend_the_chain() {
    let mut upstream = Recorder::start().await;
    let proxy = proxy_to(upstream.addr, &["--trusted-proxy", "10.0.0.0/8,127.0.0.0/8"]).await;
    let headers = [
        ("x-forwarded-for", "203.0.113.7, 198.51.100.2"),
        // A second line, and one with bytes outside ASCII: neither may drop the rest.
        ("x-forwarded-for", "192.0.2.1"),
        ("x-forwarded-for", "zoë"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.example"),
        ("via", "1.1 ingress"),
    ];
    send_request(proxy.addr, "GET", "/", &headers, Bytes::new()).await;
    let seen = upstream.next().await;
    let all = |name: &str| -> Vec<Vec<u8>> {
        seen.headers.get_all(name).iter().map(|v| v.as_bytes().to_vec()).collect()
    };
    assert_eq!(
        all("x-forwarded-for"),
        [b"203.0.113.7, 198.51.100.2, 192.0.2.1, zo\xc3\xab, 127.0.0.1".to_vec()]
    );
    assert_eq!(all("x-forwarded-proto"), [b"https".to_vec()]);
    assert_eq!(all("x-forwarded-host"), [b"app.example".to_vec()]);
    assert_eq!(all("via"), [b"1.1 ingress, 1.1 sidestream".to_vec()]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_upstream_health() {
    let upstream = Recorder::start().await;
    upstream.health_status.store(503, Ordering::SeqCst);
    let proxy = proxy_to(upstream.addr, &[]).await;
    eventually("the upstream's /health is checked", async || {
        upstream.health_checks.load(Ordering::SeqCst) > 0
    })
    .await;
    assert_eq!(readyz(&proxy).await, 503, "ready although the upstream's /health fails");
    // Not ready is not down: requests still go through.
    assert_eq!(proxy.get("/x").await.status, 201);

    upstream.health_status.store(200, Ordering::SeqCst);
    eventually("ready once /health passes", async || readyz(&proxy).await == 200).await;
    // Probes never reach the upstream: /readyz answers from the last check.
    let checks = upstream.health_checks.load(Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(readyz(&proxy).await, 200);
    }
    assert!(upstream.health_checks.load(Ordering::SeqCst) <= checks + 1, "probes hit the upstream");
    proxy.stop().await;
}

/// A gateway with the embedded host on exactly `addr`.
async fn direct_on(addr: SocketAddr) -> TestGateway {
    let component = common::component();
    let listen = addr.to_string();
    let config = Config::try_parse_from([
        "sidestream-gateway",
        "--no-push",
        "--listen",
        &listen,
        "--admin-listen",
        "127.0.0.1:0",
        "--component",
        component.to_str().expect("UTF-8 path"),
    ])
    .expect("valid config");
    TestGateway::with_config(config).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_upstream_is_502_and_not_ready_until_it_is_back() {
    let direct = TestGateway::start(&["--no-push"]).await;
    let port = direct.addr;
    let page = direct.get("/").await.body;
    let proxy = proxy_to(port, &[]).await;
    eventually("ready with the upstream up", async || readyz(&proxy).await == 200).await;
    assert!(proxy.get("/").await.body == page);

    direct.stop().await;
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(reply.text().starts_with("bad gateway"), "{}", reply.text());
    assert!(reply.body.len() < 100, "a short body: {}", reply.text());
    assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"));
    eventually("not ready with the upstream down", async || readyz(&proxy).await == 503).await;
    assert_eq!(proxy.get("/health").await.status, 502);
    // The gateway's own routes do not depend on the upstream.
    assert_eq!(proxy.admin("/livez").await.status, 200);

    // Back on the same port: ready again, and the very first request after that is answered.
    let back = direct_on(port).await;
    eventually("ready once the upstream is back", async || readyz(&proxy).await == 200).await;
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 200);
    assert!(reply.body == page, "the page through the proxy differs");
    assert_eq!(proxy.metrics().await.get("sidestream_component_errors_total"), 2.0);
    proxy.stop().await;
    back.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_upstream_is_504_after_the_upstream_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    // Accepts connections and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent = listener.local_addr().expect("bound address");
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let proxy = proxy_to(silent, &["--upstream-timeout", "300ms"]).await;

    for (method, body) in [("GET", Bytes::new()), ("POST", Bytes::from_static(b"payload"))] {
        let started = Instant::now();
        let reply = send_request(proxy.addr, method, "/", &[], body).await;
        let took = started.elapsed();
        assert_eq!(reply.status, 504, "{method}: {}", reply.text());
        assert!(reply.text().starts_with("gateway timeout"), "{}", reply.text());
        assert!(took >= TIMEOUT && took < TIMEOUT * 10, "{method} answered after {took:?}");
    }
    assert_eq!(readyz(&proxy).await, 503, "ready although the upstream never answers");
    assert_eq!(proxy.metrics().await.get("sidestream_component_errors_total"), 2.0);
    proxy.stop().await;
    holder.abort();
}

#[tokio::test]
async fn a_body_that_stalls_midway_is_cut_off_after_the_upstream_timeout() {
    // Sends a head and part of the body it promises, then falls silent with the connection open.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let stalling = listener.local_addr().expect("bound address");
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\nfirst ten.";
            let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes()).await;
            held.push(stream);
        }
    });
    let proxy = proxy_to(stalling, &["--upstream-timeout", "300ms"]).await;

    let started = Instant::now();
    let (status, body) = within("the cut-off response", async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let response = client.get(proxy.url("/").parse().unwrap()).await.expect("the head arrives");
        let status = response.status();
        (status, response.into_body().collect().await.map(|b| b.to_bytes()))
    })
    .await;
    assert_eq!(status, 200, "the head was on its way before the stall");
    assert!(body.is_err(), "a 100-byte response ended after 10 bytes without an error: {body:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "cut off after {took:?}");
    // The gateway is unharmed: its own routes still answer. The cut-off is counted.
    assert_eq!(proxy.admin("/livez").await.status, 200);
    assert_eq!(proxy.metrics().await.get("sidestream_component_errors_total"), 1.0);
    proxy.stop().await;
    holder.abort();
}

#[tokio::test]
async fn a_slow_client_is_not_mistaken_for_a_stalled_upstream() {
    const BODY: usize = 32 << 20;
    // Sends a large body as fast as the proxy takes it.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream = listener.local_addr().expect("bound address");
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\n\r\n");
                let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes()).await;
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..BODY / chunk.len() {
                    if tokio::io::AsyncWriteExt::write_all(&mut stream, &chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let proxy = proxy_to(upstream, &["--upstream-timeout", "300ms"]).await;

    let body = within("the whole body", async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let response = client.get(proxy.url("/").parse().unwrap()).await.expect("the head arrives");
        // The client stops reading for longer than the upstream timeout: everything backs up to the
        // upstream, which is waiting on the gateway, not the other way round.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        response.into_body().collect().await.map(|b| b.to_bytes().len())
    })
    .await;
    assert_eq!(body.expect("the body arrives whole"), BODY);
    assert_eq!(proxy.metrics().await.get("sidestream_component_errors_total"), 0.0);
    proxy.stop().await;
    server.abort();
}
