//! The real `sidestream-gateway` binary as a child process: what a test needs to kill it.

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{component, grip_key_file, listening_addrs, within};

pub const BIN: &str = env!("CARGO_BIN_EXE_sidestream-gateway");

/// A started binary: the process, its public and admin addresses, and its log (once it exits).
pub struct Spawned {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub log: tokio::task::JoinHandle<String>,
}

impl Spawned {
    pub fn pid(&self) -> String {
        self.child.id().expect("running").to_string()
    }

    /// Sends `signal` (`-TERM`, `-KILL`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill").args([signal, &self.pid()]).status().unwrap();
        assert!(status.success(), "kill {signal}");
    }

    /// SIGKILL, and waits for the process to be gone: a gateway that dies without draining.
    pub async fn kill(mut self) -> String {
        self.signal("-KILL");
        within("the gateway dies", self.child.wait()).await.unwrap();
        within("its log", self.log).await.unwrap()
    }
}

/// Starts the binary on free ports (with the embedded component unless `args` name a backend)
/// and reads the bound addresses from its one stable start-up line.
pub async fn spawn(args: &[&str]) -> Spawned {
    spawn_bin(BIN, args).await
}

/// [`spawn`] with another build of the gateway (the static sidecar, say).
pub async fn spawn_bin(bin: &str, args: &[&str]) -> Spawned {
    let component = component();
    let mut command = Command::new(bin);
    command.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
    if !args.contains(&"--upstream") && !args.contains(&"--component") {
        command.args(["--component", component.to_str().unwrap()]);
    }
    if !args.iter().any(|a| a.starts_with("--grip-key-file")) {
        command.args(["--grip-key-file", grip_key_file()]);
    }
    let mut child = command
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn gateway");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (addr, admin) = within("start-up line", async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(addrs) = listening_addrs(&line) {
                return addrs;
            }
        }
        panic!("the gateway exited before listening");
    })
    .await;
    // Keep draining the log so the child never blocks on a full pipe; hand it back at the end.
    let log = tokio::spawn(async move {
        let mut all = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    Spawned { child, addr, admin, log }
}

/// A field of the process's `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the gateway's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field}"))
}

/// Resident memory once it stops moving (two readings 200 ms apart within 1%), in bytes.
pub async fn settled_rss(pid: u32) -> usize {
    let mut last = status_kib(pid, "VmRSS:");
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = status_kib(pid, "VmRSS:");
        if now.abs_diff(last) * 100 <= last {
            return now * 1024;
        }
        last = now;
    }
    last * 1024
}
