//! `/ws` over real sockets: echo, pushes, limits, bad input, backpressure, drain, metrics.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use tokio_tungstenite::tungstenite::{Bytes, Message};

const FAST_PUSHES: &[&str] = &["--push-min", "2ms", "--push-max", "10ms"];

#[tokio::test]
async fn echoes_text_and_binary_exactly_and_in_order_while_pushes_interleave() {
    let gw = TestGateway::start(FAST_PUSHES).await;
    let mut ws = gw.ws("/ws").await;
    let sent: Vec<Message> = (0..300usize)
        .map(|i| match i % 3 {
            0 => Message::text(format!("text {i} {}", "é".repeat(i % 40))),
            1 => Message::binary((0..i * 7).map(|b| (b % 251) as u8).collect::<Vec<u8>>()),
            _ => Message::binary(Vec::<u8>::new()),
        })
        .collect();
    let mut pushes = Vec::new();
    // Repeat the conversation until pushes have interleaved with it (a fast run can finish one
    // pass before the first push is due).
    for _round in 0..200 {
        for chunk in sent.chunks(30) {
            for m in chunk {
                send(&mut ws, m.clone()).await;
            }
            for m in chunk {
                let echo = next_echo(&mut ws, &mut pushes).await;
                assert_eq!(&echo, m, "echo differs or is out of order");
            }
        }
        if pushes.len() >= 3 {
            break;
        }
    }
    assert!(pushes.len() >= 3, "pushes interleaved with the echoes");
    gw.stop().await;
}

#[tokio::test]
async fn pushes_keep_to_the_bounds_and_the_documented_shape() {
    let (min, max) = (Duration::from_millis(40), Duration::from_millis(120));
    let gw = TestGateway::start(&["--push-min", "40ms", "--push-max", "120ms", "--seed", "7"]).await;
    let mut ws = gw.ws("/ws").await;
    let mut previous: Option<(u64, std::time::SystemTime)> = None;
    for expected_seq in 1..=12u64 {
        let Message::Text(text) = next_data(&mut ws).await else { panic!("pushes are Text frames") };
        let v: serde_json::Value = serde_json::from_str(&text).expect("push is JSON");
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["seq", "ts", "type", "value"]);
        assert_eq!(v["type"], "push");
        assert_eq!(v["seq"].as_u64(), Some(expected_seq), "seq counts from 1 without gaps");
        let value = v["value"].as_f64().unwrap();
        assert!((0.0..1.0).contains(&value), "{value}");
        let ts = v["ts"].as_str().unwrap();
        assert_eq!(ts.len(), 24, "RFC 3339 UTC with milliseconds: {ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
        let ts = humantime::parse_rfc3339(ts).expect("valid RFC 3339");
        if let Some((_, before)) = previous {
            let gap = ts.duration_since(before).expect("timestamps increase");
            // Server timestamps are milliseconds: allow one of rounding below, scheduling slack above.
            assert!(gap + Duration::from_millis(1) >= min, "pushes {gap:?} apart, below --push-min");
            assert!(gap <= max + Duration::from_millis(400), "pushes {gap:?} apart, far above --push-max");
        }
        previous = Some((expected_seq, ts));
    }
    gw.stop().await;
}

/// Reads `ws` until it has seen `n` pushes (echoes and pings skipped).
async fn pushes_seen(ws: &mut Ws, n: usize) {
    let mut seen = 0;
    while seen < n {
        if let Message::Text(text) = next_data(ws).await
            && text.contains(r#""type":"push""#)
        {
            seen += 1;
        }
    }
}

/// Asserts that `ws` has had no push while `clock`, a connection with pushes on and the same
/// schedule, received five: the time in which `ws` would have had some too.
async fn assert_no_pushes(ws: &mut Ws, clock: &mut Ws) {
    pushes_seen(clock, 5).await;
    send(ws, Message::text("probe")).await;
    let mut pushes = Vec::new();
    assert_eq!(next_echo(ws, &mut pushes).await, Message::text("probe"));
    assert!(pushes.is_empty(), "no pushes expected, got {}", pushes.len());
}

#[tokio::test]
async fn push_off_query_and_no_push_flag_give_pure_echo() {
    let gw = TestGateway::start(FAST_PUSHES).await;
    let mut ws = gw.ws("/ws?push=off").await;
    let mut with = gw.ws("/ws?x=1&push=on").await;
    assert_no_pushes(&mut ws, &mut with).await;
    gw.stop().await;

    // With --no-push nothing on the gateway pushes: another gateway keeps the time.
    let clock_gw = TestGateway::start(FAST_PUSHES).await;
    let mut args = FAST_PUSHES.to_vec();
    args.push("--no-push");
    let gw = TestGateway::start(&args).await;
    let mut ws = gw.ws("/ws").await;
    assert_no_pushes(&mut ws, &mut clock_gw.ws("/ws").await).await;
    assert_eq!(gw.metrics().await.get("sidestream_ws_pushes_sent_total"), 0.0);
    gw.stop().await;
    clock_gw.stop().await;
}

#[tokio::test]
async fn oversized_message_closes_1009() {
    let gw = TestGateway::start(&["--no-push", "--max-message-size", "1024"]).await;
    let mut ws = gw.ws("/ws").await;
    send(&mut ws, Message::binary(vec![1u8; 1024])).await;
    assert_eq!(next_data(&mut ws).await, Message::binary(vec![1u8; 1024]), "the limit itself is fine");
    send(&mut ws, Message::binary(vec![1u8; 1025])).await;
    assert_eq!(close_code(&mut ws).await, 1009);
    eventually("close counted", async || {
        gw.metrics().await.get(r#"sidestream_ws_closes_total{by="server",code="1009"}"#) == 1.0
    })
    .await;
    gw.stop().await;
}

/// A frame a well-behaved client library would refuse to build.
fn raw_frame(opcode: OpCode, payload: &'static [u8], rsv1: bool) -> Message {
    let mut frame = Frame::message(Bytes::from_static(payload), opcode, true);
    let header: &mut FrameHeader = frame.header_mut();
    header.rsv1 = rsv1;
    Message::Frame(frame)
}

#[tokio::test]
async fn invalid_utf8_closes_1007_and_protocol_violations_close_1002() {
    let gw = TestGateway::start(&["--no-push"]).await;
    let mut ws = gw.ws("/ws").await;
    send(&mut ws, raw_frame(OpCode::Data(Data::Text), b"ok \xff\xfe", false)).await;
    assert_eq!(close_code(&mut ws).await, 1007);

    for frame in [
        raw_frame(OpCode::Data(Data::Binary), b"x", true), // RSV1 without an extension
        raw_frame(OpCode::Data(Data::Reserved(3)), b"x", false),
        raw_frame(OpCode::Data(Data::Continue), b"x", false), // continuation without a start
    ] {
        let mut ws = gw.ws("/ws").await;
        send(&mut ws, frame).await;
        assert_eq!(close_code(&mut ws).await, 1002);
    }
    // The bad clients cost nobody else anything.
    let mut good = gw.ws("/ws").await;
    send(&mut good, Message::text("still here")).await;
    assert_eq!(next_data(&mut good).await, Message::text("still here"));
    let m = gw.metrics().await;
    assert_eq!(m.get(r#"sidestream_ws_closes_total{by="server",code="1007"}"#), 1.0);
    assert_eq!(m.get(r#"sidestream_ws_closes_total{by="server",code="1002"}"#), 3.0);
    gw.stop().await;
}

fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn handshake_errors_get_400_or_426_with_a_reason() {
    let gw = TestGateway::start(&["--no-push"]).await;
    let cases: [(String, &str, &str); 6] = [
        (upgrade_request("").replace("GET", "POST"), "400", "GET"),
        (upgrade_request("").replace("Upgrade: websocket\r\n", ""), "426", "Upgrade"),
        (upgrade_request("").replace("Connection: Upgrade", "Connection: keep-alive"), "400", "Connection"),
        (upgrade_request("").replace("Version: 13", "Version: 8"), "426", "13"),
        (upgrade_request("").replace("dGhlIHNhbXBsZSBub25jZQ==", "short"), "400", "Key"),
        (upgrade_request("").replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), "400", "Key"),
    ];
    for (request, status, reason) in &cases {
        let answer = raw_exchange(gw.addr, request.as_bytes()).await;
        let status_line = answer.lines().next().unwrap_or_default();
        assert!(status_line.starts_with(&format!("HTTP/1.1 {status}")), "{request:?} -> {answer}");
        assert!(answer.contains(reason), "{answer}");
    }
    let answer =
        raw_exchange(gw.addr, upgrade_request("").replace("Version: 13", "Version: 8").as_bytes()).await;
    assert!(answer.to_ascii_lowercase().contains("sec-websocket-version: 13"), "{answer}");
    let m = gw.metrics().await;
    for (reason, n) in
        [("method", 1.0), ("upgrade", 1.0), ("connection", 1.0), ("version", 2.0), ("key", 2.0)]
    {
        assert_eq!(
            m.get(&format!(r#"sidestream_ws_handshake_rejections_total{{reason="{reason}"}}"#)),
            n,
            "{reason}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn cross_origin_upgrades_get_403_unless_allowed() {
    let gw = TestGateway::start(&["--no-push", "--allowed-origin", "https://app.example.com"]).await;
    let host = format!("Host: {}\r\n", gw.addr);
    let with = |origin: &str| {
        upgrade_request(&format!("Origin: {origin}\r\n")).replace("Host: 127.0.0.1\r\n", &host)
    };
    let answer = raw_exchange(gw.addr, with("https://evil.example").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    // Same host and port, other scheme: another origin (an https page is not this http site).
    let answer = raw_exchange(gw.addr, with(&format!("https://{}", gw.addr)).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "scheme compared: {answer}");
    for origin in [format!("http://{}", gw.addr), "https://app.example.com".to_owned()] {
        let answer = raw_exchange_head(gw.addr, with(&origin).as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 101"), "{origin}: {answer}");
    }
    let answer = raw_exchange_head(gw.addr, upgrade_request("").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "no Origin: a non-browser client: {answer}");
    let m = gw.metrics().await;
    assert_eq!(m.get(r#"sidestream_ws_handshake_rejections_total{reason="origin"}"#), 2.0);
    gw.stop().await;
}

/// Reads only the response head (an accepted upgrade never ends by itself).
async fn raw_exchange_head(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = within("response head", stream.read(&mut buf)).await.unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503_with_retry_after() {
    let gw = TestGateway::start(&["--no-push", "--max-connections", "2"]).await;
    let a = gw.ws("/ws").await;
    let _b = gw.ws("/ws").await;
    let answer = raw_exchange(gw.addr, upgrade_request("").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after:"), "{answer}");
    // A slot frees when a connection ends.
    drop(a);
    eventually("slot released", async || gw.metrics().await.get("sidestream_ws_connections_active") == 1.0)
        .await;
    let mut c = gw.ws("/ws").await;
    send(&mut c, Message::text("in")).await;
    assert_eq!(next_data(&mut c).await, Message::text("in"));
    assert_eq!(gw.metrics().await.get(r#"sidestream_ws_handshake_rejections_total{reason="capacity"}"#), 1.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_bounded_and_hurts_nobody() {
    let gw = TestGateway::start(&["--push-min", "1ms", "--push-max", "2ms"]).await;
    // A small receive buffer so the kernel does not soak up megabytes first.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(gw.addr).await.unwrap();
    let (stuck, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", gw.addr), stream).await.unwrap();
    // It sends and never reads; its sends block once the server stops reading from it.
    let (mut sink, stuck_reader) = stuck.split();
    let sender = tokio::spawn(async move {
        let chunk = Message::binary(vec![7u8; 16 * 1024]);
        for _ in 0..10_000 {
            sink.send(chunk.clone()).await?;
        }
        Ok::<_, tokio_tungstenite::tungstenite::Error>(())
    });
    eventually("the server queues for the stuck client", async || {
        gw.metrics().await.get("sidestream_ws_outbox_bytes") >= 32.0 * 1024.0
    })
    .await;
    let received = gw.metrics().await.get("sidestream_ws_messages_received_total");

    // Meanwhile another client is served as usual.
    let mut good = gw.ws("/ws").await;
    for i in 0..50 {
        send(&mut good, Message::text(format!("m{i}"))).await;
        let mut pushes = Vec::new();
        assert_eq!(next_echo(&mut good, &mut pushes).await, Message::text(format!("m{i}")));
    }
    eventually("pushes dropped for the stuck client", async || {
        gw.metrics().await.get("sidestream_ws_pushes_dropped_total") > 0.0
    })
    .await;
    let m = gw.metrics().await;
    // The server stopped reading from the stuck client: only `good`'s 50 messages came in since.
    assert_eq!(m.get("sidestream_ws_messages_received_total"), received + 50.0, "backpressure");
    assert!(!sender.is_finished(), "the stuck client's sends block");
    let queued = m.get("sidestream_ws_outbox_bytes");
    let max_message = 64.0 * 1024.0;
    assert!(queued <= 32.0 * 1024.0 + max_message, "server holds {queued} bytes for slow readers");
    assert_eq!(m.get("sidestream_ws_connections_active"), 2.0);
    sender.abort();
    drop(stuck_reader);
    eventually("stuck client released", async || {
        gw.metrics().await.get("sidestream_ws_connections_active") == 1.0
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn keepalive_pings_and_idle_timeout() {
    let gw = TestGateway::start(&["--no-push", "--ping-interval", "50ms", "--idle-timeout", "10s"]).await;
    let mut ws = gw.ws("/ws").await;
    let first = within("ping", ws.next()).await.unwrap().unwrap();
    assert!(matches!(first, Message::Ping(_)), "{first:?}");
    gw.stop().await;

    let gw = TestGateway::start(&["--no-push", "--ping-interval", "1h", "--idle-timeout", "200ms"]).await;
    let mut silent = gw.ws("/ws").await;
    let opened = std::time::Instant::now();
    let silent = tokio::spawn(async move {
        let code = close_code(&mut silent).await;
        (code, opened.elapsed())
    });
    // A client that keeps talking for as long as the silent one lives is never timed out.
    let mut chatty = gw.ws("/ws").await;
    let mut n = 0;
    while !silent.is_finished() {
        send(&mut chatty, Message::text(format!("hi {n}"))).await;
        assert_eq!(next_data(&mut chatty).await, Message::text(format!("hi {n}")));
        n += 1;
    }
    let (code, after) = silent.await.unwrap();
    assert_eq!(code, 1000);
    // Not early, and not much later than the timeout.
    assert!(after >= Duration::from_millis(200) && after < Duration::from_secs(2), "closed after {after:?}");
    send(&mut chatty, Message::text("still open")).await;
    assert_eq!(next_data(&mut chatty).await, Message::text("still open"));
    assert_eq!(gw.metrics().await.get("sidestream_ws_idle_timeouts_total"), 1.0);
    gw.stop().await;
}

#[tokio::test]
async fn metrics_match_what_the_clients_did() {
    let gw = TestGateway::start(&["--no-push"]).await;
    let before = gw.metrics().await;
    let mut total_bytes = 0usize;
    for n in 0..3 {
        let mut ws = gw.ws("/ws").await;
        for i in 0..(10 + n) {
            let text = format!("message {i}");
            total_bytes += text.len();
            send(&mut ws, Message::text(text.clone())).await;
            assert_eq!(next_data(&mut ws).await, Message::text(text));
        }
        within("close", ws.close(None)).await.unwrap();
        while within("drain", ws.next()).await.is_some() {}
    }
    for _ in 0..4 {
        assert_eq!(gw.admin("/livez").await.status, 200);
    }
    assert_eq!(gw.get("/nope").await.status, 404);
    let m = gw.metrics().await;
    let delta = |k: &str| m.get(k) - before.get(k);
    assert_eq!(delta("sidestream_ws_connections_total"), 3.0);
    eventually("connections closed", async || {
        gw.metrics().await.get("sidestream_ws_connections_active") == 0.0
    })
    .await;
    let m = gw.metrics().await;
    let delta = |k: &str| m.get(k) - before.get(k);
    assert_eq!(delta("sidestream_ws_messages_received_total"), 33.0);
    assert_eq!(delta("sidestream_ws_messages_echoed_total"), 33.0);
    assert_eq!(delta("sidestream_ws_received_bytes_total"), total_bytes as f64);
    assert_eq!(delta("sidestream_ws_sent_bytes_total"), total_bytes as f64);
    assert_eq!(delta("sidestream_ws_pushes_sent_total"), 0.0);
    assert_eq!(m.get(r#"sidestream_ws_closes_total{by="client",code="1005"}"#), 3.0);
    assert_eq!(m.get(r#"sidestream_http_requests_total{route="/livez",status="200"}"#), 4.0);
    assert_eq!(m.get(r#"sidestream_http_requests_total{route="component",status="404"}"#), 1.0);
    assert_eq!(m.get(r#"sidestream_http_requests_total{route="/ws",status="101"}"#), 3.0);
    gw.stop().await;
}

#[tokio::test]
async fn probes_and_metrics_live_on_the_admin_listener_only() {
    let gw = TestGateway::start(&["--no-push"]).await;
    for path in ["/livez", "/readyz", "/metrics"] {
        assert_eq!(gw.admin(path).await.status, 200, "admin {path}");
        // On the public listener these are the component's paths, like any other.
        let public = gw.get(path).await;
        assert_eq!(public.status, 404, "public {path}: {}", public.text());
        assert!(!public.text().contains("sidestream_"), "no metrics on the public port");
    }
    assert_eq!(gw.admin("/").await.status, 404, "the admin port serves no page");
    assert_eq!(gw.admin("/ws").await.status, 404, "nor WebSockets");
    let post = request(gw.admin, "POST", "/livez", &[]).await;
    assert_eq!((post.status, post.header("allow")), (405, Some("GET, HEAD")));
    let m = gw.metrics().await;
    assert_eq!(m.get(r#"sidestream_http_requests_total{route="component",status="404"}"#), 3.0);
    assert_eq!(m.get(r#"sidestream_http_requests_total{route="admin_other",status="404"}"#), 2.0);
    gw.stop().await;
}

#[tokio::test]
async fn close_codes_a_client_chooses_are_counted_in_a_few_buckets() {
    let gw = TestGateway::start(&["--no-push"]).await;
    for code in [1000u16, 3001, 3999, 4000, 4321, 4999] {
        let mut ws = gw.ws("/ws").await;
        let frame = CloseFrame { code: CloseCode::from(code), reason: "bye".into() };
        within("close", ws.close(Some(frame))).await.unwrap();
        while within("close handshake", ws.next()).await.is_some() {}
    }
    let wanted = [("1000", 1.0), ("3xxx", 2.0), ("4xxx", 3.0)];
    eventually("every close counted", async || {
        let m = gw.metrics().await;
        wanted.iter().all(|(code, n)| {
            m.get(&format!(r#"sidestream_ws_closes_total{{by="client",code="{code}"}}"#)) == *n
        })
    })
    .await;
    let series =
        gw.metrics().await.0.into_keys().filter(|k| k.starts_with("sidestream_ws_closes_total")).count();
    assert_eq!(series, 3, "six distinct codes, three series");
    gw.stop().await;
}
