//! The hub's unit tests.
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::*;
use crate::channels::Payload;

fn gap() -> Message {
    Message::text("gap")
}

fn publication(n: u64, text: &str) -> Arc<Publication> {
    Arc::new(Publication {
        channel: "room".into(),
        position: Some(Position::at(n, "e")),
        payload: Payload::Message(Message::text(text)),
        meta: Vec::new(),
    })
}

/// A hub with one subscriber of "room" whose history is read, and what it receives.
fn subscribed() -> (Hub, mpsc::Receiver<Arc<Publication>>) {
    let hub = Hub::new(Arc::new(Metrics::default()));
    let (tx, rx) = Mailbox::new();
    hub.join("room", 1, tx, gap());
    hub.recovered("room", 1, None);
    (hub, rx)
}

fn texts(rx: &mut mpsc::Receiver<Arc<Publication>>) -> Vec<String> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(|p| match &p.payload {
            Payload::Message(m) => m.to_text().unwrap().to_owned(),
            Payload::Close { .. } => "close".into(),
        })
        .collect()
}

#[test]
fn fans_out_once_in_order_and_drops_repeats() {
    let hub = Hub::new(Arc::new(Metrics::default()));
    let (a, mut rx_a) = Mailbox::new();
    let (b, mut rx_b) = Mailbox::new();
    assert!(hub.join("room", 1, a, gap()), "the first subscriber");
    assert!(!hub.join("room", 2, b, gap()));
    hub.recovered("room", 1, None);
    hub.recovered("room", 2, None);
    for (n, text) in [(1, "one"), (2, "two"), (2, "two again"), (1, "old"), (3, "three")] {
        hub.deliver(publication(n, text));
    }
    assert_eq!(texts(&mut rx_a), ["one", "two", "three"]);
    assert_eq!(texts(&mut rx_b), ["one", "two", "three"]);
    assert!(!hub.leave("room", 1));
    assert!(hub.leave("room", 2), "the last one");
    assert!(!hub.has("room"));
    hub.deliver(publication(4, "nobody"));
}

#[test]
fn a_publication_of_another_epoch_comes_after_a_gap_notice() {
    let (hub, mut rx) = subscribed();
    hub.deliver(publication(1, "one"));
    let mut other = (*publication(1, "another history")).clone();
    other.position = Some(Position::at(1, "f"));
    hub.deliver(Arc::new(other));
    hub.deliver(publication(2, "old history again"));
    assert_eq!(texts(&mut rx), ["one", "gap", "another history", "gap", "old history again"]);
}

#[test]
fn a_live_publication_past_the_next_position_is_a_skip() {
    let hub = Hub::new(Arc::new(Metrics::default()));
    let (tx, _rx) = Mailbox::new();
    hub.join("room", 1, tx, gap());
    hub.recovered("room", 1, None);
    assert!(!hub.skips(&publication(5, "first")), "nothing delivered yet: no skip to see");
    hub.deliver(publication(5, "first"));
    assert!(!hub.skips(&publication(6, "next")));
    assert!(hub.skips(&publication(8, "two missing")));
    let mut other = (*publication(9, "another epoch")).clone();
    other.position = Some(Position::at(9, "f"));
    assert!(!hub.skips(&other), "another epoch is a gap notice, not a recovery");
}

#[test]
fn a_second_loss_during_a_recovery_holds_the_live_ones_until_both_recoveries_are_done() {
    let (hub, mut rx) = subscribed();
    hub.deliver(publication(1, "one"));
    hub.suspend("room");
    hub.suspend("room");
    // The first recovery ends; publication 3 arrives live but 2 was lost the second time.
    hub.resume("room", Vec::new());
    hub.deliver(publication(3, "three"));
    assert_eq!(texts(&mut rx), ["one"], "still held: the second recovery reads from 1");
    hub.resume("room", vec![publication(2, "two")]);
    assert_eq!(texts(&mut rx), ["two", "three"]);
}

#[test]
fn a_recovering_subscriber_gets_what_was_held_back_after_its_history_without_repeats() {
    let hub = Hub::new(Arc::new(Metrics::default()));
    let (tx, mut rx) = Mailbox::new();
    hub.join("room", 1, tx.clone(), gap());
    hub.deliver(publication(5, "live 5"));
    hub.deliver(publication(6, "live 6"));
    assert!(texts(&mut rx).is_empty(), "held back while the history is read");
    // The history (delivered by the recovery itself) reached 5.
    tx.tx.try_send(publication(4, "history 4")).unwrap();
    tx.tx.try_send(publication(5, "history 5")).unwrap();
    hub.recovered("room", 1, Some(Position::at(5, "e")));
    hub.deliver(publication(7, "live 7"));
    assert_eq!(texts(&mut rx), ["history 4", "history 5", "live 6", "live 7"]);
}

#[test]
fn a_channel_recovering_after_a_reconnect_keeps_its_order() {
    let (hub, mut rx) = subscribed();
    hub.deliver(publication(1, "one"));
    hub.suspend("room");
    hub.deliver(publication(4, "live 4"));
    hub.resume(
        "room",
        vec![publication(2, "missed 2"), publication(3, "missed 3"), publication(4, "missed 4")],
    );
    hub.deliver(publication(5, "five"));
    assert_eq!(texts(&mut rx), ["one", "missed 2", "missed 3", "missed 4", "five"]);
}

#[test]
fn a_channel_that_held_back_too_much_while_recovering_tells_of_the_gap_before_what_follows() {
    let (hub, mut rx) = subscribed();
    hub.deliver(publication(1, "one"));
    hub.suspend("room");
    for n in 2..=HELD as u64 + 2 {
        hub.deliver(publication(n, "dropped or held"));
    }
    hub.deliver(publication(HELD as u64 + 3, "held"));
    hub.resume("room", vec![publication(2, "missed")]);
    let got = texts(&mut rx);
    assert_eq!(got[..3], ["one", "missed", "gap"], "{got:?}");
    assert_eq!(got.last().map(String::as_str), Some("held"));
}

#[test]
fn a_full_mailbox_drops_and_counts() {
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(metrics.clone());
    let (tx, mut rx) = mpsc::channel(2);
    let mailbox = Mailbox { tx, lost: Arc::new(AtomicBool::new(false)), bytes: Default::default() };
    hub.join("room", 1, mailbox.clone(), gap());
    hub.recovered("room", 1, None);
    for n in 1..=5 {
        hub.deliver(publication(n, "x"));
    }
    assert_eq!(texts(&mut rx), ["x", "x"]);
    assert_eq!(metrics.publications_dropped.get(), 3);
    // Its connection has room again and asks: the gap notice comes before anything newer.
    assert!(mailbox.lost.swap(false, Ordering::AcqRel));
    hub.tell_lost(1, ["room".to_owned()].iter());
    hub.deliver(publication(6, "six"));
    assert_eq!(texts(&mut rx), ["gap", "six"]);
}

#[test]
fn a_mailbox_holds_at_most_its_bytes_and_an_empty_one_takes_any_publication() {
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(metrics.clone());
    let (mailbox, mut rx) = Mailbox::new();
    hub.join("room", 1, mailbox.clone(), gap());
    hub.recovered("room", 1, None);
    let big = "x".repeat(MAILBOX_BYTES / 2 + 1);
    for n in 1..=3 {
        hub.deliver(publication(n, &big));
    }
    // The first fits the empty mailbox; the second would take it past its bytes, so the
    // subscriber is lost; its gap notice goes in before the third, which does not fit either.
    let held = mailbox.bytes.load(Ordering::Relaxed);
    assert_eq!(texts(&mut rx), [big.as_str(), "gap"]);
    assert_eq!(metrics.publications_dropped.get(), 2);
    assert_eq!(held, big.len() + "gap".len(), "what is in it, until its connection reads it");
}

#[test]
fn a_lost_subscriber_is_told_before_the_next_publication_even_unasked() {
    let hub = Hub::new(Arc::new(Metrics::default()));
    let (tx, mut rx) = mpsc::channel(2);
    let mailbox = Mailbox { tx, lost: Arc::new(AtomicBool::new(false)), bytes: Default::default() };
    hub.join("room", 1, mailbox, gap());
    hub.recovered("room", 1, None);
    for (n, text) in [(1, "one"), (2, "two"), (3, "three")] {
        hub.deliver(publication(n, text));
    }
    assert_eq!(texts(&mut rx), ["one", "two"]);
    hub.deliver(publication(4, "four"));
    assert_eq!(texts(&mut rx), ["gap", "four"]);
}

#[test]
fn a_starting_subscriber_holds_a_bounded_number_then_is_told_of_the_gap() {
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(metrics.clone());
    let (tx, mut rx) = Mailbox::new();
    hub.join("room", 1, tx, gap());
    for n in 1..=HELD as u64 + 10 {
        hub.deliver(publication(n, "held"));
    }
    assert_eq!(metrics.publications_dropped.get(), HELD as u64 + 10);
    hub.recovered("room", 1, None);
    hub.deliver(publication(HELD as u64 + 11, "live"));
    assert_eq!(texts(&mut rx), ["gap", "live"]);
}

/// Publication `n` of history `tag`: Redis's positions carry the publication's tag.
fn tagged(n: u64, tag: &str) -> Arc<Publication> {
    let mut p = (*publication(n, &format!("{tag}{n}"))).clone();
    p.position = Some(Position { n, epoch: "e".into(), tag: Some(format!("{tag}{n}")) });
    Arc::new(p)
}

#[test]
fn a_publication_where_another_was_delivered_comes_after_a_gap_notice_not_dropped() {
    // A dying primary delivered 3 and 4 (never replicated); the promoted replica numbers its own
    // 3 and 4: each subscriber that saw the first ones is told, then gets the new ones.
    let (hub, mut rx) = subscribed();
    for p in [tagged(1, "a"), tagged(2, "a"), tagged(3, "dead"), tagged(4, "dead")] {
        hub.deliver(p);
    }
    hub.deliver(tagged(2, "a"));
    assert_eq!(texts(&mut rx), ["a1", "a2", "dead3", "dead4"], "a true repeat is dropped");
    hub.deliver(tagged(3, "b"));
    hub.deliver(tagged(4, "dead"));
    hub.deliver(tagged(4, "b"));
    assert_eq!(texts(&mut rx), ["gap", "b3", "b4"], "a late copy of the dead history goes nowhere");
    assert_eq!(
        hub.metrics().channel_divergences.get(),
        1,
        "one divergence counted; repeats and late copies are not"
    );
    assert_eq!(hub.interest()[0].1, tagged(4, "b").position.clone(), "recovered from the new history");
}

#[test]
fn a_subscriber_that_started_on_the_new_history_gets_no_repeat_and_no_dead_one() {
    let hub = Hub::new(Arc::new(Metrics::default()));
    let (a, mut rx_a) = Mailbox::new();
    hub.join("room", 1, a, gap());
    hub.recovered("room", 1, None);
    let (b, mut rx_b) = Mailbox::new();
    hub.join("room", 2, b.clone(), gap());
    hub.deliver(tagged(1, "dead"));
    hub.deliver(tagged(1, "new"));
    // The starting one read the new history itself.
    b.tx.try_send(tagged(1, "new")).unwrap();
    hub.recovered("room", 2, tagged(1, "new").position.clone());
    hub.deliver(tagged(2, "new"));
    assert_eq!(texts(&mut rx_a), ["dead1", "gap", "new1", "new2"]);
    assert_eq!(texts(&mut rx_b), ["new1", "new2"]);
}

#[test]
fn a_divergence_at_an_older_position_tells_those_given_the_dead_ones_after_it() {
    // It was given the dead 2 and 3; the new history's 2 replaces both.
    let (hub, mut rx) = subscribed();
    hub.deliver(tagged(1, "a"));
    hub.deliver(tagged(2, "dead"));
    hub.deliver(tagged(3, "dead"));
    hub.deliver(tagged(2, "b"));
    hub.deliver(tagged(3, "b"));
    hub.deliver(tagged(4, "b"));
    assert_eq!(texts(&mut rx), ["a1", "dead2", "dead3", "gap", "b2", "b3", "b4"]);
    assert_eq!(hub.metrics().channel_divergences.get(), 1);
}
