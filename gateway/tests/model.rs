//! The channels' guarantee, checked against a model ([`common::model`]) under a random workload
//! ([`common::workload`]) on real gateway processes: the in-memory broker, and two gateways on one
//! real `redis-server`, with ghosts ([`common::ghost`]: the history diverging under its
//! subscribers, as a Redis Cluster failover can make it) and without. Each run prints its seed;
//! `SIDESTREAM_MODEL_SEED=N` replays its choices.
//! `make soak` runs the same workload longer with faults (the ignored test below).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::cluster::{Broker, Cluster};
use common::model::{Event, History, Session, Verdict, check};
use common::redis::Redis;
use common::redis_cluster::RedisCluster;
use common::workload::{self, Manner, Plan, Shared, Targets};
use common::{ghost, soak};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const PLAN: Plan = Plan { rooms: 4, api_publishers: 3, speakers: 2, subscribers: 12, max_message: 64 * 1024 };

/// Generous history, so that the end's audit reads every publication of the run.
const ARGS: &[&str] = &["--history-size", "100000"];

fn seed() -> u64 {
    std::env::var("SIDESTREAM_MODEL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_memory_broker_keeps_the_model() {
    let cluster = Cluster::start(Broker::Memory, ARGS).await;
    let verdict = run("memory", cluster, Duration::from_secs(20), Faults::None).await;
    assert_verdict(&verdict, false);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_on_redis_keep_the_model() {
    let cluster = Cluster::start(Broker::Redis, ARGS).await;
    let verdict = run("redis", cluster, Duration::from_secs(20), Faults::None).await;
    assert_verdict(&verdict, false);
}

/// Ghosts: publications delivered that the history never holds, at the position its next
/// publication takes. Each subscriber given one gets its gap notice before the history's
/// publication there, never a silent drop of it.
#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_on_redis_tell_of_a_history_that_diverged() {
    let cluster = Cluster::start(Broker::Redis, ARGS).await;
    let verdict = run("redis with ghosts", cluster, Duration::from_secs(20), Faults::Ghosts).await;
    assert_verdict(&verdict, true);
    assert!(verdict.gaps > 0, "the ghosts were delivered: {verdict:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_on_a_redis_cluster_keep_the_model() {
    let cluster = Cluster::start(Broker::RedisCluster, ARGS).await;
    let verdict = run("redis cluster", cluster, Duration::from_secs(20), Faults::None).await;
    assert_verdict(&verdict, false);
}

/// `make soak`: the workload on Redis with faults, for `SIDESTREAM_SOAK_SECONDS` (600).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "long: run by make soak"]
async fn soak_redis_with_faults() {
    let seconds = std::env::var("SIDESTREAM_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let redis = Redis::durable().await;
    // The run outlasts the default --history-ttl (10 minutes): the audit reads it all at the end.
    let args = [ARGS, &["--lease", "3s", "--history-ttl", "2h"]].concat();
    let cluster = Cluster::on(Some(redis), &args).await;
    let verdict = run("redis with faults", cluster, Duration::from_secs(seconds), Faults::Soak).await;
    assert_verdict(&verdict, true);
}

/// `make soak` on a Redis Cluster (a replica per primary, publishes answered once the replica has
/// them): gateways SIGKILLed, primaries SIGKILLed (their replicas promoted, the dead ones back as
/// replicas), graceful failovers, the gateways' sharded subscriptions killed, ghosts.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "long: run by make soak"]
async fn soak_redis_cluster_with_faults() {
    let seconds = std::env::var("SIDESTREAM_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let shards = RedisCluster::start(true).await;
    let args = [ARGS, &["--lease", "3s", "--history-ttl", "2h", "--redis-wait-replicas", "1"]].concat();
    let cluster = Cluster::on_cluster(shards, &args).await;
    let verdict = run("redis cluster with faults", cluster, Duration::from_secs(seconds), Faults::Soak).await;
    assert_verdict(&verdict, true);
}

fn assert_verdict(verdict: &Verdict, faults: bool) {
    for violation in verdict.violations.iter().take(30) {
        eprintln!("violation: {violation}");
    }
    eprintln!("violations by kind: {:?}", verdict.kinds);
    assert!(verdict.violations.is_empty(), "{} violations of the model", verdict.violations.len());
    assert!(verdict.published_ok > 100 && verdict.messages > 1000, "the workload ran: {verdict:?}");
    if !faults {
        assert_eq!(verdict.prompt_gaps, 0, "a prompt reader was told of a gap with no fault injected");
    }
}

/// What goes wrong during a run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Faults {
    None,
    /// Ghosts only, every 0.2 to 1.5 s.
    Ghosts,
    /// `make soak`'s faults, every 8 to 20 s.
    Soak,
}

/// Runs the workload on `cluster` for `length` (with `faults`), ends it, audits each room's
/// history and checks everything against the model.
async fn run(name: &str, mut cluster: Cluster, length: Duration, faults: Faults) -> Verdict {
    let seed = seed();
    eprintln!("model {name}: seed {seed} (replay with SIDESTREAM_MODEL_SEED={seed})");
    let mut rng = SmallRng::seed_from_u64(seed);
    let targets: Targets = Arc::new(RwLock::new(cluster.targets()));
    let shared = Shared::new(targets.clone());
    let mut publishers = Vec::new();
    for id in 0..PLAN.api_publishers {
        publishers.push(tokio::spawn(workload::api_publisher(shared.clone(), PLAN, id, rng.random())));
    }
    let mut readers = Vec::new();
    for id in 0..PLAN.speakers {
        let room = workload::room(rng.random_range(0..PLAN.rooms));
        readers.push(tokio::spawn(workload::speaker(shared.clone(), room, format!("k{id}"), rng.random())));
    }
    for id in 0..PLAN.subscribers {
        let room = workload::room(id % PLAN.rooms);
        let manner = Manner { slow: id % 4 == 3, leaves: id % 2 == 0 };
        let task = workload::subscriber(shared.clone(), (room, format!("s{id}")), manner, None, rng.random());
        readers.push(tokio::spawn(task));
    }
    let faults_seen = match faults {
        Faults::None => {
            tokio::time::sleep(length).await;
            0
        }
        Faults::Ghosts => ghost::haunt_for(&cluster, PLAN.rooms, length, &mut rng).await,
        Faults::Soak => soak::inject_faults((&mut cluster, PLAN.rooms), &targets, length, &mut rng).await,
    };
    shared.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for publisher in publishers {
        publisher.await.unwrap();
    }
    end(&shared, readers).await;
    let histories = audit(&shared).await;
    let sessions = shared.sessions.lock().unwrap().clone();
    let published = shared.published.lock().unwrap().clone();
    let verdict = check(&histories, &published, &sessions);
    eprintln!(
        "model {name}: seed {seed}: {} violations; {} faults, {} published (200), {} sessions, {} \
         messages, {} gap notices ({} to prompt readers), refused {:?}",
        verdict.violations.len(),
        faults_seen,
        verdict.published_ok,
        verdict.sessions,
        verdict.messages,
        verdict.gaps,
        verdict.prompt_gaps,
        shared.refused.lock().unwrap(),
    );
    verdict
}

/// Once the speakers have seen their own last message, each room's end marker; then every reader
/// reads on to it.
async fn end(shared: &Arc<Shared>, readers: Vec<tokio::task::JoinHandle<()>>) {
    common::eventually_for("the speakers catch up", Duration::from_secs(40), async || {
        shared.caught_up.load(std::sync::atomic::Ordering::Relaxed) >= PLAN.speakers
    })
    .await;
    for room in 0..PLAN.rooms {
        let room = workload::room(room);
        let body = common::room::room_items(&room, &[workload::end_marker(&room)], "end-");
        common::eventually_for("the end marker is published", Duration::from_secs(60), async || {
            let (_, admin) = shared.targets.read().unwrap()[0];
            workload::post(admin, body.clone()).await == Some(200)
        })
        .await;
    }
    for reader in readers {
        tokio::time::timeout(Duration::from_secs(90), reader).await.expect("readers end").unwrap();
    }
}

/// Each room's history, read by a client that comes back with position 0 of the room's epoch.
async fn audit(shared: &Arc<Shared>) -> HashMap<String, History> {
    // Each room's newest epoch: that of its highest position seen (positions go on across a
    // Redis Cluster's new epoch, and start again only when Redis lost the history).
    let mut newest: HashMap<String, (u64, String)> = HashMap::new();
    for session in shared.sessions.lock().unwrap().iter() {
        for event in &session.events {
            if let Event::Message { n, epoch, .. } = event {
                let entry = newest.entry(session.room.clone()).or_insert((*n, epoch.clone()));
                if *n >= entry.0 {
                    *entry = (*n, epoch.clone());
                }
            }
        }
    }
    let epochs: HashMap<String, String> =
        newest.into_iter().map(|(room, (_, epoch))| (room, epoch)).collect();
    let auditors = Shared::new(shared.targets.clone());
    auditors.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut histories = HashMap::new();
    for (room, epoch) in epochs {
        let manner = Manner { slow: false, leaves: false };
        let since = Some((0, epoch.clone()));
        workload::subscriber(auditors.clone(), (room.clone(), "auditor".into()), manner, since, 0).await;
        let session: Session = auditors.sessions.lock().unwrap().pop().expect("the auditor's session");
        let mut history = History { epoch, ..History::default() };
        for event in session.events {
            if let Event::Message { n, epoch, text } = event
                && epoch == history.epoch
            {
                history.texts.insert(n, text);
            }
        }
        eprintln!(
            "audit {room}: epoch {}, {} texts, from {:?} to {:?}",
            history.epoch,
            history.texts.len(),
            history.texts.keys().next(),
            history.texts.keys().next_back()
        );
        histories.insert(room, history);
    }
    histories
}

/// The model itself finds what it is there to find: a hole without a gap notice, a repeat, an
/// older one, a session that stops short of the end, a publication answered 200 and lost.
#[test]
fn the_model_finds_holes_repeats_reorders_short_streams_and_losses() {
    use common::model::Published;
    let history = History { epoch: "e".into(), texts: (1..=4).map(|n| (n, format!("t{n}"))).collect() };
    let histories = HashMap::from([("r".to_owned(), history)]);
    let m = |n: u64| Event::Message { n, epoch: "e".into(), text: format!("t{n}") };
    let session = |events: Vec<Event>| Session {
        who: "s".into(),
        room: "r".into(),
        events,
        to_the_end: true,
        ..Session::default()
    };
    let fine = [
        session(vec![m(1), m(2), m(3), m(4)]),
        session(vec![m(1), Event::Gap, m(4)]),
        session(vec![m(3), m(4)]),
    ];
    let verdict = check(&histories, &[], &fine);
    assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
    for (events, why) in [
        (vec![m(1), m(3), m(4)], "with no gap notice between"),
        (vec![m(1), m(2), m(2), m(3), m(4)], "a repeat or older"),
        (vec![m(2), m(1), m(3), m(4)], "a repeat or older"),
        (vec![m(1), Event::Gap, m(3), m(2), m(4)], "a repeat or older"),
        (vec![m(1), m(2)], "before the end"),
        (
            vec![Event::Message { n: 2, epoch: "e".into(), text: "other".into() }, m(3), m(4)],
            "the history has another",
        ),
    ] {
        // "other" was answered 200: not a ghost.
        let other = [Published { room: "r".into(), text: "other".into(), ok: Some(true) }];
        let verdict = check(&histories, &other, &[session(events.clone())]);
        assert!(verdict.violations.iter().any(|v| v.contains(why)), "{events:?}: {:?}", verdict.violations);
    }
    // Across a new epoch (the history kept, relabeled): earlier messages hold the history's text,
    // or were never answered 200; the crossing comes after a gap notice.
    let old = |n: u64, text: &str| Event::Message { n, epoch: "d".into(), text: text.into() };
    let refused = [Published { room: "r".into(), text: "x3".into(), ok: Some(false) }];
    let across = [session(vec![old(1, "t1"), old(2, "t2"), old(3, "x3"), Event::Gap, m(3), m(4)])];
    let verdict = check(&histories, &refused, &across);
    assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
    let answered = [Published { room: "r".into(), text: "x3".into(), ok: Some(true) }];
    let verdict = check(&histories, &answered, &across);
    assert!(
        verdict.violations.iter().any(|v| v.contains("not in the history there")),
        "{:?}",
        verdict.violations
    );
    let unsaid = [session(vec![old(1, "t1"), old(2, "t2"), m(3), m(4)])];
    let verdict = check(&histories, &[], &unsaid);
    assert!(verdict.violations.iter().any(|v| v.contains("another epoch")), "{:?}", verdict.violations);
    // A ghost (never answered 200, another text at a position of the history) comes in order;
    // the history's publication at or before its position comes after it only after a gap notice.
    let ghost = |n: u64| Event::Message { n, epoch: "e".into(), text: format!("ghost{n}") };
    let told = [session(vec![m(1), ghost(2), Event::Gap, m(2), m(3), m(4)])];
    let verdict = check(&histories, &[], &told);
    assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
    for (events, why) in [
        (vec![m(1), ghost(2), m(3), m(4)], "with no gap notice between"),
        (vec![m(1), ghost(2), m(2), m(3), m(4)], "another history's without a gap notice"),
        (vec![m(1), ghost(2), ghost(3), Event::Gap, m(2), m(3), m(4)], ""),
    ] {
        let verdict = check(&histories, &[], &[session(events.clone())]);
        assert_eq!(
            verdict.violations.iter().any(|v| v.contains(why)),
            !why.is_empty(),
            "{events:?}: {:?}",
            verdict.violations
        );
    }
    let back = Session {
        since: Some((2, "e".into())),
        since_text: Some("ghost2".into()),
        ..session(vec![m(2), m(3), m(4)])
    };
    let verdict = check(&histories, &[], &[back]);
    assert!(
        verdict.violations.iter().any(|v| v.contains("without a gap notice")),
        "came back at a ghost: {:?}",
        verdict.violations
    );
    let lost = [Published { room: "r".into(), text: "t5".into(), ok: Some(true) }];
    let verdict = check(&histories, &lost, &[]);
    assert!(verdict.violations.iter().any(|v| v.contains("not in the history")), "{:?}", verdict.violations);
}
