//! Faults while traffic flows: the upstream dies mid-stream and comes back. (SIGTERM with 1,000
//! clients is in `cli.rs`; a trapping component in `host.rs`.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use common::*;
use sidestream_gateway::Config;
use tokio_tungstenite::tungstenite::Message;

/// An embedded-host gateway on a fixed address, to play the Spin runtime upstream.
async fn upstream_on(addr: &str) -> TestGateway {
    let component = component();
    let args = [
        "gw",
        "--listen",
        addr,
        "--admin-listen",
        "127.0.0.1:0",
        "--no-push",
        "--component",
        component.to_str().unwrap(),
    ];
    TestGateway::with_config(Config::try_parse_from(args).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_killed_during_traffic_and_brought_back() {
    let upstream = upstream_on("127.0.0.1:0").await;
    let upstream_addr = upstream.addr.to_string();
    let front = TestGateway::start(&["--upstream", &format!("http://{upstream_addr}"), "--no-push"]).await;
    let addr = front.addr;
    eventually("ready", async || front.admin("/readyz").await.status == 200).await;

    // Steady page traffic and a WebSocket conversation while the upstream goes away and returns.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let reply = request(addr, "GET", "/health", &[]).await;
                statuses.push(reply.status);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            statuses
        })
    };
    let mut ws = front.ws("/ws").await;
    let mut talk = async |i: usize| {
        send(&mut ws, Message::text(format!("m{i}"))).await;
        assert_eq!(next_data(&mut ws).await, Message::text(format!("m{i}")));
    };
    for i in 0..20 {
        talk(i).await;
    }

    upstream.stop().await;
    eventually("502 while the upstream is gone", async || {
        request(addr, "GET", "/health", &[]).await.status == 502
    })
    .await;
    eventually("not ready while the upstream is gone", async || front.admin("/readyz").await.status == 503)
        .await;
    assert_eq!(front.admin("/livez").await.status, 200);
    for i in 20..40 {
        talk(i).await; // the WebSocket half never depended on the upstream
    }

    let upstream = upstream_on(&upstream_addr).await;
    eventually("200 once the upstream is back", async || {
        request(addr, "GET", "/health", &[]).await.status == 200
    })
    .await;
    eventually("ready again", async || front.admin("/readyz").await.status == 200).await;
    for i in 40..60 {
        talk(i).await;
    }

    stop.store(true, Ordering::Relaxed);
    let statuses = within("traffic task", traffic).await.unwrap();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 502),
        "only 200 or 502, never a hang or a 5xx of ours"
    );
    assert!(statuses.contains(&502) && statuses.last() == Some(&200), "{statuses:?}");
    let m = front.metrics().await;
    assert!(m.get("sidestream_component_errors_total") >= 1.0);
    front.stop().await;
    upstream.stop().await;
}
