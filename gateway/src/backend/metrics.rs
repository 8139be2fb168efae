//! What the component's side counts: failed and refused requests, and where their time goes.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use crate::metrics::add;
use crate::stages::Stages;

/// The backend's counts, shared by the embedded host and the proxy.
#[derive(Debug)]
pub struct Metrics {
    /// Where component requests spend their time ([`crate::stages`]).
    pub stages: Stages,
    pub component_errors: Counter,
    pub component_busy: Counter,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        Metrics {
            stages: Stages::register(r),
            component_errors: add(
                r,
                "component_errors",
                "Component requests that failed (trap, limit, deadline, upstream error)",
            ),
            component_busy: add(
                r,
                "component_busy",
                "Component requests answered 503 because every instance stayed busy (embedded host)",
            ),
        }
    }
}
