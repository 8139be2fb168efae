//! The example apps answer as the Rust component's own apps do, byte for byte: the Rust apps are
//! the model, and generated cases go to both. `/echo`: random texts (quotes, backslashes, control
//! characters, Unicode whitespace, astral characters) and bytes. `/room`: random `room=`, `name=`
//! (percent-encoded, `+`, invalid UTF-8) and `last=`, answered with the same refusal or the same
//! welcome; then random messages (blank, padded, too long, binary), answered with the same room
//! messages and errors. The seed is printed; `SIDESTREAM_SEED=N` replays a run.
//!
//! `cargo test -p sidestream-gateway --test examples_same`, after `make component examples`.

mod common;

use common::examples::{Example, PYTHON, TYPESCRIPT};
use common::{TestGateway, Ws, next_data, next_text, send, within};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, Message};

const ECHOES: usize = 300;
const ROOM_CASES: usize = 40;

fn rng() -> SmallRng {
    let seed =
        std::env::var("SIDESTREAM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (SIDESTREAM_SEED={seed} replays this run)");
    SmallRng::seed_from_u64(seed)
}

/// Characters where JSON escaping, trimming and counting differ between languages.
const TRICKY: &[char] = &[
    '"', '\\', '/', '\u{0}', '\u{8}', '\t', '\n', '\u{b}', '\u{c}', '\r', '\u{1b}', '\u{1f}', '\u{7f}',
    '\u{85}', '\u{a0}', 'é', '\u{2028}', '\u{3000}', '\u{feff}', '\u{fffd}', '😀', '𝄞', ' ', ' ',
];

fn text(rng: &mut SmallRng, max: usize) -> String {
    let len = rng.random_range(0..=max);
    (0..len)
        .map(|_| match rng.random_range(0..3) {
            0 => TRICKY[rng.random_range(0..TRICKY.len())],
            _ => char::from(rng.random_range(b' '..=b'~')),
        })
        .collect()
}

/// Percent-encodes `value` as a form would (`+` for a space), with now and then a byte that is
/// not UTF-8.
fn encoded(rng: &mut SmallRng, value: &str) -> String {
    let mut out: String = value
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' => char::from(b).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect();
    if rng.random_ratio(1, 12) {
        out.push_str("%FF");
    }
    out
}

fn query(rng: &mut SmallRng) -> String {
    let mut parts = Vec::new();
    let room_chars = b"abcXYZ019-_";
    match rng.random_range(0..6) {
        0 => {}
        1 => {
            let room = text(rng, 6);
            parts.push(format!("room={}", encoded(rng, &room)));
        }
        2 => parts.push(format!("room={}", "r".repeat(rng.random_range(30..=34)))),
        _ => {
            let len = rng.random_range(1..=4);
            let room: String =
                (0..len).map(|_| char::from(room_chars[rng.random_range(0..room_chars.len())])).collect();
            parts.push(format!("room={room}"));
        }
    }
    match rng.random_range(0..5) {
        0 => {}
        1 => parts.push(format!("name={}", "n".repeat(rng.random_range(31..=34)))),
        _ => {
            let name = text(rng, 8);
            parts.push(format!("name={}", encoded(rng, &name)));
        }
    }
    if rng.random_ratio(1, 5) {
        parts.push("last=1.nowhere".to_owned());
    }
    parts.join("&")
}

/// A message with what differs by nature blanked: the time, a history's epoch, a guest's hash.
fn normalized(message: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(message) else { return message.to_owned() };
    if value.get("at").is_some() {
        value["at"] = Value::from(0);
    }
    if let Some(id) = value["id"].as_str() {
        value["id"] = Value::from(id.split('.').next().unwrap_or(id));
    }
    for key in ["name", "from"] {
        if value[key].as_str().is_some_and(|n| n.starts_with("guest-") && n.len() == 10) {
            value[key] = Value::from("guest-*");
        }
    }
    // Key order is part of the answer: compare the text, rewritten only where blanked.
    if value == serde_json::from_str::<Value>(message).unwrap() {
        message.to_owned()
    } else {
        value.to_string()
    }
}

async fn echoes_match(rng: &mut SmallRng, model: &TestGateway, example: &TestGateway, name: &str) {
    let (mut want, mut got) = (model.ws("/echo").await, example.ws("/echo").await);
    for i in 0..ECHOES {
        let message = if i % 10 == 9 {
            Message::binary((0..rng.random_range(0..20)).map(|_| rng.random::<u8>()).collect::<Vec<u8>>())
        } else {
            Message::text(text(rng, 30))
        };
        send(&mut want, message.clone()).await;
        send(&mut got, message.clone()).await;
        assert_eq!(next_data(&mut got).await, next_data(&mut want).await, "{name}: echo of {message:?}");
    }
}

/// A room's answer to a join: the refusal's status and body, or the socket and its welcome.
async fn join(gateway: &TestGateway, query: &str) -> Result<(Ws, String), (u16, String)> {
    let url = format!("ws://{}/room?{query}", gateway.addr);
    match within("join", tokio_tungstenite::connect_async(url)).await {
        Ok((mut ws, _)) => {
            let welcome = next_text(&mut ws).await;
            Ok((ws, normalized(&welcome)))
        }
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            Err((response.status().as_u16(), body.into_owned()))
        }
        Err(error) => panic!("join {query}: {error}"),
    }
}

/// What a member gets for `messages`, followed by a text marker and a binary one: the room's
/// publications (and a gap), and apart from them what was answered to this member alone (errors, a gap), each
/// in its order. The two streams interleave as they happen to (a publication comes through the
/// channel, an answer with the request's response), so each is compared on its own; all is in once
/// the marker's publication (after every earlier one in the channel) and the binary marker's error
/// (after every earlier answer) have come.
async fn answers(ws: &mut Ws, messages: &[Message]) -> (Vec<String>, Vec<String>) {
    for message in messages {
        send(ws, message.clone()).await;
    }
    send(ws, Message::text("marker")).await;
    send(ws, Message::binary(vec![0u8])).await;
    let binaries = messages.iter().filter(|m| m.is_binary()).count() + 1;
    let (mut published, mut answered) = (Vec::new(), Vec::new());
    let (mut marker, mut errors) = (false, 0);
    while !marker || errors < binaries {
        let text = next_text(ws).await;
        let value = serde_json::from_str::<Value>(&text).unwrap_or_default();
        // A gap is said in the channel's stream, before the live publications.
        if value["type"] == "room" || value["type"] == "gap" {
            marker |= value["text"] == "marker";
            published.push(normalized(&text));
        } else {
            errors += usize::from(value["text"] == "the room takes text messages");
            answered.push(normalized(&text));
        }
    }
    (published, answered)
}

async fn rooms_match(rng: &mut SmallRng, model: &TestGateway, example: &TestGateway, name: &str) {
    for _ in 0..ROOM_CASES {
        let query = query(rng);
        let (want, got) = (join(model, &query).await, join(example, &query).await);
        match (want, got) {
            (Err(want), Err(got)) => assert_eq!(got, want, "{name}: refusal of ?{query}"),
            (Ok((mut want, welcome)), Ok((mut got, got_welcome))) => {
                assert_eq!(got_welcome, welcome, "{name}: welcome of ?{query}");
                let messages: Vec<Message> = (0..rng.random_range(0..4))
                    .map(|_| match rng.random_range(0..8) {
                        0 => Message::binary(vec![1u8, 2]),
                        1 => Message::text("y".repeat(rng.random_range(999..=1002))),
                        _ => Message::text(text(rng, 12)),
                    })
                    .collect();
                let (want, got) = (answers(&mut want, &messages).await, answers(&mut got, &messages).await);
                assert_eq!(got, want, "{name}: ?{query} then {messages:?}");
            }
            (want, got) => panic!(
                "{name}: ?{query}: the model {} but the example {}",
                if want.is_ok() { "accepted" } else { "refused" },
                if got.is_ok() { "accepted" } else { "refused" }
            ),
        }
    }
}

async fn answers_as_the_rust_apps(example: Example) {
    let mut rng = rng();
    let model = TestGateway::start(&["--no-push"]).await;
    let path = example.path();
    let tested = TestGateway::start(&["--no-push", "--component", &path]).await;
    echoes_match(&mut rng, &model, &tested, example.name).await;
    rooms_match(&mut rng, &model, &tested, example.name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_typescript_apps_answer_as_the_rust_apps() {
    answers_as_the_rust_apps(TYPESCRIPT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_apps_answer_as_the_rust_apps() {
    answers_as_the_rust_apps(PYTHON).await;
}
