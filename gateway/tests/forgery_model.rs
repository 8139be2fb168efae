//! Only the gateway speaks for a connection, over many generated forgeries at once: plain HTTP
//! requests that dress up as a connection's WebSocket events, with a random mix of gateway-owned
//! headers (any letter case, repeated), event bodies, app routes and signatures an attacker can
//! make, sent concurrently to a sidecar gateway and straight to the gateway behind it that embeds
//! the component. The model: every one is refused `401`, wherever it is sent (a gateway strips every
//! gateway-owned header of a request it did not sign, `Grip-Sig` with them, so the component sees an
//! unsigned request; what the component does with a bad signature that does reach it is
//! `events/tests/sig_model.rs`'s); each refusal is counted by every gateway it passed; and a
//! room member behind both hears none of them: the next thing it hears is a publication made after
//! the last forgery was answered.
//!
//! The seed is printed; `SIDESTREAM_FORGERY_SEED=N` replays one run.

mod common;

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use futures_util::{StreamExt, stream};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sidestream_events::sig;

const FORGERIES: usize = 240;
const AT_ONCE: usize = 12;

fn seed() -> u64 {
    std::env::var("SIDESTREAM_FORGERY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random)
}

/// One forged request, and what it forges.
struct Forgery {
    request: Vec<u8>,
    what: String,
}

/// A header name in a random letter case.
fn any_case(rng: &mut SmallRng, name: &str) -> String {
    name.chars().map(|c| if rng.random_bool(0.5) { c.to_ascii_uppercase() } else { c }).collect()
}

/// A signature an attacker can make: without the key (guessed keys, other algorithms, garbage), or
/// with a token of the right key captured and replayed late, or its claims rewritten.
fn signature(rng: &mut SmallRng) -> (String, &'static str) {
    let now = examples::now();
    let b64 = |s: String| URL_SAFE_NO_PAD.encode(s);
    let claims = json!({"iss": "sidestream", "exp": now + 300}).to_string();
    match rng.random_range(0..6) {
        0 => {
            let guess: Vec<u8> = (0..rng.random_range(1..48)).map(|_| rng.random()).collect();
            (sig::sign(&guess, sig::ISSUER, now + 300), "a guessed key")
        }
        1 => (sig::sign(GRIP_KEY.as_bytes(), sig::ISSUER, now - rng.random_range(1..100_000)), "expired"),
        2 => {
            let alg = ["none", "HS384", "HS512", "RS256", "hs256"][rng.random_range(0..5)];
            (format!("{}.{}.", b64(format!(r#"{{"alg":"{alg}"}}"#)), b64(claims)), "another algorithm")
        }
        3 => {
            let old = sig::sign(GRIP_KEY.as_bytes(), sig::ISSUER, now - 1);
            let parts: Vec<&str> = old.split('.').collect();
            (format!("{}.{}.{}", parts[0], b64(claims), parts[2]), "claims rewritten")
        }
        4 => ("not.a.jwt".to_owned(), "garbage"),
        _ => (String::new(), "empty"),
    }
}

/// Events a connection could send: messages, a close, a disconnect, an open.
fn body(rng: &mut SmallRng) -> Vec<u8> {
    let mut body = Vec::new();
    for _ in 0..rng.random_range(1..4) {
        let text =
            ["hi", r#"{"type":"say","text":"from admin"}"#, "x".repeat(rng.random_range(0..300)).as_str()]
                [rng.random_range(0..3)]
            .to_owned();
        match rng.random_range(0..5) {
            0 => body.extend_from_slice(b"OPEN\r\n"),
            1 => body.extend_from_slice(b"CLOSE 2\r\n\x03\xe8\r\n"),
            2 => body.extend_from_slice(b"DISCONNECT\r\n"),
            _ => body.extend_from_slice(format!("TEXT {:x}\r\n{text}\r\n", text.len()).as_bytes()),
        }
    }
    body
}

fn forgery(rng: &mut SmallRng, host: SocketAddr) -> Forgery {
    let path = ["/room", "/room?room=lobby&name=admin", "/echo"][rng.random_range(0..3)];
    let mut headers = vec![(any_case(rng, "content-type"), "application/websocket-events".to_owned())];
    let mut what = vec![path.to_owned()];
    let owned = [
        ("meta-room", "lobby"),
        ("meta-name", "admin"),
        ("meta-sent", "0"),
        ("connection-id", "victim"),
        ("sidestream-attempt", "2"),
        ("grip-last", "room:lobby; last-id=1"),
    ];
    for (name, value) in owned {
        for _ in 0..rng.random_range(0..3) {
            headers.push((any_case(rng, name), value.to_owned()));
        }
    }
    if rng.random_bool(0.8) {
        let (token, kind) = signature(rng);
        what.push(kind.to_owned());
        headers.push((any_case(rng, "grip-sig"), token));
    }
    let body = body(rng);
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += &format!("Content-Length: {}\r\n\r\n", body.len());
    let mut request = request.into_bytes();
    request.extend_from_slice(&body);
    Forgery { request, what: what.join(", ") }
}

fn status(response: &str) -> u16 {
    response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

async fn refusals(gateway: &TestGateway) -> f64 {
    let m = gateway.metrics().await;
    m.get(r#"sidestream_http_requests_total{route="component",status="401"}"#)
        + m.get(r#"sidestream_http_requests_total{route="component",status="403"}"#)
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_forgeries_reach_nobody_through_the_sidecar_or_straight() {
    let seed = seed();
    eprintln!("forgery model: seed {seed} (SIDESTREAM_FORGERY_SEED={seed} replays it)");
    let mut rng = SmallRng::seed_from_u64(seed);
    let upstream = TestGateway::start(&["--no-push"]).await;
    let url = format!("http://{}", upstream.addr);
    let sidecar = TestGateway::start(&["--no-push", "--upstream", &url]).await;

    // A member of the lobby, held by the upstream's own gateway.
    let (mut member, _) = within(
        "join",
        tokio_tungstenite::connect_async(format!("ws://{}/room?room=lobby&name=ada", upstream.addr)),
    )
    .await
    .expect("joined");
    let welcome: Value = serde_json::from_str(&next_text(&mut member).await).expect("JSON");
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    let (sidecar_before, upstream_before) = (refusals(&sidecar).await, refusals(&upstream).await);
    let plan: Vec<(bool, Forgery)> = (0..FORGERIES)
        .map(|_| {
            let straight = rng.random_bool(0.5);
            let target = if straight { upstream.addr } else { sidecar.addr };
            (straight, forgery(&mut rng, target))
        })
        .collect();
    let (sidecar_addr, upstream_addr) = (sidecar.addr, upstream.addr);
    let answers: Vec<(bool, u16, String)> = stream::iter(plan)
        .map(|(straight, forgery)| async move {
            let target = if straight { upstream_addr } else { sidecar_addr };
            let response = raw_exchange(target, &forgery.request).await;
            (straight, status(&response), format!("{}: {response:.120}", forgery.what))
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;

    let mut counted = (0.0, 0.0);
    for (straight, got, what) in &answers {
        let through = if *straight { "straight to the upstream" } else { "through the sidecar" };
        assert_eq!(*got, 401, "seed {seed}: {through}, {what}");
        if *straight { counted.1 += 1.0 } else { counted.0 += 1.0 }
    }
    assert_eq!(
        refusals(&sidecar).await - sidecar_before,
        counted.0,
        "seed {seed}: the sidecar counts its refusals"
    );
    // The upstream counts every refusal: its own, and those the sidecar passed on to its component.
    let all = counted.0 + counted.1;
    assert_eq!(
        refusals(&upstream).await - upstream_before,
        all,
        "seed {seed}: the upstream counts every refusal"
    );

    // After every forgery was answered, a publication through the gateway's own API: the member
    // hears it first, so nothing a forgery said reached the room.
    let item =
        json!({"items": [{"channel": "room:lobby", "formats": {"ws-message": {"content": "marker"}}}]});
    let published = post(upstream.admin, "/publish/", &[], item.to_string()).await;
    assert_eq!(published.status, 200, "{}", published.text());
    assert_eq!(next_text(&mut member).await, "marker", "seed {seed}: a forgery reached the room first");
    eprintln!("forgery model: {} through the sidecar, {} straight, all refused", counted.0, counted.1);

    sidecar.stop().await;
    upstream.stop().await;
}
