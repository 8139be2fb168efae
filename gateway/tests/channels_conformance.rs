//! One suite for both brokers: each test runs on one gateway with the in-memory broker and on two
//! gateways with one real `redis-server`, and asserts what a room's clients see. Each is a way a
//! subscriber once lost publications silently (issue 22).

mod common;

use common::cluster::{Broker, Cluster};
use common::room::{Member, publish, room_items};
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
    };
}

both_brokers!(a_publication_larger_than_the_outbox_budget_is_delivered_and_the_next_follows);

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
