//! The example apps of `examples/` (TypeScript with @fanoutio/grip, Python with spin-sdk), served
//! by the gateway's embedded host and behind `--upstream` (a second gateway's embedded host as the
//! upstream, as `upstream.rs` does for the Rust component), pass what the Rust component's apps
//! pass: `OPEN` accepted, 1,000 messages echoed in order with the count kept in meta, a room
//! message crossing two gateways on one Redis, and a client that comes back with `last=` getting
//! what it missed exactly once; and a plain request posing as a connection's events (unsigned, or
//! with a forged `Grip-Sig`) is refused and reaches nobody.
//!
//! `cargo test -p sidestream-gateway --test examples`, after `make examples redis`.

mod common;

use std::collections::BTreeSet;

use common::examples::{Example, KeyFile, PYTHON, TYPESCRIPT, bad_signatures, forge, texts};
use common::redis::Redis;
use common::room::Member;
use common::{TestGateway, close_code, next_data, send, within};
use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const KEY: &str = "a-key-the-four-gateways-share-0123456789";

/// Two gateways serving `example` in-process and two in front of them, all on one Redis, all
/// with one signing key.
struct Setup {
    embedded: [TestGateway; 2],
    upstream: [TestGateway; 2],
    _redis: Redis,
    _key: KeyFile,
}

impl Setup {
    async fn start(example: Example) -> Self {
        let redis = Redis::start().await;
        let key = KeyFile::new(KEY);
        let (url, wasm) = (redis.url(), example.path());
        let flags = ["--no-push", "--redis", url.as_str(), "--grip-key-file", key.arg()];
        let embedded =
            [start(&flags, &["--component", &wasm]).await, start(&flags, &["--component", &wasm]).await];
        let mut upstream = Vec::new();
        for behind in &embedded {
            let to = format!("http://{}", behind.addr);
            upstream.push(start(&flags, &["--upstream", &to]).await);
        }
        let upstream = upstream.try_into().unwrap_or_else(|_| unreachable!("two"));
        Setup { embedded, upstream, _redis: redis, _key: key }
    }
}

async fn start(flags: &[&str], more: &[&str]) -> TestGateway {
    TestGateway::start(&[flags, more].concat()).await
}

/// `/echo`: accepted; 1,000 messages back in order, each with its count, which lives in the
/// connection's meta across the requests the gateway batches them into; binary back as it came;
/// a Close answered with the same code.
async fn echo(what: &str, gateway: &TestGateway) {
    let mut ws = gateway.ws("/echo").await;
    for i in 0..1000 {
        send(&mut ws, Message::text(format!("m{i}"))).await;
    }
    for n in 1..=1000 {
        let want = format!(r#"{{"type":"echo","n":{n},"text":"m{}"}}"#, n - 1);
        match next_data(&mut ws).await {
            Message::Text(text) => assert_eq!(text.as_str(), want, "{what}"),
            other => panic!("{what}: {other:?} for echo {n}"),
        }
    }
    send(&mut ws, Message::binary(vec![0u8, 1, 2, 255])).await;
    assert_eq!(next_data(&mut ws).await, Message::binary(vec![0u8, 1, 2, 255]), "{what}");
    send(&mut ws, Message::text("\"quoted\" \\ é 😀")).await;
    let want = r#"{"type":"echo","n":1002,"text":"\"quoted\" \\ é 😀"}"#;
    assert_eq!(next_data(&mut ws).await, Message::text(want), "{what}");
    let bye = CloseFrame { code: CloseCode::from(4000), reason: "bye".into() };
    within("send a close", ws.send(Message::Close(Some(bye)))).await.expect("close sent");
    assert_eq!(close_code(&mut ws).await, 4000, "{what}: the same close back");
}

/// A room message's fields, as the Rust room writes them (the gateway adds `id`).
fn assert_room_message(what: &str, message: &Value, from: &str, text: &str) {
    let keys: BTreeSet<&str> = message.as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["at", "from", "id", "text", "type"]), "{what}: {message}");
    assert_eq!((message["from"].as_str(), message["text"].as_str()), (Some(from), Some(text)), "{what}");
    let id = message["id"].as_str().expect("an id");
    assert!(id.split_once('.').is_some_and(|(n, _)| n.parse::<u64>().is_ok()), "{what}: id {id}");
}

/// The position of a room message in its channel.
fn position(message: &Value) -> u64 {
    message["id"].as_str().and_then(|id| id.split_once('.')?.0.parse().ok()).expect("an id N.EPOCH")
}

/// `/room`: what is said on one gateway reaches the room on the other, in one order; a client
/// that comes back (on the other gateway) with `last=` gets what it missed, once, then live ones.
async fn room(what: &str, room: &str, a: &TestGateway, b: &TestGateway) {
    let mut ada = Member::join(a.addr, &format!("room={room}&name=ada")).await;
    let mut bob = Member::join(b.addr, &format!("room={room}&name=Bob+B")).await;
    let keys: BTreeSet<&str> = bob.welcome.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["at", "name", "room", "type"]), "{what}: {}", bob.welcome);
    assert_eq!((bob.name.as_str(), bob.welcome["room"].as_str()), ("Bob B", Some(room)), "{what}");

    ada.say("hello from A").await;
    bob.say("  hello from B  ").await;
    let (on_a, on_b) = (ada.messages(2).await, bob.messages(2).await);
    assert_eq!(on_a, on_b, "{what}: one order for the whole room");
    let said: BTreeSet<(&str, &str)> =
        on_a.iter().map(|m| (m["from"].as_str().unwrap(), m["text"].as_str().unwrap())).collect();
    assert_eq!(said, BTreeSet::from([("ada", "hello from A"), ("Bob B", "hello from B")]), "{what}");
    for message in &on_a {
        let (from, text) = (message["from"].as_str().unwrap(), message["text"].as_str().unwrap());
        assert_room_message(what, message, from, text);
    }

    // Bob leaves; three messages later he comes back, on the other gateway, from where he was.
    let last = on_b[1]["id"].as_str().unwrap().to_owned();
    drop(bob);
    for text in ["m1", "m2", "m3"] {
        ada.say(text).await;
    }
    assert_eq!(texts(&ada.messages(3).await), ["m1", "m2", "m3"], "{what}");
    let mut back = Member::join(a.addr, &format!("room={room}&name=Bob+B&last={last}")).await;
    let missed = back.messages(3).await;
    assert_eq!(texts(&missed), ["m1", "m2", "m3"], "{what}: what he missed, in order");
    for (i, message) in missed.iter().enumerate() {
        assert_eq!(position(message), position(&on_b[1]) + 1 + i as u64, "{what}: {message}");
    }
    ada.say("live").await;
    assert_eq!(texts(&back.messages(1).await), ["live"], "{what}: then live, nothing twice");
}

/// Plain requests posing as a member of the room (no signature, or a forged one) are refused
/// `401`/`403`, and a member of the room hears only what is said next.
async fn forgeries_reach_nobody(what: &str, key: &str, gateway: &TestGateway) {
    let room = "forged";
    let mut ada = Member::join(gateway.addr, &format!("room={room}&name=ada")).await;
    let mut attempts: Vec<(&str, Option<String>)> = vec![("no signature", None)];
    attempts.extend(bad_signatures(key).into_iter().map(|(how, s)| (how, Some(s))));
    for (how, signature) in attempts {
        let reply = forge(gateway.addr, room, signature.as_deref()).await;
        assert!(matches!(reply.status, 401 | 403), "{what}: {how}: {} {}", reply.status, reply.text());
    }
    ada.say("marker").await;
    assert_eq!(texts(&ada.messages(1).await), ["marker"], "{what}: a forgery reached the room first");
}

/// A hundred connections at once, each with its first message: every one is echoed. The embedded
/// host's pool must hold a hundred instances of the component, whatever its number of core
/// instances (a Python component has 14 to a Rust one's 3).
async fn a_hundred_at_once(what: &str, gateway: &TestGateway) {
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..100 {
        let url = format!("ws://{}/echo", gateway.addr);
        clients.spawn(async move {
            let (mut ws, _) =
                within("connect", tokio_tungstenite::connect_async(url)).await.expect("accepted");
            send(&mut ws, Message::text(format!("c{i}"))).await;
            (i, next_data(&mut ws).await)
        });
    }
    while let Some(echoed) = clients.join_next().await {
        let (i, message) = echoed.unwrap_or_else(|e| panic!("{what}: a client failed: {e}"));
        let want = format!(r#"{{"type":"echo","n":1,"text":"c{i}"}}"#);
        assert_eq!(message, Message::text(want), "{what}: client {i}");
    }
}

async fn apps(example: Example) {
    let setup = Setup::start(example).await;
    let [e1, e2] = &setup.embedded;
    let [p1, p2] = &setup.upstream;
    a_hundred_at_once(example.name, e1).await;
    for (how, a, b) in [("embedded", e1, e2), ("upstream", p1, p2)] {
        let what = format!("{} {how}", example.name);
        echo(&what, a).await;
        room(&what, &format!("{}-{how}", example.name), a, b).await;
        forgeries_reach_nobody(&what, KEY, a).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_typescript_apps_embedded_and_behind_upstream() {
    apps(TYPESCRIPT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_apps_embedded_and_behind_upstream() {
    apps(PYTHON).await;
}
