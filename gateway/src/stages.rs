//! Where a component request's time goes, as histograms: the wait for an instance, the wait for
//! the guests' runtime, instantiation, the guest's own work, the way back to the connection, and,
//! for WebSocket apps, reading the answer and carrying it out. `sidestream-bench` reads them from
//! `/metrics` before and after a run to say which stage a slow request spent its time in.
//!
//! Each observation is a clock read and an uncontended lock: well under a microsecond against the
//! ~100 µs a request costs.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// One stage of a component request.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: &'static str,
}

/// The stages, in the order a request passes them.
pub const STAGES: [&str; 8] =
    ["queue", "schedule", "instantiate", "guest", "answer", "parse", "write", "total"];

fn seconds() -> Histogram {
    // 10 µs to 10.5 s, doubling: the app path's median is a few hundred µs, its tail was 100s of ms.
    Histogram::new(exponential_buckets(10e-6, 2.0, 21))
}

fn counts() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 12))
}

/// The stage histograms and the guests' scheduling figures.
#[derive(Clone, Debug)]
pub struct Stages {
    /// Waiting for a free instance (the pool's bound) and for a turn to run.
    pub queue: Histogram,
    /// From handing the guest to its runtime to its first poll there: the runtime's run queue.
    pub schedule: Histogram,
    /// Making the request's fresh Store and instantiating the component in it.
    pub instantiate: Histogram,
    /// The guest's handler, from its call to its return (host calls and yields included).
    pub guest: Histogram,
    /// From the guest's return to the connection holding the whole answer.
    pub answer: Histogram,
    /// A WebSocket app's answer read into actions.
    pub parse: Histogram,
    /// The actions carried out: messages handed to the client's socket.
    pub write: Histogram,
    /// A WebSocket app's request, from the connection sending it to carrying out its answer.
    pub total: Histogram,
    /// Guests on the guests' runtime (running, yielded or waiting for a host call), sampled as
    /// each one starts.
    pub guests_in_flight: Histogram,
    pub guests_running: Gauge,
    /// Times a running guest gave its thread back at an epoch tick.
    pub guest_yields: Counter,
}

impl Stages {
    pub fn register(registry: &mut Registry) -> Self {
        let family = Family::<StageLabels, Histogram>::new_with_constructor(seconds as fn() -> Histogram);
        let stage = |stage| family.get_or_create(&StageLabels { stage }).clone();
        let stages = Stages {
            queue: stage("queue"),
            schedule: stage("schedule"),
            instantiate: stage("instantiate"),
            guest: stage("guest"),
            answer: stage("answer"),
            parse: stage("parse"),
            write: stage("write"),
            total: stage("total"),
            guests_in_flight: counts(),
            guests_running: Gauge::default(),
            guest_yields: Counter::default(),
        };
        registry.register(
            "component_stage_seconds",
            "Time component requests spend in each stage: queue (for an instance and a turn), schedule (the guests' run queue), instantiate, guest, answer (back to the connection); for WebSocket apps also parse, write and total",
            family,
        );
        registry.register(
            "component_guests_in_flight",
            "Guests on the guests' runtime as each one starts (itself included)",
            stages.guests_in_flight.clone(),
        );
        registry.register(
            "component_guests_running",
            "Guests on the guests' runtime now",
            stages.guests_running.clone(),
        );
        registry.register(
            "component_guest_yields",
            "Times a guest gave its thread back at an epoch tick",
            stages.guest_yields.clone(),
        );
        stages
    }
}

/// Records a duration in a stage's histogram.
pub fn observe(histogram: &Histogram, elapsed: Duration) {
    histogram.observe(elapsed.as_secs_f64());
}
