//! `echo`: C connections, each a closed loop of send one message / wait for its echo.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt, stream};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use crate::{procfs, stages, stats, ws};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// WebSocket URL; for the gateway use `/ws?push=off` so no push lands between echoes.
    #[arg(long)]
    pub url: String,
    /// Concurrent connections, each with one message in flight.
    #[arg(long, short = 'c', default_value_t = 100)]
    pub connections: usize,
    /// Message size in bytes.
    #[arg(long, short = 's', default_value_t = 64)]
    pub size: usize,
    /// Measured time, after the warm-up.
    #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Traffic before measuring starts (connections, caches and allocators settle).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Send Binary frames instead of Text (the page sends Text). With `--app`, the component's
    /// `/echo` sends a Binary back unchanged, so replies are matched by length as in a plain echo.
    #[arg(long)]
    pub binary: bool,
    /// The server's pids, for its CPU time per message (several, comma-separated, for a server
    /// made of processes: Pushpin's and its backend's).
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// The server is the component's `/echo`: the reply is `{"type":"echo","n":N,"text":...}`
    /// around the message, not the message itself.
    #[arg(long)]
    pub app: bool,
    /// The gateway's admin address (`host:port`): its stage histograms are read before and after
    /// the window (see `stages`).
    #[arg(long)]
    pub metrics_addr: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Measured on the component's `/echo` (`app-echo`) rather than a plain echo.
    #[serde(default)]
    pub app: bool,
    pub connections: usize,
    pub size: usize,
    pub messages: u64,
    pub seconds: f64,
    pub msg_per_s: f64,
    pub rtt: stats::Percentiles,
    /// `(quantile, us)` points for the latency chart.
    pub rtt_curve: Vec<(f64, u64)>,
    /// Server CPU (user+system, all threads) per echoed message, in microseconds.
    pub server_cpu_us_per_msg: Option<f64>,
    /// The load generator's own CPU per message, for context.
    pub client_cpu_us_per_msg: f64,
    pub errors: u64,
    /// What makes a figure less than it seems (a server process that exited while measured).
    pub notes: Vec<String>,
    /// Where the gateway's app requests spent the window, when its metrics were read.
    #[serde(default)]
    pub stages: Option<stages::Breakdown>,
}

pub async fn run(args: &Args) -> anyhow::Result<Outcome> {
    procfs::check_any_pid(&args.server_pid)?;
    let conns: Vec<ws::Ws> = stream::iter(0..args.connections)
        .map(|_| ws::connect(&args.url))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .context("opening the echo connections")?;

    let payload = "x".repeat(args.size);
    let msg = if args.binary {
        Message::Binary(payload.into_bytes().into())
    } else {
        Message::Text(payload.into())
    };
    let t0 = Instant::now();
    let measure_from = t0 + args.warmup;
    let until = measure_from + args.duration;
    let expect = Expect::of(args.app, &msg);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|ws| tokio::spawn(closed_loop(ws, msg.clone(), expect, measure_from, until)))
        .collect();

    tokio::time::sleep_until(measure_from.into()).await;
    let stages_before = match &args.metrics_addr {
        Some(addr) => Some(stages::read(addr).await?),
        None => None,
    };
    let server_cpu = procfs::CpuWindow::start(&args.server_pid);
    let client_cpu0 = procfs::self_cpu_time()?;
    tokio::time::sleep_until(until.into()).await;
    let server_cpu = server_cpu.end();
    let client_cpu1 = procfs::self_cpu_time()?;
    let stages = match (&args.metrics_addr, stages_before) {
        (Some(addr), Some(before)) => Some(stages::between(&before, &stages::read(addr).await?)),
        _ => None,
    };

    let mut hist = stats::histogram();
    let mut errors = 0;
    for task in tasks {
        let loop_outcome = task.await.context("echo task panicked")?;
        hist.add(&loop_outcome.hist).context("merging histograms")?;
        errors += loop_outcome.errors;
    }
    let messages = hist.len();
    let seconds = args.duration.as_secs_f64();
    let per_msg = |d: Duration| d.as_secs_f64() * 1e6 / messages.max(1) as f64;
    Ok(Outcome {
        app: args.app,
        connections: args.connections,
        size: args.size,
        messages,
        seconds,
        msg_per_s: messages as f64 / seconds,
        rtt: stats::Percentiles::of(&hist),
        rtt_curve: stats::curve(&hist),
        server_cpu_us_per_msg: server_cpu.us_per(messages),
        client_cpu_us_per_msg: per_msg(client_cpu1 - client_cpu0),
        errors,
        notes: server_cpu.note().into_iter().collect(),
        stages,
    })
}

/// What counts as the reply to a message.
#[derive(Clone, Copy)]
enum Expect {
    /// The message itself, echoed (same length).
    Len(usize),
    /// The component's `/echo` answer: a Text starting `{"type":"echo"`.
    App,
}

impl Expect {
    /// The reply to `msg`: on the component's `/echo` a Text comes back wrapped, a Binary as it
    /// was sent.
    fn of(app: bool, msg: &Message) -> Self {
        if app && msg.is_text() { Expect::App } else { Expect::Len(msg.len()) }
    }

    fn matches(self, m: &Message) -> bool {
        match self {
            Expect::Len(n) => (m.is_text() || m.is_binary()) && m.len() == n,
            Expect::App => m.to_text().is_ok_and(|t| t.starts_with(r#"{"type":"echo""#)),
        }
    }
}

struct LoopOutcome {
    hist: Histogram<u64>,
    errors: u64,
}

/// One connection's loop. Counts only round trips that start and end inside the measured window,
/// so the rate is exact for the window.
async fn closed_loop(
    mut ws: ws::Ws,
    msg: Message,
    expect: Expect,
    measure_from: Instant,
    until: Instant,
) -> LoopOutcome {
    let mut out = LoopOutcome { hist: stats::histogram(), errors: 0 };
    'outer: loop {
        let sent = Instant::now();
        if sent >= until {
            break;
        }
        if ws.send(msg.clone()).await.is_err() {
            out.errors += 1;
            break;
        }
        loop {
            let reply = tokio::time::timeout_at(until.into(), ws.next()).await;
            match reply {
                // The window closed with this echo in flight: not counted.
                Err(_) => break 'outer,
                Ok(Some(Ok(m))) if expect.matches(&m) => break,
                // Pings are answered by tungstenite; anything else (a stray push) is skipped.
                Ok(Some(Ok(_))) => continue,
                Ok(_) => {
                    out.errors += 1;
                    break 'outer;
                }
            }
        }
        let done = Instant::now();
        if sent >= measure_from && done <= until {
            stats::record(&mut out.hist, (done - sent).as_micros() as u64);
        }
    }
    // A polite close, bounded: the server's CPU has already been read.
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    out
}

pub fn print(o: &Outcome) {
    println!(
        "{} c={} size={}: {:.0} msg/s, rtt p50 {} us p99 {} us p99.9 {} us, server cpu {} us/msg, client cpu {:.1} us/msg, errors {}",
        if o.app { "app-echo" } else { "echo" },
        o.connections,
        o.size,
        o.msg_per_s,
        o.rtt.p50_us,
        o.rtt.p99_us,
        o.rtt.p999_us,
        o.server_cpu_us_per_msg.map_or("n/a".into(), |v| format!("{v:.2}")),
        o.client_cpu_us_per_msg,
        o.errors
    );
    for n in &o.notes {
        println!("  note: {n}");
    }
    if let Some(stages) = &o.stages {
        println!("  {}", stages.line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_echo_of_binary_matches_the_unchanged_bytes() {
        let sent = Message::binary(vec![b'x'; 64]);
        assert!(Expect::of(true, &sent).matches(&sent.clone()), "/echo sends a Binary back as is");
        let text = Message::text("x".repeat(64));
        let wrapped = Message::text(r#"{"type":"echo","n":1,"text":"xx"}"#);
        assert!(Expect::of(true, &text).matches(&wrapped));
        assert!(!Expect::of(true, &text).matches(&text), "a plain echo is not /echo's answer");
        assert!(Expect::of(false, &text).matches(&text));
    }
}
