//! The gateway's stage histograms (`sidestream_component_stage_seconds`, see the gateway's
//! `stages` module), read from its `/metrics` before and after a measured window: where the app
//! path's time went in that window, stage by stage.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The stages in the order a request passes them (the gateway's `STAGES`).
const ORDER: [&str; 8] = ["queue", "schedule", "instantiate", "guest", "answer", "parse", "write", "total"];

/// One reading of the counters.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Per stage: `(le, cumulative count)` and the sum of seconds.
    buckets: BTreeMap<String, Vec<(f64, f64)>>,
    sums: BTreeMap<String, f64>,
    yields: f64,
    in_flight_sum: f64,
    in_flight_count: f64,
}

/// One stage over the window.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub stage: String,
    pub count: u64,
    pub mean_us: f64,
    /// Read from buckets that double: within a factor of two.
    pub p99_us: f64,
}

/// What the window shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Breakdown {
    pub stages: Vec<Stage>,
    /// Epoch-tick yields per request, and the guests in flight as each one started (mean).
    pub yields_per_request: f64,
    pub guests_in_flight: f64,
}

/// Reads `/metrics` from the admin address (`host:port`).
pub async fn read(admin: &str) -> anyhow::Result<Snapshot> {
    let mut stream = TcpStream::connect(admin).await.with_context(|| format!("connecting to {admin}"))?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.context("reading /metrics")?;
    Ok(parse(&text))
}

fn parse(text: &str) -> Snapshot {
    let mut s = Snapshot::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let label = |name: &str| {
            let start = key.find(&format!("{name}=\""))? + name.len() + 2;
            key[start..].split('"').next().map(str::to_owned)
        };
        if key.starts_with("sidestream_component_stage_seconds_bucket{") {
            let (Some(stage), Some(le)) = (label("stage"), label("le")) else { continue };
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
            s.buckets.entry(stage).or_default().push((le, value));
        } else if key.starts_with("sidestream_component_stage_seconds_sum{") {
            if let Some(stage) = label("stage") {
                s.sums.insert(stage, value);
            }
        } else if key == "sidestream_component_guest_yields_total" {
            s.yields = value;
        } else if key == "sidestream_component_guests_in_flight_sum" {
            s.in_flight_sum = value;
        } else if key == "sidestream_component_guests_in_flight_count" {
            s.in_flight_count = value;
        }
    }
    s
}

/// What happened between two readings.
pub fn between(before: &Snapshot, after: &Snapshot) -> Breakdown {
    let mut stages = Vec::new();
    for name in ORDER {
        let Some(now) = after.buckets.get(name) else { continue };
        let then = before.buckets.get(name);
        let buckets: Vec<(f64, f64)> = now
            .iter()
            .enumerate()
            .map(|(i, (le, c))| (*le, c - then.and_then(|t| t.get(i)).map_or(0.0, |t| t.1)))
            .collect();
        let count = buckets.last().map_or(0.0, |b| b.1);
        if count < 1.0 {
            continue;
        }
        let sum =
            after.sums.get(name).copied().unwrap_or(0.0) - before.sums.get(name).copied().unwrap_or(0.0);
        stages.push(Stage {
            stage: name.to_string(),
            count: count as u64,
            mean_us: sum / count * 1e6,
            p99_us: quantile(&buckets, 0.99) * 1e6,
        });
    }
    let requests = stages.iter().find(|s| s.stage == "guest").map_or(0, |s| s.count).max(1) as f64;
    let started = (after.in_flight_count - before.in_flight_count).max(1.0);
    Breakdown {
        stages,
        yields_per_request: (after.yields - before.yields) / requests,
        guests_in_flight: (after.in_flight_sum - before.in_flight_sum) / started,
    }
}

/// The quantile `q` of cumulative buckets, interpolated within its bucket.
fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let Some(total) = buckets.last().map(|b| b.1) else { return 0.0 };
    let target = q * total;
    let (mut low, mut below) = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= target {
            if le.is_infinite() {
                return low;
            }
            let within = if count > below { (target - below) / (count - below) } else { 0.0 };
            return low + (le - low) * within;
        }
        (low, below) = (le, count);
    }
    low
}

impl Breakdown {
    /// One line: each stage's mean and p99, then the scheduling figures.
    pub fn line(&self) -> String {
        let stages: Vec<String> =
            self.stages.iter().map(|s| format!("{} {:.0}/{:.0}", s.stage, s.mean_us, s.p99_us)).collect();
        format!(
            "stages (mean/p99 us): {}; yields/request {:.3}; guests in flight at start {:.1}",
            stages.join(", "),
            self.yields_per_request,
            self.guests_in_flight
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
sidestream_component_stage_seconds_sum{stage=\"guest\"} 1.0
sidestream_component_stage_seconds_count{stage=\"guest\"} 10
sidestream_component_stage_seconds_bucket{le=\"0.00001\",stage=\"guest\"} 0
sidestream_component_stage_seconds_bucket{le=\"0.00002\",stage=\"guest\"} 10
sidestream_component_stage_seconds_bucket{le=\"+Inf\",stage=\"guest\"} 10
sidestream_component_guest_yields_total 5
";
    const AFTER: &str = "\
sidestream_component_stage_seconds_sum{stage=\"guest\"} 1.0030
sidestream_component_stage_seconds_count{stage=\"guest\"} 110
sidestream_component_stage_seconds_bucket{le=\"0.00001\",stage=\"guest\"} 0
sidestream_component_stage_seconds_bucket{le=\"0.00002\",stage=\"guest\"} 110
sidestream_component_stage_seconds_bucket{le=\"+Inf\",stage=\"guest\"} 110
sidestream_component_guest_yields_total 15
";

    #[test]
    fn the_window_is_the_difference_of_two_readings() {
        let b = between(&parse(BEFORE), &parse(AFTER));
        assert_eq!(b.stages.len(), 1);
        let guest = &b.stages[0];
        assert_eq!(guest.count, 100);
        assert!((guest.mean_us - 30.0).abs() < 1e-6, "{guest:?}");
        assert!(guest.p99_us > 10.0 && guest.p99_us <= 20.0, "{guest:?}");
        assert!((b.yields_per_request - 0.1).abs() < 1e-9);
    }
}
