//! `publish`: N subscribers on one channel (through the component's `/room`), one publisher at a
//! fixed rate through the publish API (Pushpin's format, which sidestream's admin port and
//! Pushpin's port 5561 both take). Each item's content carries a sequence number and the time it
//! was sent, so every subscriber measures publish-to-arrival and counts what never came.
//!
//! `cargo run --release -p sidestream-bench -- publish --url 'ws://127.0.0.1:8080/room?room=bench'
//! --publish-url http://127.0.0.1:9090/publish/ -n 1000 --rate 20 --server-pid PID`

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::worker::{Mode, Pool, Ready};
use crate::{procfs, stats, ws};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Subscriber URL(s), comma-separated (the component's `/room?room=bench`); with several,
    /// the subscribers are split evenly across them (two gateways sharing one Redis).
    #[arg(long, value_delimiter = ',', required = true)]
    pub url: Vec<String>,
    /// The publish API (`http://ADMIN/publish/` for the gateway, `http://127.0.0.1:5561/publish/`
    /// for Pushpin).
    #[arg(long)]
    pub publish_url: String,
    /// The channel `/room?room=bench` subscribes to.
    #[arg(long, default_value = "room:bench")]
    pub channel: String,
    #[arg(long, short = 'n', default_value_t = 1_000)]
    pub connections: usize,
    /// Connections per worker process (the open-file limit is 20,000 per process).
    #[arg(long, default_value_t = 9_000)]
    pub per_worker: usize,
    /// Publications per second (each goes to every subscriber).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// How long the publisher publishes.
    #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Time after the last subscriber joined and before the first publication.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Time after the last publication for deliveries still in flight.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Every process of the server under test, comma-separated, for its CPU per delivery.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Which setup, for the table (`publish`, `publish redis`).
    pub variant: String,
    pub connections: usize,
    pub opened: usize,
    pub failed: usize,
    pub rate: f64,
    pub published: u64,
    pub publish_errors: u64,
    /// Publish API answer time, microseconds.
    pub publish_latency: stats::Percentiles,
    pub deliveries: u64,
    pub seconds: f64,
    pub deliveries_per_s: f64,
    /// Arrival minus the `us` in the content, microseconds.
    pub latency: stats::Percentiles,
    pub latency_curve: Vec<(f64, u64)>,
    /// Publications a subscriber that stayed connected never got: `opened x published - deliveries`.
    pub dropped: u64,
    /// Of those, holes in a subscriber's sequence.
    pub gaps: u64,
    /// The highest first sequence number a subscriber saw: above 1, some subscriber missed the
    /// first publications (its subscription was not in place when its welcome arrived).
    pub first_seq_max: Option<u64>,
    pub closed_early: u64,
    /// Messages that were not publications (none expected after the welcome).
    pub other: u64,
    /// Server CPU (every process of it) per delivery, microseconds.
    pub server_cpu_us_per_delivery: Option<f64>,
}

pub async fn run(args: &Args) -> anyhow::Result<Outcome> {
    for &pid in &args.server_pid {
        procfs::check_pid(pid)?;
    }
    // One pool per subscriber URL, each holding its share.
    let mut pools = Vec::new();
    let mut ready = Ready::default();
    let k = args.url.len();
    for (i, url) in args.url.iter().enumerate() {
        let share = args.connections / k + usize::from(i < args.connections % k);
        let (pool, r) = Pool::open(url, share, args.per_worker, Mode::Subscribe, false, 0).await?;
        ready.opened += r.opened;
        ready.failed += r.failed;
        ready.first_error = ready.first_error.or(r.first_error);
        pools.push(pool);
    }
    if ready.opened == 0 {
        bail!("no subscriber joined: {}", ready.first_error.unwrap_or_default());
    }
    let mut publisher = Publisher::open(&args.publish_url).await?;
    tokio::time::sleep(args.warmup).await;

    let cpu_at = |pids: &[u32]| (!pids.is_empty()).then(|| procfs::cpu_time_of(pids)).transpose();
    let cpu0 = cpu_at(&args.server_pid)?;
    for p in &mut pools {
        p.go().await?;
    }
    let t0 = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let mut api = stats::histogram();
    let (mut published, mut errors, mut slots) = (0u64, 0u64, 0u64);
    // A fixed schedule, not a fixed gap: a slow answer does not lower the rate, the next
    // publication goes out as soon as the answer is in. Each slot has its own number, tried once:
    // a failed publish is never sent again under the same number (a timed-out one may have been
    // delivered), and the next one waits for its own slot rather than retrying at once.
    loop {
        let due = t0 + interval.mul_f64(slots as f64);
        if due >= t0 + args.duration {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        slots += 1;
        let seq = slots;
        let content = format!(r#"{{"seq":{seq},"us":{}}}"#, ws::now_us());
        let item = serde_json::json!({"items": [{"channel": args.channel, "formats": {"ws-message": {"content": content}}}]});
        let sent = Instant::now();
        match publisher.post(item.to_string()).await {
            Ok(()) => {
                published += 1;
                stats::record(&mut api, sent.elapsed().as_micros() as u64);
            }
            Err(e) => {
                errors += 1;
                if errors == 1 {
                    eprintln!("publish failed: {e:#}");
                }
                if errors > 10 && published == 0 {
                    bail!("the publish API at {} refuses: {e:#}", args.publish_url);
                }
                // A broken keep-alive connection: open another.
                publisher = Publisher::open(&args.publish_url).await?;
            }
        }
    }
    // The schedule's span: `slots` publications offered over `slots` intervals.
    let seconds = interval.as_secs_f64() * slots as f64;
    tokio::time::sleep(args.settle).await;
    let cpu1 = cpu_at(&args.server_pid)?;
    let mut reports = Vec::new();
    for p in pools {
        reports.extend(p.stop().await?);
    }

    let mut hist = stats::histogram();
    for r in &reports {
        hist.add(stats::decode(&r.lateness)?).context("merging latency")?;
    }
    let deliveries: u64 = reports.iter().map(|r| r.pushes).sum();
    let closed_early: u64 = reports.iter().map(|r| r.closed).sum();
    let expected = (ready.opened as u64).saturating_sub(closed_early) * published;
    Ok(Outcome {
        variant: "publish".into(),
        connections: args.connections,
        opened: ready.opened,
        failed: ready.failed,
        rate: args.rate,
        published,
        publish_errors: errors,
        publish_latency: stats::Percentiles::of(&api),
        deliveries,
        seconds,
        deliveries_per_s: deliveries as f64 / seconds,
        latency: stats::Percentiles::of(&hist),
        latency_curve: stats::curve(&hist),
        dropped: expected.saturating_sub(deliveries),
        gaps: reports.iter().map(|r| r.gaps).sum(),
        first_seq_max: reports.iter().filter_map(|r| r.first_seq_max).max(),
        closed_early,
        other: reports.iter().map(|r| r.other).sum(),
        server_cpu_us_per_delivery: cpu0
            .zip(cpu1)
            .map(|(a, b)| (b - a).as_secs_f64() * 1e6 / deliveries.max(1) as f64),
    })
}

/// One keep-alive HTTP/1.1 connection to the publish API.
struct Publisher {
    sender: http1::SendRequest<Full<Bytes>>,
    url: String,
    authority: String,
    path: String,
}

impl Publisher {
    async fn open(url: &str) -> anyhow::Result<Self> {
        let authority = ws::authority(url)?.to_string();
        let path = url.splitn(4, '/').nth(3).map_or("/".to_string(), |p| format!("/{p}"));
        let stream =
            TcpStream::connect(&authority).await.with_context(|| format!("connecting to {authority}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self { sender, url: url.to_string(), authority, path })
    }

    async fn post(&mut self, body: String) -> anyhow::Result<()> {
        // Pushpin's publish API closes the connection after each answer: open the next one then.
        if self.sender.ready().await.is_err() {
            *self = Self::open(&self.url).await?;
            self.sender.ready().await?;
        }
        let req = hyper::Request::post(&self.path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let resp = tokio::time::timeout(Duration::from_secs(10), self.sender.send_request(req))
            .await
            .context("publish API answered nothing within 10 s")??;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("publish answered {status}: {}", String::from_utf8_lossy(&body).trim());
        }
        Ok(())
    }
}

pub fn print(o: &Outcome) {
    println!(
        "{} n={} (opened {}, failed {}) rate {}/s: {} published ({} errors), {:.0} deliveries/s, publish-to-arrival p50 {:.1} ms p99 {:.1} ms p99.9 {:.1} ms, dropped {} (gaps {}, first seq up to {:?}), closed early {}, server cpu {} us/delivery",
        o.variant,
        o.connections,
        o.opened,
        o.failed,
        o.rate,
        o.published,
        o.publish_errors,
        o.deliveries_per_s,
        o.latency.p50_us as f64 / 1e3,
        o.latency.p99_us as f64 / 1e3,
        o.latency.p999_us as f64 / 1e3,
        o.dropped,
        o.gaps,
        o.first_seq_max,
        o.closed_early,
        o.server_cpu_us_per_delivery.map_or("n/a".into(), |v| format!("{v:.2}")),
    );
}
