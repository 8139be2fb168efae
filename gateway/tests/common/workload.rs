//! A workload on real gateway processes, for the model ([`super::model`]): publishers through the
//! publish API and through the room itself, subscribers that read promptly or slowly, leave and come
//! back with `last=`, all at once on random rooms, with random message sizes up to
//! `--max-message-size`. Every random choice comes from the seed; what the network and the
//! scheduler do does not, so a seed replays the workload, not its interleaving.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use super::Ws;
use super::model::{Event, Published, Session};

/// The gateways' addresses (public, admin), which a fault may change.
pub type Targets = Arc<RwLock<Vec<(SocketAddr, SocketAddr)>>>;

/// What the workload does.
#[derive(Clone, Debug)]
pub struct Plan {
    pub rooms: usize,
    pub api_publishers: usize,
    pub speakers: usize,
    pub subscribers: usize,
    /// `--max-message-size` of the gateways: items are up to that size.
    pub max_message: usize,
}

/// What every task shares: where to go, when to stop, what was published and seen.
pub struct Shared {
    pub targets: Targets,
    pub stop: AtomicBool,
    pub published: Mutex<Vec<Published>>,
    pub sessions: Mutex<Vec<Session>>,
    /// Non-200 answers of the publish API, by status (0: no answer).
    pub refused: Mutex<HashMap<u16, usize>>,
    /// Speakers that, after the stop, have seen their last message come back (or gave up).
    pub caught_up: AtomicUsize,
}

impl Shared {
    pub fn new(targets: Targets) -> Arc<Self> {
        Arc::new(Shared {
            targets,
            stop: AtomicBool::new(false),
            published: Mutex::new(Vec::new()),
            sessions: Mutex::new(Vec::new()),
            refused: Mutex::new(HashMap::new()),
            caught_up: AtomicUsize::new(0),
        })
    }

    fn target(&self, rng: &mut SmallRng) -> (SocketAddr, SocketAddr) {
        let targets = self.targets.read().unwrap();
        targets[rng.random_range(0..targets.len())]
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

pub fn room(i: usize) -> String {
    format!("r{i}")
}

/// The text that ends a room's run: published once everything else is.
pub fn end_marker(room: &str) -> String {
    format!("END-{room}")
}

/// A unique text of about `size` characters.
fn text(tag: &str, size: usize) -> String {
    let mut text = format!("{tag}-");
    while text.len() < size {
        text.push(char::from(b'a' + (text.len() % 26) as u8));
    }
    text
}

/// A size: mostly small, some medium, a few up to the largest a publication may be.
fn size(rng: &mut SmallRng, max_message: usize) -> usize {
    match rng.random_range(0..100) {
        0..70 => rng.random_range(8..200),
        70..95 => rng.random_range(200..8_000),
        // The item's JSON around the text, and the position written into it, fit in 200 bytes.
        _ => rng.random_range(8_000..max_message - 200),
    }
}

/// Posts a publish body; the status, or `None` without an answer in time.
pub async fn post(admin: SocketAddr, body: String) -> Option<u16> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{admin}/publish/"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .ok()?;
    let response = timeout(Duration::from_secs(10), client.request(request)).await.ok()?.ok()?;
    let status = response.status().as_u16();
    let _ = timeout(Duration::from_secs(10), response.into_body().collect()).await;
    Some(status)
}

/// Publishes bodies of one to three items to random rooms until stopped.
pub async fn api_publisher(shared: Arc<Shared>, plan: Plan, id: usize, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut seq = 0;
    while !shared.stopped() {
        let mut items = Vec::new();
        let mut texts = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            seq += 1;
            let room = room(rng.random_range(0..plan.rooms));
            let text = text(&format!("a{id}-{seq}"), size(&mut rng, plan.max_message));
            let content = json!({"type": "room", "from": "api", "text": text}).to_string();
            items.push(json!({
                "channel": format!("room:{room}"),
                "id": format!("a{id}-{seq}"),
                "formats": {"ws-message": {"content": content, "id-key": "id"}},
            }));
            texts.push((room, text));
        }
        let (_, admin) = shared.target(&mut rng);
        let status = post(admin, json!({ "items": items }).to_string()).await;
        if status != Some(200) {
            *shared.refused.lock().unwrap().entry(status.unwrap_or(0)).or_default() += 1;
        }
        let ok = (status == Some(200)).then_some(true);
        shared.published.lock().unwrap().extend(texts.into_iter().map(|(room, text)| Published {
            room,
            text,
            ok,
        }));
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..40))).await;
    }
}

/// Connects to `/room` on a gateway, retrying while gateways come and go.
async fn join(shared: &Shared, rng: &mut SmallRng, query: &str) -> Ws {
    loop {
        let (addr, _) = shared.target(rng);
        let url = format!("ws://{addr}/room?{query}");
        if let Ok(Ok((ws, _))) = timeout(Duration::from_secs(5), tokio_tungstenite::connect_async(url)).await
        {
            return ws;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one message from the room is, for a session.
enum Got {
    /// A message or gap notice, and a message's position as the client keeps it.
    Event(Event, Option<String>),
    /// The welcome, an error to a speaker: not part of the stream.
    Other(Value),
    /// The connection ended (a fault, a restart).
    Ended,
}

async fn next<S>(stream: &mut S, wait: Duration) -> Option<Got>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = match timeout(wait, stream.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(message))) => message,
            Ok(_) => return Some(Got::Ended),
        };
        let Message::Text(text) = message else {
            if matches!(message, Message::Close(_)) {
                return Some(Got::Ended);
            }
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else { return Some(Got::Ended) };
        let (event, id) = match value["type"].as_str() {
            Some("gap") => (Event::Gap, None),
            Some("room") => {
                // `n.epoch`, or `n.epoch.tag` on Redis: the tag tells two publications at one
                // position apart; the model compares texts.
                let id = value["id"].as_str().unwrap_or_default().to_owned();
                let mut parts = id.split('.');
                let (Some(n), Some(epoch)) = (parts.next(), parts.next()) else {
                    return Some(Got::Other(value));
                };
                let text = value["text"].as_str().unwrap_or_default().to_owned();
                (Event::Message { n: n.parse().unwrap_or(0), epoch: epoch.to_owned(), text }, Some(id))
            }
            _ => return Some(Got::Other(value)),
        };
        return Some(Got::Event(event, id));
    }
}

/// How a subscriber behaves.
#[derive(Clone, Copy, Debug)]
pub struct Manner {
    pub slow: bool,
    pub leaves: bool,
}

/// One subscriber: sessions on random gateways, each ending when it leaves on purpose or its
/// connection is lost, the next coming back with its last position; after the stop it reads on
/// until its room's end marker.
pub async fn subscriber(
    shared: Arc<Shared>,
    (room, who): (String, String),
    manner: Manner,
    mut since: Option<(u64, String)>,
    seed: u64,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut ending: Option<tokio::time::Instant> = None;
    // The position to come back with as the client keeps it, and the text of its message.
    let mut since_id: Option<String> = since.as_ref().map(|(n, e)| format!("{n}.{e}"));
    let mut since_text: Option<String> = None;
    loop {
        let last = since_id.as_ref().map(|id| format!("&last={id}")).unwrap_or_default();
        let mut ws = join(&shared, &mut rng, &format!("room={room}&name={who}{last}")).await;
        let mut session = Session {
            who: who.clone(),
            room: room.clone(),
            since: since.clone(),
            since_text: since_text.clone(),
            slow: manner.slow,
            ..Session::default()
        };
        let stay = if manner.leaves { rng.random_range(5..200) } else { usize::MAX };
        let marker = end_marker(&room);
        let done = loop {
            if ending.is_none() && shared.stopped() {
                ending = Some(tokio::time::Instant::now() + Duration::from_secs(30));
            }
            if ending.is_some_and(|at| tokio::time::Instant::now() > at) {
                session.to_the_end = true;
                break true;
            }
            match next(&mut ws, Duration::from_millis(500)).await {
                None | Some(Got::Other(_)) => continue,
                Some(Got::Ended) => break false,
                Some(Got::Event(event, id)) => {
                    let end = matches!(&event, Event::Message { text, .. } if *text == marker);
                    if let Event::Message { n, epoch, text } = &event {
                        since = Some((*n, epoch.clone()));
                        (since_id, since_text) = (id, Some(text.clone()));
                    }
                    session.events.push(event);
                    if end {
                        session.to_the_end = true;
                        break true;
                    }
                    if ending.is_none() && session.events.len() >= stay {
                        break false;
                    }
                    if manner.slow && ending.is_none() && rng.random_range(0..10) == 0 {
                        tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
                    }
                }
            }
        };
        drop(ws);
        shared.sessions.lock().unwrap().push(session);
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
    }
}

/// A member of a room that speaks (its messages are published by the component) until stopped,
/// and reads what the room says like a prompt subscriber. Its texts count as answered when it was
/// never told that one failed and its connection lasted.
pub async fn speaker(shared: Arc<Shared>, room: String, who: String, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let ws = join(&shared, &mut rng, &format!("room={room}&name={who}")).await;
    let (mut sink, mut stream) = ws.split();
    let mut said = Vec::new();
    let mut session = Session { who: who.clone(), room: room.clone(), ..Session::default() };
    let mut trouble = false;
    let marker = end_marker(&room);
    let mut deadline = None;
    let mut seq = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(rng.random_range(20..60)));
    let mut caught_up = false;
    loop {
        if deadline.is_none() && shared.stopped() {
            deadline = Some(tokio::time::Instant::now() + Duration::from_secs(30));
        }
        let last_back = || {
            said.last().is_none_or(|last| {
                session.events.iter().rev().any(|e| matches!(e, Event::Message { text, .. } if text == last))
            })
        };
        if !caught_up && deadline.is_some() && (trouble || last_back()) {
            caught_up = true;
            shared.caught_up.fetch_add(1, Ordering::Relaxed);
        }
        if deadline.is_some_and(|at| tokio::time::Instant::now() > at) {
            break;
        }
        tokio::select! {
            _ = tick.tick(), if deadline.is_none() && !trouble => {
                seq += 1;
                let text = text(&format!("{who}-{seq}"), rng.random_range(1..900));
                trouble |= sink.send(Message::text(text.clone())).await.is_err();
                said.push(text);
            }
            message = next(&mut stream, Duration::from_millis(500)) => match message {
                Some(Got::Event(event, _)) => {
                    let end = matches!(&event, Event::Message { text, .. } if *text == marker);
                    session.events.push(event);
                    if end {
                        session.to_the_end = true;
                        break;
                    }
                }
                Some(Got::Other(value)) => trouble |= value["type"] == "error",
                Some(Got::Ended) => { trouble = true; break; }
                None => {}
            },
        }
    }
    if !caught_up {
        shared.caught_up.fetch_add(1, Ordering::Relaxed);
    }
    session.to_the_end &= !trouble;
    let ok = (!trouble).then_some(true);
    shared.published.lock().unwrap().extend(said.into_iter().map(|text| Published {
        room: room.clone(),
        text,
        ok,
    }));
    shared.sessions.lock().unwrap().push(session);
}
