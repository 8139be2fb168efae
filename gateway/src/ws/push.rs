//! Random-timed pushes: the schedule and the message.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One connection's push schedule: uniform delays in `[min, max]` and uniform values in `[0, 1)`.
#[derive(Debug)]
pub struct Schedule {
    rng: SmallRng,
    min: Duration,
    max: Duration,
    seq: u64,
}

impl Schedule {
    /// With a seed, every connection's schedule is reproducible: connection `id` derives its own
    /// stream from it, so two connections never share one.
    pub fn new(min: Duration, max: Duration, seed: Option<u64>, id: u64) -> Self {
        let rng = match seed {
            Some(seed) => SmallRng::seed_from_u64(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            None => SmallRng::from_rng(&mut rand::rng()),
        };
        Schedule { rng, min, max, seq: 0 }
    }

    /// The delay before the next push.
    pub fn next_delay(&mut self) -> Duration {
        if self.min == self.max { self.min } else { self.rng.random_range(self.min..=self.max) }
    }

    /// The next push message, numbered from 1.
    pub fn next_message(&mut self, now: SystemTime) -> String {
        self.seq += 1;
        let value: f64 = self.rng.random();
        format_push(self.seq, now, value)
    }
}

/// `{"type":"push","seq":N,"ts":"<RFC 3339 UTC, ms>","value":V}`, formatted without a JSON library:
/// every field is a number or a timestamp that needs no escaping.
pub fn format_push(seq: u64, now: SystemTime, value: f64) -> String {
    let mut out = String::with_capacity(80);
    let _ = write!(
        out,
        r#"{{"type":"push","seq":{seq},"ts":"{}","value":{value}}}"#,
        humantime::format_rfc3339_millis(now)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_is_the_documented_json() {
        let ts = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_316_800_123);
        let text = format_push(7, ts, 0.25);
        assert_eq!(text, r#"{"type":"push","seq":7,"ts":"2025-11-28T08:00:00.123Z","value":0.25}"#);
        let v: serde_json::Value = serde_json::from_str(&format_push(1, SystemTime::now(), 1e-9)).unwrap();
        assert_eq!(v["value"].as_f64(), Some(1e-9));
    }

    #[test]
    fn seeded_schedules_repeat_and_differ_per_connection() {
        let ms = Duration::from_millis;
        let run = |id| {
            let mut s = Schedule::new(ms(10), ms(20), Some(42), id);
            (0..20).map(|_| s.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        assert!(run(3).iter().all(|d| (ms(10)..=ms(20)).contains(d)));
        let mut s = Schedule::new(ms(5), ms(5), None, 0);
        assert_eq!(s.next_delay(), ms(5));
        assert!(s.next_message(SystemTime::now()).contains(r#""seq":1,"#));
        assert!(s.next_message(SystemTime::now()).contains(r#""seq":2,"#));
    }
}
