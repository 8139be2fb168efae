//! Prometheus metrics, encoded by `prometheus-client`.
//!
//! Hot-path counters (messages, bytes, pushes) are plain atomics; labelled families are only touched
//! on rare events (handshakes, closes, HTTP requests), so their lock never sits on the echo path.

mod labels;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use self::labels::*;

/// Declares every metric once: its field, its type, its exposed name and its help; the struct,
/// its construction and its registration follow from that one line.
macro_rules! metrics {
    ($($field:ident: $ty:ty = $name:literal, $help:literal;)*) => {
        /// Every metric the gateway exports.
        #[derive(Debug)]
        pub struct Metrics {
            registry: Registry,
            /// Where component requests spend their time ([`crate::stages`]).
            pub stages: crate::stages::Stages,
            $(pub $field: $ty,)*
        }

        impl Metrics {
            pub fn new() -> Self {
                let mut registry = Registry::with_prefix("sidestream");
                let stages = crate::stages::Stages::register(&mut registry);
                $(let $field = <$ty>::default();
                registry.register($name, $help, $field.clone());)*
                Metrics { registry, stages, $($field,)* }
            }
        }
    };
}

metrics! {
    connections_active: Gauge = "ws_connections_active", "Open WebSockets";
    connections_total: Counter = "ws_connections", "WebSockets accepted";
    outbox_bytes: Gauge = "ws_outbox_bytes", "Bytes of messages queued for clients that are slow to read";
    messages_received: Counter = "ws_messages_received", "Text and Binary messages received";
    messages_echoed: Counter = "ws_messages_echoed", "Messages echoed back";
    pushes_sent: Counter = "ws_pushes_sent", "Random-timed pushes queued for sending";
    pushes_dropped: Counter = "ws_pushes_dropped", "Pushes dropped because the client was not reading";
    bytes_received: Counter = "ws_received_bytes", "Payload bytes of messages received";
    bytes_sent: Counter = "ws_sent_bytes", "Payload bytes of echoes and pushes sent";
    idle_timeouts: Counter = "ws_idle_timeouts", "WebSockets closed for silence";
    handshake_rejections: Family<RejectLabels, Counter> = "ws_handshake_rejections", "WebSocket upgrades refused, by reason";
    closes: Family<CloseLabels, Counter> = "ws_closes", "WebSockets closed, by initiator and close code";
    http_requests: Family<HttpLabels, Counter> = "http_requests", "HTTP requests answered, by route and status";
    http_connections_active: Gauge = "http_connections_active", "TCP connections being served as HTTP (upgraded ones count as WebSockets)";
    http_connection_errors: Family<ConnErrorLabels, Counter> = "http_connection_errors", "HTTP connections that ended in an error: malformed or oversized requests, timeouts, resets";
    component_errors: Counter = "component_errors", "Component requests that failed (trap, limit, deadline, upstream error)";
    component_busy: Counter = "component_busy", "Component requests answered 503 because every instance stayed busy (embedded host)";
    app_messages_sent: Counter = "app_messages_sent", "Messages from WebSocket apps in the component sent to their clients";
    app_connections_active: Gauge = "app_connections_active", "Open WebSockets served by an app in the component";
    app_requests: Family<AppRequestLabels, Counter> = "app_requests", "Requests to WebSocket apps in the component, by what they carried and how they went";
    app_ignored: Family<WhatLabels, Counter> = "app_ignored", "Parts of WebSocket apps' answers ignored: unknown or invalid control messages, unprefixed messages, unknown events";
    app_controls: Family<WhatLabels, Counter> = "app_controls", "GRIP control messages from WebSocket apps, by type";
    app_last_events: Family<LastEventLabels, Counter> = "app_last_events", "Connections' last CLOSE or DISCONNECT to their WebSocket app, by how the delivery ended";
    app_retries: Counter = "app_retries", "Requests to WebSocket apps sent again after a failed attempt";
    app_late_answers: Counter = "app_late_answers", "WebSocket apps' answers that came after their connection had ended";
    component_reloads: Family<ResultLabels, Counter> = "component_reloads", "Reloads of the embedded component (SIGHUP, --watch), by result: ok, unchanged, failed";
    publishes: Family<ResultLabels, Counter> = "publishes", "Publish requests, by result: ok, refused (400, 413), unauthorized (401), unavailable (503)";
    published_items: Counter = "published_items", "Items published";
    publications_sent: Counter = "publications_sent", "Publications sent to subscribed clients";
    publications_dropped: Counter = "publications_dropped", "Publications dropped for subscribed clients that were not reading";
    channels_evicted: Counter = "channels_evicted", "Channels the in-memory broker forgot, history and all, to stay within its bound on channels";
    channel_subscriptions: Gauge = "channel_subscriptions", "Subscriptions of this gateway's connections to channels";
    broker_connected: Gauge = "broker_connected", "1 while the Redis broker's pub/sub connection is up (always 0 with the in-memory broker)";
    broker_reconnects: Counter = "broker_reconnects", "Times the Redis broker's pub/sub connection came back after it was lost";
    lease_renewals: Family<ResultLabels, Counter> = "lease_renewals", "Renewals of this gateway's lease in Redis: ok, failed, or reaped (it had run out and another gateway ended its connections)";
    gateways_reaped: Counter = "gateways_reaped", "Dead gateways whose connections this gateway ended for the component";
    connections_reaped: Counter = "connections_reaped", "Connections of dead gateways whose DISCONNECT this gateway sent (see app_last_events for how each went)";
    memory_budget: Family<BudgetLabels, Counter> = "memory_budget", "What the memory budgets did, by path (app, gateway) and action (close, refuse); stopped reading shows in ws_outbox_bytes, dropped pushes and publications in their own counters";
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn reject(&self, reason: &'static str) {
        self.handshake_rejections.get_or_create(&RejectLabels { reason }).inc();
    }

    pub fn closed(&self, by: &'static str, code: Option<u16>) {
        self.closes.get_or_create(&CloseLabels { by, code: close_code_label(code) }).inc();
    }

    pub fn app_request(&self, kind: &'static str, result: &'static str) {
        self.app_requests.get_or_create(&AppRequestLabels { kind, result }).inc();
    }

    pub fn lease_renewal(&self, result: &'static str) {
        self.lease_renewals.get_or_create(&ResultLabels { result }).inc();
    }

    pub fn component_reload(&self, result: &'static str) {
        self.component_reloads.get_or_create(&ResultLabels { result }).inc();
    }

    pub fn publish(&self, result: &'static str) {
        self.publishes.get_or_create(&ResultLabels { result }).inc();
    }

    pub fn budget(&self, path: BudgetPath, action: BudgetAction) {
        self.memory_budget.get_or_create(&BudgetLabels { path, action }).inc();
    }

    pub fn http(&self, route: &'static str, status: u16) {
        // Status codes are the server's own (a proxied upstream's too): 100-999, bounded.
        self.http_requests.get_or_create(&HttpLabels { route, status }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::{BudgetAction, BudgetPath, Metrics, close_code_label};

    #[test]
    fn budget_labels_are_lowercase_as_documented() {
        let metrics = Metrics::new();
        metrics.budget(BudgetPath::Gateway, BudgetAction::Close);
        metrics.budget(BudgetPath::App, BudgetAction::Refuse);
        let text = metrics.encode();
        for line in [
            "sidestream_memory_budget_total{path=\"gateway\",action=\"close\"} 1",
            "sidestream_memory_budget_total{path=\"app\",action=\"refuse\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn close_codes_fall_into_few_buckets() {
        assert_eq!(close_code_label(Some(1000)), "1000");
        assert_eq!(close_code_label(Some(1015)), "1015");
        assert_eq!(close_code_label(Some(1016)), "other");
        assert_eq!(close_code_label(Some(3001)), "3xxx");
        assert_eq!(close_code_label(Some(4999)), "4xxx");
        assert_eq!(close_code_label(Some(999)), "other");
        assert_eq!(close_code_label(Some(65535)), "other");
        assert_eq!(close_code_label(None), "none");
        let distinct: std::collections::HashSet<_> =
            (0..=u16::MAX).map(|c| close_code_label(Some(c))).collect();
        assert_eq!(distinct.len(), 19, "16 registered codes, 3xxx, 4xxx and other");
    }
}
