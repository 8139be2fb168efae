//! Clients of the component's `/room` app and publishers to its channels, for the channel suites:
//! what a user of a room sees, read as JSON.

use std::net::SocketAddr;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{Reply, Ws, post, within};

/// A client in a room: its socket, the name it was given and the welcome that told it.
pub struct Member {
    pub ws: Ws,
    pub name: String,
    pub welcome: Value,
}

impl Member {
    /// Joins `/room?{query}` on `gateway` and reads the welcome.
    pub async fn join(gateway: SocketAddr, query: &str) -> Member {
        let url = format!("ws://{gateway}/room?{query}");
        let (ws, _) = within("join the room", tokio_tungstenite::connect_async(url)).await.expect("accepted");
        Self::welcomed(ws).await
    }

    async fn welcomed(ws: Ws) -> Member {
        let mut member = Member { ws, name: String::new(), welcome: Value::Null };
        let welcome = member.next().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        member.name = welcome["name"].as_str().unwrap_or_default().to_owned();
        member.welcome = welcome;
        member
    }

    /// The same through a socket with a small receive buffer, for a client that reads slowly:
    /// what it does not read soon backs up into the gateway rather than into its own kernel.
    pub async fn join_slow(gateway: SocketAddr, query: &str) -> Member {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = within("connect", socket.connect(gateway)).await.expect("connected");
        let url = format!("ws://{gateway}/room?{query}");
        let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
        let (ws, _) =
            within("join the room", tokio_tungstenite::client_async(url, stream)).await.expect("accepted");
        Self::welcomed(ws).await
    }

    /// The next JSON message the room sends (pings skipped).
    pub async fn next(&mut self) -> Value {
        // One deadline for the message, however many pings come before it.
        let next = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("JSON"),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => panic!("{}: no message: {other:?}", self.name),
                }
            }
        };
        within("a message from the room", next).await
    }

    /// The next `n` room messages (anything else the room sends fails the test).
    pub async fn messages(&mut self, n: usize) -> Vec<Value> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let message = self.next().await;
            assert_eq!(message["type"], "room", "{}: {message}", self.name);
            got.push(message);
        }
        got
    }

    pub async fn say(&mut self, text: &str) {
        super::send(&mut self.ws, Message::text(text)).await;
    }

    /// The texts of the next `n` messages, whatever their type (a gap notice reads `gap`).
    pub async fn texts(&mut self, n: usize) -> Vec<String> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let message = self.next().await;
            got.push(match message["type"].as_str() {
                Some("room") => message["text"].as_str().unwrap_or_default().to_owned(),
                _ => message["type"].as_str().unwrap_or("?").to_owned(),
            });
        }
        got
    }
}

/// What a room client sees: a message at its position, or a gap notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Message { text: String, n: u64, epoch: String },
    Gap,
}

impl Seen {
    /// Reads a room's JSON message (`None` for anything else, a welcome say).
    pub fn of(message: &Value) -> Option<Seen> {
        match message["type"].as_str()? {
            "gap" => Some(Seen::Gap),
            "room" => {
                // `n.epoch`, or `n.epoch.tag` on Redis (the tag is left out: an untagged
                // position is one a client may come back with too).
                let (n, rest) = message["id"].as_str()?.split_once('.')?;
                let epoch = rest.split('.').next()?;
                let text = message["text"].as_str()?.to_owned();
                Some(Seen::Message { text, n: n.parse().ok()?, epoch: epoch.to_owned() })
            }
            _ => None,
        }
    }

    /// `n.epoch` of a message, to come back with.
    pub fn position(&self) -> Option<String> {
        match self {
            Seen::Message { n, epoch, .. } => Some(format!("{n}.{epoch}")),
            Seen::Gap => None,
        }
    }
}

impl Member {
    /// The next `n` messages and gap notices.
    pub async fn seen(&mut self, n: usize) -> Vec<Seen> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let message = self.next().await;
            got.push(
                Seen::of(&message).unwrap_or_else(|| panic!("{}: not a room message: {message}", self.name)),
            );
        }
        got
    }
}

/// The publish API's body for `texts` to room `room`, as the room's own messages look, each with
/// an item id of `id_prefix` and its text.
pub fn room_items(room: &str, texts: &[String], id_prefix: &str) -> String {
    let items: Vec<Value> = texts
        .iter()
        .map(|text| {
            let content = json!({"type": "room", "from": "api", "text": text}).to_string();
            json!({
                "channel": format!("room:{room}"),
                "id": format!("{id_prefix}{text}"),
                "formats": {"ws-message": {"content": content, "id-key": "id"}},
            })
        })
        .collect();
    json!({ "items": items }).to_string()
}

/// Posts `body` to the publish API on `admin`.
pub async fn publish(admin: SocketAddr, body: String) -> Reply {
    post(admin, "/publish/", &[("content-type", "application/json")], body).await
}
