//! Starting a server under test, learning the address it bound, and stopping it after the one
//! workload it was started for.

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// How to start one server: the program, its arguments, and its working directory.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub dir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

/// A running server; killed when dropped.
pub struct Server {
    pub addr: String,
    /// The admin listener (publish API, metrics), when the start-up line names one (`admin=`).
    pub admin: Option<String>,
    child: Child,
}

impl Server {
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("server already exited")
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// What a workload runs against: started for it, stopped after it.
pub trait Running {
    fn stop(self) -> impl Future<Output = ()>;
}

impl Running for Server {
    fn stop(self) -> impl Future<Output = ()> {
        Server::stop(self)
    }
}

/// Starts a fresh server for one workload (`start`), runs `f` against it and stops it, so
/// allocator state left by one run never flatters the next. A failure to start or to measure is
/// recorded in `failures` under `label`, and the suite goes on.
pub async fn measure<S, T, Fut>(
    name: &str,
    label: &str,
    failures: &mut Vec<String>,
    start: impl Future<Output = anyhow::Result<S>>,
    f: impl FnOnce(&S) -> Fut,
) -> Option<T>
where
    S: Running,
    Fut: Future<Output = anyhow::Result<T>>,
{
    eprintln!("[{name}] {label}");
    let server = match start.await {
        Ok(s) => s,
        Err(e) => {
            failures.push(format!("{label}: {e:#}"));
            return None;
        }
    };
    let out = f(&server).await;
    server.stop().await;
    out.map_err(|e| failures.push(format!("{label}: {e:#}"))).ok()
}

/// A loopback port nobody listens on right now (bound and released; the race is harmless on a
/// quiet loopback), for servers that take their ports from a config file.
/// The key every gateway of the suite signs its requests to the component with (`--grip-key-file`),
/// and Pushpin too (its `sig_key`), so the same component accepts either in front of it.
pub const GRIP_KEY: &str = "sidestream-bench-grip-key-0123456789";

/// A file holding [`GRIP_KEY`], written once per run.
pub fn grip_key_file() -> anyhow::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("sidestream-bench-grip-key-{}", std::process::id()));
    std::fs::write(&path, GRIP_KEY)?;
    Ok(path)
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts connections on loopback `port`; fails when `within` has passed
/// or `child` (the server that should listen) has exited.
pub async fn wait_for_port(port: u16, child: &mut Child, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if child.try_wait()?.is_some() {
            bail!("exited before listening on port {port}");
        }
        if Instant::now() > deadline {
            bail!("not listening on port {port} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Starts `spec` and waits (up to 60 s: wasmtime compiles the component first) for the line that
/// names its address: `listening addr=HOST:PORT` (the gateway and the peers here) or
/// `Serving HTTP on http://HOST:PORT/` (`wasmtime serve`). Both output streams are drained for the
/// server's whole life so a chatty server never blocks on a full pipe.
pub async fn start(spec: &Spec) -> anyhow::Result<Server> {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &spec.dir {
        cmd.current_dir(dir);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    let mut child =
        cmd.spawn().with_context(|| format!("starting {} ({})", spec.name, spec.program.display()))?;
    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(drain(child.stdout.take().context("stdout")?, tx.clone()));
    tokio::spawn(drain(child.stderr.take().context("stderr")?, tx));

    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = rx.recv().await {
            if let Some(addr) = address_in(&line) {
                return Some((addr, admin_in(&line)));
            }
            if seen.len() < 20 {
                seen.push(line);
            }
        }
        None
    })
    .await;
    // Keep draining after the address line; nobody reads the rest.
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    match found {
        Ok(Some((addr, admin))) => Ok(Server { addr, admin, child }),
        Ok(None) => bail!("{} exited before listening: {}", spec.name, seen.join(" | ")),
        Err(_) => bail!("{} named no address within 60 s: {}", spec.name, seen.join(" | ")),
    }
}

async fn drain(out: impl AsyncRead + Unpin, tx: mpsc::Sender<String>) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        // Once the address is known nobody listens; lines are dropped, the pipe stays empty.
        let _ = tx.try_send(line);
    }
}

/// The bound address in a server's start-up line.
pub fn address_in(line: &str) -> Option<String> {
    let rest = if let Some((_, rest)) = line.split_once("listening addr=") {
        rest
    } else {
        line.split_once("Serving HTTP on http://")?.1
    };
    let addr: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
    // Logs may colour fields with ANSI escapes; keep host:port only.
    let addr = addr.split('\u{1b}').next().unwrap_or_default().to_string();
    let addr = addr.replace("0.0.0.0:", "127.0.0.1:");
    addr.contains(':').then_some(addr)
}

/// The gateway's admin address in its start-up line (`... listening addr=A admin=B`).
pub fn admin_in(line: &str) -> Option<String> {
    let rest = line.split_once(" admin=")?.1;
    address_in(&format!("listening addr={rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_start_up_lines() {
        let gw = "2025-11-28T08:00:00Z  INFO sidestream_gateway: listening addr=127.0.0.1:43567";
        assert_eq!(address_in(gw).as_deref(), Some("127.0.0.1:43567"));
        let wt = "Serving HTTP on http://0.0.0.0:8080/";
        assert_eq!(address_in(wt).as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(address_in("hello").as_deref(), None);
        let both = "INFO sidestream_gateway::server: listening addr=127.0.0.1:4000 admin=127.0.0.1:4001";
        assert_eq!(address_in(both).as_deref(), Some("127.0.0.1:4000"));
        assert_eq!(admin_in(both).as_deref(), Some("127.0.0.1:4001"));
        assert_eq!(admin_in(gw).as_deref(), None);
    }
}
