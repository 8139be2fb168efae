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
