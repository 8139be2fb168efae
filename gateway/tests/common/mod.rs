//! Test harness: a real gateway on 127.0.0.1:0 in this process, and real clients.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod cluster;
pub mod examples;
pub mod ghost;
pub mod model;
pub mod process;
pub mod recorder;
pub mod redis;
pub mod redis_cluster;
pub mod room;
pub mod soak;
pub mod workload;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sidestream_gateway::{Config, Gateway};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every network await in the tests is bounded by this.
pub const STEP: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Awaits `future`, failing the test (not hanging it) after [`STEP`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// The key every test gateway signs with (`--grip-key-file`) unless a test gives its own: one
/// gateway in front of another's embedded host needs the key that host gives its component.
pub const GRIP_KEY: &str = "sidestream-test-grip-key-0123456789";

/// A file holding [`GRIP_KEY`], written once per test binary.
pub fn grip_key_file() -> &'static str {
    static FILE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("sidestream-test-grip-key-{}", std::process::id()));
        std::fs::write(&path, GRIP_KEY).expect("write the test grip key");
        path.to_str().expect("a UTF-8 temp dir").to_owned()
    })
}

/// The release component that `make test` builds before the tests run.
pub fn component() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release/sidestream_component.wasm");
    assert!(path.exists(), "{} is missing: run `make component` first", path.display());
    path
}

/// The component built with `--features fault-injection` into its own target dir
/// (`make fault-component`): `/fault/*` routes, the `/fault/ws` app, and echoes marked as its own.
pub fn fault_component() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/fault/wasm32-wasip2/release/sidestream_component.wasm");
    assert!(
        path.exists(),
        "{} is missing: run `make fault-component` (cargo build -p sidestream-component --target \
         wasm32-wasip2 --release --features fault-injection --target-dir target/fault)",
        path.display()
    );
    path
}

/// A gateway running in this process until [`TestGateway::stop`] or drop.
pub struct TestGateway {
    /// The public listener.
    pub addr: SocketAddr,
    /// The admin listener (probes, metrics).
    pub admin: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl TestGateway {
    /// Starts a gateway with the embedded component and `args` on a free port.
    pub async fn start(args: &[&str]) -> Self {
        let component = component();
        let mut all = vec!["sidestream-gateway", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];
        if !args.contains(&"--upstream") && !args.contains(&"--component") {
            all.extend(["--component", component.to_str().unwrap()]);
        }
        if !args.iter().any(|a| a.starts_with("--grip-key-file")) {
            all.extend(["--grip-key-file", grip_key_file()]);
        }
        // In-process gateways share the test's one process, whose resident memory is every
        // gateway's (and every test's) at once: a process-wide budget is not theirs to keep.
        // tests/memory.rs spawns a gateway of its own to test the budget.
        if !args.iter().any(|a| a.starts_with("--memory-budget")) {
            all.extend(["--memory-budget", "1099511627776"]);
        }
        all.extend_from_slice(args);
        Self::with_config(Config::try_parse_from(all).expect("valid test config")).await
    }

    pub async fn with_config(config: Config) -> Self {
        let gateway = Gateway::bind(config).await.expect("gateway binds");
        let addr = gateway.local_addr().unwrap();
        let admin = gateway.admin_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(async move {
            let _ = rx.await;
        }));
        TestGateway { addr, admin, shutdown: Some(tx), task }
    }

    /// Starts the drain (what SIGTERM does in the binary).
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Drains and waits for `serve` to return.
    pub async fn stop(mut self) {
        self.trigger_shutdown();
        within("gateway stops", &mut self.task).await.expect("serve task").expect("serve returns Ok");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn ws(&self, path: &str) -> Ws {
        let (ws, response) =
            within("ws connect", tokio_tungstenite::connect_async(format!("ws://{}{path}", self.addr)))
                .await
                .expect("ws handshake");
        assert_eq!(response.status(), 101);
        ws
    }

    /// A GET on the public listener.
    pub async fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, &[]).await
    }

    /// A GET on the admin listener.
    pub async fn admin(&self, path: &str) -> Reply {
        request(self.admin, "GET", path, &[]).await
    }

    pub async fn metrics(&self) -> Metrics {
        Metrics::parse(&self.admin("/metrics").await.text())
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.trigger_shutdown();
    }
}

/// The public and admin addresses of the start-up line `listening addr=A admin=B` (text or JSON logs).
pub fn listening_addrs(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let field = |name: &str| -> Option<SocketAddr> {
        let rest = line.split(name).nth(1)?;
        let end = rest.find(|c: char| c.is_whitespace() || c == '"').unwrap_or(rest.len());
        rest[..end].parse().ok()
    };
    Some((field("listening addr=")?, field(" admin=")?))
}

/// A buffered HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP/1.1 request over a fresh keep-alive client.
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut builder = http::Request::builder().method(method).uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = within("http request", client.request(builder.body(Full::new(Bytes::new())).unwrap()))
        .await
        .expect("http response");
    let (parts, body) = response.into_parts();
    let body = within("http body", body.collect()).await.expect("body").to_bytes();
    Reply { status: parts.status.as_u16(), headers: parts.headers, body }
}

/// One HTTP/1.1 request with a body over a fresh client.
pub async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut builder = http::Request::builder().method("POST").uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = within("http request", client.request(builder.body(Full::new(body.into())).unwrap()))
        .await
        .expect("http response");
    let (parts, body) = response.into_parts();
    let body = within("http body", body.collect()).await.expect("body").to_bytes();
    Reply { status: parts.status.as_u16(), headers: parts.headers, body }
}

/// Raw bytes in; the response head and its `Content-Length` body out (or everything until the
/// server closes, when there is no length).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = within("connect", TcpStream::connect(addr)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            out.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if length.is_some_and(|len| out.len() >= end + 4 + len) {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(STEP, read_all).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Parsed Prometheus text: `name{labels}` -> value.
#[derive(Debug)]
pub struct Metrics(pub HashMap<String, f64>);

impl Metrics {
    pub fn parse(text: &str) -> Self {
        let map = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect();
        Metrics(map)
    }

    /// A metric's value; absent counters read as 0.
    pub fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }
}

/// Next Text/Binary/Close message, skipping Pings and Pongs.
pub async fn next_data(ws: &mut Ws) -> Message {
    // One deadline for the message, however many pings come before it.
    let next = async {
        loop {
            let message = ws.next().await.expect("stream open").expect("valid frame");
            if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
                return message;
            }
        }
    };
    within("ws message", next).await
}

/// Next Text message's text, skipping Pings and Pongs; anything else fails the test.
pub async fn next_text(ws: &mut Ws) -> String {
    match next_data(ws).await {
        Message::Text(text) => text.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Next echo (non-push message), collecting any pushes seen on the way.
pub async fn next_echo(ws: &mut Ws, pushes: &mut Vec<serde_json::Value>) -> Message {
    loop {
        let message = next_data(ws).await;
        if let Message::Text(text) = &message
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
            && value["type"] == "push"
        {
            pushes.push(value);
            continue;
        }
        return message;
    }
}

/// Waits for the server's Close frame, completes the closing handshake (the reply goes out while
/// the stream is driven to its end) and returns the code.
pub async fn close_code(ws: &mut Ws) -> u16 {
    let code = loop {
        match within("close frame", ws.next()).await {
            Some(Ok(Message::Close(Some(frame)))) => break frame.code.into(),
            Some(Ok(Message::Close(None))) => break 1005,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("error before close frame: {e}"),
            None => panic!("stream ended without a close frame"),
        }
    };
    while let Some(Ok(_)) = within("end of stream after close", ws.next()).await {}
    code
}

/// Waits until `f()` holds, polling (no fixed sleeps).
pub async fn eventually(what: &str, f: impl AsyncFnMut() -> bool) {
    eventually_for(what, STEP, f).await
}

/// The same, with a longer bound than [`STEP`].
pub async fn eventually_for(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

pub async fn send(ws: &mut Ws, message: Message) {
    within("ws send", ws.send(message)).await.expect("send");
}
