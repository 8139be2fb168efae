//! WebSocket apps in the component, over real sockets with a real client: the gateway turns each
//! connection's events into WebSocket-over-HTTP requests, to the real component in-process, to an
//! upstream (a second gateway with the component, or a recording app this file runs), and to the
//! fault-injection component for what goes wrong.
//!
//! `cargo test -p sidestream-gateway --test apps`, after `make component fault-component`.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::recorder::{AppRecorder, Script, Seen};
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

async fn fault_gateway(args: &[&str]) -> TestGateway {
    let component = fault_component();
    let mut all = vec!["--no-push", "--component", component.to_str().unwrap()];
    all.extend_from_slice(args);
    TestGateway::start(&all).await
}

/// The `{"type":"echo","n":N,"text":...}` of the component's `/echo`.
fn echo_of(n: u64, text: &str) -> Message {
    Message::text(format!(r#"{{"type":"echo","n":{n},"text":{}}}"#, serde_json::to_string(text).unwrap()))
}

/// Opens a WebSocket with `extra` headers; the handshake's response is returned whatever it is.
async fn handshake(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Result<Ws, (u16, String)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (name, value) in extra {
        request
            .headers_mut()
            .insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    match within("handshake", tokio_tungstenite::connect_async(request)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body =
                response.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            Err((response.status().as_u16(), body))
        }
        Err(other) => panic!("handshake failed: {other}"),
    }
}

/// Drops a client's connection with a TCP reset, no closing handshake.
fn reset(ws: Ws) {
    let tokio_tungstenite::MaybeTlsStream::Plain(stream) = ws.into_inner() else { panic!("plain TCP") };
    let std = stream.into_std().unwrap();
    socket2::SockRef::from(&std).set_linger(Some(Duration::ZERO)).unwrap();
    drop(std);
}

/// A metric, polled until it reaches `want`.
async fn metric_reaches(gw: &TestGateway, name: &str, want: f64) {
    eventually(&format!("{name} reaches {want}"), async || gw.metrics().await.get(name) >= want).await;
}

/// A bystander on `/echo` that must keep its echoes whatever happens to other connections.
struct Bystander {
    ws: Ws,
    n: u64,
}

impl Bystander {
    async fn new(gw: &TestGateway) -> Self {
        let mut bystander = Bystander { ws: gw.ws("/echo").await, n: 0 };
        bystander.check().await;
        bystander
    }

    async fn check(&mut self) {
        self.n += 1;
        let text = format!("still here {}", self.n);
        send(&mut self.ws, Message::text(text.clone())).await;
        // Its count and text: the fault build also marks its echoes with the build.
        let echo = next_data(&mut self.ws).await;
        let echo: serde_json::Value = serde_json::from_str(echo.to_text().unwrap()).expect("JSON");
        assert_eq!((&echo["n"], &echo["text"]), (&self.n.into(), &text.into()), "{echo}");
    }
}

#[tokio::test]
async fn the_echo_app_counts_in_meta_and_answers_a_close_with_the_same_close() {
    let gw = TestGateway::start(&["--no-push"]).await;
    let mut ws = gw.ws("/echo").await;
    for (n, text) in [(1, "hi"), (2, "again"), (3, "\"quoted\"")] {
        send(&mut ws, Message::text(text)).await;
        assert_eq!(next_data(&mut ws).await, echo_of(n, text));
    }
    // The count lives in the connection's meta: a second connection starts from 1.
    let mut other = gw.ws("/echo").await;
    send(&mut other, Message::text("x")).await;
    assert_eq!(next_data(&mut other).await, echo_of(1, "x"));
    within("close", ws.close(Some(CloseFrame { code: 4000.into(), reason: "done".into() }))).await.unwrap();
    match within("close reply", ws.next()).await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 4000),
        other => panic!("expected the close back: {other:?}"),
    }
    metric_reaches(&gw, r#"sidestream_app_last_events_total{event="close",result="delivered"}"#, 1.0).await;
    let m = gw.metrics().await;
    assert_eq!(m.get(r#"sidestream_http_requests_total{route="websocket_app",status="101"}"#), 2.0);
    assert_eq!(m.get(r#"sidestream_app_requests_total{kind="open",result="ok"}"#), 2.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_handshake_the_app_refuses_or_no_app_serves_gets_the_components_answer() {
    let gw = fault_gateway(&[]).await;
    assert_eq!(
        handshake(gw.addr, "/fault/ws?refuse=403", &[]).await.err(),
        Some((403, "refused by the app\n".into()))
    );
    let (status, _) = handshake(gw.addr, "/no-app-here", &[]).await.expect_err("no app");
    assert_eq!(status, 404, "the component's 404 is the handshake's answer");
    // The gateway's own checks come first, as for /ws.
    let (status, _) =
        handshake(gw.addr, "/echo", &[("origin", "https://evil.example")]).await.expect_err("origin");
    assert_eq!(status, 403);
    let m = gw.metrics().await;
    assert_eq!(m.get(r#"sidestream_app_requests_total{kind="open",result="refused"}"#), 2.0);
    assert_eq!(m.get(r#"sidestream_ws_handshake_rejections_total{reason="origin"}"#), 1.0);
    assert_eq!(m.get("sidestream_ws_connections_active"), 0.0, "refused handshakes hold no slot");
    gw.stop().await;
}

/// Sends `count` messages on `ws` without waiting, while reading their echoes: every one comes
/// back once, in order, with its count.
async fn pipelined_echoes(ws: Ws, conn: usize, count: u64) {
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        for i in 0..count {
            sink.feed(Message::text(format!("{conn}:{i}"))).await.expect("send");
        }
        sink.flush().await.expect("flush");
        sink
    });
    let mut i = 0;
    while i < count {
        let message = match within("echo", stream.next()).await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(message)) => message,
            other => panic!("connection {conn}: no echo {i}: {other:?}"),
        };
        assert_eq!(message, echo_of(i + 1, &format!("{conn}:{i}")), "connection {conn}, message {i}");
        i += 1;
    }
    drop(within("writer", writer).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_on_each_of_a_hundred_connections_are_echoed_in_order_in_batches() {
    const CONNECTIONS: usize = 100;
    const MESSAGES: u64 = 10_000;
    let gw = TestGateway::start(&["--no-push"]).await;
    let mut clients = Vec::new();
    for conn in 0..CONNECTIONS {
        let ws = gw.ws("/echo").await;
        clients.push(tokio::spawn(pipelined_echoes(ws, conn, MESSAGES)));
    }
    for client in clients {
        // Each connection's whole run is bounded by `within` on each echo.
        client.await.expect("a client task");
    }
    let m = gw.metrics().await;
    let total = (CONNECTIONS as u64 * MESSAGES) as f64;
    assert_eq!(m.get("sidestream_app_messages_sent_total"), total);
    let requests = m.get(r#"sidestream_app_requests_total{kind="events",result="ok"}"#);
    // Messages that arrive while a request is in flight wait and go together in the next one.
    assert!(
        requests > 0.0 && requests * 10.0 < total,
        "{requests} requests for {total} messages: not batched"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_carry_the_handshake_a_stable_connection_id_and_the_meta_the_app_set() {
    let mut app = AppRecorder::start(Script::default()).await;
    let upstream = format!("http://{}", app.addr);
    let gw = TestGateway::start(&["--no-push", "--upstream", &upstream]).await;
    let mut ws = handshake(
        gw.addr,
        "/chat/room?x=1",
        &[("cookie", "session=abc"), ("authorization", "Bearer t"), ("x-app", "1"), ("meta-n", "99")],
    )
    .await
    .expect("accepted");
    let open = app.next().await;
    assert_eq!((open.path.as_str(), open.events.as_slice()), ("/chat/room?x=1", &["OPEN".to_owned()][..]));
    for (name, value) in [("cookie", "session=abc"), ("authorization", "Bearer t"), ("x-app", "1")] {
        assert_eq!(open.headers.get(name).unwrap(), value, "the handshake's {name} reaches the app");
    }
    for hop in ["upgrade", "connection", "sec-websocket-key", "meta-n"] {
        assert!(
            hop == "sec-websocket-key" || open.headers.get(hop).is_none(),
            "{hop} must not reach the app"
        );
    }
    assert_eq!(open.headers.get("content-type").unwrap(), "application/websocket-events");
    assert_eq!(open.headers.get("x-forwarded-for").unwrap(), "127.0.0.1");
    let id = open.headers.get("connection-id").expect("Connection-Id").to_str().unwrap().to_owned();
    for i in 1..=3u64 {
        send(&mut ws, Message::text(format!("m{i}"))).await;
        assert_eq!(next_data(&mut ws).await, Message::text(format!("m{i}")));
        let seen = app.next_with("TEXT").await;
        assert_eq!(seen.headers.get("connection-id").unwrap().to_str().unwrap(), id, "stable");
        // The meta the app set on its previous answer comes back on this request.
        assert_eq!(seen.headers.get("meta-n").unwrap().to_str().unwrap(), (i - 1).to_string());
        assert!(seen.headers.get("upgrade").is_none() && seen.headers.get("connection").is_none());
    }
    let other = handshake(gw.addr, "/chat/room", &[]).await.expect("accepted");
    assert_ne!(
        app.next().await.headers.get("connection-id").unwrap().to_str().unwrap(),
        id,
        "one id per connection"
    );
    drop(other);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_requests_come_at_the_interval_the_app_asked_for() {
    let mut app = AppRecorder::start(Script { keep_alive: Some(1), ..Script::default() }).await;
    let upstream = format!("http://{}", app.addr);
    let gw = TestGateway::start(&["--no-push", "--upstream", &upstream]).await;
    let _ws = handshake(gw.addr, "/quiet", &[]).await.expect("accepted");
    let opened = app.next_with("OPEN").await.at;
    let mut times = Vec::new();
    while times.len() < 3 {
        let seen = app.next().await;
        assert!(seen.body.is_empty(), "a keep-alive is an empty request: {} {:?}", seen.path, seen.events);
        times.push(seen.at);
    }
    let mut previous = opened;
    for at in times {
        let gap = at - previous;
        assert!(
            gap >= Duration::from_millis(900) && gap < Duration::from_millis(2500),
            "keep-alive after {gap:?}"
        );
        previous = at;
    }
    metric_reaches(&gw, r#"sidestream_app_requests_total{kind="keepalive",result="ok"}"#, 3.0).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_event_is_delivered_with_retries_after_a_reset_a_limit_and_on_drain() {
    let mut app = AppRecorder::start(Script { last_fails: 2, ..Script::default() }).await;
    let upstream = format!("http://{}", app.addr);
    let mut gw = TestGateway::start(&[
        "--no-push",
        "--upstream",
        &upstream,
        "--app-retry-delay",
        "50ms",
        "--max-message-size",
        "1024",
        "--drain-spread",
        "0s",
    ])
    .await;

    // A client that vanishes without a close: DISCONNECT, after two failed attempts.
    let ws = handshake(gw.addr, "/reset", &[]).await.unwrap();
    app.next_with("OPEN").await;
    reset(ws);
    let attempts: Vec<Seen> = vec![
        app.next_with("DISCONNECT").await,
        app.next_with("DISCONNECT").await,
        app.next_with("DISCONNECT").await,
    ];
    let tries: Vec<Option<&str>> =
        attempts.iter().map(|s| s.headers.get("sidestream-attempt").map(|v| v.to_str().unwrap())).collect();
    assert_eq!(tries, [None, Some("2"), Some("3")]);
    metric_reaches(&gw, r#"sidestream_app_last_events_total{event="disconnect",result="delivered"}"#, 1.0)
        .await;

    // A client closed for a limit (a message over --max-message-size): 1009 to it, DISCONNECT to the app.
    let mut big = handshake(gw.addr, "/limit", &[]).await.unwrap();
    app.next_with("OPEN").await;
    send(&mut big, Message::text("x".repeat(2000))).await;
    assert_eq!(close_code(&mut big).await, 1009);
    for _ in 0..3 {
        app.next_with("DISCONNECT").await;
    }
    metric_reaches(&gw, r#"sidestream_app_last_events_total{event="disconnect",result="delivered"}"#, 2.0)
        .await;

    // A draining gateway: every connection gets 1001, and the app a DISCONNECT for each.
    let mut drained = handshake(gw.addr, "/drained", &[]).await.unwrap();
    app.next_with("OPEN").await;
    gw.trigger_shutdown();
    assert_eq!(close_code(&mut drained).await, 1001);
    for _ in 0..3 {
        app.next_with("DISCONNECT").await;
    }
    within("the drain waits for the deliveries", &mut gw.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_that_fails_closes_only_its_own_connection_with_1011_and_hears_disconnect() {
    let gw = fault_gateway(&["--component-timeout", "1s", "--app-retry-delay", "50ms"]).await;
    let mut bystander = Bystander::new(&gw).await;
    let mut delivered = 0.0;
    for (fault, result) in [
        ("trap", r#"{kind="events",result="failed"}"#),
        ("garbage", r#"{kind="events",result="bad_answer"}"#),
        ("status", r#"{kind="events",result="bad_answer"}"#),
        ("sleep&ms=3000", r#"{kind="events",result="timeout"}"#),
    ] {
        let mut ws = gw.ws(&format!("/fault/ws?on={fault}")).await;
        send(&mut ws, Message::text("hello")).await;
        assert_eq!(close_code(&mut ws).await, 1011, "{fault}");
        metric_reaches(&gw, &format!("sidestream_app_requests_total{result}"), 1.0).await;
        delivered += 1.0;
        metric_reaches(
            &gw,
            r#"sidestream_app_last_events_total{event="disconnect",result="delivered"}"#,
            delivered,
        )
        .await;
        bystander.check().await;
    }
    let m = gw.metrics().await;
    assert_eq!(m.get(r#"sidestream_ws_closes_total{by="server",code="1011"}"#), 4.0);
    assert_eq!(m.get("sidestream_app_connections_active"), 1.0, "only the bystander is left");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_and_invalid_control_messages_are_ignored_and_counted() {
    let gw = fault_gateway(&[]).await;
    let mut ws = gw.ws("/fault/ws?on=control").await;
    for i in 0..3 {
        send(&mut ws, Message::text(format!("m{i}"))).await;
        assert_eq!(
            next_data(&mut ws).await,
            Message::text(format!("m{i}")),
            "the messages around them still go"
        );
    }
    let m = gw.metrics().await;
    assert_eq!(m.get(r#"sidestream_app_ignored_total{what="unknown_control"}"#), 3.0);
    assert_eq!(m.get(r#"sidestream_app_ignored_total{what="bad_control"}"#), 3.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_that_closes_gets_the_clients_close_back_and_a_failing_last_event_is_retried() {
    let gw = fault_gateway(&["--app-retry-delay", "50ms"]).await;
    let mut ws = gw.ws("/fault/ws?on=close&code=4321&last-fails=2").await;
    send(&mut ws, Message::text("close me")).await;
    assert_eq!(close_code(&mut ws).await, 4321, "the app's code and reason reach the client");
    // The client's reply becomes a CLOSE for the app: two attempts fail, the third is delivered.
    metric_reaches(&gw, r#"sidestream_app_last_events_total{event="close",result="delivered"}"#, 1.0).await;
    let m = gw.metrics().await;
    assert_eq!(m.get("sidestream_app_retries_total"), 2.0);
    assert_eq!(m.get(r#"sidestream_ws_closes_total{by="component",code="4xxx"}"#), 1.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_that_comes_after_its_connection_is_gone_is_counted_and_then_disconnect_follows() {
    let gw = fault_gateway(&["--component-timeout", "5s"]).await;
    let mut bystander = Bystander::new(&gw).await;
    let mut ws = gw.ws("/fault/ws?on=sleep&ms=1000").await;
    send(&mut ws, Message::text("slow")).await;
    // The request is in flight (the app sleeps in it) when the client vanishes.
    eventually("the request is in flight", async || {
        let m = gw.metrics().await;
        m.get("sidestream_ws_messages_received_total") >= 2.0
    })
    .await;
    reset(ws);
    metric_reaches(&gw, "sidestream_app_late_answers_total", 1.0).await;
    metric_reaches(&gw, r#"sidestream_app_last_events_total{event="disconnect",result="delivered"}"#, 1.0)
        .await;
    bystander.check().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_sends_faster_than_its_app_answers_is_batched_then_held_back() {
    let mut app =
        AppRecorder::start(Script { delay: Some(Duration::from_millis(200)), ..Script::default() }).await;
    let upstream = format!("http://{}", app.addr);
    let gw = TestGateway::start(&["--no-push", "--upstream", &upstream, "--app-batch-bytes", "1024"]).await;
    let ws = handshake(gw.addr, "/fast", &[]).await.unwrap();
    app.next_with("OPEN").await;
    // 200 messages of 100 bytes at once, while each answer takes 200 ms.
    let (mut sink, mut stream) = ws.split();
    for i in 0..200 {
        sink.feed(Message::text(format!("{i:0100}"))).await.unwrap();
    }
    within("flush", sink.flush()).await.unwrap();
    for i in 0..200 {
        let echoed = within("echo", stream.next()).await.unwrap().unwrap();
        assert_eq!(echoed, Message::text(format!("{i:0100}")));
    }
    let mut requests = 0;
    let mut events = 0;
    while events < 200 {
        let seen = app.next_with("TEXT").await;
        let texts = seen.events.iter().filter(|e| *e == "TEXT").count();
        // At most the batch limit, plus the one message that crossed it.
        assert!(seen.body.len() <= 1024 + 110, "a request of {} bytes", seen.body.len());
        events += texts;
        requests += 1;
    }
    assert!(requests < 100, "{requests} requests for 200 messages: batched");
    gw.stop().await;
}

/// A process of the test's, killed when dropped.
struct Process(tokio::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Starts the backend written with Python's `gripcontrol`, verifying signatures with `key`, and
/// returns it with its address.
async fn gripcontrol_backend(key: &str) -> (Process, SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv-grip/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make grip-tools` (scripts/grip-tools.sh)",
        python.display()
    );
    let mut child = tokio::process::Command::new(python)
        .arg(root.join("gateway/tests/grip/echo_backend.py"))
        .env("GRIP_KEY", key)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the gripcontrol backend");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = within("the backend says where it listens", lines.next_line()).await.unwrap().expect("a line");
    let port: u16 = line.strip_prefix("listening ").and_then(|p| p.parse().ok()).expect("listening PORT");
    (Process(child), SocketAddr::from(([127, 0, 0, 1], port)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_written_with_pythons_gripcontrol_works_unchanged() {
    let (_backend, addr) = gripcontrol_backend(common::GRIP_KEY).await;
    let upstream = format!("http://{addr}");
    let gw = TestGateway::start(&["--no-push", "--upstream", &upstream]).await;
    let mut ws = gw.ws("/anything").await;
    for (n, text) in [(1, "hello"), (2, "grip")] {
        send(&mut ws, Message::text(text)).await;
        // `m:` is GRIP's default prefix: removed, or the message would not reach the client at all.
        assert_eq!(next_data(&mut ws).await, Message::text(format!("echo {n}: {text}")), "meta round trip");
    }
    within("close", ws.close(None)).await.unwrap();
    while within("close handshake", ws.next()).await.is_some() {}
    metric_reaches(&gw, r#"sidestream_app_last_events_total{event="close",result="delivered"}"#, 1.0).await;
    let m = gw.metrics().await;
    assert_eq!(
        m.get(r#"sidestream_app_controls_total{what="subscribe"}"#),
        1.0,
        "its subscribe was understood"
    );
    assert_eq!(m.get(r#"sidestream_app_ignored_total{what="unprefixed"}"#), 0.0);
    gw.stop().await;
}

/// `gripcontrol.validate_sig` verifies the gateway's `Grip-Sig` as it verifies Pushpin's: with a key
/// other than the gateway's, the backend refuses the handshake, and the client gets its refusal.
#[tokio::test(flavor = "multi_thread")]
async fn a_gripcontrol_backend_with_another_key_refuses_the_gateways_requests() {
    let (_backend, addr) = gripcontrol_backend("not the key the gateway signs with").await;
    let upstream = format!("http://{addr}");
    let gw = TestGateway::start(&["--no-push", "--upstream", &upstream]).await;
    match handshake(gw.addr, "/anything", &[]).await {
        Err((status, body)) => assert_eq!((status, body.as_str()), (403, "bad Grip-Sig\n")),
        Ok(_) => panic!("a backend with another key accepted the gateway's OPEN"),
    }
    let m = gw.metrics().await;
    assert_eq!(m.get(r#"sidestream_app_requests_total{kind="open",result="refused"}"#), 1.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_component_behind_a_second_gateway_gives_the_same_transcript() {
    let direct = TestGateway::start(&["--no-push"]).await;
    let upstream = format!("http://{}", direct.addr);
    let proxied = TestGateway::start(&["--no-push", "--upstream", &upstream]).await;
    let mut transcripts = Vec::new();
    for gw in [&direct, &proxied] {
        let mut ws = gw.ws("/echo").await;
        let mut transcript = Vec::new();
        for text in ["one", "two", "{\"json\":true}", "ünïcødé"] {
            send(&mut ws, Message::text(text)).await;
            transcript.push(next_data(&mut ws).await);
        }
        send(&mut ws, Message::binary(vec![0u8, 1, 2])).await;
        transcript.push(next_data(&mut ws).await);
        within("close", ws.close(Some(CloseFrame { code: 4001.into(), reason: "bye".into() })))
            .await
            .unwrap();
        transcript.push(within("close reply", ws.next()).await.unwrap().unwrap());
        transcripts.push(transcript);
    }
    assert_eq!(transcripts[0], transcripts[1]);
    assert_eq!(transcripts[0][0], echo_of(1, "one"));
    proxied.stop().await;
    direct.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_the_last_event_survives_two_failed_attempts_after_a_reset_a_limit_and_on_drain() {
    let mut gw =
        fault_gateway(&["--app-retry-delay", "50ms", "--max-message-size", "1024", "--drain-spread", "0s"])
            .await;
    let mut bystander = Bystander::new(&gw).await;
    let path = "/fault/ws?last-fails=2";
    let delivered = r#"sidestream_app_last_events_total{event="disconnect",result="delivered"}"#;

    let mut ws = gw.ws(path).await;
    send(&mut ws, Message::text("before the reset")).await;
    assert_eq!(next_data(&mut ws).await, Message::text("before the reset"));
    reset(ws);
    metric_reaches(&gw, delivered, 1.0).await;
    bystander.check().await;

    let mut big = gw.ws(path).await;
    send(&mut big, Message::text("x".repeat(2000))).await;
    assert_eq!(close_code(&mut big).await, 1009);
    metric_reaches(&gw, delivered, 2.0).await;
    bystander.check().await;
    assert_eq!(gw.metrics().await.get("sidestream_app_retries_total"), 4.0, "two failed attempts each");

    let mut drained = gw.ws(path).await;
    gw.trigger_shutdown();
    assert_eq!(close_code(&mut drained).await, 1001);
    // The bystander does not answer its 1001, which holds the drain open: the admin port still
    // answers meanwhile.
    metric_reaches(&gw, delivered, 3.0).await;
    within("the drain waits for every last event", &mut gw.task).await.unwrap().unwrap();
}
