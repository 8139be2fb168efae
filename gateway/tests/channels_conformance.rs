//! One suite for both brokers: each test runs on one gateway with the in-memory broker, on two
//! gateways with one real `redis-server`, and on two gateways with a real three-primary Redis
//! Cluster (sharded pub/sub), and asserts what a room's clients see. Each is a way a
//! subscriber once lost publications silently (issue 22).

mod common;

use std::collections::HashSet;

use common::cluster::{Broker, Cluster};
use common::room::{Member, Seen, publish, room_items};
use common::*;
use tokio_tungstenite::tungstenite::Message;

/// Each test, once per broker.
macro_rules! both_brokers {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() { super::$name(super::Broker::Memory).await })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() { super::$name(super::Broker::Redis).await })*
        }
        mod redis_cluster {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() { super::$name(super::Broker::RedisCluster).await })*
        }
    };
}

both_brokers!(
    a_publication_larger_than_the_outbox_budget_is_delivered_and_the_next_follows,
    concurrent_publishers_reach_every_subscriber_once_in_position_order,
    clients_that_leave_together_and_come_back_miss_nothing,
    a_slow_recovering_client_is_told_of_a_gap_rather_than_held_for_without_bound,
);

/// Asserts that `seen` is messages at consecutive positions of one epoch, starting after `after`.
fn assert_consecutive(who: &str, seen: &[Seen], after: u64) -> HashSet<String> {
    let mut texts = HashSet::new();
    let mut epoch = None;
    for (expected, s) in (after + 1..).zip(seen) {
        let Seen::Message { text, n, epoch: e } = s else { panic!("{who}: a gap notice in {seen:?}") };
        assert_eq!(*n, expected, "{who}: position {n} where {expected} was due");
        assert!(epoch.get_or_insert(e.clone()) == e, "{who}: another epoch");
        assert!(texts.insert(text.clone()), "{who}: {text} twice");
    }
    texts
}

/// A publication larger than the outbox's budget (32 KiB) but within `--max-message-size`
/// (64 KiB) reaches the client, and what follows it is not stuck behind it.
async fn a_publication_larger_than_the_outbox_budget_is_delivered_and_the_next_follows(broker: Broker) {
    let cluster = Cluster::start(broker, &[]).await;
    let mut ada = Member::join(cluster.addr(0), "room=lobby&name=ada").await;
    let mut bob = Member::join(cluster.addr(1), "room=lobby&name=bob").await;
    let large = "x".repeat(40_000);
    for text in ["small-1", large.as_str(), "small-2"] {
        let reply = publish(cluster.admin(0), room_items("lobby", &[text.to_owned()], "")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    for member in [&mut ada, &mut bob] {
        let got = member.texts(3).await;
        assert_eq!(got[0], "small-1");
        assert_eq!(got[1].len(), 40_000, "the large one, whole");
        assert_eq!(got[2], "small-2");
    }
    // The built-in app echoes a message of that size, and what follows it.
    let (mut ws, _) =
        within("connect /ws", tokio_tungstenite::connect_async(format!("ws://{}/ws", cluster.addr(0))))
            .await
            .expect("accepted");
    send(&mut ws, Message::text(large.clone())).await;
    send(&mut ws, Message::text("after")).await;
    assert_eq!(next_data(&mut ws).await, Message::text(large));
    assert_eq!(next_data(&mut ws).await, Message::text("after"));
}

/// Thirty-two publishers at once (through each gateway's publish API and through the room itself):
/// every subscriber gets every publication once, at consecutive positions; one that comes back
/// with a position from the middle gets the rest the same way.
async fn concurrent_publishers_reach_every_subscriber_once_in_position_order(broker: Broker) {
    const PUBLISHERS: usize = 32;
    const EACH: usize = 40;
    let cluster = Cluster::start(broker, &[]).await;
    let mut members = Vec::new();
    for i in 0..4 {
        members.push(Member::join(cluster.addr(i), &format!("room=busy&name=m{i}")).await);
    }
    let mut speakers = Vec::new();
    for i in 0..2 {
        speakers.push(Member::join(cluster.addr(i), &format!("room=busy&name=s{i}")).await);
    }
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS - 2 {
        let admin = cluster.admin(p);
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                let reply = publish(admin, room_items("busy", &[format!("p{p}-{i}")], "")).await;
                assert_eq!(reply.status, 200, "{}", reply.text());
            }
            None
        }));
    }
    for (s, mut speaker) in speakers.into_iter().enumerate() {
        // Kept open to the end: what a client said is published once its connection's turn comes.
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                send(&mut speaker.ws, Message::text(format!("s{s}-{i}"))).await;
            }
            Some(speaker)
        }));
    }
    for task in tasks {
        drop(task.await.unwrap());
    }
    // Once everything is published, an end marker: each reads up to it.
    common::eventually("the speakers' messages are all published", async || {
        let m = Metrics::parse(&request(cluster.admin(0), "GET", "/metrics", &[]).await.text());
        let n = Metrics::parse(&request(cluster.admin(1), "GET", "/metrics", &[]).await.text());
        let published = |m: &Metrics| m.get("sidestream_published_items_total");
        published(&m) + if cluster.gateways.len() > 1 { published(&n) } else { 0.0 }
            >= (PUBLISHERS * EACH) as f64
    })
    .await;
    assert_eq!(publish(cluster.admin(0), room_items("busy", &["end".into()], "")).await.status, 200);
    let total = PUBLISHERS * EACH;
    let mut first = None;
    for (i, member) in members.iter_mut().enumerate() {
        let mut seen = Vec::new();
        while seen.last().is_none_or(|s| !matches!(s, Seen::Message { text, .. } if text == "end")) {
            seen.extend(member.seen(1).await);
        }
        seen.pop();
        let Seen::Message { n, .. } = &seen[0] else { panic!("a gap first") };
        let texts = assert_consecutive(&format!("m{i}"), &seen, n - 1);
        assert_eq!(texts.len(), total);
        first.get_or_insert(seen);
    }
    let first = first.unwrap();
    let middle = first[total / 2].position().unwrap();
    let mut back = Member::join(cluster.addr(1), &format!("room=busy&name=back&last={middle}")).await;
    let rest = back.seen(total - total / 2 - 1).await;
    assert_eq!(rest, first[total / 2 + 1..], "the rest, from the history, exactly");
}

/// Ten clients of one room on one gateway leave together (the gateway stops wanting the channel)
/// and come back together with their last positions, while a publisher posts steadily; in every
/// round each gets everything after its position, once, in order.
async fn clients_that_leave_together_and_come_back_miss_nothing(broker: Broker) {
    const CLIENTS: usize = 10;
    const ROUNDS: usize = 12;
    let cluster = Cluster::start(broker, &[]).await;
    let admin = cluster.admin(1);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let reply = publish(admin, room_items("again", &[format!("m{i}")], "")).await;
                assert_eq!(reply.status, 200, "{}", reply.text());
                i += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            i
        })
    };
    // Each client's last position, from what it saw before it left.
    let mut lasts: Vec<Option<String>> = vec![None; CLIENTS];
    for round in 0..ROUNDS {
        let queries: Vec<String> = lasts
            .iter()
            .enumerate()
            .map(|(c, last)| match last {
                Some(last) => format!("room=again&name=c{c}&last={last}"),
                None => format!("room=again&name=c{c}"),
            })
            .collect();
        let joins = queries.iter().map(|query| Member::join(cluster.addr(0), query));
        let mut members = futures_util::future::join_all(joins).await;
        for (c, member) in members.iter_mut().enumerate() {
            let seen = member.seen(15).await;
            let after = match &lasts[c] {
                Some(last) => last.split_once('.').unwrap().0.parse().unwrap(),
                None => match &seen[0] {
                    Seen::Message { n, .. } => n - 1,
                    Seen::Gap => panic!("c{c}: a gap on joining"),
                },
            };
            assert_consecutive(&format!("c{c} in round {round}"), &seen, after);
            lasts[c] = seen.last().and_then(Seen::position);
        }
        drop(members);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(publisher.await.unwrap() > 0);
}

/// A client that comes back with an old position and reads slowly while the channel is busy:
/// the live publications held back for it are bounded. It gets the history in order, then a gap
/// notice for what could not be held, then only what is newer.
async fn a_slow_recovering_client_is_told_of_a_gap_rather_than_held_for_without_bound(broker: Broker) {
    let cluster = Cluster::start(broker, &["--history-size", "5000"]).await;
    let pad = "p".repeat(1000);
    let batch = |from: usize| (from..from + 100).map(|i| format!("{i:05}{pad}")).collect::<Vec<_>>();
    for b in 0..15 {
        assert_eq!(publish(cluster.admin(0), room_items("slow", &batch(b * 100), "")).await.status, 200);
    }
    let mut probe = Member::join(cluster.addr(0), "room=slow&name=probe").await;
    assert_eq!(publish(cluster.admin(0), room_items("slow", &["mark".into()], "")).await.status, 200);
    let mark = probe.seen(1).await[0].clone();
    let Seen::Message { epoch, .. } = &mark else { panic!("{mark:?}") };
    // Back from position 1 of 1,501, reading nothing for now: the history does not fit what its
    // socket buffers; 1,500 live publications come meanwhile (more than are held back for it).
    let query = format!("room=slow&name=slow&last=1.{epoch}");
    let mut slow = Member::join_slow(cluster.addr(1), &query).await;
    for b in 15..30 {
        assert_eq!(publish(cluster.admin(0), room_items("slow", &batch(b * 100), "")).await.status, 200);
    }
    // It reads: the history in order, one gap notice; then what is published next.
    let mut previous = 1;
    loop {
        match &slow.seen(1).await[0] {
            Seen::Gap => break,
            Seen::Message { n, .. } => {
                assert_eq!(*n, previous + 1, "the history, in order");
                previous = *n;
            }
        }
    }
    assert!(previous >= 1501, "the whole history came before the gap notice: {previous}");
    assert_eq!(publish(cluster.admin(0), room_items("slow", &["last".into()], "")).await.status, 200);
    loop {
        match &slow.seen(1).await[0] {
            Seen::Gap => panic!("a second gap notice"),
            Seen::Message { text, n, .. } => {
                assert!(*n > previous, "{n} after {previous}: nothing older after the gap notice");
                previous = *n;
                if text == "last" {
                    break;
                }
            }
        }
    }
}
