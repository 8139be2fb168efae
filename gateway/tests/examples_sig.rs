//! Only the gateway speaks for a connection, with the example apps too: each refuses a
//! WebSocket-events request whose `Grip-Sig` is missing (`401`) or not the gateway's (`403`: another
//! key, expired, `alg: none`, HS512, garbage) before reading anything of it, and accepts the
//! gateway's own; and through a gateway (embedded, or in front of one with `--upstream`) a plain
//! request dressed up as a connection's events reaches nobody in the room.
//!
//! `cargo test -p sidestream-gateway --test examples_sig`, after `make examples`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use clap::Parser;
use common::examples::{Example, KeyFile, Member, PYTHON, TYPESCRIPT, texts};
use common::{Reply, TestGateway, post, within};
use serde_json::json;
use sidestream_events::sig;
use sidestream_gateway::Config;
use sidestream_gateway::channels::Channels;
use sidestream_gateway::host::Host;
use sidestream_gateway::metrics::Metrics;
use sidestream_gateway::publish::Publisher;

const KEY: &str = "the-key-these-tests-sign-with-0123456789";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

fn jwt(header: &serde_json::Value, claims: &serde_json::Value, signature: &[u8]) -> String {
    let part = |value: &serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.{}", part(header), part(claims), URL_SAFE_NO_PAD.encode(signature))
}

/// Each signature the app must refuse, and what it is.
fn bad_signatures() -> Vec<(&'static str, String)> {
    let claims = json!({"iss": "sidestream", "exp": now() + 300});
    let good = sig::sign(KEY.as_bytes(), sig::ISSUER, now() + 300);
    let good_signature = URL_SAFE_NO_PAD.decode(good.rsplit('.').next().unwrap()).unwrap();
    vec![
        ("another key", sig::sign(b"a guess at the key, just as long", sig::ISSUER, now() + 300)),
        ("expired", sig::sign(KEY.as_bytes(), sig::ISSUER, now() - 1)),
        ("alg none", jwt(&json!({"alg": "none", "typ": "JWT"}), &claims, b"")),
        // The right key's signature under a header naming another algorithm.
        ("alg HS512", jwt(&json!({"alg": "HS512", "typ": "JWT"}), &claims, &good_signature)),
        ("garbage", "not.a.jwt".to_owned()),
        ("the signature of other claims", {
            let (head, _) = good.split_once('.').unwrap();
            let forged = URL_SAFE_NO_PAD.encode(json!({"iss": "x", "exp": now() + 9999}).to_string());
            format!("{head}.{forged}.{}", good.rsplit('.').next().unwrap())
        }),
    ]
}

/// The example loaded by the gateway's host, which gives it `KEY` as its `grip_key`, called
/// directly: nothing between the test and the component adds or removes a header.
struct Direct {
    host: Host,
    metrics: Arc<Metrics>,
}

impl Direct {
    fn load(example: Example) -> Self {
        let path = example.path();
        let config = Config::try_parse_from(["sidestream-gateway", "--component", &path]).expect("config");
        let metrics = Arc::new(Metrics::new());
        let channels = Channels::new(&config, None, metrics.clone());
        let publisher = Arc::new(Publisher::new(channels.broker.clone(), None, 1 << 20, metrics.clone()));
        let host = Host::load(Path::new(&path), &config, publisher, KEY).expect("the example loads");
        Direct { host, metrics }
    }

    /// An `OPEN` of `/echo` and one message, with this `Grip-Sig`: the status and body.
    async fn open(&self, signature: Option<&str>) -> (u16, Bytes) {
        let mut request = http::Request::builder()
            .method("POST")
            .uri("/echo")
            .header("content-type", "application/websocket-events")
            .header("accept", "application/websocket-events")
            .header("host", "127.0.0.1")
            .header("connection-id", "c-1");
        if let Some(signature) = signature {
            request = request.header("grip-sig", signature);
        }
        let request = request.body(Bytes::from_static(b"OPEN\r\nTEXT 2\r\nhi\r\n")).expect("a request");
        let response = within("the example answers", self.host.exchange(request, 1 << 20, &self.metrics))
            .await
            .expect("an answer");
        (response.status().as_u16(), response.into_body())
    }
}

async fn refuses_what_the_gateway_did_not_sign(example: Example) {
    let direct = Direct::load(example);
    let name = example.name;
    let (status, body) = direct.open(Some(&sig::sign(KEY.as_bytes(), sig::ISSUER, now() + 300))).await;
    assert_eq!(status, 200, "{name}: the gateway's own signature: {}", String::from_utf8_lossy(&body));
    assert!(body.starts_with(b"OPEN\r\n"), "{name}: accepted: {}", String::from_utf8_lossy(&body));
    assert_eq!(direct.open(None).await.0, 401, "{name}: no signature");
    for (what, signature) in bad_signatures() {
        let (status, body) = direct.open(Some(&signature)).await;
        assert_eq!(status, 403, "{name}: {what}: {}", String::from_utf8_lossy(&body));
        assert!(!body.starts_with(b"OPEN"), "{name}: {what}: refused before any event is read");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_typescript_apps_refuse_what_the_gateway_did_not_sign() {
    refuses_what_the_gateway_did_not_sign(TYPESCRIPT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_apps_refuse_what_the_gateway_did_not_sign() {
    refuses_what_the_gateway_did_not_sign(PYTHON).await;
}

/// A plain request posing as a member of room `room` saying "hi", every gateway-owned header forged.
async fn forge(addr: SocketAddr, room: &str, signature: Option<&str>) -> Reply {
    let mut headers = vec![
        ("content-type", "application/websocket-events"),
        ("meta-room", room),
        ("meta-name", "admin"),
        ("connection-id", "x"),
    ];
    if let Some(signature) = signature {
        headers.push(("grip-sig", signature));
    }
    post(addr, "/room", &headers, "TEXT 2\r\nhi\r\n").await
}

/// Forgeries to `target` are refused, and a member of the room hears only what is said next.
async fn forgeries_reach_nobody(what: &str, target: SocketAddr, member_at: SocketAddr) {
    let room = "forged";
    let mut ada = Member::join(member_at, &format!("room={room}&name=ada")).await;
    let mut attempts: Vec<(&str, Option<String>)> = vec![("no signature", None)];
    attempts.extend(bad_signatures().into_iter().map(|(what, s)| (what, Some(s))));
    for (how, signature) in attempts {
        let reply = forge(target, room, signature.as_deref()).await;
        assert!(matches!(reply.status, 401 | 403), "{what}: {how}: {} {}", reply.status, reply.text());
    }
    ada.say("marker").await;
    assert_eq!(texts(&ada.messages(1).await), ["marker"], "{what}: a forgery reached the room first");
}

async fn through_gateways(example: Example) {
    let key = KeyFile::new(KEY);
    let path = example.path();
    let embedded =
        TestGateway::start(&["--no-push", "--component", &path, "--grip-key-file", key.arg()]).await;
    let url = format!("http://{}", embedded.addr);
    let front = TestGateway::start(&["--no-push", "--upstream", &url, "--grip-key-file", key.arg()]).await;
    forgeries_reach_nobody(&format!("{} embedded", example.name), embedded.addr, embedded.addr).await;
    forgeries_reach_nobody(&format!("{} through --upstream", example.name), front.addr, embedded.addr).await;
    front.stop().await;
    embedded.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_request_cannot_speak_for_a_connection_of_the_typescript_room() {
    through_gateways(TYPESCRIPT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_request_cannot_speak_for_a_connection_of_the_python_room() {
    through_gateways(PYTHON).await;
}
