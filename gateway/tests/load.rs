//! Correctness under load (a test, not a timing): 500 connections x 200 messages each with pushes
//! on. Every message comes back exactly once, in order, byte-identical; push sequence numbers have
//! no gaps unless the gateway says it dropped pushes; the counters add up.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const CONNECTIONS: usize = 500;
const MESSAGES: usize = 200;

/// What one client saw.
struct Seen {
    echoes: usize,
    pushes: u64,
    gaps: u64,
    sent_bytes: u64,
    push_bytes: u64,
}

async fn client(gw_addr: std::net::SocketAddr, n: usize) -> Seen {
    let (ws, _) =
        within("connect", tokio_tungstenite::connect_async(format!("ws://{gw_addr}/ws"))).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let sent: Vec<Message> = (0..MESSAGES)
        .map(|i| {
            if i % 2 == 0 {
                Message::text(format!("{{\"client\":{n},\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 50)))
            } else {
                Message::binary(format!("{n}:{i}").into_bytes())
            }
        })
        .collect();
    let expected = sent.clone();
    let sent_bytes: u64 = sent.iter().map(|m| m.len() as u64).sum();
    let writer = tokio::spawn(async move {
        for m in sent {
            tx.send(m).await.expect("send");
        }
        tx
    });
    let (mut echoes, mut last_seq, mut pushes, mut gaps, mut push_bytes) = (0usize, 0u64, 0u64, 0u64, 0u64);
    while echoes < MESSAGES {
        let message = within("message under load", rx.next()).await.expect("open").expect("frame");
        if let Message::Text(text) = &message
            && text.starts_with(r#"{"type":"push""#)
        {
            let v: serde_json::Value = serde_json::from_str(text).expect("push JSON");
            let seq = v["seq"].as_u64().unwrap();
            assert!(seq > last_seq, "push seq went backwards: {seq} after {last_seq}");
            gaps += seq - last_seq - 1;
            last_seq = seq;
            pushes += 1;
            push_bytes += text.len() as u64;
            continue;
        }
        if matches!(message, Message::Ping(_) | Message::Pong(_)) {
            continue;
        }
        assert_eq!(message, expected[echoes], "client {n}: echo {echoes} differs or is out of order");
        echoes += 1;
    }
    let mut tx = within("writer", writer).await.unwrap();
    within("close", tx.send(Message::Close(None))).await.unwrap();
    // Count the pushes that were already on their way when we closed.
    while let Ok(Some(Ok(message))) = tokio::time::timeout(STEP, rx.next()).await {
        if let Message::Text(text) = &message
            && text.starts_with(r#"{"type":"push""#)
        {
            let seq = serde_json::from_str::<serde_json::Value>(text).unwrap()["seq"].as_u64().unwrap();
            gaps += seq - last_seq - 1;
            last_seq = seq;
            pushes += 1;
            push_bytes += text.len() as u64;
        }
    }
    Seen { echoes, pushes, gaps, sent_bytes, push_bytes }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_echoed_once_in_order_and_the_counters_add_up() {
    let gw = TestGateway::start(&["--push-min", "5ms", "--push-max", "50ms", "--seed", "1"]).await;
    let clients: Vec<_> = (0..CONNECTIONS).map(|n| tokio::spawn(client(gw.addr, n))).collect();
    let mut seen = Vec::new();
    for c in clients {
        seen.push(tokio::time::timeout(Duration::from_secs(120), c).await.expect("client finishes").unwrap());
    }
    eventually("every connection closed", async || {
        gw.metrics().await.get("sidestream_ws_connections_active") == 0.0
    })
    .await;

    let m = gw.metrics().await;
    let total = (CONNECTIONS * MESSAGES) as f64;
    assert!(seen.iter().all(|s| s.echoes == MESSAGES));
    assert_eq!(m.get("sidestream_ws_connections_total"), CONNECTIONS as f64);
    assert_eq!(m.get("sidestream_ws_messages_received_total"), total);
    assert_eq!(m.get("sidestream_ws_messages_echoed_total"), total);
    let client_bytes: u64 = seen.iter().map(|s| s.sent_bytes).sum();
    let push_bytes: u64 = seen.iter().map(|s| s.push_bytes).sum();
    assert_eq!(m.get("sidestream_ws_received_bytes_total") as u64, client_bytes);
    assert_eq!(m.get("sidestream_ws_sent_bytes_total") as u64, client_bytes + push_bytes, "echoes + pushes");
    let pushes: u64 = seen.iter().map(|s| s.pushes).sum();
    let gaps: u64 = seen.iter().map(|s| s.gaps).sum();
    let dropped = m.get("sidestream_ws_pushes_dropped_total") as u64;
    assert!(pushes > 0, "pushes were on");
    assert!(gaps <= dropped, "{gaps} seq gaps but only {dropped} pushes reported dropped");
    assert_eq!(m.get("sidestream_ws_pushes_sent_total") as u64, pushes, "pushes sent = pushes received");
    assert_eq!(m.get(r#"sidestream_ws_closes_total{by="client",code="1005"}"#), CONNECTIONS as f64);
    assert_eq!(m.get("sidestream_ws_outbox_bytes"), 0.0);
    eprintln!("{CONNECTIONS} connections, {total} echoes, {pushes} pushes, {dropped} dropped");
    gw.stop().await;
}
