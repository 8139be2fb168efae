//! What the leases count: renewals, and the dead gateways and connections this one reaped.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::metrics::add;
use crate::{label_set, label_values};

#[derive(Debug, Default)]
pub struct Metrics {
    renewals: Family<Renewal, Counter>,
    pub gateways_reaped: Counter,
    pub connections_reaped: Counter,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        Metrics {
            renewals: add(
                r,
                "lease_renewals",
                "Renewals of this gateway's lease in Redis: ok, failed, or reaped (it had run out and another gateway ended its connections)",
            ),
            gateways_reaped: add(
                r,
                "gateways_reaped",
                "Dead gateways whose connections this gateway ended for the component",
            ),
            connections_reaped: add(
                r,
                "connections_reaped",
                "Connections of dead gateways whose DISCONNECT this gateway sent (see app_last_events for how each went)",
            ),
        }
    }

    pub fn renewal(&self, result: Renewal) {
        self.renewals.get_or_create(&result).inc();
    }
}

label_values! {
    /// How a renewal of this gateway's lease went.
    pub enum Renewal {
        Ok = "ok",
        Failed = "failed",
        /// It had run out and another gateway ended its connections.
        Reaped = "reaped",
    }
}

label_set!(Renewal, "result");
