//! What the channels count: subscriptions, publications dropped for slow clients, channels the
//! in-memory broker forgot, histories that diverged, and the Redis broker's connection. (Publications sent are counted by
//! the outbox that sends them: [`crate::ws::metrics`].)

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::add;

#[derive(Debug, Default)]
pub struct Metrics {
    pub publications_dropped: Counter,
    pub channels_evicted: Counter,
    pub channel_divergences: Counter,
    pub channel_subscriptions: Gauge,
    pub broker_connected: Gauge,
    pub broker_reconnects: Counter,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        Metrics {
            publications_dropped: add(
                r,
                "publications_dropped",
                "Publications dropped for subscribed clients that were not reading",
            ),
            channels_evicted: add(
                r,
                "channels_evicted",
                "Channels the in-memory broker forgot, history and all, to stay within its bound on channels",
            ),
            channel_divergences: add(
                r,
                "channel_divergences",
                "Times a channel's live history diverged under this gateway's subscribers (a failover's promoted replica reused a position): those given the lost publication were told of a gap",
            ),
            channel_subscriptions: add(
                r,
                "channel_subscriptions",
                "Subscriptions of this gateway's connections to channels",
            ),
            broker_connected: add(
                r,
                "broker_connected",
                "1 while the Redis broker's pub/sub connection is up (always 0 with the in-memory broker)",
            ),
            broker_reconnects: add(
                r,
                "broker_reconnects",
                "Times the Redis broker's pub/sub connection came back after it was lost",
            ),
        }
    }
}
