//! What a client can make the gateway hold, on the channel path: a few hundred subscribers of the
//! component's `/room` that never read, during a publish storm through the publish API, cost the
//! real binary at most the documented worst case per connection, while a bystander in the same
//! room receives every publication, in order, with no gap. Run with `cargo test -p
//! sidestream-gateway --test memory_room` (the release component must be built: `make component`).

mod common;

use std::time::Instant;

use common::process::{settled_rss, spawn, status_kib};
use common::room::{Member, Seen, publish, room_items};
use common::{Metrics, STEP, eventually, within};
use futures_util::StreamExt;

const ADVERSARIES: usize = 300;
/// The storm: bodies of `BATCH` publications of about a KiB each, more than a mailbox's 1 MiB
/// (`MAILBOX_BYTES`) behind what the kernel and the outbox take for a client that does not read.
const BATCHES: usize = 20;
const BATCH: usize = 25;
const TEXT: usize = 4000;

/// The documented worst case of one `/room` subscriber that never reads, in the resident memory of
/// the gateway (README, "Memory, on every path"): what it holds of the publications (shared with
/// the other subscribers: one copy each), its outbox and its socket's write buffer.
const ROOM_ADVERSARY_MAX_BYTES: usize = 96 * 1024;

async fn metrics(admin: std::net::SocketAddr) -> Metrics {
    Metrics::parse(&common::request(admin, "GET", "/metrics", &[]).await.text())
}

/// The bystander's next `expected` publications: those texts, at consecutive positions of one
/// epoch after `last`, and no gap notice.
async fn receives_in_order(bystander: &mut Member, expected: &[String], last: &mut Option<(u64, String)>) {
    for (seen, text) in
        within("the bystander's publications", bystander.seen(expected.len())).await.into_iter().zip(expected)
    {
        let Seen::Message { text: got, n, epoch } = seen else { panic!("the bystander was told of a gap") };
        assert_eq!(&got, text, "the bystander's publications in order");
        if let Some((before, old)) = last.as_ref() {
            assert!(n == before + 1 && &epoch == old, "{before}.{old} then {n}.{epoch}: one missing");
        }
        *last = Some((n, epoch));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn room_subscribers_that_never_read_cost_at_most_the_documented_worst_case() {
    let args = ["--max-message-size", "16384", "--socket-buffer", "16384", "--max-connections", "2000"];
    let gateway = spawn(&args).await;
    let pid = gateway.child.id().expect("running");
    let mut bystander = Member::join(gateway.addr, "room=storm&name=bystander").await;
    let before = settled_rss(pid).await;

    let mut held: Vec<Member> = futures_util::stream::iter(0..ADVERSARIES)
        // Subscribers that never read past their welcome, on small receive buffers, so their
        // kernels soak up little.
        .map(|i| async move { Member::join_slow(gateway.addr, &format!("room=storm&name=a{i}")).await })
        .buffer_unordered(16)
        .collect()
        .await;
    let subscribed = (ADVERSARIES + 1) as f64;
    eventually("every adversary subscribed", async || {
        metrics(gateway.admin).await.get("sidestream_channel_subscriptions") >= subscribed
    })
    .await;

    // The storm, each body answered before the next; the bystander reads along.
    let started = Instant::now();
    let mut last = None;
    for batch in 0..BATCHES {
        let texts: Vec<String> =
            (0..BATCH).map(|i| format!("{:0>width$}", batch * BATCH + i, width = TEXT)).collect();
        let reply = within("publish", publish(gateway.admin, room_items("storm", &texts, "s"))).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        receives_in_order(&mut bystander, &texts, &mut last).await;
        assert!(started.elapsed() < STEP * 6, "the storm took over a minute");
    }
    let after = settled_rss(pid).await;
    let peak = status_kib(pid, "VmHWM:") * 1024;
    let dropped = metrics(gateway.admin).await.get("sidestream_publications_dropped_total");
    let per = peak.max(after).saturating_sub(before) / ADVERSARIES;
    eprintln!(
        "/room adversaries: RSS {} -> {} KiB (peak {} KiB), {dropped} publications dropped for them, \
         {per} bytes each; the storm took {:?}",
        before >> 10,
        after >> 10,
        peak >> 10,
        started.elapsed()
    );
    // The adversaries were full: the hub dropped for them (and owes each a gap notice).
    assert!(dropped > 0.0, "the storm never filled an adversary's mailbox");
    // Still the bystander's: one more, live.
    let text = vec!["after".to_owned()];
    assert_eq!(publish(gateway.admin, room_items("storm", &text, "s")).await.status, 200);
    receives_in_order(&mut bystander, &text, &mut last).await;
    // An adversary that reads at last: what its mailbox held, in order, then its gap notice
    // (the rest went past it), then live publications again.
    let mut woken = held.pop().expect("an adversary");
    assert_eq!(woken.welcome["type"], "welcome");
    let mut kept = 0;
    let mut position: Option<(u64, String)> = None;
    loop {
        match within("the woken adversary's next", woken.seen(1)).await.remove(0) {
            Seen::Gap => break,
            Seen::Message { n, epoch, text } => {
                if position.is_none() {
                    assert_eq!(text, format!("{:0>TEXT$}", 0), "an adversary's first is the storm's first");
                }
                if let Some((before, old)) = &position {
                    assert!(
                        n == before + 1 && &epoch == old,
                        "{before}.{old} then {n}.{epoch} before the gap"
                    );
                }
                position = Some((n, epoch));
                kept += 1;
            }
        }
    }
    assert!(kept > 0 && kept < BATCHES * BATCH, "{kept} kept before its gap notice");
    let text = vec!["live again".to_owned()];
    assert_eq!(publish(gateway.admin, room_items("storm", &text, "s")).await.status, 200);
    assert_eq!(woken.texts(1).await, text, "after its gap, live publications");
    receives_in_order(&mut bystander, &text, &mut last).await;
    eprintln!("a woken adversary read {kept} publications, then its gap notice");
    drop(held);
    assert!(
        per <= ROOM_ADVERSARY_MAX_BYTES,
        "{per} bytes per /room adversary: over the documented {ROOM_ADVERSARY_MAX_BYTES}"
    );
}
