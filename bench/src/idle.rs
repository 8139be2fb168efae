//! `idle`: open N connections that then stay quiet and report the server's resident memory per
//! connection (VmRSS after minus before, divided by N). `--clients busy` has each echo one large
//! message first (what a connection keeps after a burst); `--clients stuck` has each send large
//! messages without ever reading, until the server stops reading from it (the adversary's worst
//! case).

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use crate::procfs;
use crate::worker::{Mode, Pool};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// WebSocket URL (`/ws?push=off` for the gateway without pushes).
    #[arg(long)]
    pub url: String,
    /// Connections to hold open at once.
    #[arg(long, short = 'n', default_value_t = 19_000)]
    pub connections: usize,
    /// Connections per worker process (the open-file limit is 20,000 per process).
    #[arg(long, default_value_t = 9_000)]
    pub per_worker: usize,
    /// The server's pid (its VmRSS is what is measured).
    #[arg(long)]
    pub server_pid: u32,
    /// Skip the one echo per connection that makes lazily allocated buffers exist.
    #[arg(long)]
    pub no_warm: bool,
    /// What each connection does before it holds still.
    #[arg(long, value_enum, default_value = "idle")]
    pub clients: Clients,
    /// The message size of `--clients busy` and `--clients stuck`.
    #[arg(long, default_value_t = 64 * 1024)]
    pub message_size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Clients {
    Idle,
    Busy,
    Stuck,
    /// `stuck` with Text messages of `\x01`: the adversary of an app that escapes them (`/echo`).
    StuckText,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub clients: Clients,
    pub connections: usize,
    pub opened: usize,
    pub failed: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// The server's resident high-water mark (`VmHWM`) at the end: what a memory limit must hold.
    #[serde(default)]
    pub rss_peak_kib: u64,
    /// (after - before) / opened, in bytes.
    pub bytes_per_conn: f64,
    pub closed_early: u64,
}

pub async fn run(args: &Args) -> anyhow::Result<Outcome> {
    procfs::check_pid(args.server_pid)?;
    let rss_before = procfs::rss_kib(args.server_pid)?;
    let mode = match args.clients {
        Clients::Idle => Mode::Idle,
        Clients::Busy => Mode::Busy,
        Clients::Stuck => Mode::Stuck,
        Clients::StuckText => Mode::StuckText,
    };
    let (pool, ready) =
        Pool::open(&args.url, args.connections, args.per_worker, mode, !args.no_warm, args.message_size)
            .await?;
    // Adversaries the server closed (an app's answer over its connection's budget) count as
    // failed; when every one was, what they cost is still reported, per connection tried.
    if ready.opened == 0 && args.clients != Clients::StuckText {
        bail!("no connection opened: {}", ready.first_error.unwrap_or_default());
    }
    let rss_after = settled_rss(args.server_pid).await?;
    let rss_peak = procfs::peak_rss_kib(args.server_pid)?;
    let reports = pool.stop().await?;
    if let Some(e) = &ready.first_error {
        eprintln!("idle: {} of {} connections failed, first: {e}", ready.failed, args.connections);
    }
    Ok(Outcome {
        clients: args.clients,
        connections: args.connections,
        opened: ready.opened,
        failed: ready.failed,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_peak_kib: rss_peak,
        bytes_per_conn: (rss_after.saturating_sub(rss_before) * 1024) as f64 / ready.opened.max(1) as f64,
        closed_early: reports.iter().map(|r| r.closed).sum(),
    })
}

/// RSS once it stops moving: two readings 500 ms apart within 0.5%, or whatever it is after 10 s.
async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = procfs::rss_kib(pid)?;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = procfs::rss_kib(pid)?;
        if now.abs_diff(last) * 200 <= last || Instant::now() >= deadline {
            return Ok(now);
        }
        last = now;
    }
}

pub fn print(o: &Outcome) {
    println!(
        "idle n={} clients={:?} (opened {}, failed {}): rss {} -> {} KiB (peak {} KiB), {:.0} bytes/conn, closed early {}",
        o.connections,
        o.clients,
        o.opened,
        o.failed,
        o.rss_before_kib,
        o.rss_after_kib,
        o.rss_peak_kib,
        o.bytes_per_conn,
        o.closed_early
    );
}
