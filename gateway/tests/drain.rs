//! The drain, what SIGTERM sets off, over real sockets: readiness turns 503 and upgrades are
//! refused at once; HTTP requests in flight finish and idle keep-alive connections close; every
//! WebSocket gets 1001, spread over `--drain-spread`; and one `--drain-timeout` bounds it all.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// The component built with `--features fault-injection` (`make fault-component`): `/fault/slow`.
fn fault_component() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/fault/wasm32-wasip2/release/sidestream_component.wasm");
    assert!(path.exists(), "{} is missing: run `make fault-component`", path.display());
    path
}

/// The time until `ws` receives its Close, and the code.
async fn time_to_close(mut ws: Ws, since: Instant) -> (Duration, u16) {
    loop {
        match within("close frame", ws.next()).await {
            Some(Ok(Message::Close(frame))) => {
                let at = since.elapsed();
                let code = frame.map_or(1005, |f| f.code.into());
                while let Some(Ok(_)) = within("end of stream after close", ws.next()).await {}
                return (at, code);
            }
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn drain_sends_1001_readyz_turns_503_and_run_returns() {
    let mut gw = TestGateway::start(&[
        "--push-min",
        "5ms",
        "--push-max",
        "20ms",
        "--drain-timeout",
        "5s",
        "--drain-spread",
        "0s",
    ])
    .await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(gw.ws("/ws").await);
    }
    // One client holds the drain open by not reading yet.
    let mut late = gw.ws("/ws?push=off").await;
    assert_eq!(gw.admin("/readyz").await.status, 200);

    gw.trigger_shutdown();
    for ws in &mut clients {
        assert_eq!(close_code(ws).await, 1001);
    }
    // While `late` has not answered, the gateway is draining but still answers probes.
    let readyz = gw.admin("/readyz").await;
    assert_eq!(readyz.status, 503, "{}", readyz.text());
    assert_eq!(gw.admin("/livez").await.status, 200);
    let answer = raw_exchange(gw.addr, UPGRADE.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "upgrades refused while draining: {answer}");
    assert!(!gw.task.is_finished());

    assert_eq!(close_code(&mut late).await, 1001);
    let started = Instant::now();
    within("run returns after the drain", &mut gw.task).await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn closes_are_spread_over_the_window_not_sent_at_once() {
    let mut gw = TestGateway::start(&["--no-push", "--drain-timeout", "10s", "--drain-spread", "2s"]).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(gw.ws("/ws").await);
    }
    let since = Instant::now();
    gw.trigger_shutdown();
    let closes = futures_util::future::join_all(clients.into_iter().map(|ws| time_to_close(ws, since))).await;
    let mut times: Vec<Duration> = closes
        .iter()
        .map(|(at, code)| {
            assert_eq!(*code, 1001);
            *at
        })
        .collect();
    times.sort();
    let (first, last) = (times[0], times[times.len() - 1]);
    // Evenly spaced: the first at once, the last one step before the end of the window.
    assert!(first < Duration::from_millis(500), "first close after {first:?}");
    assert!(last >= Duration::from_millis(1500), "all 20 closes within {last:?}: not spread");
    assert!(last < Duration::from_secs(4), "last close after {last:?}");
    // A loaded test machine may delay a few together; never most of them.
    let burst = times.windows(10).any(|w| w[9] - w[0] < Duration::from_millis(100));
    assert!(!burst, "half the closes within 100 ms: {times:?}");
    within("run returns", &mut gw.task).await.unwrap().unwrap();
}

#[tokio::test]
async fn drain_timeout_bounds_the_wait_for_clients_that_never_answer() {
    let mut gw = TestGateway::start(&["--no-push", "--drain-timeout", "300ms"]).await;
    let _deaf = gw.ws("/ws").await; // never reads, so never answers the Close
    gw.trigger_shutdown();
    let started = Instant::now();
    within("run returns", &mut gw.task).await.unwrap().unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "took {took:?}");
}

/// Sends `GET path` on `stream` and reads one response (head, and a `Content-Length` or chunked body).
async fn exchange(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    within("request", stream.write_all(request.as_bytes())).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = within("response", stream.read(&mut buf)).await.unwrap();
        assert!(n > 0, "closed before the response: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            if text[..end].contains("transfer-encoding: chunked") {
                if text.ends_with("\r\n0\r\n\r\n") {
                    return String::from_utf8_lossy(&out).into_owned();
                }
                continue;
            }
            let length = text[..end].lines().find_map(|l| l.strip_prefix("content-length:"));
            let length: usize = length.and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            if out.len() >= end + 4 + length {
                return String::from_utf8_lossy(&out).into_owned();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_requests_in_flight_finish_and_idle_connections_are_closed() {
    let component = fault_component();
    let mut gw = TestGateway::start(&[
        "--no-push",
        "--component",
        component.to_str().unwrap(),
        "--drain-timeout",
        "8s",
    ])
    .await;
    // A WebSocket that never answers its Close keeps the drain going for its whole budget.
    let _deaf = gw.ws("/ws").await;
    let mut idle = within("connect", TcpStream::connect(gw.addr)).await.unwrap();
    assert!(exchange(&mut idle, "/health").await.starts_with("HTTP/1.1 200"));
    let mut busy = within("connect", TcpStream::connect(gw.addr)).await.unwrap();
    let addr = gw.addr;
    let slow = tokio::spawn(async move { exchange(&mut busy, "/fault/slow?ms=2000").await });
    common::eventually("the slow request is in flight", async || {
        gw.metrics().await.get("sidestream_http_connections_active") >= 3.0
    })
    .await;

    let since = Instant::now();
    gw.trigger_shutdown();
    // The idle keep-alive connection is told at once: closed, not left to the end of the drain.
    let mut rest = Vec::new();
    within("idle connection closed", idle.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty());
    assert!(!slow.is_finished(), "the idle connection closed while the slow request still ran");
    // The request in flight gets its whole answer, with `Connection: close`, though it outlasts
    // the short grace HTTP connections used to get.
    let answer = within("slow request", slow).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("slept 2000 ms\n"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    assert!(since.elapsed() >= Duration::from_millis(1500));
    // New requests during the drain are still served (one per connection).
    let late = raw_exchange(addr, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    assert!(
        late.starts_with("HTTP/1.1 200") && late.to_ascii_lowercase().contains("connection: close"),
        "{late}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_budget_bounds_everything_still_running() {
    let component = fault_component();
    let mut gw = TestGateway::start(&[
        "--no-push",
        "--component",
        component.to_str().unwrap(),
        "--drain-timeout",
        "1s",
    ])
    .await;
    let addr = gw.addr;
    let slow = tokio::spawn(async move { request(addr, "GET", "/fault/slow?ms=6000", &[]).await });
    common::eventually("the slow request is in flight", async || {
        gw.metrics().await.get("sidestream_http_connections_active") >= 2.0
    })
    .await;
    let since = Instant::now();
    gw.trigger_shutdown();
    within("run returns at the end of the budget", &mut gw.task).await.unwrap().unwrap();
    let took = since.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(3), "took {took:?}");
    slow.abort();
}
