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

use crate::worker::{Mode, Pool, Ready, Report};
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
    /// Subscriber handshakes tried again after a refusal (Pushpin refuses some of a crowd).
    pub handshake_retries: u64,
    pub rate: f64,
    pub published: u64,
    pub publish_errors: u64,
    /// Connections the publisher opened to the publish API (Pushpin closes it after each answer).
    pub publish_connections: u64,
    /// Publish API answer time, microseconds: from writing the request (on an open connection)
    /// to the whole answer.
    pub publish_latency: stats::Percentiles,
    /// Publications received, each once per subscriber (repeats are not deliveries).
    pub deliveries: u64,
    pub seconds: f64,
    pub deliveries_per_s: f64,
    /// Arrival minus the `us` in the content, microseconds.
    pub latency: stats::Percentiles,
    pub latency_curve: Vec<(f64, u64)>,
    /// What subscribers never got: `opened x published - deliveries`, so a subscriber the server
    /// closed early counts as dropping every publication it missed.
    pub dropped: u64,
    /// Holes in a subscriber's sequence (part of `dropped`, unless the hole was a failed post).
    pub gaps: u64,
    /// Publications a subscriber got again (or out of order): not deliveries, counted here.
    pub repeats: u64,
    /// The highest first sequence number a subscriber saw: above 1, some subscriber missed the
    /// first publications (its subscription was not in place when its welcome arrived).
    pub first_seq_max: Option<u64>,
    pub closed_early: u64,
    /// Messages that were not publications (none expected after the welcome).
    pub other: u64,
    /// The window the server's CPU is read over: the first publication to the end of the
    /// schedule (or the last answer, when that came later), without the settle time.
    pub cpu_window_s: f64,
    /// Deliveries that arrived in that window.
    pub deliveries_in_window: u64,
    /// Server CPU (every process of it) in the window per delivery in it, microseconds.
    pub server_cpu_us_per_delivery: Option<f64>,
    /// What makes a figure less than it seems (a server process that exited while measured).
    pub notes: Vec<String>,
}

/// The subscribers' reports, added up.
#[derive(Debug, PartialEq)]
struct Tally {
    deliveries: u64,
    before_mark: u64,
    dropped: u64,
    gaps: u64,
    repeats: u64,
    closed_early: u64,
}

fn tally(reports: &[Report], opened: usize, published: u64) -> Tally {
    let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    let deliveries = sum(|r| r.pushes);
    Tally {
        deliveries,
        before_mark: sum(|r| r.pushes_before_mark),
        // Every subscriber that joined, including those closed before the end: what a closed one
        // missed is dropped for its user.
        dropped: (opened as u64 * published).saturating_sub(deliveries),
        gaps: sum(|r| r.gaps),
        repeats: sum(|r| r.repeats),
        closed_early: sum(|r| r.closed),
    }
}

pub async fn run(args: &Args) -> anyhow::Result<Outcome> {
    procfs::check_any_pid(&args.server_pid)?;
    // One pool per subscriber URL, each holding its share.
    let mut pools = Vec::new();
    let mut ready = Ready::default();
    let k = args.url.len();
    for (i, url) in args.url.iter().enumerate() {
        let share = args.connections / k + usize::from(i < args.connections % k);
        let (pool, r) = Pool::open(url, share, args.per_worker, Mode::Subscribe, false, 0).await?;
        ready.add(r);
        pools.push(pool);
    }
    if ready.opened == 0 {
        bail!("no subscriber joined: {}", ready.first_error.unwrap_or_default());
    }
    let mut publisher = Publisher::new(&args.publish_url)?;
    publisher.ready().await?;
    tokio::time::sleep(args.warmup).await;

    let cpu = procfs::CpuWindow::start(&args.server_pid);
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
        let posted = async {
            publisher.ready().await?;
            // Stamped on an open connection, just before the request is written: Pushpin closes
            // the publish connection after every answer, and the connect that follows is the
            // publisher's cost, so both servers are timed from the same point.
            let content = format!(r#"{{"seq":{seq},"us":{}}}"#, ws::now_us());
            let item = serde_json::json!({"items": [{"channel": args.channel, "formats": {"ws-message": {"content": content}}}]});
            let sent = Instant::now();
            publisher.send(item.to_string()).await?;
            anyhow::Ok(sent.elapsed())
        };
        match posted.await {
            Ok(took) => {
                published += 1;
                stats::record(&mut api, took.as_micros() as u64);
            }
            Err(e) => {
                errors += 1;
                if errors == 1 {
                    eprintln!("publish failed: {e:#}");
                }
                if errors > 10 && published == 0 {
                    bail!("the publish API at {} refuses: {e:#}", args.publish_url);
                }
                // A broken keep-alive connection: the next slot opens another.
                publisher.broken();
            }
        }
    }
    // The schedule's span: `slots` publications offered over `slots` intervals.
    let seconds = interval.as_secs_f64() * slots as f64;
    // CPU and deliveries over the same window, which ends with the schedule (or the last answer,
    // if later): the settle below only collects late arrivals, and idle background work in it
    // would be charged to the deliveries (more to five Pushpin processes than to one gateway).
    tokio::time::sleep_until((t0 + interval.mul_f64(slots as f64)).into()).await;
    let cpu = cpu.end();
    let cpu_window_s = t0.elapsed().as_secs_f64();
    for p in &mut pools {
        p.mark().await?;
    }
    tokio::time::sleep(args.settle).await;
    let mut reports = Vec::new();
    for p in pools {
        reports.extend(p.stop().await?);
    }

    let mut hist = stats::histogram();
    for r in &reports {
        hist.add(stats::decode(&r.lateness)?).context("merging latency")?;
    }
    let t = tally(&reports, ready.opened, published);
    Ok(Outcome {
        variant: "publish".into(),
        connections: args.connections,
        opened: ready.opened,
        failed: ready.failed,
        handshake_retries: ready.retried,
        rate: args.rate,
        published,
        publish_errors: errors,
        publish_connections: publisher.opened,
        publish_latency: stats::Percentiles::of(&api),
        deliveries: t.deliveries,
        seconds,
        deliveries_per_s: t.deliveries as f64 / seconds,
        latency: stats::Percentiles::of(&hist),
        latency_curve: stats::curve(&hist),
        dropped: t.dropped,
        gaps: t.gaps,
        repeats: t.repeats,
        first_seq_max: reports.iter().filter_map(|r| r.first_seq_max).max(),
        closed_early: t.closed_early,
        other: reports.iter().map(|r| r.other).sum(),
        cpu_window_s,
        deliveries_in_window: t.before_mark,
        server_cpu_us_per_delivery: cpu.us_per(t.before_mark),
        notes: cpu.note().into_iter().collect(),
    })
}

/// A keep-alive HTTP/1.1 connection to the publish API, opened again when the server closed it.
pub(crate) struct Publisher {
    sender: Option<http1::SendRequest<Full<Bytes>>>,
    authority: String,
    path: String,
    /// Connections opened so far.
    opened: u64,
}

impl Publisher {
    pub(crate) fn new(url: &str) -> anyhow::Result<Self> {
        let authority = ws::authority(url)?.to_string();
        let path = url.splitn(4, '/').nth(3).map_or("/".to_string(), |p| format!("/{p}"));
        Ok(Self { sender: None, authority, path, opened: 0 })
    }

    /// An open connection ready for a request: the kept-alive one, or a new one when the server
    /// closed it (Pushpin's publish API does after each answer).
    pub(crate) async fn ready(&mut self) -> anyhow::Result<()> {
        if let Some(s) = &mut self.sender
            && s.ready().await.is_ok()
        {
            return Ok(());
        }
        self.sender = None;
        let authority = &self.authority;
        let stream =
            TcpStream::connect(authority).await.with_context(|| format!("connecting to {authority}"))?;
        stream.set_nodelay(true)?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        self.opened += 1;
        sender.ready().await?;
        self.sender = Some(sender);
        Ok(())
    }

    /// After a failed request: the next [`Publisher::ready`] opens a new connection.
    pub(crate) fn broken(&mut self) {
        self.sender = None;
    }

    /// Posts `body` on the connection [`Publisher::ready`] opened and waits for the whole answer.
    pub(crate) async fn send(&mut self, body: String) -> anyhow::Result<()> {
        let sender = self.sender.as_mut().context("publish connection not open")?;
        let req = hyper::Request::post(&self.path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
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
        "{} n={} (opened {}, failed {}, handshakes retried {}) rate {}/s: {} published ({} errors, {} connections), {:.0} deliveries/s, publish-to-arrival p50 {:.1} ms p99 {:.1} ms p99.9 {:.1} ms, dropped {} (gaps {}, first seq up to {:?}), repeats {}, closed early {}, server cpu {} us/delivery ({} deliveries in {:.2} s)",
        o.variant,
        o.connections,
        o.opened,
        o.failed,
        o.handshake_retries,
        o.rate,
        o.published,
        o.publish_errors,
        o.publish_connections,
        o.deliveries_per_s,
        o.latency.p50_us as f64 / 1e3,
        o.latency.p99_us as f64 / 1e3,
        o.latency.p999_us as f64 / 1e3,
        o.dropped,
        o.gaps,
        o.first_seq_max,
        o.repeats,
        o.closed_early,
        o.server_cpu_us_per_delivery.map_or("n/a".into(), |v| format!("{v:.2}")),
        o.deliveries_in_window,
        o.cpu_window_s,
    );
    for n in &o.notes {
        println!("  note: {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(pushes: u64, repeats: u64, closed: u64) -> Report {
        Report { pushes, pushes_before_mark: pushes, repeats, closed, ..Default::default() }
    }

    #[test]
    fn a_subscriber_closed_early_drops_what_it_missed_and_repeats_are_not_deliveries() {
        // Three subscribers, 10 publications: one got all, one got 9 and a repeat, one was closed
        // after 4 (the worker reports its counts with the others').
        let workers = [report(10, 0, 0), report(13, 1, 1)];
        let t = tally(&workers, 3, 10);
        assert_eq!(t.deliveries, 23);
        assert_eq!(t.dropped, 7, "1 hole and the 6 the closed subscriber never got");
        assert_eq!((t.repeats, t.closed_early), (1, 1));
    }
}
