//! What the channels keep is bounded, and what they still owe is not thrown away: the in-memory
//! broker forgets channels beyond its bound (oldest first, counted, and a client that comes back
//! to one is told of the gap), and a gateway whose drain runs out of time leaves its connections
//! to a reaper rather than deleting their records (issue 22).

mod common;

use std::collections::HashSet;

use common::process::spawn;
use common::recorder::{AppRecorder, Script};
use common::redis::Redis;
use common::room::{Member, Seen, publish, room_items};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_memory_broker_keeps_a_bounded_number_of_channels_and_forgets_the_oldest() {
    const MAX: usize = 100_000;
    let gateway = spawn(&["--no-push"]).await;
    assert_eq!(publish(gateway.admin, room_items("first", &["one".into()], "")).await.status, 200);
    let mut probe = Member::join(gateway.addr, "room=first&name=probe").await;
    assert_eq!(publish(gateway.admin, room_items("first", &["two".into()], "")).await.status, 200);
    let two = probe.seen(1).await[0].position().unwrap();
    drop(probe);
    // As many more channels as the broker keeps, a thousand items to a body.
    for batch in 0..MAX / 1000 {
        let items: Vec<_> = (0..1000)
            .map(|i| json!({"channel": format!("c{batch}-{i}"), "formats": {"ws-message": {"content": "x"}}}))
            .collect();
        let reply = publish(gateway.admin, json!({ "items": items }).to_string()).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let metrics = Metrics::parse(&request(gateway.admin, "GET", "/metrics", &[]).await.text());
    assert_eq!(metrics.get("sidestream_channels_evicted_total"), 1.0, "the oldest, and only it");
    let mut back = Member::join(gateway.addr, &format!("room=first&name=back&last={two}")).await;
    assert_eq!(back.seen(1).await, [Seen::Gap], "told, not silent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_that_runs_out_of_time_leaves_its_connections_to_a_reaper() {
    let redis = Redis::start().await;
    // The app fails the first three attempts at a connection's last event: the draining gateway,
    // which waits two seconds before its second, runs out of its one second of drain; the
    // reaper, which retries at once, gets it through.
    let mut app = AppRecorder::start(Script { last_fails: 3, ..Script::default() }).await;
    let upstream = format!("http://{}", app.addr);
    let url = redis.url();
    let common = ["--no-push", "--upstream", &upstream, "--lease", "2s", "--redis", &url];
    let a = spawn(&[&common[..], &["--drain-timeout", "1s", "--app-retry-delay", "2s"]].concat()).await;
    let b = spawn(&[&common[..], &["--app-retry-delay", "20ms"]].concat()).await;
    let (_ws, _) = within("connect to A", tokio_tungstenite::connect_async(format!("ws://{}/chat", a.addr)))
        .await
        .expect("accepted");
    let id = app.next_with("OPEN").await.headers["connection-id"].to_str().unwrap().to_owned();
    eventually("A's connection is recorded", async || {
        let keys = redis.command("KEYS sidestream:gw:*:conns").await;
        keys.lines().any(|l| l.starts_with("sidestream:gw:"))
    })
    .await;

    a.signal("-TERM");
    let mut a = a;
    within("A exits after its drain", a.child.wait()).await.unwrap();
    let log = within("A's log", a.log).await.unwrap();

    // B reaps A once its lease has run out, and delivers the DISCONNECT A could not.
    let mut attempts = HashSet::new();
    loop {
        let seen = app.next_with("DISCONNECT").await;
        assert_eq!(seen.headers["connection-id"].to_str().unwrap(), id);
        let attempt = seen.headers.get("sidestream-attempt").map(|v| v.to_str().unwrap().to_owned());
        attempts.insert(attempt.clone());
        if attempt.as_deref() == Some("4") {
            break;
        }
    }
    eventually("B counts it delivered", async || {
        let m = Metrics::parse(&request(b.admin, "GET", "/metrics", &[]).await.text());
        m.get("sidestream_connections_reaped_total") == 1.0
            && m.get(r#"sidestream_app_last_events_total{event="disconnect",result="delivered"}"#) == 1.0
    })
    .await;
    assert!(log.contains("left to a reaper"), "A said why it left them: {log}");
}
