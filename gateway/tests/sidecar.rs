//! The Kubernetes sidecar, tested as it ships: the static x86_64 musl build without the embedded
//! wasm host that `images/gateway.Dockerfile` puts in an empty image, run in front of an upstream
//! that stands in for the Spin runtime in the pod. It must start from nothing but its own file,
//! answer the probes of `k8s/deployment.yaml`, proxy the component's paths, echo over WebSockets and
//! drain on SIGTERM as the kubelet sends it.
//!
//! `scripts/sidecar-smoke.sh` (`make test-sidecar`) builds that binary exactly as the Dockerfile
//! does and runs these tests with `SIDESTREAM_SIDECAR_BIN` set to it. Each is marked ignored, with
//! that reason, so a plain `cargo test` lists them as ignored rather than passing them; run with
//! `--ignored` and without the variable, each fails saying how to build the binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sidestream_gateway::routes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Bound on every network await and on each wait for the process.
const STEP: Duration = Duration::from_secs(10);

/// The body the stand-in Spin runtime answers `/health` with, so a proxied answer is recognisable.
const UPSTREAM_HEALTH: &str = r#"{"status":"ok","service":"stand-in-spin"}"#;

fn sidecar_bin() -> PathBuf {
    match std::env::var_os("SIDESTREAM_SIDECAR_BIN") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "SIDESTREAM_SIDECAR_BIN is not set: `make test-sidecar` (scripts/sidecar-smoke.sh) builds the \
             sidecar as its Dockerfile does and runs these tests against it"
        ),
    }
}

/// A stand-in for the Spin runtime: `/health` answers 200, anything else 404. Dropping it closes
/// the listener and every connection, like the app container going away.
struct Upstream {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let task = tokio::spawn(async move {
        // Owned by this task, so aborting it aborts every connection too.
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let counter = counter.clone();
            connections.spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    async move {
                        let response = if request.uri().path() == routes::COMPONENT_HEALTH {
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from_static(UPSTREAM_HEALTH.as_bytes())))
                        } else {
                            Response::builder().status(StatusCode::NOT_FOUND).body(Full::new(Bytes::new()))
                        };
                        Ok::<_, std::convert::Infallible>(response.unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream { addr, requests, task }
}

/// The sidecar process, with the addresses it logged. Killed when dropped.
struct Sidecar {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
}

/// The key file the pod mounts for `--grip-key-file` (the stand-in upstream verifies nothing).
fn grip_key_file() -> PathBuf {
    let path = std::env::temp_dir().join(format!("sidestream-sidecar-grip-key-{}", std::process::id()));
    std::fs::write(&path, "the sidecar test's grip key").expect("write the key file");
    path
}

/// Starts the sidecar as the pod does (`--upstream`, JSON logs aside), on a free port.
async fn start_sidecar(bin: &PathBuf, upstream: SocketAddr, extra: &[&str]) -> Sidecar {
    let mut child = Command::new(bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--upstream",
            &format!("http://{upstream}"),
            "--drain-timeout",
            "5s",
            "--grip-key-file",
            grip_key_file().to_str().expect("a UTF-8 temp dir"),
        ])
        .args(extra)
        // An empty environment: nothing but the binary itself, as in its FROM scratch image.
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (addr, admin) = timeout(STEP, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("listening addr=") {
                let field = |name: &str| {
                    let rest = line.split(name).nth(1).unwrap_or_default();
                    let end = rest.find(|c: char| c.is_whitespace() || c == '"').unwrap_or(rest.len());
                    rest[..end].parse::<SocketAddr>().unwrap_or_else(|_| panic!("bad {name} in {line:?}"))
                };
                return (field("listening addr="), field(" admin="));
            }
        }
        panic!("the sidecar exited before logging its address");
    })
    .await
    .expect("the sidecar logs `listening addr=... admin=...` within 10 s");
    // Keep draining its log, so a full pipe never blocks it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Sidecar { child, addr, admin }
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = format!("http://{addr}{path}").parse().unwrap();
    let response = timeout(STEP, client.get(uri)).await.expect("answer within 10 s").expect("HTTP answer");
    let status = response.status();
    let body = timeout(STEP, response.into_body().collect()).await.unwrap().unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Polls `path` until it answers `want` (the upstream health is checked every 2 s).
async fn wait_for(addr: SocketAddr, path: &str, want: StatusCode) {
    let polled = timeout(STEP, async {
        loop {
            if get(addr, path).await.0 == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(polled.is_ok(), "{path} did not answer {want} within 10 s");
}

#[test]
#[ignore = "needs the static sidecar build: make test-sidecar"]
fn sidecar_is_a_static_x86_64_executable() {
    let bin = sidecar_bin();
    let elf = std::fs::read(&bin).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "{} is not an ELF file", bin.display());
    assert_eq!(elf[4], 2, "64-bit");
    assert_eq!(u16::from_le_bytes([elf[0x12], elf[0x13]]), 62, "machine is x86_64");
    // An image FROM scratch has no dynamic loader: the binary must not ask for one (PT_INTERP).
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let phentsize = u16::from_le_bytes([elf[0x36], elf[0x37]]) as usize;
    let phnum = u16::from_le_bytes([elf[0x38], elf[0x39]]) as usize;
    const PT_INTERP: u32 = 3;
    let interp = (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == PT_INTERP
    });
    assert!(!interp, "{} is dynamically linked: it cannot run FROM scratch", bin.display());
}

#[tokio::test]
#[ignore = "needs the static sidecar build: make test-sidecar"]
async fn sidecar_has_no_wasm_host_and_says_to_pass_upstream() {
    let bin = sidecar_bin();
    // An existing file as --component: a build with the embedded host would try to load it; the
    // sidecar build must refuse before looking at it, and say what to pass instead.
    let output = timeout(
        STEP,
        Command::new(&bin).args(["--listen", "127.0.0.1:0", "--component"]).arg(&bin).env_clear().output(),
    )
    .await
    .expect("exits within 10 s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the sidecar build must refuse --component: {stderr}");
    assert!(
        stderr.contains("wasm host") && stderr.contains("--upstream"),
        "names what to pass instead: {stderr}"
    );
}

#[tokio::test]
#[ignore = "needs the static sidecar build: make test-sidecar"]
async fn sidecar_answers_probes_and_proxies_the_component() {
    let bin = sidecar_bin();
    let upstream = start_upstream().await;
    let sidecar = start_sidecar(&bin, upstream.addr, &[]).await;

    assert_eq!(get(sidecar.admin, routes::LIVEZ).await.0, StatusCode::OK);
    wait_for(sidecar.admin, routes::READYZ, StatusCode::OK).await;

    let before = upstream.requests.load(Ordering::Relaxed);
    let (status, body) = get(sidecar.addr, routes::COMPONENT_HEALTH).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, UPSTREAM_HEALTH), "/health comes from the upstream");
    assert!(upstream.requests.load(Ordering::Relaxed) > before);
    assert_eq!(get(sidecar.addr, "/no-such-file").await.0, StatusCode::NOT_FOUND, "upstream's 404 passed on");
    let (status, metrics) = get(sidecar.admin, routes::METRICS).await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("# TYPE"), "Prometheus text: {metrics}");

    // The app container goes away: the pod turns unready (no traffic), but stays alive (no restart).
    drop(upstream);
    wait_for(sidecar.admin, routes::READYZ, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(get(sidecar.admin, routes::LIVEZ).await.0, StatusCode::OK);
    assert_eq!(get(sidecar.addr, routes::COMPONENT_HEALTH).await.0, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
#[ignore = "needs the static sidecar build: make test-sidecar"]
async fn sidecar_echoes_websockets_and_drains_on_sigterm() {
    let bin = sidecar_bin();
    let upstream = start_upstream().await;
    let mut sidecar = start_sidecar(&bin, upstream.addr, &[]).await;

    let stream = timeout(STEP, TcpStream::connect(sidecar.addr)).await.unwrap().unwrap();
    let url = format!("ws://{}{}?push=off", sidecar.addr, routes::WS);
    let (mut ws, response) =
        timeout(STEP, tokio_tungstenite::client_async(url, stream)).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);

    for message in [Message::text("hello, sidecar"), Message::binary(vec![0u8, 1, 2, 255])] {
        timeout(STEP, ws.send(message.clone())).await.unwrap().unwrap();
        let echoed = timeout(STEP, ws.next()).await.expect("echo within 10 s").unwrap().unwrap();
        assert_eq!(echoed, message);
    }

    // What the kubelet does at pod deletion: SIGTERM, then wait up to terminationGracePeriodSeconds.
    let pid = sidecar.child.id().expect("still running").to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let close = timeout(STEP, async {
        while let Some(frame) = ws.next().await {
            if let Message::Close(close) = frame.expect("a clean close, not a reset") {
                return close;
            }
        }
        None
    })
    .await
    .expect("a Close frame within 10 s of SIGTERM")
    .expect("a Close frame with a code");
    assert_eq!(close.code, CloseCode::Away, "1001 going away: {close:?}");
    let _ = timeout(STEP, ws.close(None)).await;

    let status = timeout(STEP, sidecar.child.wait()).await.expect("exits within 10 s of SIGTERM").unwrap();
    assert!(status.success(), "exit status after a drain: {status}");
}

/// The sidecar's args in `k8s/deployment.yaml`, so the memory test measures what the pod runs.
fn pod_gateway_args() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../k8s/deployment.yaml");
    let text = std::fs::read_to_string(path).expect("k8s/deployment.yaml");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("one YAML document");
    let containers = doc["spec"]["template"]["spec"]["containers"].as_sequence().expect("containers");
    let gateway = containers.iter().find(|c| c["name"] == "gateway").expect("a gateway container");
    gateway["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string").to_owned())
        .collect()
}

/// The value of `--flag=value` among `args`.
fn flag(args: &[String], name: &str) -> usize {
    let prefix = format!("{name}=");
    let value =
        args.iter().find_map(|a| a.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {name} in the pod"));
    value.parse().unwrap_or_else(|_| panic!("{name}={value}"))
}

fn rss_bytes(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the sidecar's status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// Bytes queued in the kernel (send plus receive queues, `/proc/net/tcp`) on the established
/// sockets whose local port is `port`.
fn kernel_queued(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(fields.get(1)?.rsplit_once(':')?.1, 16).ok()?;
            let (tx, rx) = fields.get(4)?.split_once(':')?;
            if local_port != port || *fields.get(3)? != "01" {
                return None;
            }
            Some(usize::from_str_radix(tx, 16).ok()? + usize::from_str_radix(rx, 16).ok()?)
        })
        .sum()
}

/// The documented worst case: a client that sends the largest messages and never reads costs the
/// pod's gateway at most this much of its own memory (measured 58 KiB; `k8s/deployment.yaml`).
const ADVERSARY_MAX_BYTES: usize = 64 * 1024;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the static sidecar build: make test-sidecar"]
async fn an_adversarial_client_costs_no_more_memory_than_documented() {
    const CLIENTS: usize = 200;
    let bin = sidecar_bin();
    let upstream = start_upstream().await;
    let pod = pod_gateway_args();
    let (max_message, socket_buffer) = (flag(&pod, "--max-message-size"), flag(&pod, "--socket-buffer"));
    let (message, buffer) = (max_message.to_string(), socket_buffer.to_string());
    let sidecar = start_sidecar(
        &bin,
        upstream.addr,
        &["--max-message-size", &message, "--socket-buffer", &buffer, "--max-connections", "1000"],
    )
    .await;
    let pid = sidecar.child.id().expect("running");
    let before = rss_bytes(pid);

    // Each client sends the largest messages the pod allows and never reads: once the server stops
    // reading from it, its sends block for good.
    let mut clients = JoinSet::new();
    for _ in 0..CLIENTS {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = timeout(STEP, socket.connect(sidecar.addr)).await.unwrap().unwrap();
        let url = format!("ws://{}{}?push=off", sidecar.addr, routes::WS);
        let (ws, _) = timeout(STEP, tokio_tungstenite::client_async(url, stream)).await.unwrap().unwrap();
        let message = Message::binary(vec![0x5au8; max_message]);
        clients.spawn(async move {
            let (mut sink, _never_read) = ws.split();
            while sink.send(message.clone()).await.is_ok() {}
        });
    }
    // Every one of them stuck: its outbox full behind the kernel's buffers.
    let stuck = timeout(STEP * 3, async {
        loop {
            let (_, metrics) = get(sidecar.admin, routes::METRICS).await;
            let queued = metrics
                .lines()
                .find_map(|l| l.strip_prefix("sidestream_ws_outbox_bytes "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            if queued >= (CLIENTS * 32 * 1024) as f64 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(stuck.is_ok(), "not every client filled its outbox");
    // Resident memory once it stops moving.
    let mut after = rss_bytes(pid);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = rss_bytes(pid);
        if now.abs_diff(after) * 100 <= after {
            break;
        }
        after = now;
    }
    let per_client = after.saturating_sub(before) / CLIENTS;
    let bound = sidestream_gateway::ws::memory_bound(max_message);
    assert!(per_client <= bound, "{per_client} bytes per adversary, over the code's own bound of {bound}");
    assert!(
        per_client <= ADVERSARY_MAX_BYTES,
        "{per_client} bytes per adversary: more than the {ADVERSARY_MAX_BYTES} documented in k8s/deployment.yaml"
    );
    let kernel = kernel_queued(sidecar.addr.port()) / CLIENTS;
    assert!(kernel <= 4 * socket_buffer, "{kernel} bytes per adversary queued in the kernel");
    eprintln!("adversary: {per_client} bytes in the sidecar, {kernel} queued in the kernel, per client");
    clients.abort_all();
}
