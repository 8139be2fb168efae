//! Latency histograms: microsecond HDR histograms, merged across tasks and worker processes.

use anyhow::Context;
use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

/// 1 us to 100 s at two significant digits (1% error): small enough (about 20 KB) for one per
/// connection at C=1000.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 2).expect("static bounds are valid")
}

/// Records `us`, saturating at the top of the range rather than dropping the sample.
pub fn record(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.max(1));
}

/// The percentiles the report prints, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Quantiles drawn in the latency charts (x axis: 1 / (1 - q), the classic HDR percentile plot).
pub const CURVE: [f64; 9] = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999];

/// `(quantile, microseconds)` at each point of [`CURVE`].
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    CURVE.iter().map(|&q| (q, h.value_at_quantile(q))).collect()
}

/// Base64 of the V2 encoding, for a worker process to hand its histogram to the parent on a line.
pub fn encode(h: &Histogram<u64>) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut buf)
        .map_err(|e| anyhow::anyhow!("serializing histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

pub fn decode(s: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).context("histogram is not base64")?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("deserializing histogram: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_survives_the_trip_between_processes() {
        let mut h = histogram();
        for us in 1..=1000 {
            record(&mut h, us);
        }
        let back = decode(&encode(&h).unwrap()).unwrap();
        let p = Percentiles::of(&back);
        assert_eq!(p.count, 1000);
        assert!((985..=1000).contains(&p.p99_us), "{p:?}");
    }
}
