//! `suite`: what `make bench` runs. Starts each server in turn, runs the same workloads against
//! each, prints one table with ratios to the gateway, draws the charts and rewrites the results
//! section of BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::servers::{self, Server, Spec};
use crate::{charts, echo, fanout, http, idle, publish, pushpin, redis, report};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The gateway binary (`target/release/sidestream-gateway`); its rows are skipped when absent.
    #[arg(long)]
    pub gateway: Option<PathBuf>,
    /// The sidecar as the image ships it (`scripts/sidecar-build.sh`: static musl, no wasm host),
    /// run with a dead `--upstream` for the `/ws` workloads (echo, idle, stuck clients).
    #[arg(long)]
    pub sidecar: Option<PathBuf>,
    /// The component the gateway and `wasmtime serve` serve for `http`.
    #[arg(long)]
    pub component: Option<PathBuf>,
    /// Peer (a): the `tungstenite-echo` binary of this crate (run twice: default, and `--tuned`).
    #[arg(long)]
    pub tungstenite: Option<PathBuf>,
    /// Peer (b): the `bun` binary (from `bench/peers/bun/node_modules`).
    #[arg(long)]
    pub bun: Option<PathBuf>,
    /// Peer (b): the Bun server script.
    #[arg(long, default_value = "bench/peers/bun/echo.ts")]
    pub bun_script: PathBuf,
    /// Peer (c): the gorilla/websocket echo binary.
    #[arg(long)]
    pub gorilla: Option<PathBuf>,
    /// `wasmtime` (48.x) for the `http` reference; skipped when absent.
    #[arg(long)]
    pub wasmtime: Option<PathBuf>,
    /// Peer for `app-echo` and `publish`: the `pushpin` binary (Debian package `pushpin`), in
    /// front of the component served by the gateway's embedded host; skipped when absent.
    #[arg(long)]
    pub pushpin: Option<PathBuf>,
    /// `redis-server`, for `publish` through one Redis and two gateways; skipped when absent.
    #[arg(long)]
    pub redis_server: Option<PathBuf>,
    /// Short runs and 2,000 instead of 19,000 connections (a smoke test, not a measurement).
    #[arg(long)]
    pub quick: bool,
    /// Workloads to run, comma-separated: echo, idle, fanout, http, app-echo, publish.
    #[arg(long, value_delimiter = ',', default_value = "echo,idle,fanout,http,app-echo,publish")]
    pub only: Vec<String>,
    /// `app-echo` concurrency levels (the component's `/echo`).
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    pub app_echo_connections: Vec<usize>,
    /// Example components measured on `app-echo` beside the Rust one, each as `NAME=PATH`
    /// (`typescript=examples/typescript/dist/sidestream-typescript.wasm`); a column each.
    #[arg(long = "example", value_parser = crate::examples::parse)]
    pub examples: Vec<(String, PathBuf)>,
    /// `publish` subscriber counts.
    #[arg(long, value_delimiter = ',', default_value = "1000,19000")]
    pub publish_connections: Vec<usize>,
    /// Offered deliveries per second in `publish`: publications per second are this divided by
    /// the subscribers.
    #[arg(long, default_value_t = 20_000.0)]
    pub publish_deliveries: f64,
    /// Echo concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub echo_connections: Vec<usize>,
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Echo rounds over all servers; each server's best round is reported.
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Connections of `idle` (pushes off and on, and the stuck clients).
    #[arg(long, default_value_t = 19_000)]
    pub idle_connections: usize,
    #[arg(long, default_value_t = 19_000)]
    pub fanout_connections: usize,
    #[arg(long, default_value_t = 50)]
    pub http_connections: usize,
    /// Where the results section goes (between the `bench:results` markers).
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub markdown: PathBuf,
    /// Where the SVG charts go.
    #[arg(long, default_value = "bench/charts")]
    pub charts: PathBuf,
    /// Raw results as JSON.
    #[arg(long, default_value = "target/bench/results.json")]
    pub results: PathBuf,
    /// Print the table only; leave BENCHMARKS.md and the charts alone.
    #[arg(long)]
    pub no_write: bool,
}

/// Everything measured for one server; `None` where the workload did not apply or failed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerResults {
    pub name: String,
    pub echo: Vec<echo::Outcome>,
    pub idle_push_off: Option<idle::Outcome>,
    pub idle_push_on: Option<idle::Outcome>,
    /// `idle --clients stuck`: clients that send large messages and never read.
    pub idle_stuck: Option<idle::Outcome>,
    pub fanout: Option<fanout::Outcome>,
    pub http: Option<http::Outcome>,
    /// `app-echo`: the component's `/echo`, one per concurrency level.
    pub app_echo: Vec<echo::Outcome>,
    /// `publish`, one per subscriber count.
    pub publish: Vec<publish::Outcome>,
    pub failures: Vec<String>,
    /// What makes a figure less than it seems, per run (a server process exited while measured).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub machine: report::Machine,
    pub quick: bool,
    pub durations: Durations,
    pub servers: Vec<ServerResults>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Durations {
    #[serde(with = "secs")]
    pub echo: Duration,
    #[serde(with = "secs")]
    pub warmup: Duration,
    #[serde(with = "secs")]
    pub fanout: Duration,
    #[serde(with = "secs")]
    pub http: Duration,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// What a server under test is, for which workloads apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The gateway with the component embedded: every workload.
    Gateway,
    /// The shipped sidecar (static musl, no wasm host): the gateway's `/ws` workloads.
    Sidecar,
    /// An echo server: `echo` and `idle` with pushes off.
    Peer,
}

impl Kind {
    /// Has the built-in `/ws` with pushes and the outbox's budget (pushes on, stuck clients).
    fn has_ws_app(self) -> bool {
        matches!(self, Kind::Gateway | Kind::Sidecar)
    }
}

struct Target {
    spec: Spec,
    kind: Kind,
}

/// The message size of the stuck clients: the gateway's `--max-message-size` default, the largest
/// message it takes, so every term of its per-connection bound (a frame being read, the writer's
/// buffer plus one message, the outbox's 32 KiB budget plus the message that crossed it) is at
/// its largest, and one echo alone overflows the 16 KiB socket buffers.
const STUCK_MESSAGE: usize = 64 * 1024;

/// A dead upstream: the sidecar needs one, and `/ws` never reaches it.
const NO_UPSTREAM: &str = "http://127.0.0.1:9";

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let quick = args.quick;
    let d = if quick {
        Durations {
            echo: Duration::from_secs(3),
            warmup: Duration::from_secs(1),
            fanout: Duration::from_secs(5),
            http: Duration::from_secs(3),
        }
    } else {
        Durations {
            echo: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            fanout: Duration::from_secs(20),
            http: Duration::from_secs(10),
        }
    };
    let idle_n = if quick { args.idle_connections.min(2_000) } else { args.idle_connections };
    let fanout_n = if quick { args.fanout_connections.min(2_000) } else { args.fanout_connections };
    let wants = |w: &str| args.only.iter().any(|o| o == w);

    let targets = targets(args);
    let mut results: Vec<ServerResults> =
        targets.iter().map(|t| ServerResults { name: t.spec.name.clone(), ..Default::default() }).collect();
    if wants("echo") {
        // Rounds interleave the servers, and the best round counts: on a machine shared with
        // other work, a slow round says more about the neighbours than about the server.
        for round in 1..=args.rounds.max(1) {
            for &c in &args.echo_connections {
                for (t, r) in targets.iter().zip(results.iter_mut()) {
                    let label = format!("echo c={c} round {round}");
                    let o = on_server(&t.spec, &label, &mut r.failures, |s| {
                        let a = echo::Args {
                            url: format!("ws://{}/ws?push=off", s.addr),
                            connections: c,
                            size: args.size,
                            duration: d.echo,
                            warmup: d.warmup,
                            binary: false,
                            server_pid: s.pid().ok().into_iter().collect(),
                            app: false,
                            metrics_addr: None,
                        };
                        async move { echo::run(&a).await }
                    })
                    .await;
                    keep_best(&mut r.echo, &mut r.notes, &label, o);
                }
            }
        }
    }
    for (target, r) in targets.iter().zip(results.iter_mut()) {
        let spec = &target.spec;
        if wants("idle") {
            r.idle_push_off = idle_run(spec, idle_n, Idle::PushOff, &mut r.failures).await;
            if target.kind.has_ws_app() {
                r.idle_push_on = idle_run(spec, idle_n, Idle::PushOn, &mut r.failures).await;
                r.idle_stuck = idle_run(spec, idle_n, Idle::Stuck, &mut r.failures).await;
            }
        }
        if wants("fanout") && target.kind == Kind::Gateway {
            let label = format!("fanout n={fanout_n}");
            r.fanout = on_server(spec, &label, &mut r.failures, |s| {
                let a = fanout::Args {
                    url: format!("ws://{}/ws", s.addr),
                    connections: fanout_n,
                    per_worker: 9_000,
                    duration: d.fanout,
                    warmup: Duration::from_secs(3),
                    server_pid: s.pid().ok(),
                };
                async move { fanout::run(&a).await }
            })
            .await;
            if let Some(o) = &r.fanout {
                fanout::print(o);
            }
        }
        if wants("http") && target.kind == Kind::Gateway && args.component.is_some() {
            r.http = http_run(spec, args.http_connections, d, &mut r.failures).await;
        }
    }
    if wants("http")
        && let (Some(wasmtime), Some(component)) = (&args.wasmtime, &args.component)
    {
        let spec = Spec {
            name: "wasmtime serve".into(),
            program: wasmtime.clone(),
            args: vec![
                "serve".into(),
                "--addr".into(),
                "127.0.0.1:0".into(),
                "-Scli".into(),
                component.display().to_string(),
            ],
            dir: None,
            env: vec![],
        };
        let mut r = ServerResults { name: spec.name.clone(), ..Default::default() };
        r.http = http_run(&spec, args.http_connections, d, &mut r.failures).await;
        results.push(r);
    }

    if wants("app-echo") || wants("publish") {
        apps(args, d, &wants, &mut results).await;
    }

    let run = Run { machine: report::Machine::probe(args), quick, durations: d, servers: results };
    let table = report::table(&run);
    println!("\n{table}");
    for s in &run.servers {
        for f in &s.failures {
            eprintln!("{}: {f}", s.name);
        }
        for n in &s.notes {
            eprintln!("{}: note: {n}", s.name);
        }
    }
    if let Some(dir) = args.results.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.results, serde_json::to_string_pretty(&run)?)?;
    if !args.no_write {
        std::fs::create_dir_all(&args.charts)?;
        let drawn = charts::draw_all(&run, &args.charts)?;
        report::update_markdown(&args.markdown, &run, &table, &drawn, &args.charts)?;
        eprintln!("wrote {}, {} charts in {}", args.markdown.display(), drawn.len(), args.charts.display());
    }
    Ok(())
}

/// The gateway's arguments: loopback listeners, room for 19,000 connections, and what serves its
/// pages: the component embedded, or, for the sidecar (built without the wasm host) and a gateway
/// measured without the component, a dead upstream.
pub(crate) fn gateway_spec(name: &str, program: &Path, component: Option<&Path>) -> Spec {
    let mut a: Vec<String> =
        ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--max-connections", "20000"]
            .map(String::from)
            .into();
    match component {
        Some(c) => a.extend(["--component".into(), c.display().to_string()]),
        None => a.extend(["--upstream".into(), NO_UPSTREAM.into()]),
    }
    if let Ok(key) = servers::grip_key_file() {
        a.extend(["--grip-key-file".into(), key.display().to_string()]);
    }
    spec(name, program.to_path_buf(), a)
}

fn existing(p: &Option<PathBuf>) -> Option<PathBuf> {
    p.as_ref().filter(|p| p.exists()).cloned()
}

/// `app-echo` and `publish`: the gateway, Pushpin in front of the same component, and for
/// `publish` two gateways on one Redis. Results go to the gateway's entry (which must exist:
/// Pushpin's backend is the gateway too) and to new entries for the others.
async fn apps(args: &Args, d: Durations, wants: &dyn Fn(&str) -> bool, results: &mut Vec<ServerResults>) {
    let (Some(gw), Some(component)) = (existing(&args.gateway), existing(&args.component)) else {
        eprintln!("app-echo, publish: need the gateway and the component; skipped");
        return;
    };
    let gw_spec = gateway_spec("gateway", &gw, Some(&component));
    let backend = gateway_spec("pushpin backend", &gw, Some(&component));
    let pushpin = existing(&args.pushpin);
    if pushpin.is_none() {
        eprintln!("pushpin not found ({:?}): app-echo and publish without the peer", args.pushpin);
    }
    let gi = match results.iter().position(|r| r.name == "gateway") {
        Some(i) => i,
        None => {
            results.insert(0, ServerResults { name: "gateway".into(), ..Default::default() });
            0
        }
    };
    let mut pp = ServerResults { name: "pushpin".into(), ..Default::default() };

    if wants("app-echo") {
        for round in 1..=args.rounds.max(1) {
            for &c in &args.app_echo_connections {
                let label = format!("app-echo c={c} round {round}");
                let echo_args = |addr: &str, pids: Vec<u32>, metrics_addr| echo::Args {
                    url: format!("ws://{addr}/echo"),
                    connections: c,
                    size: args.size,
                    duration: d.echo,
                    warmup: d.warmup,
                    binary: false,
                    server_pid: pids,
                    app: true,
                    metrics_addr,
                };
                let r = &mut results[gi];
                let o = on_server(&gw_spec, &label, &mut r.failures, |s| {
                    let a = echo_args(&s.addr, s.pid().ok().into_iter().collect(), s.admin.clone());
                    async move { echo::run(&a).await }
                })
                .await;
                keep_best(&mut r.app_echo, &mut r.notes, &label, o);
                if let Some(p) = &pushpin {
                    let o = servers::measure(
                        "pushpin",
                        &label,
                        &mut pp.failures,
                        pushpin::start(p, &backend),
                        |s| {
                            let a = echo_args(&s.addr, s.pids(), None);
                            async move { echo::run(&a).await }
                        },
                    )
                    .await;
                    keep_best(&mut pp.app_echo, &mut pp.notes, &label, o);
                }
            }
        }
    }

    if wants("publish") {
        let redis_server = existing(&args.redis_server);
        let mut two = ServerResults { name: "2 gateways + redis".into(), ..Default::default() };
        let redis_gw = gateway_spec("gateway (redis)", &gw, Some(&component));
        for &n in &args.publish_connections {
            let n = if args.quick { n.min(2_000) } else { n };
            let rate = args.publish_deliveries / n as f64;
            let label = format!("publish n={n} rate={rate:.2}/s");
            let pub_args = |urls: Vec<String>, publish_url: String, pids: Vec<u32>| publish::Args {
                url: urls.iter().map(|u| format!("ws://{u}/room?room=bench")).collect(),
                publish_url,
                channel: "room:bench".into(),
                connections: n,
                per_worker: 9_000,
                rate,
                duration: d.echo,
                warmup: d.warmup,
                settle: Duration::from_secs(5),
                server_pid: pids,
            };
            let r = &mut results[gi];
            let o = on_server(&gw_spec, &label, &mut r.failures, |s| {
                let admin = s.admin.clone().unwrap_or_default();
                let a = pub_args(
                    vec![s.addr.clone()],
                    format!("http://{admin}/publish/"),
                    s.pid().ok().into_iter().collect(),
                );
                async move { publish::run(&a).await }
            })
            .await;
            push_publish(&mut r.publish, &mut r.notes, &label, o);
            if let Some(p) = &pushpin {
                let o =
                    servers::measure("pushpin", &label, &mut pp.failures, pushpin::start(p, &backend), |s| {
                        let a = pub_args(vec![s.addr.clone()], s.publish_url.clone(), s.pids());
                        async move { publish::run(&a).await }
                    })
                    .await;
                push_publish(&mut pp.publish, &mut pp.notes, &label, o);
            }
            if let Some(rs) = &redis_server {
                let start = redis::start_pair(rs, &redis_gw);
                let o = servers::measure(&two.name, &label, &mut two.failures, start, |pair| {
                    let admin = pair.gateways[0].admin.clone().unwrap_or_default();
                    let a = pub_args(pair.addrs(), format!("http://{admin}/publish/"), pair.pids());
                    async move { publish::run(&a).await }
                })
                .await;
                let o = o.map(|o| publish::Outcome { variant: "publish redis".into(), ..o });
                push_publish(&mut two.publish, &mut two.notes, &label, o);
            }
        }
        if redis_server.is_none() {
            eprintln!("redis-server not found ({:?}): publish without the Redis variant", args.redis_server);
        } else {
            results.push(two);
        }
    }
    if pushpin.is_some() {
        results.push(pp);
    }
    if wants("app-echo") {
        results.extend(crate::examples::app_echo(args, d, &gw).await);
    }
}

/// Keeps each concurrency level's best round (most messages per second).
pub(crate) fn keep_best(
    best: &mut Vec<echo::Outcome>,
    notes: &mut Vec<String>,
    label: &str,
    o: Option<echo::Outcome>,
) {
    let Some(o) = o else { return };
    echo::print(&o);
    notes.extend(o.notes.iter().map(|n| format!("{label}: {n}")));
    match best.iter_mut().find(|e| e.connections == o.connections) {
        Some(b) if b.msg_per_s >= o.msg_per_s => {}
        Some(b) => *b = o,
        None => best.push(o),
    }
}

fn push_publish(
    all: &mut Vec<publish::Outcome>,
    notes: &mut Vec<String>,
    label: &str,
    o: Option<publish::Outcome>,
) {
    if let Some(o) = o {
        publish::print(&o);
        notes.extend(o.notes.iter().map(|n| format!("{label}: {n}")));
        all.push(o);
    }
}

/// The servers to measure, in table order, skipping any whose program is missing.
fn targets(args: &Args) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(gw) = existing(&args.gateway) {
        // Built without the component, the gateway still needs somewhere to send pages.
        let component = existing(&args.component);
        out.push(Target { spec: gateway_spec("gateway", &gw, component.as_deref()), kind: Kind::Gateway });
    } else {
        eprintln!("gateway not built ({:?}): measuring the peers only", args.gateway);
    }
    if let Some(p) = existing(&args.sidecar) {
        out.push(Target { spec: gateway_spec("sidecar (musl)", &p, None), kind: Kind::Sidecar });
    } else if args.sidecar.is_some() {
        eprintln!("sidecar not built ({:?}): measuring without it", args.sidecar);
    }
    if let Some(p) = existing(&args.tungstenite) {
        out.push(Target {
            spec: spec("tungstenite", p.clone(), vec!["127.0.0.1:0".into()]),
            kind: Kind::Peer,
        });
        // The same binary with the gateway's buffers: the floor of the gateway's own stack.
        let tuned = vec!["127.0.0.1:0".into(), "--tuned".into()];
        out.push(Target { spec: spec("tungstenite tuned", p, tuned), kind: Kind::Peer });
    }
    if let Some(p) = existing(&args.bun) {
        let script = args.bun_script.display().to_string();
        out.push(Target { spec: spec("bun", p, vec![script, "0".into()]), kind: Kind::Peer });
    }
    if let Some(p) = existing(&args.gorilla) {
        out.push(Target {
            spec: spec("gorilla", p, vec!["-addr".into(), "127.0.0.1:0".into()]),
            kind: Kind::Peer,
        });
    }
    out
}

fn spec(name: &str, program: PathBuf, args: Vec<String>) -> Spec {
    Spec { name: name.into(), program, args, dir: None, env: vec![] }
}

/// [`servers::measure`] on a fresh process of `spec`.
pub(crate) async fn on_server<T, F, Fut>(
    spec: &Spec,
    label: &str,
    failures: &mut Vec<String>,
    f: F,
) -> Option<T>
where
    F: FnOnce(&Server) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    servers::measure(&spec.name, label, failures, servers::start(spec), f).await
}

/// The three `idle` variants.
#[derive(Clone, Copy)]
enum Idle {
    PushOff,
    PushOn,
    /// Clients that send [`STUCK_MESSAGE`]-byte messages and never read (pushes off).
    Stuck,
}

async fn idle_run(spec: &Spec, n: usize, variant: Idle, failures: &mut Vec<String>) -> Option<idle::Outcome> {
    let (name, query, clients, message_size) = match variant {
        Idle::PushOff => ("push=off", "?push=off", idle::Clients::Idle, 0),
        Idle::PushOn => ("push=on", "", idle::Clients::Idle, 0),
        Idle::Stuck => ("stuck", "?push=off", idle::Clients::Stuck, STUCK_MESSAGE),
    };
    let out = on_server(spec, &format!("idle n={n} {name}"), failures, |s| {
        let a = idle::Args {
            url: format!("ws://{}/ws{query}", s.addr),
            connections: n,
            per_worker: 9_000,
            server_pid: s.pid().unwrap_or(0),
            no_warm: false,
            clients,
            message_size,
        };
        async move { idle::run(&a).await }
    })
    .await;
    if let Some(o) = &out {
        idle::print(o);
    }
    out
}

async fn http_run(spec: &Spec, c: usize, d: Durations, failures: &mut Vec<String>) -> Option<http::Outcome> {
    let out = on_server(spec, &format!("http c={c}"), failures, |s| {
        let a = http::Args {
            url: format!("http://{}/", s.addr),
            connections: c,
            duration: d.http,
            warmup: d.warmup,
            server_pid: s.pid().ok(),
        };
        async move { http::run(&a).await }
    })
    .await;
    if let Some(o) = &out {
        http::print(o);
    }
    out
}

/// Paths in the markdown are relative to the markdown file's folder.
pub fn relative(from_md: &Path, to: &Path) -> String {
    let base = from_md.parent().unwrap_or(Path::new(""));
    to.strip_prefix(base).unwrap_or(to).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sidecar_runs_on_a_dead_upstream_and_the_gateway_on_its_component() {
        let gw = gateway_spec("gateway", Path::new("gw"), Some(Path::new("c.wasm")));
        assert!(gw.args.windows(2).any(|w| w == ["--component", "c.wasm"]), "{:?}", gw.args);
        let sidecar = gateway_spec("sidecar (musl)", Path::new("sc"), None);
        assert!(sidecar.args.windows(2).any(|w| w == ["--upstream", NO_UPSTREAM]), "{:?}", sidecar.args);
        assert!(!sidecar.args.iter().any(|a| a == "--component"));
        assert!(sidecar.args.windows(2).any(|w| w == ["--max-connections", "20000"]));
    }
}
