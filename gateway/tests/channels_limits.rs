//! What the channels keep is bounded: the in-memory broker forgets channels beyond its bound
//! (oldest first, counted, and a client that comes back to one is told of the gap) (issue 22).

mod common;

use common::process::spawn;
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
