//! `ab`: two builds of one server, alternated, to decide whether a change earns its place.
//!
//! Each pair runs A then B, or B then A (the order alternates, so drift on a shared machine falls
//! on both sides alike), every run on a fresh server process with the same arguments, the `echo`
//! workload at each concurrency level. Per pair, the ratio B/A of server CPU per message and of
//! messages per second; reported: each pair's ratios and their median. A change that should save
//! CPU is kept when the median CPU ratio is at most 0.98 (2% less).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::echo;
use crate::servers::{self, Spec};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Build A (the baseline): `NAME=PATH`.
    #[arg(long, value_parser = parse_build)]
    pub a: (String, PathBuf),
    /// Build B (the change): `NAME=PATH`.
    #[arg(long, value_parser = parse_build)]
    pub b: (String, PathBuf),
    /// Pairs per concurrency level.
    #[arg(long, default_value_t = 6)]
    pub pairs: usize,
    /// Echo concurrency levels.
    #[arg(long, short = 'c', value_delimiter = ',', default_value = "100,1000")]
    pub connections: Vec<usize>,
    #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// The path and query the echo connections open.
    #[arg(long, default_value = "/ws?push=off")]
    pub path: String,
    /// The path is a WebSocket app in the component (`/echo`): replies are its answers, and the
    /// stage breakdown of each run is printed (give the servers `--component PATH` after `--`).
    #[arg(long)]
    pub app: bool,
    /// The servers' arguments (both builds get the same), after `--`.
    #[arg(last = true, default_values = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9"])]
    pub server_args: Vec<String>,
}

fn parse_build(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s.split_once('=').ok_or("expected NAME=PATH")?;
    Ok((name.to_string(), PathBuf::from(path)))
}

/// One pair's ratios, B over A.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    pub cpu: f64,
    pub msg_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Level {
    pub connections: usize,
    pub pairs: Vec<Pair>,
    /// Median of the pairs' CPU-per-message ratios (below 1: B spends less).
    pub cpu_median: f64,
    /// Median of the pairs' throughput ratios (above 1: B carries more).
    pub msg_per_s_median: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub a: String,
    pub b: String,
    pub levels: Vec<Level>,
}

pub async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let mut server_args = args.server_args.clone();
    if !server_args.iter().any(|a| a.starts_with("--grip-key-file")) {
        server_args.extend(["--grip-key-file".into(), servers::grip_key_file()?.display().to_string()]);
    }
    let spec = |(name, program): &(String, PathBuf)| Spec {
        name: name.clone(),
        program: program.clone(),
        args: server_args.clone(),
        dir: None,
        env: vec![],
    };
    let (a, b) = (spec(&args.a), spec(&args.b));
    let mut levels = Vec::new();
    for &c in &args.connections {
        let mut pairs = Vec::new();
        for i in 0..args.pairs {
            let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let one = measure(first, c, args).await?;
            let other = measure(second, c, args).await?;
            let (on_a, on_b) = if i % 2 == 0 { (one, other) } else { (other, one) };
            let pair =
                Pair { cpu: cpu_of(&on_b)? / cpu_of(&on_a)?, msg_per_s: on_b.msg_per_s / on_a.msg_per_s };
            eprintln!(
                "c={c} pair {}: {} {:.2} us/msg {:.0} msg/s, {} {:.2} us/msg {:.0} msg/s: cpu {:.3}x, msg/s {:.3}x",
                i + 1,
                a.name,
                cpu_of(&on_a)?,
                on_a.msg_per_s,
                b.name,
                cpu_of(&on_b)?,
                on_b.msg_per_s,
                pair.cpu,
                pair.msg_per_s
            );
            pairs.push(pair);
        }
        let cpu_median = median(pairs.iter().map(|p| p.cpu).collect());
        let msg_per_s_median = median(pairs.iter().map(|p| p.msg_per_s).collect());
        levels.push(Level { connections: c, pairs, cpu_median, msg_per_s_median });
    }
    Ok(Outcome { a: a.name, b: b.name, levels })
}

async fn measure(spec: &Spec, connections: usize, args: &Args) -> anyhow::Result<echo::Outcome> {
    let server = servers::start(spec).await?;
    let echo_args = echo::Args {
        url: format!("ws://{}{}", server.addr, args.path),
        connections,
        size: 64,
        duration: args.duration,
        warmup: args.warmup,
        binary: false,
        server_pid: vec![server.pid()?],
        app: args.app,
        metrics_addr: if args.app { server.admin.clone() } else { None },
    };
    let outcome = echo::run(&echo_args).await;
    server.stop().await;
    let outcome = outcome.with_context(|| format!("echo c={connections} on {}", spec.name))?;
    if let Some(stages) = &outcome.stages {
        eprintln!(
            "  {} c={connections}: p50 {} us, p99 {} us; {}",
            spec.name,
            outcome.rtt.p50_us,
            outcome.rtt.p99_us,
            stages.line()
        );
    }
    anyhow::ensure!(outcome.errors == 0, "{}: {} echo errors at c={connections}", spec.name, outcome.errors);
    Ok(outcome)
}

fn cpu_of(o: &echo::Outcome) -> anyhow::Result<f64> {
    o.server_cpu_us_per_msg.context("no server CPU reading")
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

pub fn print(o: &Outcome) {
    for level in &o.levels {
        println!(
            "ab {} vs {} c={}: {} pairs, median {} / {} server CPU per message {:.3}x, messages/s {:.3}x (pairs: cpu {}; msg/s {})",
            o.b,
            o.a,
            level.connections,
            level.pairs.len(),
            o.b,
            o.a,
            level.cpu_median,
            level.msg_per_s_median,
            level.pairs.iter().map(|p| format!("{:.3}", p.cpu)).collect::<Vec<_>>().join(" "),
            level.pairs.iter().map(|p| format!("{:.3}", p.msg_per_s)).collect::<Vec<_>>().join(" "),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
