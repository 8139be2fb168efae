//! A new component version without dropping a socket: the real binary with a component file the
//! test replaces, reloaded on SIGHUP and by `--watch`. The two versions are the release build and
//! the fault-injection build, whose `/echo` marks its answers `"build":"fault"` and which alone
//! has the `/fault/*` routes. What a user would notice: no socket closes, the next message gets
//! the new version's answer (its count carried on in the connection's meta), a request in flight
//! finishes on the version it started on, and a broken file changes nothing but one log line.

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::process::{Spawned, spawn};
use common::*;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// A directory of the test's own, holding the component file the gateway serves.
struct Workspace {
    dir: PathBuf,
}

impl Workspace {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sidestream-reload-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Workspace { dir }
    }

    fn component(&self) -> PathBuf {
        self.dir.join("component.wasm")
    }

    /// Puts `bytes` in place the way a build does: written beside it, then renamed over it.
    fn install(&self, bytes: &[u8]) {
        let next = self.dir.join("component.wasm.next");
        std::fs::write(&next, bytes).unwrap();
        std::fs::rename(&next, self.component()).unwrap();
    }

    fn install_build(&self, build: &Path) {
        self.install(&std::fs::read(build).unwrap());
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `text` on an `/echo` connection and returns the echo as JSON.
async fn echo(ws: &mut Ws, text: &str) -> Value {
    send(ws, Message::text(text)).await;
    let answer = next_data(ws).await;
    serde_json::from_str(answer.to_text().expect("a text echo")).expect("JSON")
}

/// Asserts which build answered `echo`, with which count.
fn assert_echo(echo: &Value, n: u64, text: &str, fault_build: bool) {
    assert_eq!((&echo["n"], &echo["text"]), (&n.into(), &text.into()), "{echo}");
    let build = if fault_build { Value::from("fault") } else { Value::Null };
    assert_eq!(echo["build"], build, "answered by the wrong version: {echo}");
}

async fn reloads(gw: &Spawned, result: &str) -> f64 {
    let text = request(gw.admin, "GET", "/metrics", &[]).await.text();
    Metrics::parse(&text).get(&format!(r#"sidestream_component_reloads_total{{result="{result}"}}"#))
}

async fn reloads_reach(gw: &Spawned, result: &str, want: f64) {
    eventually(&format!("{want} reload(s) {result}"), async || reloads(gw, result).await == want).await;
}

/// The built-in `/ws` still echoes.
async fn built_in_echoes(ws: &mut Ws, text: &str) {
    send(ws, Message::text(text)).await;
    assert_eq!(next_data(ws).await, Message::text(text));
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sighup_a_new_version_answers_next_and_no_socket_closes() {
    let work = Workspace::new("sighup");
    work.install_build(&fault_component());
    let path = work.component();
    let gw = spawn(&["--no-push", "--component", path.to_str().unwrap()]).await;
    let connect = async |path: &str| {
        let url = format!("ws://{}{path}", gw.addr);
        within("connect", tokio_tungstenite::connect_async(url)).await.expect("handshake").0
    };
    let mut built_in = connect("/ws").await;
    let mut apps = [connect("/echo").await, connect("/echo").await];
    for ws in &mut apps {
        assert_echo(&echo(ws, "before").await, 1, "before", true);
    }
    built_in_echoes(&mut built_in, "before").await;

    // A request in flight on the old version: its head and first line are here, the rest is
    // 5 s of guest sleep away.
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = format!("http://{}/fault/slow-body?ms=5000", gw.addr);
    let response = within("the slow response's head", client.get(uri.parse().unwrap())).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = within("its first line", body.frame()).await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "head sent\n");

    work.install_build(&component());
    gw.signal("-HUP");
    reloads_reach(&gw, "ok", 1.0).await;

    let rest = body.frame().now_or_never();
    assert!(rest.is_none(), "the slow response was over before the swap; the test proves nothing");
    let rest = within("the rest of the old version's body", body.collect()).await.unwrap().to_bytes();
    assert_eq!(rest, "slept 5000 ms\n", "finished on the version it started on");

    // The same sockets: the next message gets the new answer, the count carried on in meta.
    for ws in &mut apps {
        assert_echo(&echo(ws, "after").await, 2, "after", false);
    }
    built_in_echoes(&mut built_in, "after").await;
    // New requests, too: the release build has no fault routes.
    assert_eq!(request(gw.addr, "GET", "/fault/slow?ms=1", &[]).await.status, 404);
    let mut fresh = connect("/echo").await;
    assert_echo(&echo(&mut fresh, "new").await, 1, "new", false);

    let log = gw.kill().await;
    assert_eq!(log.matches("component reloaded").count(), 1, "{log}");
    assert!(!log.contains("ws connection failed"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_watch_a_changed_file_is_taken_and_a_broken_one_refused() {
    let work = Workspace::new("watch");
    work.install_build(&component());
    let path = work.component();
    let gw = spawn(&["--no-push", "--watch", "--component", path.to_str().unwrap()]).await;
    let url = format!("ws://{}/echo", gw.addr);
    let mut ws = within("connect", tokio_tungstenite::connect_async(url)).await.expect("handshake").0;
    assert_echo(&echo(&mut ws, "one").await, 1, "one", false);

    // Not a component: refused, and the version serving keeps answering, sockets and requests.
    work.install(b"\0asm but not really a component");
    reloads_reach(&gw, "failed", 1.0).await;
    assert_echo(&echo(&mut ws, "two").await, 2, "two", false);
    assert_eq!(request(gw.addr, "GET", "/health", &[]).await.status, 200);

    // Overwritten in place this time, as a copy does: taken once it holds still.
    std::fs::write(&path, std::fs::read(fault_component()).unwrap()).unwrap();
    reloads_reach(&gw, "ok", 1.0).await;
    assert_echo(&echo(&mut ws, "three").await, 3, "three", true);

    // The same bytes again (a touch, a rebuild with no change): nothing compiled, nothing swapped.
    work.install_build(&fault_component());
    reloads_reach(&gw, "unchanged", 1.0).await;
    assert_echo(&echo(&mut ws, "four").await, 4, "four", true);
    assert_eq!(reloads(&gw, "ok").await, 1.0);
    assert_eq!(reloads(&gw, "failed").await, 1.0);

    let log = gw.kill().await;
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("component reload refused")).collect();
    assert_eq!(refused.len(), 1, "one line for the broken file: {log}");
}
