//! `suite`: what `make bench` runs. Starts each server in turn, runs the same workloads against
//! each, prints one table with ratios to the gateway, draws the charts and rewrites the results
//! section of BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::pushpin::Pushpin;
use crate::servers::{self, Server, Spec};
use crate::{charts, echo, fanout, http, idle, publish, pushpin, redis, report};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The gateway binary (`target/release/sidestream-gateway`); its rows are skipped when absent.
    #[arg(long)]
    pub gateway: Option<PathBuf>,
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
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub app_echo_connections: Vec<usize>,
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
    pub fanout: Option<fanout::Outcome>,
    pub http: Option<http::Outcome>,
    /// `app-echo`: the component's `/echo`, one per concurrency level.
    pub app_echo: Vec<echo::Outcome>,
    /// `publish`, one per subscriber count.
    pub publish: Vec<publish::Outcome>,
    pub failures: Vec<String>,
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

struct Target {
    spec: Spec,
    gateway: bool,
}

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
                    let outcome = with_server(&t.spec, &label, &mut r.failures, |s| {
                        let a = echo::Args {
                            url: format!("ws://{}/ws?push=off", s.addr),
                            connections: c,
                            size: args.size,
                            duration: d.echo,
                            warmup: d.warmup,
                            binary: false,
                            server_pid: s.pid().ok().into_iter().collect(),
                            app: false,
                        };
                        async move { echo::run(&a).await }
                    })
                    .await;
                    let Some(o) = outcome else { continue };
                    echo::print(&o);
                    match r.echo.iter_mut().find(|e| e.connections == c) {
                        Some(best) if best.msg_per_s >= o.msg_per_s => {}
                        Some(best) => *best = o,
                        None => r.echo.push(o),
                    }
                }
            }
        }
    }
    for (target, r) in targets.iter().zip(results.iter_mut()) {
        if wants("idle") {
            r.idle_push_off = idle_run(&target.spec, idle_n, false, &mut r.failures).await;
            if target.gateway {
                r.idle_push_on = idle_run(&target.spec, idle_n, true, &mut r.failures).await;
            }
        }
        if wants("fanout") && target.gateway {
            let label = format!("fanout n={fanout_n}");
            r.fanout = with_server(&target.spec, &label, &mut r.failures, |s| {
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
        if wants("http") && target.gateway && args.component.is_some() {
            r.http = http_run(&target.spec, args.http_connections, d, &mut r.failures).await;
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

/// The gateway's arguments with the component embedded, and `extra`.
fn gateway_spec(name: &str, gateway: &Path, component: &Path, extra: &[&str]) -> Spec {
    let mut a: Vec<String> =
        ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--max-connections", "20000"]
            .map(String::from)
            .into();
    a.extend(["--component".into(), component.display().to_string()]);
    a.extend(extra.iter().map(|s| s.to_string()));
    spec(name, gateway.to_path_buf(), a)
}

/// `app-echo` and `publish`: the gateway, Pushpin in front of the same component, and for
/// `publish` two gateways on one Redis. Results go to the gateway's entry (which must exist:
/// Pushpin's backend is the gateway too) and to new entries for the others.
async fn apps(args: &Args, d: Durations, wants: &dyn Fn(&str) -> bool, results: &mut Vec<ServerResults>) {
    let exists = |p: &Option<PathBuf>| p.as_ref().filter(|p| p.exists()).cloned();
    let (Some(gw), Some(component)) = (exists(&args.gateway), exists(&args.component)) else {
        eprintln!("app-echo, publish: need the gateway and the component; skipped");
        return;
    };
    let gw_spec = gateway_spec("gateway", &gw, &component, &[]);
    let backend = gateway_spec("pushpin backend", &gw, &component, &[]);
    let pushpin = exists(&args.pushpin);
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
                let echo_args = |addr: &str, pids: Vec<u32>| echo::Args {
                    url: format!("ws://{addr}/echo"),
                    connections: c,
                    size: args.size,
                    duration: d.echo,
                    warmup: d.warmup,
                    binary: false,
                    server_pid: pids,
                    app: true,
                };
                let r = &mut results[gi];
                let o = with_server(&gw_spec, &label, &mut r.failures, |s| {
                    let a = echo_args(&s.addr, s.pid().ok().into_iter().collect());
                    async move { echo::run(&a).await }
                })
                .await;
                keep_best(&mut r.app_echo, o);
                if let Some(p) = &pushpin {
                    let o = with_pushpin(p, &backend, &label, &mut pp.failures, |s| {
                        let a = echo_args(&s.addr, s.pids());
                        async move { echo::run(&a).await }
                    })
                    .await;
                    keep_best(&mut pp.app_echo, o);
                }
            }
        }
    }

    if wants("publish") {
        let redis_server = exists(&args.redis_server);
        let mut two = ServerResults { name: "2 gateways + redis".into(), ..Default::default() };
        for &n in &args.publish_connections {
            let n = if args.quick { n.min(2_000) } else { n };
            let rate = args.publish_deliveries / n as f64;
            let label = format!("publish n={n} rate={rate:.2}/s");
            let pub_args = |urls: Vec<String>, publish_url: String, pids: Vec<u32>| publish::Args {
                url: urls,
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
            let room = |addr: &str| format!("ws://{addr}/room?room=bench");
            let r = &mut results[gi];
            let o = with_server(&gw_spec, &label, &mut r.failures, |s| {
                let admin = s.admin.clone().unwrap_or_default();
                let a = pub_args(
                    vec![room(&s.addr)],
                    format!("http://{admin}/publish/"),
                    s.pid().ok().into_iter().collect(),
                );
                async move { publish::run(&a).await }
            })
            .await;
            push_publish(&mut r.publish, o);
            if let Some(p) = &pushpin {
                let o = with_pushpin(p, &backend, &label, &mut pp.failures, |s| {
                    let a = pub_args(vec![room(&s.addr)], s.publish_url.clone(), s.pids());
                    async move { publish::run(&a).await }
                })
                .await;
                push_publish(&mut pp.publish, o);
            }
            if let Some(rs) = &redis_server {
                let o = two_gateways(rs, &gw, &component, &label, &mut two.failures, |urls, admin, pids| {
                    let a = pub_args(
                        urls.iter().map(|u| room(u)).collect(),
                        format!("http://{admin}/publish/"),
                        pids,
                    );
                    async move { publish::run(&a).await }
                })
                .await;
                push_publish(
                    &mut two.publish,
                    o.map(|o| publish::Outcome { variant: "publish redis".into(), ..o }),
                );
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
}

fn keep_best(best: &mut Vec<echo::Outcome>, o: Option<echo::Outcome>) {
    let Some(o) = o else { return };
    echo::print(&o);
    match best.iter_mut().find(|e| e.connections == o.connections) {
        Some(b) if b.msg_per_s >= o.msg_per_s => {}
        Some(b) => *b = o,
        None => best.push(o),
    }
}

fn push_publish(all: &mut Vec<publish::Outcome>, o: Option<publish::Outcome>) {
    if let Some(o) = o {
        publish::print(&o);
        all.push(o);
    }
}

/// Like [`with_server`], for Pushpin and its backend.
async fn with_pushpin<T, F, Fut>(
    program: &Path,
    backend: &Spec,
    label: &str,
    failures: &mut Vec<String>,
    f: F,
) -> Option<T>
where
    F: FnOnce(&Pushpin) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    eprintln!("[pushpin] {label}");
    let pp = match pushpin::start(program, backend).await {
        Ok(p) => p,
        Err(e) => {
            failures.push(format!("{label}: {e:#}"));
            return None;
        }
    };
    let out = f(&pp).await;
    pp.stop().await;
    out.map_err(|e| failures.push(format!("{label}: {e:#}"))).ok()
}

/// A fresh Redis and two gateways on it; `f` gets both public addresses, the first one's admin
/// address, and every pid (both gateways and Redis).
async fn two_gateways<T, F, Fut>(
    redis_server: &Path,
    gateway: &Path,
    component: &Path,
    label: &str,
    failures: &mut Vec<String>,
    f: F,
) -> Option<T>
where
    F: FnOnce(Vec<String>, String, Vec<u32>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    eprintln!("[2 gateways + redis] {label}");
    let redis = match redis::start(redis_server).await {
        Ok(r) => r,
        Err(e) => {
            failures.push(format!("{label}: {e:#}"));
            return None;
        }
    };
    let spec = gateway_spec("gateway (redis)", gateway, component, &["--redis", &redis.url]);
    let mut gws = Vec::new();
    for _ in 0..2 {
        match servers::start(&spec).await {
            Ok(s) => gws.push(s),
            Err(e) => {
                failures.push(format!("{label}: {e:#}"));
                break;
            }
        }
    }
    let out = if gws.len() == 2 {
        let urls = gws.iter().map(|g| g.addr.clone()).collect();
        let admin = gws[0].admin.clone().unwrap_or_default();
        let mut pids: Vec<u32> = gws.iter().filter_map(|g| g.pid().ok()).collect();
        pids.extend(redis.pid());
        Some(f(urls, admin, pids).await)
    } else {
        None
    };
    for g in gws {
        g.stop().await;
    }
    redis.stop().await;
    out?.map_err(|e| failures.push(format!("{label}: {e:#}"))).ok()
}

/// The servers to measure, in table order, skipping any whose program is missing.
fn targets(args: &Args) -> Vec<Target> {
    let exists = |p: &Option<PathBuf>| p.as_ref().filter(|p| p.exists()).cloned();
    let mut out = Vec::new();
    if let Some(gw) = exists(&args.gateway) {
        let mut gw_args: Vec<String> =
            ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--max-connections", "20000"]
                .map(String::from)
                .into();
        if let Some(c) = args.component.as_ref().filter(|c| c.exists()) {
            gw_args.extend(["--component".into(), c.display().to_string()]);
        } else {
            // Built without the component, the gateway still needs somewhere to send pages.
            gw_args.extend(["--upstream".into(), "http://127.0.0.1:9".into()]);
        }
        out.push(Target { spec: spec("gateway", gw, gw_args), gateway: true });
    } else {
        eprintln!("gateway not built ({:?}): measuring the peers only", args.gateway);
    }
    if let Some(p) = exists(&args.tungstenite) {
        out.push(Target { spec: spec("tungstenite", p.clone(), vec!["127.0.0.1:0".into()]), gateway: false });
        // The same binary with the gateway's buffers: the floor of the gateway's own stack.
        let tuned = vec!["127.0.0.1:0".into(), "--tuned".into()];
        out.push(Target { spec: spec("tungstenite tuned", p, tuned), gateway: false });
    }
    if let Some(p) = exists(&args.bun) {
        let script = args.bun_script.display().to_string();
        out.push(Target { spec: spec("bun", p, vec![script, "0".into()]), gateway: false });
    }
    if let Some(p) = exists(&args.gorilla) {
        out.push(Target {
            spec: spec("gorilla", p, vec!["-addr".into(), "127.0.0.1:0".into()]),
            gateway: false,
        });
    }
    out
}

fn spec(name: &str, program: PathBuf, args: Vec<String>) -> Spec {
    Spec { name: name.into(), program, args, dir: None, env: vec![] }
}

/// Starts a fresh server for one workload, so allocator state left by one run never flatters the
/// next; a failure is recorded and the suite goes on.
async fn with_server<T, F, Fut>(spec: &Spec, label: &str, failures: &mut Vec<String>, f: F) -> Option<T>
where
    F: FnOnce(&Server) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    eprintln!("[{}] {label}", spec.name);
    let server = match servers::start(spec).await {
        Ok(s) => s,
        Err(e) => {
            failures.push(format!("{label}: {e:#}"));
            return None;
        }
    };
    let out = f(&server).await;
    server.stop().await;
    match out {
        Ok(o) => Some(o),
        Err(e) => {
            failures.push(format!("{label}: {e:#}"));
            None
        }
    }
}

async fn idle_run(spec: &Spec, n: usize, push: bool, failures: &mut Vec<String>) -> Option<idle::Outcome> {
    let label = format!("idle n={n} push={}", if push { "on" } else { "off" });
    let out = with_server(spec, &label, failures, |s| {
        let url = format!("ws://{}/ws{}", s.addr, if push { "" } else { "?push=off" });
        let a = idle::Args {
            url,
            connections: n,
            per_worker: 9_000,
            server_pid: s.pid().unwrap_or(0),
            no_warm: false,
            clients: idle::Clients::Idle,
            message_size: 0,
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
    let out = with_server(spec, &format!("http c={c}"), failures, |s| {
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
