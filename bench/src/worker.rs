//! Holding many connections: the generator re-executes itself as worker processes, each holding
//! up to `--per-worker` sockets, because one process may open at most 20,000 files here and the
//! server under test holds up to 19,000.
//!
//! Parent and worker talk over the worker's stdin/stdout, one line each way:
//! worker `READY {json}` once every connection is open; parent `GO` (start counting), `MARK`
//! (the end of a measured window: what has arrived so far is noted apart), `STOP`;
//! worker `RESULT {json}`, then it exits, closing its sockets.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt, stream};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_tungstenite::tungstenite::Message;

use crate::{stats, ws};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Mode {
    /// Hold the connections, read and discard whatever arrives.
    Idle,
    /// Hold the connections and time every push against its `ts`.
    Fanout,
    /// Echo one `--message-size` message on each, then hold them like `idle`: what a connection
    /// keeps after it has been busy.
    Busy,
    /// The adversary: send `--message-size` messages and never read, until the server stops
    /// reading (a send makes no progress for a second); then hold.
    Stuck,
    /// The adversary of a WebSocket app (`/echo`): as `stuck`, with Text messages of `\x01`, which
    /// `/echo` escapes into six bytes each (`\u0001`), so each answer is six times the message.
    StuckText,
    /// A channel subscriber (`/room`): wait for the app's first message (its welcome: the
    /// subscription is in place), then time every publication against the `us` it carries.
    Subscribe,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Idle => "idle",
            Mode::Fanout => "fanout",
            Mode::Busy => "busy",
            Mode::Stuck => "stuck",
            Mode::StuckText => "stuck-text",
            Mode::Subscribe => "subscribe",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub connections: usize,
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// One echo round trip per connection once open, so lazily allocated buffers exist.
    #[arg(long)]
    pub warm: bool,
    /// Message size of `busy` and `stuck`.
    #[arg(long, default_value_t = 64 * 1024)]
    pub message_size: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ready {
    pub opened: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    /// Handshakes tried again after a refusal (subscribers only; see [`open`]).
    #[serde(default)]
    pub retried: u64,
}

impl Ready {
    /// Adds another pool's or worker's counts to these.
    pub fn add(&mut self, other: Ready) {
        self.opened += other.opened;
        self.failed += other.failed;
        self.retried += other.retried;
        self.first_error = self.first_error.take().or(other.first_error);
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Pushes received between GO and STOP, each `seq` once per connection.
    pub pushes: u64,
    /// Of those, the ones that arrived before MARK (all of them when there was no MARK).
    pub pushes_before_mark: u64,
    /// Pushes whose `seq` was not above the last one the connection had seen (a repeat, or one
    /// out of order): not counted in `pushes`, over the whole run.
    pub repeats: u64,
    /// Pushes missing from a connection's `seq` sequence, over the whole run.
    pub gaps: u64,
    /// Lowest and highest first `seq` seen on a connection (equal when nothing was lost at start).
    pub first_seq_min: Option<u64>,
    pub first_seq_max: Option<u64>,
    /// Connections the server closed or broke before STOP.
    pub closed: u64,
    /// Text frames that were not pushes.
    pub other: u64,
    /// Lateness histogram (microseconds), base64 V2.
    pub lateness: String,
}

#[derive(Deserialize)]
struct Push<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    seq: u64,
    ts: &'a str,
}

/// What the `publish` workload's publisher puts in each item's content.
#[derive(Deserialize)]
struct Publication {
    seq: u64,
    /// Microseconds since the Unix epoch when it was sent to the publish API.
    us: i64,
}

#[derive(Default)]
struct Shared {
    measuring: AtomicBool,
    marked: Mutex<Option<u64>>,
    pushes: AtomicU64,
    repeats: AtomicU64,
    gaps: AtomicU64,
    closed: AtomicU64,
    other: AtomicU64,
    first_seq: Mutex<Option<(u64, u64)>>,
    lateness: Mutex<Option<Histogram<u64>>>,
}

/// The worker process: `sidestream-bench worker ...` (hidden subcommand).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let shared = Arc::new(Shared { lateness: Mutex::new(Some(stats::histogram())), ..Default::default() });
    let mut ready = Ready::default();
    let retried = AtomicU64::new(0);
    let mut stuck = Vec::new();
    let mut opened = stream::iter(0..args.connections)
        .map(|_| open(&args.url, args.warm, args.mode, args.message_size, &retried))
        .buffer_unordered(128);
    while let Some(result) = opened.next().await {
        match result {
            Ok(conn) if matches!(args.mode, Mode::Stuck | Mode::StuckText) => stuck.push(conn),
            Ok(conn) => {
                ready.opened += 1;
                tokio::spawn(hold(conn, args.mode, shared.clone()));
            }
            Err(e) => {
                ready.failed += 1;
                ready.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    // Every connection gets stuck at once, after all the handshakes: no handshake waits behind
    // other connections' large messages (a busy gateway's 10 s header timeout closed some when
    // they overlapped), and all are stuck within seconds of each other, well before the server's
    // 75 s idle timeout closes them (they answer no pings).
    let message = match args.mode {
        Mode::StuckText => Message::text("\x01".repeat(args.message_size)),
        _ => Message::binary(vec![0x5au8; args.message_size]),
    };
    let sends = stuck.into_iter().map(|conn| get_stuck(conn, message.clone()));
    for result in futures_util::future::join_all(sends).await {
        match result {
            Ok(conn) => {
                ready.opened += 1;
                // Never read: the adversary keeps its socket and does nothing more.
                tokio::spawn(async move {
                    let _held = conn;
                    std::future::pending::<()>().await
                });
            }
            Err(e) => {
                ready.failed += 1;
                ready.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    ready.retried = retried.load(Ordering::SeqCst);
    println!("READY {}", serde_json::to_string(&ready)?);

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = stdin.next_line().await? {
        match line.trim() {
            "GO" => shared.measuring.store(true, Ordering::SeqCst),
            "MARK" => {
                if let Ok(mut m) = shared.marked.lock() {
                    *m = Some(shared.pushes.load(Ordering::SeqCst));
                }
            }
            "STOP" => break,
            _ => {}
        }
    }
    shared.measuring.store(false, Ordering::SeqCst);
    let hist = shared
        .lateness
        .lock()
        .map_err(|_| anyhow::anyhow!("lateness lock poisoned"))?
        .take()
        .unwrap_or_else(stats::histogram);
    let first = *shared.first_seq.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let pushes = shared.pushes.load(Ordering::SeqCst);
    let marked = *shared.marked.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let report = Report {
        pushes,
        pushes_before_mark: marked.unwrap_or(pushes),
        repeats: shared.repeats.load(Ordering::SeqCst),
        gaps: shared.gaps.load(Ordering::SeqCst),
        first_seq_min: first.map(|f| f.0),
        first_seq_max: first.map(|f| f.1),
        closed: shared.closed.load(Ordering::SeqCst),
        other: shared.other.load(Ordering::SeqCst),
        lateness: stats::encode(&hist)?,
    };
    println!("RESULT {}", serde_json::to_string(&report)?);
    // Exiting closes every socket at once; no per-connection close handshake to wait for.
    std::process::exit(0);
}

async fn open(
    url: &str,
    warm: bool,
    mode: Mode,
    message_size: usize,
    retried: &AtomicU64,
) -> anyhow::Result<ws::Ws> {
    if mode == Mode::Subscribe {
        // A subscriber refused (Pushpin answers some handshakes of a crowd `502` or `503`) tries
        // again, as a browser's reconnect would: `failed` counts the ones that never joined,
        // `retried` every second and later try.
        let mut attempt = 1;
        loop {
            match open_once(url, warm, mode, message_size).await {
                Err(_) if attempt < 5 => {
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    attempt += 1;
                    retried.fetch_add(1, Ordering::Relaxed);
                }
                other => return other,
            }
        }
    }
    open_once(url, warm, mode, message_size).await
}

async fn open_once(url: &str, warm: bool, mode: Mode, message_size: usize) -> anyhow::Result<ws::Ws> {
    let connect = async {
        match mode {
            // A small receive buffer, so the kernel does not soak up megabytes of echoes first.
            Mode::Stuck | Mode::StuckText => ws::connect_with_recv_buffer(url, 4096).await,
            _ => ws::connect(url).await,
        }
    };
    let mut conn =
        tokio::time::timeout(Duration::from_secs(30), connect).await.context("connect timed out")??;
    if warm {
        echo_once(&mut conn, "warm".into()).await?;
    }
    match mode {
        Mode::Busy => echo_once(&mut conn, "b".repeat(message_size)).await?,
        Mode::Subscribe => {
            let welcome = async {
                while let Some(m) = conn.next().await {
                    if m?.is_text() {
                        return Ok(());
                    }
                }
                bail!("closed before the welcome")
            };
            tokio::time::timeout(Duration::from_secs(30), welcome).await.context("no welcome")??;
        }
        Mode::Idle | Mode::Fanout | Mode::Stuck | Mode::StuckText => {}
    }
    Ok(conn)
}

/// Sends `message` again and again and never reads, until the server stops reading from the
/// connection: then a send stays blocked (a second without progress).
async fn get_stuck(mut conn: ws::Ws, message: Message) -> anyhow::Result<ws::Ws> {
    while let Ok(sent) = tokio::time::timeout(Duration::from_secs(1), conn.send(message.clone())).await {
        sent.context("the server closed a stuck connection")?;
    }
    Ok(conn)
}

/// Sends `text` and waits for its echo.
async fn echo_once(conn: &mut ws::Ws, text: String) -> anyhow::Result<()> {
    conn.send(Message::text(text.clone())).await?;
    let echoed = async {
        while let Some(m) = conn.next().await {
            // The built-in `/ws` echoes it unchanged; an app's echo (`/echo`) carries it inside.
            if m?.to_text().is_ok_and(|t| t == text || t.contains(&text)) {
                return Ok(());
            }
        }
        bail!("closed before the echo")
    };
    tokio::time::timeout(Duration::from_secs(30), echoed).await.context("echo timed out")?
}

async fn hold(mut conn: ws::Ws, mode: Mode, shared: Arc<Shared>) {
    let mut sequence = Sequence::default();
    while let Some(msg) = conn.next().await {
        let Ok(msg) = msg else { break };
        let Message::Text(text) = msg else { continue };
        if mode == Mode::Idle {
            continue;
        }
        let arrived_us = ws::now_us();
        let (seq, sent_us) = if mode == Mode::Subscribe {
            match serde_json::from_str::<Publication>(&text) {
                Ok(p) => (p.seq, Some(p.us)),
                Err(_) => {
                    shared.other.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        } else {
            match serde_json::from_str::<Push>(&text) {
                Ok(push) if push.kind == "push" => {
                    (push.seq, ws::parse_rfc3339_ms(push.ts).map(|ms| ms * 1000))
                }
                _ => {
                    shared.other.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        };
        match sequence.see(seq) {
            Seen::First => {
                if let Ok(mut first) = shared.first_seq.lock() {
                    let (lo, hi) = first.unwrap_or((seq, seq));
                    *first = Some((lo.min(seq), hi.max(seq)));
                }
            }
            Seen::Next { missed } => {
                shared.gaps.fetch_add(missed, Ordering::Relaxed);
            }
            Seen::Repeat => {
                shared.repeats.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        if shared.measuring.load(Ordering::Relaxed) {
            shared.pushes.fetch_add(1, Ordering::Relaxed);
            if let Some(sent_us) = sent_us {
                let late = (arrived_us - sent_us).max(0) as u64;
                if let Ok(mut h) = shared.lateness.lock()
                    && let Some(h) = h.as_mut()
                {
                    stats::record(h, late);
                }
            }
        }
    }
    shared.closed.fetch_add(1, Ordering::Relaxed);
}

/// One connection's `seq` numbers so far, to tell a new one from a hole or a repeat.
#[derive(Default)]
struct Sequence {
    last: Option<u64>,
}

#[derive(Debug, PartialEq)]
enum Seen {
    First,
    /// Above the last one; `missed` numbers in between never came.
    Next {
        missed: u64,
    },
    /// Not above the last one: a repeat (or one out of order, after a hole was counted).
    Repeat,
}

impl Sequence {
    fn see(&mut self, seq: u64) -> Seen {
        match self.last {
            Some(prev) if seq <= prev => Seen::Repeat,
            prev => {
                self.last = Some(seq);
                prev.map_or(Seen::First, |p| Seen::Next { missed: seq - p - 1 })
            }
        }
    }
}

/// The parent's handle on a set of worker processes.
pub struct Pool {
    workers: Vec<Worker>,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn expect(&mut self, tag: &str, within: Duration) -> anyhow::Result<String> {
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .with_context(|| format!("worker sent no {tag} within {within:?}"))??
            .with_context(|| format!("worker exited before {tag}"))?;
        line.strip_prefix(tag)
            .map(|rest| rest.trim().to_string())
            .with_context(|| format!("worker said {line:?}, expected {tag}"))
    }
}

impl Pool {
    /// Starts `ceil(total / per_worker)` workers and waits until each has opened its share.
    pub async fn open(
        url: &str,
        total: usize,
        per_worker: usize,
        mode: Mode,
        warm: bool,
        message_size: usize,
    ) -> anyhow::Result<(Pool, Ready)> {
        let exe = std::env::current_exe().context("locating sidestream-bench")?;
        let n = total.div_ceil(per_worker.max(1)).max(1);
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let share = total / n + usize::from(i < total % n);
            let mut cmd = Command::new(&exe);
            cmd.args(["worker", "--url", url, "--connections", &share.to_string(), "--mode", mode.name()])
                .args(["--message-size", &message_size.to_string()])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true);
            if warm {
                cmd.arg("--warm");
            }
            let mut child = cmd.spawn().context("starting a worker")?;
            let stdin = child.stdin.take().context("worker stdin")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            workers.push(Worker { child, stdin, lines: BufReader::new(stdout).lines() });
        }
        let mut ready = Ready::default();
        for w in &mut workers {
            ready.add(serde_json::from_str(&w.expect("READY", Duration::from_secs(180)).await?)?);
        }
        Ok((Pool { workers }, ready))
    }

    async fn tell(&mut self, word: &str) -> anyhow::Result<()> {
        for w in &mut self.workers {
            w.stdin.write_all(format!("{word}\n").as_bytes()).await?;
            w.stdin.flush().await?;
        }
        Ok(())
    }

    pub async fn go(&mut self) -> anyhow::Result<()> {
        self.tell("GO").await
    }

    /// Ends the measured window: each report's `pushes_before_mark` is what arrived until now.
    pub async fn mark(&mut self) -> anyhow::Result<()> {
        self.tell("MARK").await
    }

    /// Stops every worker and returns their reports (connections close as the workers exit).
    pub async fn stop(mut self) -> anyhow::Result<Vec<Report>> {
        self.tell("STOP").await?;
        let mut reports = Vec::new();
        for w in &mut self.workers {
            reports.push(serde_json::from_str(&w.expect("RESULT", Duration::from_secs(30)).await?)?);
        }
        for w in &mut self.workers {
            let _ = tokio::time::timeout(Duration::from_secs(30), w.child.wait()).await;
        }
        Ok(reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_seq_is_a_repeat_not_a_delivery() {
        let mut s = Sequence::default();
        let seen: Vec<Seen> = [3, 4, 4, 6, 5, 7].into_iter().map(|q| s.see(q)).collect();
        use Seen::*;
        assert_eq!(seen, [First, Next { missed: 0 }, Repeat, Next { missed: 1 }, Repeat, Next { missed: 0 }]);
    }
}
