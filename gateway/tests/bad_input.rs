//! What real networks and hostile clients send, over raw TCP where a WebSocket client library would
//! refuse to misbehave. After each case the gateway still answers `/livez`, a bystander keeps its
//! echoes, `/metrics` counts the rejection, and the connection gauges return to their baseline.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const UPGRADE: &str = "GET /ws?push=off HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A gateway plus a bystander WebSocket that must never notice the abuse.
struct Scene {
    gw: TestGateway,
    bystander: Ws,
    round: u32,
}

impl Scene {
    async fn new(extra: &[&str]) -> Self {
        let mut args = vec!["--no-push", "--header-read-timeout", "500ms"];
        args.extend_from_slice(extra);
        let gw = TestGateway::start(&args).await;
        let bystander = gw.ws("/ws").await;
        Scene { gw, bystander, round: 0 }
    }

    /// The gateway is alive, the bystander unharmed, `metric` reached `at_least`, and only the
    /// bystander's connection remains.
    async fn check(&mut self, metric: &str, at_least: f64) {
        assert_eq!(self.gw.admin("/livez").await.status, 200);
        self.round += 1;
        let text = format!("bystander {}", self.round);
        send(&mut self.bystander, Message::text(text.clone())).await;
        assert_eq!(next_data(&mut self.bystander).await, Message::text(text));
        let gw = &self.gw;
        eventually(&format!("{metric} >= {at_least}"), async || gw.metrics().await.get(metric) >= at_least)
            .await;
        eventually("connections back to baseline", async || {
            let m = gw.metrics().await;
            // The /metrics request itself is the one HTTP connection.
            m.get("sidestream_ws_connections_active") == 1.0
                && m.get("sidestream_http_connections_active") == 1.0
        })
        .await;
    }
}

async fn connect(gw: &TestGateway) -> TcpStream {
    within("connect", TcpStream::connect(gw.addr)).await.unwrap()
}

/// Drops the connection with a TCP reset instead of an orderly FIN.
fn reset(stream: TcpStream) {
    let std = stream.into_std().unwrap();
    socket2::SockRef::from(&std).set_linger(Some(Duration::ZERO)).unwrap();
    drop(std);
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = within("server closes", stream.read_to_end(&mut out)).await;
    out
}

/// Opens a WebSocket by hand and returns the raw stream after the 101.
async fn raw_ws(gw: &TestGateway) -> TcpStream {
    let mut stream = connect(gw).await;
    stream.write_all(UPGRADE.as_bytes()).await.unwrap();
    expect_101(&mut stream).await;
    stream
}

/// Reads the response head byte by byte (nothing past it) and checks it is the 101.
async fn expect_101(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        within("101", stream.read_exact(&mut byte)).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
}

/// A client frame: `first` is FIN/RSV/opcode; masked unless `mask` is false.
fn frame(first: u8, payload: &[u8], mask: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if mask { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    let key = [0x12, 0x34, 0x56, 0x78];
    if mask {
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// The close code in the first frame the server sent, if it was a Close.
fn close_code_of(bytes: &[u8]) -> Option<u16> {
    (bytes.len() >= 4 && bytes[0] == 0x88).then(|| u16::from_be_bytes([bytes[2], bytes[3]]))
}

#[tokio::test]
async fn malformed_http_gets_400_and_is_counted() {
    let mut scene = Scene::new(&[]).await;
    let mut n = 0.0;
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls hello to a plain port\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    ] {
        let mut stream = connect(&scene.gw).await;
        stream.write_all(garbage).await.unwrap();
        let answer = String::from_utf8_lossy(&read_to_close(&mut stream).await).into_owned();
        assert!(answer.starts_with("HTTP/1.1 400"), "{:?} -> {answer:?}", String::from_utf8_lossy(garbage));
        n += 1.0;
        scene.check(r#"sidestream_http_connection_errors_total{kind="malformed"}"#, n).await;
    }
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let mut scene = Scene::new(&[]).await;
    for path in ["/ws", "/", "/livez"] {
        let mut stream = connect(&scene.gw).await;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024));
        let _ = stream.write_all(request.as_bytes()).await;
        let answer = String::from_utf8_lossy(&read_to_close(&mut stream).await).into_owned();
        assert!(answer.starts_with("HTTP/1.1 431"), "{path}: {answer:?}");
    }
    scene.check(r#"sidestream_http_connection_errors_total{kind="too_large"}"#, 3.0).await;
}

#[tokio::test]
async fn a_client_dribbling_headers_forever_is_cut_off() {
    let mut scene = Scene::new(&[]).await;
    let mut stream = connect(&scene.gw).await;
    let started = std::time::Instant::now();
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let mut closed = false;
    for byte in request.iter().chain(std::iter::repeat(&b'a')).take(10_000) {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
            // A 408 or a plain close: either way the server gave up on us.
            closed = n == 0 || buf.starts_with(b"HTTP/1.1 408");
            if closed {
                break;
            }
        }
        assert!(started.elapsed() < STEP, "the server never cut the slow client off");
    }
    assert!(closed);
    assert!(started.elapsed() < Duration::from_secs(5), "cut off after {:?}", started.elapsed());
    scene.check(r#"sidestream_http_connection_errors_total{kind="timeout"}"#, 1.0).await;
}

#[tokio::test]
async fn frames_a_client_library_would_never_send_close_1002() {
    let mut scene = Scene::new(&["--max-message-size", "4096"]).await;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked frame", frame(0x81, b"hello", false), 1002),
        ("reserved opcode 0x3", frame(0x83, b"x", true), 1002),
        ("reserved control opcode 0xB", frame(0x8B, b"x", true), 1002),
        ("RSV1 set", frame(0xC1, b"x", true), 1002),
        ("RSV2 and RSV3 set", frame(0xB1, b"x", true), 1002),
        ("fragmented ping", frame(0x09, b"x", true), 1002),
        ("ping over 125 bytes", frame(0x89, &[0u8; 126], true), 1002),
        ("continuation without a start", frame(0x80, b"x", true), 1002),
        (
            "new message inside a fragmented one",
            [frame(0x01, b"a", true), frame(0x81, b"b", true)].concat(),
            1002,
        ),
        ("close with a 1-byte payload", frame(0x88, &[0x03], true), 1002),
        (
            "invalid UTF-8 across fragments",
            [frame(0x01, b"\xce", true), frame(0x80, b"\x28", true)].concat(),
            1007,
        ),
        ("frame over the message limit", frame(0x82, &[0u8; 5000], true), 1009),
    ];
    let mut expected = std::collections::HashMap::<u16, f64>::new();
    for (name, bytes, code) in cases {
        let mut stream = raw_ws(&scene.gw).await;
        stream.write_all(&bytes).await.unwrap();
        let answer = read_to_close(&mut stream).await;
        assert_eq!(close_code_of(&answer), Some(code), "{name}: {answer:?}");
        *expected.entry(code).or_default() += 1.0;
        let metric = format!(r#"sidestream_ws_closes_total{{by="server",code="{code}"}}"#);
        scene.check(&metric, expected[&code]).await;
    }
    // A Close with a code no endpoint may send is answered with 1002 (tungstenite replies itself;
    // the metric records the client's close as the 1002 it was turned into).
    let mut stream = raw_ws(&scene.gw).await;
    stream.write_all(&frame(0x88, &999u16.to_be_bytes(), true)).await.unwrap();
    assert_eq!(close_code_of(&read_to_close(&mut stream).await), Some(1002));
    scene.check(r#"sidestream_ws_closes_total{by="client",code="1002"}"#, 1.0).await;
}

#[tokio::test]
async fn frames_sent_in_the_same_packet_as_the_handshake_are_echoed() {
    let mut scene = Scene::new(&[]).await;
    let mut stream = connect(&scene.gw).await;
    // One write: hyper reads the frames along with the request head and must hand them over.
    let mut bytes = UPGRADE.as_bytes().to_vec();
    bytes.extend(frame(0x81, b"right behind the handshake", true));
    bytes.extend(frame(0x82, &[1, 2, 3], true));
    stream.write_all(&bytes).await.unwrap();
    expect_101(&mut stream).await;
    let expected =
        [frame(0x81, b"right behind the handshake", false), frame(0x82, &[1, 2, 3], false)].concat();
    let mut echoed = vec![0u8; expected.len()];
    within("echoes", stream.read_exact(&mut echoed)).await.unwrap();
    assert_eq!(echoed, expected);
    drop(stream);
    scene.check("sidestream_ws_messages_echoed_total", 3.0).await;
}

#[tokio::test]
async fn truncated_frames_then_reset_cost_nothing() {
    let mut scene = Scene::new(&[]).await;
    for cut in [1usize, 2, 5, 20] {
        let mut stream = raw_ws(&scene.gw).await;
        let whole = frame(0x82, &[9u8; 100], true);
        stream.write_all(&whole[..cut]).await.unwrap();
        reset(stream); // close with RST, not FIN
    }
    // A reset in the middle of an HTTP request body to the component, too.
    let mut stream = connect(&scene.gw).await;
    stream.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial").await.unwrap();
    reset(stream);
    scene.check(r#"sidestream_ws_closes_total{by="client",code="none"}"#, 4.0).await;
}

#[tokio::test]
async fn thousands_of_connect_disconnect_cycles() {
    let mut scene = Scene::new(&[]).await;
    for i in 0..2000 {
        let mut stream = connect(&scene.gw).await;
        if i % 2 == 0 {
            reset(stream);
        } else {
            let _ = stream.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n").await; // half a request
        }
    }
    for _ in 0..500 {
        let ws = raw_ws(&scene.gw).await;
        drop(ws);
    }
    scene.check("sidestream_ws_connections_total", 501.0).await;
    let m = scene.gw.metrics().await;
    assert_eq!(m.get(r#"sidestream_ws_closes_total{by="client",code="none"}"#), 500.0);
}

#[tokio::test]
async fn requests_without_a_host_or_with_a_foreign_one_never_reach_the_component() {
    let mut scene = Scene::new(&["--allowed-host", "dev.example"]).await;
    let addr = scene.gw.addr;
    // RFC 9112 §3.2: HTTP/1.1 needs a Host; the answer is the gateway's, not a component failure.
    let answer = raw_exchange(addr, b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("Host"), "{answer}");
    let twice = raw_exchange(addr, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    assert!(twice.starts_with("HTTP/1.1 400"), "{twice}");
    // HTTP/1.0 may omit it: the request names the listener, and the page is served.
    let answer = raw_exchange(addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(answer.contains(" 200 ") && answer.contains("<!doctype html>"), "{answer}");
    // A loopback listener answers loopback names (and --allowed-host) only: a rebound domain
    // gets neither the page nor a WebSocket.
    for host in ["evil.example", &format!("evil.example:{}", addr.port()), "10.0.0.1"] {
        let page = raw_exchange(addr, format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).await;
        assert!(page.starts_with("HTTP/1.1 403") && page.contains("--allowed-host"), "{host}: {page}");
        let upgrade = UPGRADE.replace("Host: 127.0.0.1", &format!("Host: {host}"));
        let answer = raw_exchange(addr, upgrade.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{host}: {answer}");
    }
    for host in ["localhost", "app.localhost", "[::1]", "dev.example"] {
        let page =
            raw_exchange(addr, format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).await;
        assert!(page.starts_with("HTTP/1.1 200"), "{host}: {page}");
    }
    let admin = raw_exchange(scene.gw.admin, b"GET /metrics HTTP/1.1\r\nHost: evil.example\r\n\r\n").await;
    assert!(admin.starts_with("HTTP/1.1 403"), "the admin listener on loopback too: {admin}");

    let m = scene.gw.metrics().await;
    assert_eq!(m.get("sidestream_component_errors_total"), 0.0, "the component never saw them");
    assert_eq!(m.get(r#"sidestream_http_requests_total{route="refused",status="400"}"#), 2.0);
    scene.check(r#"sidestream_http_requests_total{route="refused",status="403"}"#, 7.0).await;
}

#[tokio::test]
async fn a_close_that_arrives_while_echoes_are_queued_completes_the_handshake() {
    let mut scene = Scene::new(&[]).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = within("connect", socket.connect(scene.gw.addr)).await.unwrap();
    stream.write_all(UPGRADE.as_bytes()).await.unwrap();
    expect_101(&mut stream).await;
    let (mut rx, mut tx) = stream.into_split();

    // Send without reading, two messages at a time, each pair once the server has read the one
    // before, until echoes start to queue in its outbox (behind megabytes of them in the kernel's
    // buffers). The outbox still has room, so the server reads on, and the Close that follows
    // reaches it with those echoes queued.
    const BATCH: u32 = 2;
    let message = |i: u32| format!("{i:08}").repeat(512);
    let gw = &scene.gw;
    let mut written = 0u32;
    loop {
        for i in written..written + BATCH {
            within("write", tx.write_all(&frame(0x81, message(i).as_bytes(), true))).await.unwrap();
        }
        written += BATCH;
        let mut stopped = false;
        eventually("the server reads the batch", async || {
            let m = gw.metrics().await;
            let read = m.get("sidestream_ws_messages_received_total") >= f64::from(written);
            stopped = read && m.get("sidestream_ws_outbox_bytes") > 0.0;
            read
        })
        .await;
        if stopped {
            break;
        }
        assert!(written < 100_000, "the server never stopped reading from a client that never reads");
    }
    within("write", tx.write_all(&frame(0x88, &1000u16.to_be_bytes(), true))).await.unwrap();

    // Read everything: echoes (in order, each whole), then the server's reply Close, then the end.
    let mut bytes = Vec::new();
    within("the server ends the connection", rx.read_to_end(&mut bytes)).await.unwrap();
    let mut at = 0;
    let mut echoes = 0u32;
    let mut reply = None;
    while at + 4 <= bytes.len() {
        let (opcode, len, header) = match bytes[at + 1] {
            126 => (bytes[at] & 0x0f, u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize, 4),
            n => (bytes[at] & 0x0f, n as usize, 2),
        };
        let payload = &bytes[at + header..at + header + len];
        match opcode {
            0x1 => {
                assert_eq!(payload, message(echoes).as_bytes(), "echo {echoes}");
                echoes += 1;
            }
            0x8 => reply = Some(u16::from_be_bytes([payload[0], payload[1]])),
            other => panic!("unexpected opcode {other}"),
        }
        at += header + len;
    }
    assert_eq!(reply, Some(1000), "the closing handshake completes ({echoes} echoes before it)");
    assert!(echoes < written, "echoes still queued at the Close are dropped, not sent after it");
    scene.check(r#"sidestream_ws_closes_total{by="client",code="1000"}"#, 1.0).await;
}
