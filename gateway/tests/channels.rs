//! Channels across replicas: two gateway processes on one real `redis-server`, the component's
//! `/room` app, the publish API. What a user of a room would notice: messages from either
//! gateway reach everyone in one order, a client that moves recovers what it missed exactly once,
//! the connections of a gateway that is killed are ended for the app by the other, and a Redis
//! that restarts (or drops the gateways' pub/sub connections) loses nothing it answered.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::process::{Spawned, spawn};
use common::recorder::{AppRecorder, Script};
use common::redis::Redis;
use common::room::{publish, room_items};
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Two gateways on one Redis.
async fn pair(redis: &Redis, extra: &[&str]) -> (Spawned, Spawned) {
    let url = redis.url();
    let mut args = vec!["--no-push", "--redis", &url];
    args.extend_from_slice(extra);
    (spawn(&args).await, spawn(&args).await)
}

/// A client in a room: its socket and what it was told when it joined.
struct Member {
    ws: Ws,
    name: String,
}

impl Member {
    async fn join(gateway: SocketAddr, query: &str) -> Member {
        let url = format!("ws://{gateway}/room?{query}");
        let (ws, _) = within("join the room", tokio_tungstenite::connect_async(url)).await.expect("accepted");
        let mut member = Member { ws, name: String::new() };
        let welcome = member.next().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        member.name = welcome["name"].as_str().unwrap().to_owned();
        member
    }

    /// The next JSON message the room sends.
    async fn next(&mut self) -> Value {
        loop {
            match within("a message from the room", self.ws.next()).await {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("JSON"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("{}: no message: {other:?}", self.name),
            }
        }
    }

    /// The texts and positions of the next `n` room messages.
    async fn messages(&mut self, n: usize) -> Vec<(String, Position)> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let message = self.next().await;
            assert_eq!(message["type"], "room", "{}: {message}", self.name);
            got.push((message["text"].as_str().unwrap().to_owned(), Position::of(&message)));
        }
        got
    }

    async fn say(&mut self, text: &str) {
        send(&mut self.ws, Message::text(text)).await;
    }
}

/// A message's position in its channel, `n.epoch`, or `n.epoch.tag` on Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Position {
    n: u64,
    epoch: String,
    tag: Option<String>,
}

impl Position {
    fn of(message: &Value) -> Self {
        let id = message["id"].as_str().expect("an id");
        let mut parts = id.split('.');
        let (n, epoch) = (parts.next().unwrap(), parts.next().expect("n.epoch"));
        Position { n: n.parse().unwrap(), epoch: epoch.to_owned(), tag: parts.next().map(str::to_owned) }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.n, self.epoch)?;
        match &self.tag {
            Some(tag) => write!(f, ".{tag}"),
            None => Ok(()),
        }
    }
}

fn texts(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

/// Asserts that `got` is `expected`, in order, at consecutive positions of one epoch.
fn assert_in_order(who: &str, got: &[(String, Position)], expected: &[String]) {
    let texts: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(texts, expected.iter().map(String::as_str).collect::<Vec<_>>(), "{who}");
    for pair in got.windows(2) {
        let (a, b) = (&pair[0].1, &pair[1].1);
        assert!(b.epoch == a.epoch && b.n == a.n + 1, "{who}: {a} then {b}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_is_said_on_one_gateway_reaches_the_room_on_the_other_in_one_order() {
    let redis = Redis::start().await;
    let (a, b) = pair(&redis, &[]).await;
    let mut ada = Member::join(a.addr, "room=one&name=ada").await;
    let mut bob = Member::join(b.addr, "room=one&name=bob").await;

    // Published on B's admin port: reaches ada on A too.
    assert_eq!(publish(b.admin, room_items("one", &["from the api".into()], "")).await.status, 200);
    let (on_a, on_b) = (ada.messages(1).await, bob.messages(1).await);
    assert_eq!(on_a, on_b);
    assert_eq!(on_a[0].0, "from the api");

    // Said by clients of either gateway: both see both, in the same order, from the right sender.
    ada.say("hello from A").await;
    bob.say("hello from B").await;
    let mut seen = Vec::new();
    for member in [&mut ada, &mut bob] {
        let mut got = Vec::new();
        for _ in 0..2 {
            let m = member.next().await;
            got.push((
                m["from"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().to_owned(),
                m["id"].clone(),
            ));
        }
        seen.push(got);
    }
    assert_eq!(seen[0], seen[1], "one order for the whole room");
    let said: HashSet<(String, String)> = seen[0].iter().map(|(f, t, _)| (f.clone(), t.clone())).collect();
    assert!(said.contains(&("ada".into(), "hello from A".into())), "{said:?}");
    assert!(said.contains(&("bob".into(), "hello from B".into())), "{said:?}");

    // Another room hears none of it.
    let mut cy = Member::join(b.addr, "room=two&name=cy").await;
    ada.say("only room one").await;
    assert_eq!(bob.messages(1).await[0].0, "only room one");
    assert_eq!(publish(a.admin, room_items("two", &["for two".into()], "")).await.status, 200);
    assert_eq!(cy.messages(1).await[0].0, "for two", "nothing of room one came first");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_messages_reach_two_hundred_members_on_two_gateways_complete_and_in_order() {
    const MEMBERS: usize = 200;
    const MESSAGES: usize = 1000;
    let redis = Redis::start().await;
    let (a, b) = pair(&redis, &[]).await;
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        let gateway = if i % 2 == 0 { a.addr } else { b.addr };
        members.push(Member::join(gateway, &format!("room=big&name=m{i}")).await);
    }
    let readers: Vec<_> = members
        .into_iter()
        .map(|mut member| tokio::spawn(async move { (member.name.clone(), member.messages(MESSAGES).await) }))
        .collect();
    // 100 bodies of 10 items, to A's and B's publish API in turn, each answered before the next.
    let all = texts(0..MESSAGES);
    for (i, chunk) in all.chunks(10).enumerate() {
        let admin = if i % 2 == 0 { a.admin } else { b.admin };
        let reply = publish(admin, room_items("big", chunk, "")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    for reader in readers {
        let (name, got) = reader.await.unwrap();
        assert_in_order(&name, &got, &all);
        assert_eq!(got[0].1.n, 1, "{name}: from the first message");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_moves_to_the_other_gateway_gets_what_it_missed_exactly_once() {
    let redis = Redis::start().await;
    let (a, b) = pair(&redis, &[]).await;
    let mut ada = Member::join(a.addr, "room=move&name=ada").await;
    assert_eq!(publish(a.admin, room_items("move", &texts(0..5), "")).await.status, 200);
    let seen = ada.messages(5).await;
    let last = seen.last().unwrap().1.clone();
    drop(ada);

    // While she is away, more is said, on both gateways.
    assert_eq!(publish(a.admin, room_items("move", &texts(5..8), "")).await.status, 200);
    assert_eq!(publish(b.admin, room_items("move", &texts(8..10), "")).await.status, 200);

    let mut back = Member::join(b.addr, &format!("room=move&name=ada&last={last}")).await;
    assert_eq!(publish(b.admin, room_items("move", &texts(10..12), "")).await.status, 200);
    let got = back.messages(7).await;
    assert_in_order("ada, back on B", &got, &texts(5..12));
    assert_eq!(got[0].1.n, last.n + 1);

    // A position the history never held is a gap, said so, not silence.
    let mut lost = Member::join(a.addr, "room=move&name=bo&last=1.elsewhere").await;
    let gap = lost.next().await;
    assert_eq!(gap, json!({"type": "gap", "room": "move"}));
    assert_eq!(publish(a.admin, room_items("move", &texts(12..13), "")).await.status, 200);
    assert_eq!(lost.messages(1).await[0].0, "m12", "then live");
    // Nothing of the replay came to ada twice: the next thing after it is that same live one.
    assert_eq!(back.messages(1).await[0].0, "m12", "no repeat of m10 or m11 after the seven");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connections_of_a_killed_gateway_get_their_disconnect_through_the_other() {
    const ON_A: usize = 20;
    let redis = Redis::start().await;
    let mut app = AppRecorder::start(Script::default()).await;
    let upstream = format!("http://{}", app.addr);
    let (a, b) = pair(&redis, &["--upstream", &upstream, "--lease", "2s"]).await;

    let mut clients = Vec::new();
    let mut ids = HashSet::new();
    for i in 0..ON_A {
        let (mut ws, _) =
            within("connect to A", tokio_tungstenite::connect_async(format!("ws://{}/chat?i={i}", a.addr)))
                .await
                .expect("accepted");
        let open = app.next_with("OPEN").await;
        ids.insert(open.headers["connection-id"].to_str().unwrap().to_owned());
        // A message, so the app's meta changes after the OPEN (`n` 0 -> 1): the DISCONNECT must
        // carry the latest.
        send(&mut ws, Message::text(format!("hi {i}"))).await;
        assert_eq!(next_data(&mut ws).await, Message::text(format!("hi {i}")));
        clients.push(ws);
    }
    let (mut on_b, _) =
        within("connect to B", tokio_tungstenite::connect_async(format!("ws://{}/chat?b", b.addr)))
            .await
            .unwrap();
    let b_open = app.next_with("OPEN").await;
    let b_id = b_open.headers["connection-id"].to_str().unwrap().to_owned();

    // The records reach Redis before the kill: every connection of A is there, with the meta
    // its app set after the OPEN (which rides along with a renewal).
    eventually("A's connections are recorded with their meta", async || {
        let keys = redis.command("KEYS sidestream:gw:*:conns").await;
        for key in keys.lines().filter(|l| l.starts_with("sidestream:gw:")) {
            let records = redis.command(&format!("HVALS {key}")).await;
            if records.matches(r#""meta":[["n","1"]]"#).count() == ON_A {
                return true;
            }
        }
        false
    })
    .await;
    let killed_at = std::time::Instant::now();
    let log = a.kill().await;
    assert!(!log.contains("panicked"), "{log}");

    app.disconnects_of(&ids).await;
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(2 + 5), "within the lease and a few seconds: {took:?}");
    // Counted once each answer is back at B (the app saw the requests a moment before).
    eventually("B counts what it reaped", async || {
        let m = Metrics::parse(&request(b.admin, "GET", "/metrics", &[]).await.text());
        m.get("sidestream_connections_reaped_total") == ON_A as f64
            && m.get("sidestream_gateways_reaped_total") == 1.0
            && m.get(r#"sidestream_app_last_events_total{event="disconnect",result="delivered"}"#)
                == ON_A as f64
    })
    .await;

    // B's own connection lives on, and its app has not heard otherwise.
    send(&mut on_b, Message::text("still here")).await;
    assert_eq!(next_data(&mut on_b).await, Message::text("still here"));
    let next = app.next().await;
    assert_eq!(next.headers["connection-id"].to_str().unwrap(), b_id);
    assert_eq!(next.events, ["TEXT"]);
    drop(clients);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_killed_and_restarted_mid_stream_loses_nothing_it_answered() {
    const MESSAGES: usize = 300;
    let mut redis = Redis::durable().await;
    let (a, b) = pair(&redis, &[]).await;
    let mut on_a = Member::join(a.addr, "room=durable&name=ada").await;
    let mut on_b = Member::join(b.addr, "room=durable&name=bob").await;
    let readers = [on_a.name.clone(), on_b.name.clone()];
    let reader_a = tokio::spawn(async move { on_a.messages(MESSAGES).await });
    let reader_b = tokio::spawn(async move { on_b.messages(MESSAGES).await });

    let all = texts(0..MESSAGES);
    let mut refused = 0;
    for (i, text) in all.iter().enumerate() {
        if i == MESSAGES / 3 {
            redis.kill().await;
        }
        if i == MESSAGES / 2 {
            // Redis stays up, but both gateways lose their pub/sub connection and may not
            // subscribe again for a while: what is published meanwhile must reach their
            // subscribers from the history once they are back.
            // Both are subscribed again since the restart, so the kill takes both.
            for gateway in [&a, &b] {
                eventually("the gateway's pub/sub is back", async || {
                    let m = Metrics::parse(&request(gateway.admin, "GET", "/metrics", &[]).await.text());
                    m.get("sidestream_broker_connected") == 1.0
                })
                .await;
            }
            assert_eq!(redis.command("ACL SETUSER default -subscribe").await, "+OK\r\n");
            assert_eq!(redis.command("CLIENT KILL TYPE pubsub").await, ":2\r\n", "both gateways' pub/sub");
        }
        if i == 2 * MESSAGES / 3 {
            assert_eq!(redis.command("ACL SETUSER default +subscribe").await, "+OK\r\n");
        }
        // Each message until it is answered 200: what is answered must arrive; its id keeps a
        // retry of one Redis took before it died from arriving twice.
        let admin = if i % 2 == 0 { a.admin } else { b.admin };
        loop {
            let reply = publish(admin, room_items("durable", std::slice::from_ref(text), "durable-")).await;
            if reply.status == 200 {
                break;
            }
            assert_eq!(reply.status, 503, "{}", reply.text());
            refused += 1;
            if refused == 1 {
                // Redis is down and the publisher is told so: now it comes back.
                redis.restart().await;
            }
        }
    }
    assert!(refused > 0, "the outage was seen by the publisher");
    for (name, reader) in readers.iter().zip([reader_a, reader_b]) {
        let got = reader.await.unwrap();
        assert_in_order(name, &got, &all);
    }
    for (name, gateway) in [("A", &a), ("B", &b)] {
        let m = Metrics::parse(&request(gateway.admin, "GET", "/metrics", &[]).await.text());
        assert!(m.get("sidestream_broker_reconnects_total") >= 2.0, "{name}'s pub/sub came back twice");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_cut_off_from_redis_past_its_lease_closes_what_the_other_ended_and_ends_the_rest() {
    const ON_A: usize = 5;
    let redis = Redis::start().await;
    // A reaches Redis as its own user, so the test can cut A off while B stays connected.
    let added = redis.command("ACL SETUSER alice on >secret ~* &* +@all").await;
    assert_eq!(added, "+OK\r\n");
    let mut app = AppRecorder::start(Script::default()).await;
    let upstream = format!("http://{}", app.addr);
    let a_url = format!("redis://alice:secret@127.0.0.1:{}", redis.port);
    let args = |url: &str| {
        ["--no-push", "--upstream", &upstream, "--lease", "2s", "--redis", url].map(str::to_owned)
    };
    let a = spawn(&args(&a_url).iter().map(String::as_str).collect::<Vec<_>>()).await;
    let b = spawn(&args(&redis.url()).iter().map(String::as_str).collect::<Vec<_>>()).await;

    let mut clients = Vec::new();
    let mut ids = HashSet::new();
    for i in 0..ON_A {
        let url = format!("ws://{}/chat?i={i}", a.addr);
        let (ws, _) = within("connect to A", tokio_tungstenite::connect_async(url)).await.expect("accepted");
        ids.insert(app.next_with("OPEN").await.headers["connection-id"].to_str().unwrap().to_owned());
        clients.push(ws);
    }
    // The app hears an OPEN before the gateway writes the connection's record: wait for all of them,
    // and for A to have read Redis's answer (one writer writes in order, so a later renewal counted
    // as ok means it has); a record whose answer A never read would count as unrecorded.
    let renewals = async || {
        let m = Metrics::parse(&request(a.admin, "GET", "/metrics", &[]).await.text());
        m.get(r#"sidestream_lease_renewals_total{result="ok"}"#)
    };
    eventually("A's connections are recorded", async || {
        let keys = redis.command("KEYS sidestream:gw:*:conns").await;
        let Some(key) = keys.lines().find(|l| l.starts_with("sidestream:gw:")) else { return false };
        redis.command(&format!("HLEN {key}")).await.trim() == format!(":{ON_A}")
    })
    .await;
    let written = renewals().await;
    eventually("A hears that they are", async || renewals().await > written).await;

    // Cut off: A's lease runs out and B ends its connections for the app.
    assert_eq!(redis.command("ACL SETUSER alice off").await, "+OK\r\n");
    let killed = redis.command("CLIENT KILL USER alice").await;
    assert!(
        killed.trim().strip_prefix(':').and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n > 0),
        "{killed}"
    );
    let mut disconnected = HashSet::new();
    while disconnected.len() < ON_A {
        let seen = app.next_with("DISCONNECT").await;
        let id = seen.headers["connection-id"].to_str().unwrap().to_owned();
        assert!(ids.contains(&id), "{id}");
        assert!(disconnected.insert(id), "one DISCONNECT each");
    }
    // A connection opened while A is cut off has no record in Redis: B cannot know it.
    let (late, _) = within(
        "connect to A cut off",
        tokio_tungstenite::connect_async(format!("ws://{}/chat?late", a.addr)),
    )
    .await
    .expect("accepted without Redis");
    let late_id = app.next_with("OPEN").await.headers["connection-id"].to_str().unwrap().to_owned();
    clients.push(late);

    // Back: A finds itself reaped and closes every connection (they reconnect and open anew). It
    // sends no second DISCONNECT for what B ended, and the one for the connection only it knew.
    assert_eq!(redis.command("ACL SETUSER alice on").await, "+OK\r\n");
    for ws in &mut clients {
        assert_eq!(close_code(ws).await, 1012);
    }
    let (mut fresh, _) =
        within("connect to A again", tokio_tungstenite::connect_async(format!("ws://{}/chat?new", a.addr)))
            .await
            .unwrap();
    let mut next_two = [app.next().await, app.next().await];
    next_two.sort_by_key(|seen| seen.events.clone());
    assert_eq!(next_two.each_ref().map(|seen| seen.events.clone()), [["DISCONNECT"], ["OPEN"]]);
    assert_eq!(next_two[0].headers["connection-id"], late_id.as_str(), "A ended the one B did not know");
    send(&mut fresh, Message::text("hello again")).await;
    assert_eq!(next_data(&mut fresh).await, Message::text("hello again"));
    // Counted once the app's answer is back at A (the app saw the request a moment before).
    let delivered = r#"sidestream_app_last_events_total{event="disconnect",result="delivered"}"#;
    eventually("A counts the DISCONNECT it delivered", async || {
        Metrics::parse(&request(a.admin, "GET", "/metrics", &[]).await.text()).get(delivered) >= 1.0
    })
    .await;
    let m = Metrics::parse(&request(a.admin, "GET", "/metrics", &[]).await.text());
    assert_eq!(m.get(r#"sidestream_lease_renewals_total{result="reaped"}"#), 1.0);
    assert_eq!(m.get(delivered), 1.0, "A delivered one DISCONNECT: none of those B had delivered");
    drop(b);
}
