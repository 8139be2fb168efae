//! The example apps of `examples/` (a TypeScript and a Python Spin component, built by `make
//! examples`), for the tests that run them: where they are, the key a pair of gateways shares, and
//! a client of their `/room`.
#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::path::PathBuf;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::{Ws, send, within};

/// An example component: its language and its `.wasm`, as scripts/examples.sh builds it.
#[derive(Clone, Copy, Debug)]
pub struct Example {
    pub name: &'static str,
    wasm: &'static str,
}

pub const TYPESCRIPT: Example =
    Example { name: "typescript", wasm: "examples/typescript/dist/sidestream-typescript.wasm" };
pub const PYTHON: Example = Example { name: "python", wasm: "examples/python/sidestream-python.wasm" };

impl Example {
    pub fn path(&self) -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(self.wasm);
        assert!(path.exists(), "{} is missing: run `make examples` first", path.display());
        path.to_str().expect("a UTF-8 path").to_owned()
    }
}

/// A file holding a signing key (`--grip-key-file`), removed on drop: gateways in front of one
/// another share it, so the one behind trusts what the one in front signed.
pub struct KeyFile(pub PathBuf);

impl KeyFile {
    pub fn new(key: &str) -> Self {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("sidestream-grip-key-{}-{n}", std::process::id()));
        std::fs::write(&path, key).expect("write the key file");
        KeyFile(path)
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 path")
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A client in a room: its socket and what it was told when it joined.
pub struct Member {
    pub ws: Ws,
    pub name: String,
    pub welcome: Value,
}

impl Member {
    pub async fn join(gateway: SocketAddr, query: &str) -> Member {
        let url = format!("ws://{gateway}/room?{query}");
        let (ws, _) = within("join the room", tokio_tungstenite::connect_async(url)).await.expect("accepted");
        let mut member = Member { ws, name: query.to_owned(), welcome: Value::Null };
        let welcome = member.next().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        member.name = welcome["name"].as_str().expect("a name").to_owned();
        member.welcome = welcome;
        member
    }

    /// The next JSON message the room sends.
    pub async fn next(&mut self) -> Value {
        loop {
            match within("a message from the room", self.ws.next()).await {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("JSON"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("{}: no message: {other:?}", self.name),
            }
        }
    }

    /// The next `n` room messages.
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
        send(&mut self.ws, Message::text(text)).await;
    }
}

/// The texts of room messages.
pub fn texts(messages: &[Value]) -> Vec<&str> {
    messages.iter().map(|m| m["text"].as_str().expect("a text")).collect()
}
