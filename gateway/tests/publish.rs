//! The publish API (`POST /publish/` on the admin listener) as its callers see it: each bad
//! request gets its status and a one-line reason and publishes nothing, a broker that cannot take
//! a publish answers `503`, and Python's `gripcontrol` publishes text, binary and close unchanged.
//! The subscriber is a client of the component's `/room`, which joins channel `room:NAME`.

mod common;

use std::path::PathBuf;

use common::redis::Redis;
use common::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A client of room `room`, past its welcome.
async fn member(gw: &TestGateway, room: &str) -> Ws {
    let mut ws = gw.ws(&format!("/room?room={room}&name=reader")).await;
    let welcome = next_data(&mut ws).await;
    assert!(welcome.to_text().unwrap().contains(r#""type":"welcome""#), "{welcome:?}");
    ws
}

async fn publish(gw: &TestGateway, body: impl Into<bytes::Bytes>) -> Reply {
    post(gw.admin, "/publish/", &[("content-type", "application/json")], body).await
}

fn text_item(channel: &str, content: &str) -> String {
    serde_json::json!({"items": [{"channel": channel, "formats": {"ws-message": {"content": content}}}]})
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_bad_publish_gets_its_answer_and_publishes_nothing() {
    let gw = TestGateway::start(&["--no-push", "--max-message-size", "1024"]).await;
    let mut reader = member(&gw, "bad").await;
    let ok_item = r#"{"channel":"room:bad","formats":{"ws-message":{"content":"x"}}}"#;
    let too_many = format!(r#"{{"items":[{}]}}"#, vec![ok_item; 1001].join(","));
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "{items: [".into(), "JSON"),
        ("no items", r#"{"item":[]}"#.into(), "items"),
        ("items of the wrong type", r#"{"items":"room:bad"}"#.into(), "items"),
        ("a channel of the wrong type", r#"{"items":[{"channel":5,"formats":{}}]}"#.into(), "channel"),
        (
            "a channel name with a space",
            r#"{"items":[{"channel":"room bad","formats":{"ws-message":{"content":"x"}}}]}"#.into(),
            "channel",
        ),
        (
            "content-bin that is not base64",
            r#"{"items":[{"channel":"room:bad","formats":{"ws-message":{"content-bin":"no!"}}}]}"#.into(),
            "base64",
        ),
        ("an item over --max-message-size", text_item("room:bad", &"x".repeat(1025)), "over 1024 bytes"),
        ("more than 1,000 items", too_many, "more than 1000 items"),
        (
            "a good item, then a bad one (the good one is not published either)",
            format!(
                r#"{{"items":[{ok_item},{{"channel":"room:bad","formats":{{"ws-message":{{"code":1}}}}}}]}}"#
            ),
            "item 1",
        ),
    ];
    for (what, body, reason) in &cases {
        let reply = publish(&gw, body.clone()).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.text());
        let text = reply.text();
        assert_eq!(text.trim_end().lines().count(), 1, "{what}: one line, got {text:?}");
        assert!(text.contains(reason), "{what}: {text:?} should say {reason:?}");
    }

    let huge = publish(&gw, vec![b' '; 1_000_001]).await;
    assert_eq!(huge.status, 413, "a body over 1 MB");
    let get = request(gw.admin, "GET", "/publish/", &[]).await;
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));

    let m = gw.metrics().await;
    assert_eq!(
        m.get(r#"sidestream_publishes_total{result="refused"}"#),
        (cases.len() + 1) as f64,
        "every refusal counted"
    );

    // Nothing of all that reached the room: the first thing the reader gets is the next good one.
    let good = publish(&gw, text_item("room:bad", "the first good one")).await;
    assert_eq!((good.status, good.text().trim()), (200, "Published"));
    assert_eq!(next_data(&mut reader).await, Message::text("the first good one"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_the_broker_cannot_take_is_a_503_never_a_silent_loss() {
    // Durable, so the history outlives the restart and the reader has no gap to be told of.
    let mut redis = Redis::durable().await;
    let url = redis.url();
    let gw = TestGateway::start(&["--no-push", "--redis", &url]).await;
    let mut reader = member(&gw, "down").await;
    assert_eq!(publish(&gw, text_item("room:down", "before")).await.status, 200);
    assert_eq!(next_data(&mut reader).await, Message::text("before"));

    redis.kill().await;
    let reply = publish(&gw, text_item("room:down", "while down")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert!(reply.text().contains("cannot take it"), "{}", reply.text());
    assert_eq!(gw.metrics().await.get(r#"sidestream_publishes_total{result="unavailable"}"#), 1.0);

    // Once Redis is back, publishes go through again; the refused one was never delivered.
    redis.restart().await;
    eventually("publishes are taken again", async || {
        publish(&gw, text_item("room:down", "after")).await.status == 200
    })
    .await;
    assert_eq!(next_data(&mut reader).await, Message::text("after"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pythons_gripcontrol_publishes_text_binary_and_close_unchanged() {
    let gw = TestGateway::start(&["--no-push"]).await;
    let mut reader = member(&gw, "grip").await;

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv-grip/bin/python");
    assert!(python.exists(), "{} is missing: run `make grip-tools`", python.display());
    // Pushpin's control URI is the server's root; the library appends `/publish/`.
    let control_uri = format!("http://{}", gw.admin);
    let output = within(
        "the gripcontrol publisher",
        tokio::process::Command::new(python)
            .arg(root.join("gateway/tests/grip/publisher.py"))
            .args([control_uri.as_str(), "room:grip"])
            .output(),
    )
    .await
    .expect("run the publisher");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(printed.lines().collect::<Vec<_>>(), ["published 1", "published 2", "published 3"]);

    assert_eq!(
        next_data(&mut reader).await,
        Message::text(r#"{"type":"room","from":"gripcontrol","text":"hello"}"#)
    );
    assert_eq!(next_data(&mut reader).await, Message::binary(vec![0x00, 0x01, 0xfe, 0xff]));
    match next_data(&mut reader).await {
        Message::Close(Some(frame)) => {
            assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::from(4000), "bye"))
        }
        other => panic!("expected the published close, got {other:?}"),
    }
    gw.stop().await;
}

/// A gateway whose publish API asks a token (`--publish-token-file`), and the token.
async fn guarded(extra: &[&str]) -> (TestGateway, String, PathBuf) {
    let token = "publish-token-of-the-test";
    let file = std::env::temp_dir().join(format!(
        "sidestream-publish-token-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::write(&file, token).unwrap();
    let flag = format!("--publish-token-file={}", file.display());
    let mut args = vec!["--no-push", flag.as_str()];
    args.extend_from_slice(extra);
    (TestGateway::start(&args).await, token.to_owned(), file)
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

/// A loopback peer is no longer trusted: a proxy or a `kubectl port-forward` connects over
/// 127.0.0.1 for whoever is behind it. Only the token publishes (and the embedded component's
/// in-process path, which `/room`'s tests use throughout).
#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_a_loopback_publisher_without_it_is_refused() {
    let (gw, token, file) = guarded(&[]).await;
    let mut reader = member(&gw, "guarded").await;
    let without = publish(&gw, text_item("room:guarded", "no token")).await;
    assert_eq!((without.status, without.header("www-authenticate")), (401, Some("Bearer")));
    let wrong =
        post(gw.admin, "/publish/", &[("authorization", "Bearer guess")], text_item("room:guarded", "x"))
            .await;
    assert_eq!(wrong.status, 401);
    let bearer = format!("Bearer {token}");
    let with =
        post(gw.admin, "/publish/", &[("authorization", &bearer)], text_item("room:guarded", "with")).await;
    assert_eq!(with.status, 200, "{}", with.text());
    assert_eq!(next_data(&mut reader).await, Message::text("with"), "nothing unauthorised came first");
    // The room's own messages still publish: in-process, the embedded component needs no token.
    send(&mut reader, Message::text("said in the room")).await;
    let said = next_data(&mut reader).await;
    assert!(said.to_text().unwrap().contains("said in the room"), "{said:?}");
    let m = gw.metrics().await;
    assert_eq!(m.get(r#"sidestream_publishes_total{result="unauthorized"}"#), 2.0);
    std::fs::remove_file(file).unwrap();
    gw.stop().await;
}

/// The token is checked from the headers, before any of the body is read, and a body that does not
/// arrive in time ends with 408: a slow or unauthorised publisher holds neither memory nor the drain.
#[tokio::test(flavor = "multi_thread")]
async fn the_token_comes_before_the_body_and_the_body_has_a_deadline() {
    let (gw, token, file) = guarded(&["--header-read-timeout", "1s"]).await;
    // Announces a megabyte and sends none of it: refused from its head alone.
    let head = "POST /publish/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n";
    let answer = raw_exchange(gw.admin, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // With the token, a body that stalls half-way is cut off at the deadline.
    let head = format!(
        "POST /publish/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: 100\r\n\r\n{{\"items\""
    );
    let started = std::time::Instant::now();
    let answer = raw_exchange(gw.admin, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "{:?}", started.elapsed());
    std::fs::remove_file(file).unwrap();
    gw.stop().await;
}

/// The admin listener serves at most 256 connections at once: the next is closed at once and
/// counted, and once some close, new ones are served again.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_listener_caps_its_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = TestGateway::start(&["--no-push"]).await;
    let mut held = Vec::new();
    for _ in 0..256 {
        let mut stream = within("connect", tokio::net::TcpStream::connect(gw.admin)).await.unwrap();
        // A request head, so the connection is surely accepted and kept alive.
        stream.write_all(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 256];
        let n = within("livez", stream.read(&mut buf)).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
        held.push(stream);
    }
    let mut extra = within("connect", tokio::net::TcpStream::connect(gw.admin)).await.unwrap();
    let _ = extra.write_all(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let n = within("closed at once", extra.read(&mut buf)).await.unwrap_or(0);
    assert_eq!(n, 0, "the 257th connection was served: {}", String::from_utf8_lossy(&buf[..n]));
    held.truncate(200);
    eventually("a new connection is served once others closed", async || {
        let Ok(mut stream) = tokio::net::TcpStream::connect(gw.admin).await else { return false };
        let _ = stream.write_all(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
        let mut buf = [0u8; 64];
        let n = within("an answer or a close", stream.read(&mut buf)).await.unwrap_or(0);
        buf[..n].starts_with(b"HTTP/1.1 200")
    })
    .await;
    let m = gw.metrics().await;
    assert!(m.get(r#"sidestream_http_connection_errors_total{kind="busy"}"#) >= 1.0);
    drop(held);
    gw.stop().await;
}
