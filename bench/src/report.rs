//! The table with ratios to the gateway, the machine description, and the results section of
//! BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::suite::{self, Run, ServerResults};
use crate::{echo, idle, stats};

pub const BEGIN: &str = "<!-- bench:results:begin (written by `make bench`; edit outside these markers) -->";
pub const END: &str = "<!-- bench:results:end -->";

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    /// `/proc/loadavg` when the run ended: other work on a shared machine shows here.
    pub load: String,
    pub versions: Vec<(String, String)>,
}

impl Machine {
    pub fn probe(args: &suite::Args) -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or("unknown".into(), |kib| format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0));
        let mut versions = vec![("rustc".to_string(), command_line("rustc", &["-V"]))];
        if let Some(bun) = &args.bun {
            versions.push(("bun".into(), command_line(&bun.display().to_string(), &["--version"])));
        }
        versions.push(("go".into(), command_line("go", &["version"])));
        if let Some(w) = &args.wasmtime {
            versions.push(("wasmtime".into(), command_line(&w.display().to_string(), &["--version"])));
        }
        versions.retain(|(_, v)| !v.is_empty());
        Self {
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            load: read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            versions,
        }
    }

    pub fn describe(&self) -> String {
        let versions: Vec<String> = self.versions.iter().map(|(k, v)| format!("{k}: `{v}`")).collect();
        format!(
            "{} vCPU ({}), {} RAM, Linux {}; load generator and server share the same cores; load \
             average at the end {}. {}",
            self.cores,
            self.cpu,
            self.memory,
            self.kernel,
            self.load,
            versions.join(", ")
        )
    }
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_default()
}

#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
}

type Getter = Box<dyn Fn(&ServerResults) -> Option<f64>>;

struct Row {
    label: String,
    better: Better,
    decimals: usize,
    value: Getter,
}

fn row(
    label: String,
    better: Better,
    decimals: usize,
    value: impl Fn(&ServerResults) -> Option<f64> + 'static,
) -> Row {
    Row { label, better, decimals, value: Box::new(value) }
}

/// The echo outcomes of one workload (`echo` or `app-echo`).
type Echoes = fn(&ServerResults) -> &[echo::Outcome];

/// How `echo` and `app-echo` rows differ: where their outcomes are, the label of a level, how
/// precise the CPU figure is, and whether the client's CPU is added (on loopback the kernel runs
/// the receiving side's TCP input inside the sender's syscall, so a server's CPU includes part of
/// the client's work and the reverse: the sum is the whole cost of a message, whoever it was
/// charged to; through the component the server's share dwarfs it).
struct EchoRows {
    pick: Echoes,
    label: fn(usize, usize) -> String,
    cpu_decimals: usize,
    with_client: bool,
}

/// The concurrency levels measured by any server, in order.
fn levels(run: &Run, pick: Echoes) -> Vec<usize> {
    let mut levels: Vec<usize> =
        run.servers.iter().flat_map(|s| pick(s).iter().map(|e| e.connections)).collect();
    levels.sort_unstable();
    levels.dedup();
    levels
}

fn echo_rows(rows: &mut Vec<Row>, run: &Run, how: &EchoRows) {
    let pick = how.pick;
    for c in levels(run, pick) {
        let at = move |s: &ServerResults| pick(s).iter().find(|e| e.connections == c).cloned();
        let size = run.servers.iter().find_map(at).map_or(0, |e| e.size);
        let p = (how.label)(c, size);
        rows.push(row(format!("{p} msg/s"), Better::Higher, 0, move |s| at(s).map(|e| e.msg_per_s)));
        rows.push(row(format!("{p} server CPU µs/msg"), Better::Lower, how.cpu_decimals, move |s| {
            at(s)?.server_cpu_us_per_msg
        }));
        if how.with_client {
            rows.push(row(format!("{p} server + client CPU µs/msg"), Better::Lower, 2, move |s| {
                at(s).and_then(|e| Some(e.server_cpu_us_per_msg? + e.client_cpu_us_per_msg))
            }));
        }
        pct_rows(rows, &format!("{p} RTT"), "µs", 1.0, 0, move |s| at(s).map(|e| e.rtt));
    }
}

type Quantile = fn(&stats::Percentiles) -> u64;

/// p50, p99 and p99.9 of a latency in microseconds, shown divided by `scale` in `unit`.
fn pct_rows(
    rows: &mut Vec<Row>,
    prefix: &str,
    unit: &str,
    scale: f64,
    decimals: usize,
    get: impl Fn(&ServerResults) -> Option<stats::Percentiles> + Copy + 'static,
) {
    let quantiles: [(&str, Quantile); 3] =
        [("p50", |p| p.p50_us), ("p99", |p| p.p99_us), ("p99.9", |p| p.p999_us)];
    for (name, q) in quantiles {
        rows.push(row(format!("{prefix} {name} {unit}"), Better::Lower, decimals, move |s| {
            get(s).map(|p| q(&p) as f64 / scale)
        }));
    }
}

fn rows(run: &Run) -> Vec<Row> {
    let mut rows = Vec::new();
    echo_rows(
        &mut rows,
        run,
        &EchoRows {
            pick: |s| &s.echo,
            label: |c, size| format!("echo C={c}, {size} B:"),
            cpu_decimals: 2,
            with_client: true,
        },
    );
    let kb = |i: &Option<idle::Outcome>| i.as_ref().map(|i| i.bytes_per_conn / 1000.0);
    if let Some(n) = run.servers.iter().find_map(|s| s.idle_push_off.as_ref().map(|i| i.connections)) {
        rows.push(row(format!("idle N={n}, pushes off: KB/conn"), Better::Lower, 1, move |s| {
            kb(&s.idle_push_off)
        }));
        rows.push(row(format!("idle N={n}, pushes on: KB/conn"), Better::Lower, 1, move |s| {
            kb(&s.idle_push_on)
        }));
    }
    if let Some(n) = run.servers.iter().find_map(|s| s.idle_stuck.as_ref().map(|i| i.connections)) {
        rows.push(row(format!("idle N={n}, stuck clients: KB/conn"), Better::Lower, 1, move |s| {
            kb(&s.idle_stuck)
        }));
    }
    if let Some(n) = run.servers.iter().find_map(|s| s.fanout.as_ref().map(|f| f.connections)) {
        let p = format!("fanout N={n}:");
        rows.push(row(format!("{p} pushes/s"), Better::Higher, 0, |s| {
            s.fanout.as_ref().map(|f| f.pushes_per_s)
        }));
        rows.push(row(format!("{p} lateness p99 ms"), Better::Lower, 1, |s| {
            s.fanout.as_ref().map(|f| f.lateness.p99_us as f64 / 1e3)
        }));
        rows.push(row(format!("{p} pushes dropped"), Better::Lower, 0, |s| {
            s.fanout.as_ref().map(|f| f.dropped as f64)
        }));
        rows.push(row(format!("{p} server CPU µs/push"), Better::Lower, 2, |s| {
            s.fanout.as_ref()?.server_cpu_us_per_push
        }));
    }
    echo_rows(
        &mut rows,
        run,
        &EchoRows {
            pick: |s| &s.app_echo,
            label: |c, _| format!("app-echo `/echo` C={c}:"),
            cpu_decimals: 1,
            with_client: false,
        },
    );
    let mut counts: Vec<usize> =
        run.servers.iter().flat_map(|s| s.publish.iter().map(|p| p.connections)).collect();
    counts.sort_unstable();
    counts.dedup();
    for n in counts {
        let publ = move |s: &ServerResults| s.publish.iter().find(|p| p.connections == n).cloned();
        let rate = run.servers.iter().find_map(publ).map_or(0.0, |p| p.rate);
        let p = format!("publish N={n}, {} pub/s:", fmt_num(rate, if rate < 10.0 { 2 } else { 0 }));
        rows.push(row(format!("{p} deliveries/s"), Better::Higher, 0, move |s| {
            publ(s).map(|o| o.deliveries_per_s)
        }));
        pct_rows(&mut rows, &format!("{p} publish-to-arrival"), "ms", 1e3, 1, move |s| {
            publ(s).map(|o| o.latency)
        });
        rows.push(row(format!("{p} dropped"), Better::Lower, 0, move |s| publ(s).map(|o| o.dropped as f64)));
        rows.push(row(format!("{p} repeats"), Better::Lower, 0, move |s| publ(s).map(|o| o.repeats as f64)));
        rows.push(row(format!("{p} handshakes retried"), Better::Lower, 0, move |s| {
            publ(s).map(|o| o.handshake_retries as f64)
        }));
        rows.push(row(format!("{p} server CPU µs/delivery"), Better::Lower, 2, move |s| {
            publ(s)?.server_cpu_us_per_delivery
        }));
    }
    if let Some(c) = run.servers.iter().find_map(|s| s.http.as_ref().map(|h| h.connections)) {
        let p = format!("http `GET /` C={c}:");
        rows.push(row(format!("{p} req/s"), Better::Higher, 0, |s| s.http.as_ref().map(|h| h.req_per_s)));
        rows.push(row(format!("{p} p99 ms"), Better::Lower, 2, |s| {
            s.http.as_ref().map(|h| h.latency.p99_us as f64 / 1e3)
        }));
        rows.push(row(format!("{p} server CPU µs/req"), Better::Lower, 1, |s| {
            s.http.as_ref()?.server_cpu_us_per_req
        }));
    }
    rows
}

fn fmt_num(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    // Thousands separators on the integer part, for 5-6 digit rates.
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// The gateway's advantage over a peer: above 1 the gateway is better (more throughput, or less
/// latency, CPU or memory).
fn advantage(better: Better, gateway: f64, peer: f64) -> Option<f64> {
    let r = match better {
        Better::Higher => gateway / peer,
        Better::Lower => peer / gateway,
    };
    r.is_finite().then_some(r)
}

/// One markdown table: a column per server; each peer's cell carries the gateway's advantage.
pub fn table(run: &Run) -> String {
    let rows = rows(run);
    // A server with nothing measured (a peer of workloads that did not run) gets no column.
    let servers: Vec<&ServerResults> =
        run.servers.iter().filter(|s| rows.iter().any(|r| (r.value)(s).is_some())).collect();
    let gateway = servers.iter().find(|s| s.name == "gateway");
    let mut out = String::from("| workload | ");
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    out.push_str(&names.join(" | "));
    out.push_str(" |\n|---|");
    out.push_str(&"---:|".repeat(names.len()));
    out.push('\n');
    for row in rows {
        let values: Vec<Option<f64>> = servers.iter().map(|s| (row.value)(s)).collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        let g = gateway.and_then(|g| (row.value)(g));
        let _ = write!(out, "| {} |", row.label);
        for (s, v) in servers.iter().zip(&values) {
            let cell = match (v, g) {
                (None, _) => "–".to_string(),
                (Some(v), Some(g)) if s.name != "gateway" => match advantage(row.better, g, *v) {
                    Some(r) => format!("{} ({r:.2}x)", fmt_num(*v, row.decimals)),
                    None => fmt_num(*v, row.decimals),
                },
                (Some(v), _) => fmt_num(*v, row.decimals),
            };
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}

/// Rewrites the generated section of BENCHMARKS.md, keeping everything outside the markers.
pub fn update_markdown(
    path: &Path,
    run: &Run,
    table: &str,
    charts: &[(String, std::path::PathBuf)],
    _charts_dir: &Path,
) -> anyhow::Result<()> {
    let mut section = String::new();
    let _ = writeln!(section, "{BEGIN}\n");
    let _ = writeln!(
        section,
        "Last run: {}{}. Machine: {}\n",
        run.machine.date,
        if run.quick { " (BENCH_QUICK=1: short smoke run, not a measurement)" } else { "" },
        run.machine.describe()
    );
    let _ = writeln!(
        section,
        "Cells of the peers read `value (Nx)`: N is the gateway's advantage over that peer, above \
         1.00x the gateway is better (more messages, or less latency, CPU or memory). Durations: \
         echo and app-echo {:.0} s after {:.0} s warm-up per level, fanout {:.0} s, http {:.0} s, \
         publish {:.0} s of publishing after {:.0} s. A fresh server process for every workload.\n",
        run.durations.echo.as_secs_f64(),
        run.durations.warmup.as_secs_f64(),
        run.durations.fanout.as_secs_f64(),
        run.durations.http.as_secs_f64(),
        run.durations.echo.as_secs_f64(),
        run.durations.warmup.as_secs_f64(),
    );
    section.push_str(table);
    section.push('\n');
    let failures: Vec<String> = run
        .servers
        .iter()
        .flat_map(|s| s.failures.iter().map(move |f| format!("- {}: {f}", s.name)))
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(section, "Runs that failed:\n\n{}\n", failures.join("\n"));
    }
    let notes: Vec<String> =
        run.servers.iter().flat_map(|s| s.notes.iter().map(move |n| format!("- {}: {n}", s.name))).collect();
    if !notes.is_empty() {
        let _ = writeln!(section, "Notes:\n\n{}\n", notes.join("\n"));
    }
    let stages: Vec<String> = run
        .servers
        .iter()
        .flat_map(|s| {
            s.app_echo.iter().filter_map(move |e| {
                let b = e.stages.as_ref()?;
                Some(format!("- {} app-echo C={}: {}", s.name, e.connections, b.line()))
            })
        })
        .collect();
    if !stages.is_empty() {
        let _ = writeln!(
            section,
            "Where app-echo's requests spent their time (the gateway's `component_stage_seconds`, \
             read before and after the window; p99 within a factor of two):\n\n{}\n",
            stages.join("\n")
        );
    }
    for (title, file) in charts {
        let _ = writeln!(section, "![{title}]({})\n", suite::relative(path, file));
    }
    section.push_str(END);

    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => format!("{}{section}{}", &old[..b], &old[e + END.len()..]),
        _ => format!("{old}\n## Results\n\n{section}\n"),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(81234.4, 0), "81,234");
        assert_eq!(fmt_num(5.123, 2), "5.12");
        assert_eq!(fmt_num(1234567.0, 1), "1,234,567.0");
        assert_eq!(fmt_num(999.0, 0), "999");
    }

    fn idle(connections: usize, kb: f64) -> Option<idle::Outcome> {
        Some(idle::Outcome {
            clients: idle::Clients::Stuck,
            connections,
            opened: connections,
            failed: 0,
            rss_before_kib: 0,
            rss_after_kib: 0,
            rss_peak_kib: 0,
            bytes_per_conn: kb * 1000.0,
            closed_early: 0,
        })
    }

    #[test]
    fn the_sidecar_is_a_column_and_stuck_clients_a_row_of_their_own() {
        let server = |name: &str, stuck: f64| ServerResults {
            name: name.into(),
            idle_push_off: idle(2000, 3.6),
            idle_stuck: idle(2000, stuck),
            ..Default::default()
        };
        let peer = ServerResults { name: "bun".into(), idle_push_off: idle(2000, 1.4), ..Default::default() };
        let d = std::time::Duration::ZERO;
        let run = Run {
            machine: Machine {
                date: String::new(),
                cpu: String::new(),
                cores: 2,
                memory: String::new(),
                kernel: String::new(),
                load: String::new(),
                versions: vec![],
            },
            quick: true,
            durations: suite::Durations { echo: d, warmup: d, fanout: d, http: d },
            servers: vec![server("gateway", 150.0), server("sidecar (musl)", 300.0), peer],
        };
        let table = table(&run);
        assert!(table.starts_with("| workload | gateway | sidecar (musl) | bun |"), "{table}");
        assert!(
            table.contains("| idle N=2000, stuck clients: KB/conn | 150.0 | 300.0 (2.00x) | – |"),
            "{table}"
        );
    }

    #[test]
    fn advantage_is_above_one_when_the_gateway_wins() {
        assert_eq!(advantage(Better::Higher, 200.0, 100.0), Some(2.0));
        assert_eq!(advantage(Better::Lower, 2.0, 4.0), Some(2.0));
        assert_eq!(advantage(Better::Lower, 0.0, 4.0), None);
    }
}
