//! Only the gateway speaks for a connection: a plain HTTP request that dresses up as a connection's
//! WebSocket events (the `curl` of the README's threat table) reaches no client, whether it goes
//! to the gateway (embedded, or with `--upstream`) or straight to the upstream, and whatever
//! gateway-owned header it forges; the component refuses it with `401`/`403` and the gateway counts
//! the refusal. The apps' own signed traffic keeps working throughout.

mod common;

use std::net::SocketAddr;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sidestream_events::sig;
use tokio_tungstenite::tungstenite::Message;

/// The README's `curl`: a message to the lobby "from admin", with every header the gateway owns
/// forged, and a signature of the attacker's own making.
async fn forge(addr: SocketAddr, signature: Option<&str>) -> Reply {
    let mut headers = vec![
        ("content-type", "application/websocket-events"),
        ("meta-room", "lobby"),
        ("meta-name", "admin"),
        ("meta-sent", "0"),
        ("connection-id", "x"),
        ("sidestream-attempt", "2"),
    ];
    if let Some(signature) = signature {
        headers.push(("grip-sig", signature));
    }
    post(addr, "/room", &headers, "TEXT 2\r\nhi\r\n").await
}

/// Signatures an attacker can make: with a guessed key, expired with the right key (a captured one
/// replayed late), `alg: none`, and garbage.
fn forged_signatures() -> Vec<(&'static str, String)> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let claims = json!({"iss": "sidestream", "exp": now + 300}).to_string();
    vec![
        ("wrong key", sig::sign(b"a guess at the key", sig::ISSUER, now + 300)),
        ("expired", sig::sign(GRIP_KEY.as_bytes(), sig::ISSUER, now - 1)),
        ("alg none", format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims))),
        ("garbage", "not.a.jwt".to_owned()),
    ]
}

/// A member of the lobby, welcomed.
async fn member(gateway: SocketAddr) -> Ws {
    let url = format!("ws://{gateway}/room?room=lobby&name=ada");
    let (mut ws, _) = within("join", tokio_tungstenite::connect_async(url)).await.expect("accepted");
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    ws
}

async fn next_json(ws: &mut Ws) -> Value {
    serde_json::from_str(&next_text(ws).await).expect("JSON")
}

/// Every forgery against `target` is refused, and what the lobby's member receives next is the
/// publication `marker` made through the gateway's own API: nothing the forgeries said came first.
async fn forgeries_reach_nobody(target: SocketAddr, counted_by: &TestGateway, member_gateway: &TestGateway) {
    let mut ws = member(member_gateway.addr).await;
    let refusals = async || {
        let m = counted_by.metrics().await;
        m.get(r#"sidestream_http_requests_total{route="component",status="401"}"#)
            + m.get(r#"sidestream_http_requests_total{route="component",status="403"}"#)
    };
    let before = refusals().await;
    let mut refused = 0.0;
    let mut attempts: Vec<(&str, Option<String>)> = vec![("no signature", None)];
    attempts.extend(forged_signatures().into_iter().map(|(what, s)| (what, Some(s))));
    for (what, signature) in attempts {
        let reply = forge(target, signature.as_deref()).await;
        assert!(matches!(reply.status, 401 | 403), "{what}: {} {}", reply.status, reply.text());
        refused += 1.0;
    }
    assert_eq!(refusals().await - before, refused, "every refusal is counted");

    let item =
        json!({"items": [{"channel": "room:lobby", "formats": {"ws-message": {"content": "marker"}}}]});
    let published = post(member_gateway.admin, "/publish/", &[], item.to_string()).await;
    assert_eq!(published.status, 200, "{}", published.text());
    loop {
        match within("the marker", ws.next()).await {
            Some(Ok(Message::Text(text))) => {
                assert_eq!(text.as_str(), "marker", "a forgery reached the room first");
                break;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("no marker: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_request_cannot_speak_for_a_connection_of_the_embedded_component() {
    let gw = TestGateway::start(&["--no-push"]).await;
    forgeries_reach_nobody(gw.addr, &gw, &gw).await;
    // The room itself still works: its own, signed, requests are the component's.
    let mut a = member(gw.addr).await;
    send(&mut a, Message::text("hello")).await;
    let said = next_json(&mut a).await;
    assert_eq!((said["from"].as_str(), said["text"].as_str()), (Some("ada"), Some("hello")));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_request_cannot_speak_for_a_connection_through_a_gateway_or_straight_to_the_upstream() {
    // The upstream: another gateway's embedded host, standing in for the Spin runtime beside the
    // sidecar (its component knows the same key, as Spin's `grip_key` variable would).
    let upstream = TestGateway::start(&["--no-push"]).await;
    let url = format!("http://{}", upstream.addr);
    let front = TestGateway::start(&["--no-push", "--upstream", &url]).await;
    // Through the sidecar: refused and counted there; members of the upstream's lobby hear nothing.
    forgeries_reach_nobody(front.addr, &front, &upstream).await;
    // Straight to the upstream, past the sidecar.
    forgeries_reach_nobody(upstream.addr, &upstream, &upstream).await;
    // The sidecar's own requests are signed and accepted by the upstream's component.
    let mut ws = front.ws("/echo").await;
    send(&mut ws, Message::text("through the sidecar")).await;
    assert_eq!(next_json(&mut ws).await, json!({"type": "echo", "n": 1, "text": "through the sidecar"}));
    front.stop().await;
    upstream.stop().await;
}

/// A sidecar whose key differs from the component's cannot open a connection: the component refuses
/// its `OPEN`, and the client gets that refusal.
#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_with_another_key_is_refused_by_the_component() {
    let upstream = TestGateway::start(&["--no-push"]).await;
    let key = std::env::temp_dir().join(format!("sidestream-other-grip-key-{}", std::process::id()));
    std::fs::write(&key, "a different key, just as long").unwrap();
    let url = format!("http://{}", upstream.addr);
    let key_flag = format!("--grip-key-file={}", key.display());
    let front = TestGateway::start(&["--no-push", "--upstream", &url, &key_flag]).await;
    let url = format!("ws://{}/echo", front.addr);
    match within("handshake", tokio_tungstenite::connect_async(url)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401, "the upstream stripped a signature it did not make");
        }
        other => panic!("a gateway with another key opened a connection: {other:?}"),
    }
    std::fs::remove_file(&key).unwrap();
    front.stop().await;
    upstream.stop().await;
}
