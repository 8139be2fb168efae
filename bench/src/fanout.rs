//! `fanout`: N connections with pushes on; pushes delivered per second and how late each arrived
//! against the `ts` it was stamped with.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::worker::{Mode, Pool};
use crate::{procfs, stats};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// WebSocket URL with pushes on (the gateway's `/ws`).
    #[arg(long)]
    pub url: String,
    #[arg(long, short = 'n', default_value_t = 19_000)]
    pub connections: usize,
    /// Connections per worker process (the open-file limit is 20,000 per process).
    #[arg(long, default_value_t = 9_000)]
    pub per_worker: usize,
    /// Measured time.
    #[arg(long, short = 'd', default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Time after the last connection opened and before measuring (every schedule is running).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// The server's pid, for its CPU time per push.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub connections: usize,
    pub opened: usize,
    pub failed: usize,
    pub pushes: u64,
    pub seconds: f64,
    pub pushes_per_s: f64,
    /// Arrival minus `ts`, microseconds (`ts` has millisecond resolution).
    pub lateness: stats::Percentiles,
    /// `(quantile, us)` points for the lateness chart.
    pub lateness_curve: Vec<(f64, u64)>,
    /// Pushes missing from the `seq` sequences.
    pub dropped: u64,
    pub first_seq_min: Option<u64>,
    pub first_seq_max: Option<u64>,
    pub closed_early: u64,
    pub server_cpu_us_per_push: Option<f64>,
}

pub async fn run(args: &Args) -> anyhow::Result<Outcome> {
    if let Some(pid) = args.server_pid {
        procfs::check_pid(pid)?;
    }
    let (mut pool, ready) =
        Pool::open(&args.url, args.connections, args.per_worker, Mode::Fanout, false, 0).await?;
    if ready.opened == 0 {
        bail!("no connection opened: {}", ready.first_error.unwrap_or_default());
    }
    tokio::time::sleep(args.warmup).await;
    let cpu = procfs::CpuWindow::start(args.server_pid.as_slice());
    pool.go().await?;
    tokio::time::sleep(args.duration).await;
    let cpu = cpu.end();
    let reports = pool.stop().await?;

    let mut hist = stats::histogram();
    for r in &reports {
        hist.add(stats::decode(&r.lateness)?).context("merging lateness")?;
    }
    let pushes: u64 = reports.iter().map(|r| r.pushes).sum();
    let seconds = args.duration.as_secs_f64();
    Ok(Outcome {
        connections: args.connections,
        opened: ready.opened,
        failed: ready.failed,
        pushes,
        seconds,
        pushes_per_s: pushes as f64 / seconds,
        lateness: stats::Percentiles::of(&hist),
        lateness_curve: stats::curve(&hist),
        dropped: reports.iter().map(|r| r.gaps).sum(),
        first_seq_min: reports.iter().filter_map(|r| r.first_seq_min).min(),
        first_seq_max: reports.iter().filter_map(|r| r.first_seq_max).max(),
        closed_early: reports.iter().map(|r| r.closed).sum(),
        server_cpu_us_per_push: cpu.us_per(pushes),
    })
}

pub fn print(o: &Outcome) {
    println!(
        "fanout n={} (opened {}, failed {}): {:.0} pushes/s, lateness p50 {:.1} ms p99 {:.1} ms max {:.1} ms, dropped {}, first seq {:?}..{:?}, closed early {}, server cpu {} us/push",
        o.connections,
        o.opened,
        o.failed,
        o.pushes_per_s,
        o.lateness.p50_us as f64 / 1e3,
        o.lateness.p99_us as f64 / 1e3,
        o.lateness.max_us as f64 / 1e3,
        o.dropped,
        o.first_seq_min,
        o.first_seq_max,
        o.closed_early,
        o.server_cpu_us_per_push.map_or("n/a".into(), |v| format!("{v:.2}")),
    );
}
