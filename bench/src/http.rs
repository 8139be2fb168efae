//! `http`: C keep-alive HTTP/1.1 connections, each a closed loop of `GET` / read the whole body.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::{procfs, stats, ws};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// URL to fetch, e.g. `http://127.0.0.1:8080/`.
    #[arg(long)]
    pub url: String,
    #[arg(long, short = 'c', default_value_t = 50)]
    pub connections: usize,
    #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// The server's pid, for its CPU time per request.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub connections: usize,
    pub requests: u64,
    pub seconds: f64,
    pub req_per_s: f64,
    pub latency: stats::Percentiles,
    pub server_cpu_us_per_req: Option<f64>,
    pub body_bytes: usize,
    pub errors: u64,
}

pub async fn run(args: &Args) -> anyhow::Result<Outcome> {
    if let Some(pid) = args.server_pid {
        procfs::check_pid(pid)?;
    }
    let authority = ws::authority(&args.url)?.to_string();
    let path = args.url.splitn(4, '/').nth(3).map_or("/".to_string(), |p| format!("/{p}"));
    let senders: Vec<_> = stream::iter(0..args.connections)
        .map(|_| open(&authority))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;

    // One request first: a broken URL fails here, clearly, not as a wall of errors.
    let mut probe = open(&authority).await?;
    let (status, body_bytes) = fetch(&mut probe, &authority, &path).await?;
    if !status.is_success() {
        bail!("GET {} answered {status}", args.url);
    }

    let t0 = Instant::now();
    let measure_from = t0 + args.warmup;
    let until = measure_from + args.duration;
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|s| tokio::spawn(closed_loop(s, authority.clone(), path.clone(), measure_from, until)))
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu = procfs::CpuWindow::start(args.server_pid.as_slice());
    tokio::time::sleep_until(until.into()).await;
    let cpu = cpu.end();

    let mut hist = stats::histogram();
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await.context("http task panicked")?;
        hist.add(&h).context("merging histograms")?;
        errors += e;
    }
    let requests = hist.len();
    let seconds = args.duration.as_secs_f64();
    Ok(Outcome {
        connections: args.connections,
        requests,
        seconds,
        req_per_s: requests as f64 / seconds,
        latency: stats::Percentiles::of(&hist),
        server_cpu_us_per_req: cpu.us_per(requests),
        body_bytes,
        errors,
    })
}

type Sender = http1::SendRequest<Empty<Bytes>>;

async fn open(authority: &str) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(authority).await.with_context(|| format!("connecting to {authority}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn fetch(s: &mut Sender, authority: &str, path: &str) -> anyhow::Result<(hyper::StatusCode, usize)> {
    s.ready().await?;
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        // What a browser sends; the component serves precompressed variants, no work per request.
        .header(hyper::header::ACCEPT_ENCODING, "br, gzip")
        .body(Empty::new())?;
    let resp = s.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body.len()))
}

async fn closed_loop(
    mut s: Sender,
    authority: String,
    path: String,
    measure_from: Instant,
    until: Instant,
) -> (Histogram<u64>, u64) {
    let mut hist = stats::histogram();
    let mut errors = 0;
    loop {
        let sent = Instant::now();
        if sent >= until {
            break;
        }
        match tokio::time::timeout_at(until.into(), fetch(&mut s, &authority, &path)).await {
            Err(_) => break,
            Ok(Ok((status, _))) if status.is_success() => {}
            Ok(_) => {
                errors += 1;
                // A broken connection stays broken: stop this loop rather than spin.
                if s.is_closed() {
                    break;
                }
                continue;
            }
        }
        let done = Instant::now();
        if sent >= measure_from && done <= until {
            stats::record(&mut hist, (done - sent).as_micros() as u64);
        }
    }
    (hist, errors)
}

pub fn print(o: &Outcome) {
    println!(
        "http c={}: {:.0} req/s, latency p50 {:.2} ms p99 {:.2} ms, body {} bytes, server cpu {} us/req, errors {}",
        o.connections,
        o.req_per_s,
        o.latency.p50_us as f64 / 1e3,
        o.latency.p99_us as f64 / 1e3,
        o.body_bytes,
        o.server_cpu_us_per_req.map_or("n/a".into(), |v| format!("{v:.1}")),
        o.errors
    );
}
