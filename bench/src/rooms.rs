//! `rooms`: the `publish` workload with many channels, as a chat has them: N subscribers in rooms
//! of `--room-size` (the component's `/room?room=bench-R`, each room's members split over two
//! gateways), one publisher at a fixed total rate, round robin over the rooms. Run on two gateways
//! sharing one Redis, then on two gateways sharing a three-primary Redis Cluster, in one run, so
//! the two are compared on the same (shared) machine: deliveries/s, publish-to-arrival, the
//! gateways' CPU per delivery and the Redis side's CPU per publication.
//!
//! `cargo run --release -p sidestream-bench -- rooms --gateway target/release/sidestream-gateway
//! --component target/wasm32-wasip2/release/sidestream_component.wasm -n 2000 --rate 400`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use crate::publish::Publisher;
use crate::worker::{Mode, Pool, Ready};
use crate::{procfs, redis, servers, stats, ws};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub gateway: PathBuf,
    #[arg(long)]
    pub component: PathBuf,
    #[arg(long, default_value = "redis-server")]
    pub redis_server: PathBuf,
    #[arg(long, short = 'n', default_value_t = 2_000)]
    pub connections: usize,
    #[arg(long, default_value_t = 100)]
    pub room_size: usize,
    /// Publications per second over all rooms (each goes to one room's members).
    #[arg(long, default_value_t = 400.0)]
    pub rate: f64,
    #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub variant: String,
    pub connections: usize,
    pub opened: usize,
    pub rooms: usize,
    pub published: u64,
    pub publish_errors: u64,
    pub deliveries: u64,
    pub deliveries_per_s: f64,
    pub latency: stats::Percentiles,
    /// What subscribers never got: each room's members times its publications, less deliveries.
    pub dropped: u64,
    pub gateway_cpu_us_per_delivery: Option<f64>,
    /// Every Redis process's CPU over the window, less its idle CPU, per publication.
    pub redis_cpu_us_per_publication: Option<f64>,
    /// Every Redis process's CPU before the first publication, ms per second.
    pub redis_idle_cpu_ms_per_s: f64,
}

pub async fn run(args: &Args) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    let spec = crate::suite::gateway_spec("gateway", &args.gateway, Some(&args.component));
    for cluster in [false, true] {
        let (url, redis_pids, stop): (String, Vec<u32>, Backend) = if cluster {
            let s = redis::start_cluster(&args.redis_server).await?;
            (s.url.clone(), s.pids(), Backend::Cluster(s))
        } else {
            let r = redis::start(&args.redis_server).await?;
            (r.url.clone(), r.pid().into_iter().collect(), Backend::One(r))
        };
        let mut with_redis = spec.clone();
        with_redis.args.extend(["--redis".into(), url]);
        let gateways = [servers::start(&with_redis).await?, servers::start(&with_redis).await?];
        let variant = if cluster { "rooms, cluster of 3" } else { "rooms, one Redis" };
        let outcome = measure(args, variant, &gateways, &redis_pids).await;
        for g in gateways {
            g.stop().await;
        }
        match stop {
            Backend::One(r) => r.stop().await,
            Backend::Cluster(s) => s.stop().await,
        }
        let outcome = outcome?;
        print(&outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

enum Backend {
    One(redis::Redis),
    Cluster(redis::Shards),
}

async fn measure(
    args: &Args,
    variant: &str,
    gateways: &[servers::Server; 2],
    redis_pids: &[u32],
) -> anyhow::Result<Outcome> {
    let rooms = args.connections.div_ceil(args.room_size.max(1));
    let mut pools = Vec::new();
    let mut opened = vec![0usize; rooms];
    for (room, opened) in opened.iter_mut().enumerate() {
        for (i, g) in gateways.iter().enumerate() {
            let share = args.room_size / 2 + usize::from(i < args.room_size % 2);
            let url = format!("ws://{}/room?room=bench-{room}", g.addr);
            let (pool, ready): (Pool, Ready) =
                Pool::open(&url, share, 9_000, Mode::Subscribe, false, 0).await?;
            *opened += ready.opened;
            pools.push(pool);
        }
    }
    let admin = gateways[0].admin.clone().unwrap_or_default();
    let mut publisher = Publisher::new(&format!("http://{admin}/publish/"))?;
    publisher.ready().await?;
    // Redis's idle CPU (its cron, a cluster's gossip, the gateways' lease renewals), read over
    // the warm-up and taken off the measured window: at a few hundred publications a second it
    // would otherwise be most of the figure.
    let (idle, idle_t0) = (procfs::CpuWindow::start(redis_pids), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_per_s = idle.end().time.as_secs_f64() / idle_t0.elapsed().as_secs_f64();
    let gateway_pids: Vec<u32> = gateways.iter().filter_map(|g| g.pid().ok()).collect();
    let (gateway_cpu, redis_cpu) =
        (procfs::CpuWindow::start(&gateway_pids), procfs::CpuWindow::start(redis_pids));
    for p in &mut pools {
        p.go().await?;
    }
    let t0 = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let (mut published, mut errors, mut slots) = (vec![0u64; rooms], 0u64, 0u64);
    while t0 + interval.mul_f64(slots as f64) < t0 + args.duration {
        tokio::time::sleep_until((t0 + interval.mul_f64(slots as f64)).into()).await;
        let room = slots as usize % rooms;
        slots += 1;
        // Each room's own sequence, so its members count holes and repeats.
        let seq = slots.div_ceil(rooms as u64);
        let sent = async {
            publisher.ready().await?;
            let content = format!(r#"{{"seq":{seq},"us":{}}}"#, ws::now_us());
            let channel = format!("room:bench-{room}");
            let item = serde_json::json!({"items": [{"channel": channel, "formats": {"ws-message": {"content": content}}}]});
            publisher.send(item.to_string()).await
        };
        match sent.await {
            Ok(()) => published[room] += 1,
            Err(_) => {
                errors += 1;
                publisher.broken();
            }
        }
    }
    let seconds = interval.as_secs_f64() * slots as f64;
    let (gateway_cpu, redis_cpu) = (gateway_cpu.end(), redis_cpu.end());
    let redis_busy = redis_cpu.time.as_secs_f64() - idle_per_s * t0.elapsed().as_secs_f64();
    for p in &mut pools {
        p.mark().await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut reports = Vec::new();
    for p in pools {
        reports.extend(p.stop().await?);
    }
    let mut hist = stats::histogram();
    for r in &reports {
        hist.add(stats::decode(&r.lateness)?)?;
    }
    let deliveries: u64 = reports.iter().map(|r| r.pushes).sum();
    let in_window: u64 = reports.iter().map(|r| r.pushes_before_mark).sum();
    let expected: u64 = opened.iter().zip(&published).map(|(o, p)| *o as u64 * p).sum();
    let total: u64 = published.iter().sum();
    if total == 0 {
        bail!("{variant}: nothing was published ({errors} errors)");
    }
    Ok(Outcome {
        variant: variant.into(),
        connections: args.connections,
        opened: opened.iter().sum(),
        rooms,
        published: total,
        publish_errors: errors,
        deliveries,
        deliveries_per_s: deliveries as f64 / seconds,
        latency: stats::Percentiles::of(&hist),
        dropped: expected.saturating_sub(deliveries),
        gateway_cpu_us_per_delivery: gateway_cpu.us_per(in_window),
        redis_cpu_us_per_publication: (redis_cpu.counted > 0)
            .then(|| redis_busy.max(0.0) * 1e6 / total as f64),
        redis_idle_cpu_ms_per_s: idle_per_s * 1e3,
    })
}

pub fn print(o: &Outcome) {
    println!(
        "{} n={} (opened {}) in {} rooms: {} published ({} errors), {:.0} deliveries/s, p50 {:.1} ms p99 {:.1} ms, dropped {}, gateways {} us/delivery, Redis {} us/publication (idle {:.1} ms/s taken off)",
        o.variant,
        o.connections,
        o.opened,
        o.rooms,
        o.published,
        o.publish_errors,
        o.deliveries_per_s,
        o.latency.p50_us as f64 / 1e3,
        o.latency.p99_us as f64 / 1e3,
        o.dropped,
        o.gateway_cpu_us_per_delivery.map_or("n/a".into(), |v| format!("{v:.2}")),
        o.redis_cpu_us_per_publication.map_or("n/a".into(), |v| format!("{v:.1}")),
        o.redis_idle_cpu_ms_per_s,
    );
}
