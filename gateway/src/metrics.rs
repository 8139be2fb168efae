//! Prometheus metrics, encoded by `prometheus-client`.
//!
//! Hot-path counters (messages, bytes, pushes) are plain atomics; labelled families are only touched
//! on rare events (handshakes, closes, HTTP requests), so their lock never sits on the echo path.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why a WebSocket upgrade was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub reason: &'static str,
}

/// Who closed a WebSocket and with which code, bucketed by [`close_code_label`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    pub by: &'static str,
    pub code: &'static str,
}

/// The codes RFC 6455 §7.4 and the IANA registry define, each its own label value.
const REGISTERED_CLOSE_CODES: [&str; 16] = [
    "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010", "1011", "1012",
    "1013", "1014", "1015",
];

/// A close code as a label value of bounded cardinality: a client may send any of 3000-4999 (and
/// worse), and every distinct value would be a new time series. Registered codes keep their
/// number; the application ranges become `3xxx` and `4xxx`; anything else is `other`; a stream
/// that ended without a Close is `none`.
pub fn close_code_label(code: Option<u16>) -> &'static str {
    match code {
        None => "none",
        Some(code @ 1000..=1015) => REGISTERED_CLOSE_CODES[usize::from(code - 1000)],
        Some(3000..=3999) => "3xxx",
        Some(4000..=4999) => "4xxx",
        Some(_) => "other",
    }
}

/// Why an HTTP connection ended in error before a request could be answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnErrorLabels {
    pub kind: &'static str,
}

/// One HTTP request: the route family (never the raw path, to keep cardinality bounded) and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: &'static str,
    pub status: u16,
}

/// One request of a WebSocket app: what it carried and how it went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppRequestLabels {
    /// `open`, `events`, `keepalive` or `last` (the CLOSE or DISCONNECT).
    pub kind: &'static str,
    /// `ok`, `refused`, `unavailable`, `timeout`, `failed` or `bad_answer`.
    pub result: &'static str,
}

/// Something a WebSocket app sent that was ignored, or a control message it sent.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WhatLabels {
    pub what: &'static str,
}

/// A connection's last event, delivered to its component or not.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LastEventLabels {
    /// `close` or `disconnect`.
    pub event: &'static str,
    /// `delivered`, `refused` (the component answered 4xx) or `gave_up`.
    pub result: &'static str,
}

/// How a publish request went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// What a memory budget did (issue 23): where, and which of its documented actions.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum BudgetPath {
    /// A WebSocket app's connection (`--app-connection-budget`).
    App,
    /// The whole gateway (`--memory-budget`).
    Gateway,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum BudgetAction {
    /// A connection closed (1009 for an answer over its budget, 1008 when the gateway sheds it).
    Close,
    /// An upgrade refused with 503.
    Refuse,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub path: BudgetPath,
    pub action: BudgetAction,
}

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub connections_active: Gauge,
    pub connections_total: Counter,
    pub outbox_bytes: Gauge,
    pub messages_received: Counter,
    pub messages_echoed: Counter,
    pub pushes_sent: Counter,
    pub pushes_dropped: Counter,
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    pub idle_timeouts: Counter,
    pub handshake_rejections: Family<RejectLabels, Counter>,
    pub closes: Family<CloseLabels, Counter>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_connections_active: Gauge,
    pub http_connection_errors: Family<ConnErrorLabels, Counter>,
    pub component_errors: Counter,
    pub component_busy: Counter,
    pub app_messages_sent: Counter,
    pub app_connections_active: Gauge,
    pub app_requests: Family<AppRequestLabels, Counter>,
    pub app_ignored: Family<WhatLabels, Counter>,
    pub app_controls: Family<WhatLabels, Counter>,
    pub app_last_events: Family<LastEventLabels, Counter>,
    pub app_retries: Counter,
    pub app_late_answers: Counter,
    pub publishes: Family<ResultLabels, Counter>,
    pub component_reloads: Family<ResultLabels, Counter>,
    pub published_items: Counter,
    pub publications_sent: Counter,
    pub publications_dropped: Counter,
    pub channels_evicted: Counter,
    pub channel_subscriptions: Gauge,
    pub broker_connected: Gauge,
    pub broker_reconnects: Counter,
    pub lease_renewals: Family<ResultLabels, Counter>,
    pub gateways_reaped: Counter,
    pub connections_reaped: Counter,
    /// Where component requests spend their time ([`crate::stages`]).
    pub stages: crate::stages::Stages,
    pub memory_budget: Family<BudgetLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sidestream");
        let m = Metrics {
            connections_active: Gauge::default(),
            connections_total: Counter::default(),
            outbox_bytes: Gauge::default(),
            messages_received: Counter::default(),
            messages_echoed: Counter::default(),
            pushes_sent: Counter::default(),
            pushes_dropped: Counter::default(),
            bytes_received: Counter::default(),
            bytes_sent: Counter::default(),
            idle_timeouts: Counter::default(),
            handshake_rejections: Family::default(),
            closes: Family::default(),
            http_requests: Family::default(),
            http_connections_active: Gauge::default(),
            http_connection_errors: Family::default(),
            component_errors: Counter::default(),
            component_busy: Counter::default(),
            app_messages_sent: Counter::default(),
            app_connections_active: Gauge::default(),
            app_requests: Family::default(),
            app_ignored: Family::default(),
            app_controls: Family::default(),
            app_last_events: Family::default(),
            app_retries: Counter::default(),
            app_late_answers: Counter::default(),
            publishes: Family::default(),
            component_reloads: Family::default(),
            published_items: Counter::default(),
            publications_sent: Counter::default(),
            publications_dropped: Counter::default(),
            channels_evicted: Counter::default(),
            channel_subscriptions: Gauge::default(),
            broker_connected: Gauge::default(),
            broker_reconnects: Counter::default(),
            lease_renewals: Family::default(),
            gateways_reaped: Counter::default(),
            connections_reaped: Counter::default(),
            stages: crate::stages::Stages::register(&mut registry),
            memory_budget: Family::default(),
            registry: Registry::default(),
        };
        registry.register("ws_connections_active", "Open WebSockets", m.connections_active.clone());
        registry.register("ws_connections", "WebSockets accepted", m.connections_total.clone());
        registry.register(
            "ws_outbox_bytes",
            "Bytes of messages queued for clients that are slow to read",
            m.outbox_bytes.clone(),
        );
        registry.register(
            "ws_messages_received",
            "Text and Binary messages received",
            m.messages_received.clone(),
        );
        registry.register("ws_messages_echoed", "Messages echoed back", m.messages_echoed.clone());
        registry.register("ws_pushes_sent", "Random-timed pushes queued for sending", m.pushes_sent.clone());
        registry.register(
            "ws_pushes_dropped",
            "Pushes dropped because the client was not reading",
            m.pushes_dropped.clone(),
        );
        registry.register(
            "ws_received_bytes",
            "Payload bytes of messages received",
            m.bytes_received.clone(),
        );
        registry.register("ws_sent_bytes", "Payload bytes of echoes and pushes sent", m.bytes_sent.clone());
        registry.register("ws_idle_timeouts", "WebSockets closed for silence", m.idle_timeouts.clone());
        registry.register(
            "ws_handshake_rejections",
            "WebSocket upgrades refused, by reason",
            m.handshake_rejections.clone(),
        );
        registry.register("ws_closes", "WebSockets closed, by initiator and close code", m.closes.clone());
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_connections_active",
            "TCP connections being served as HTTP (upgraded ones count as WebSockets)",
            m.http_connections_active.clone(),
        );
        registry.register(
            "http_connection_errors",
            "HTTP connections that ended in an error: malformed or oversized requests, timeouts, resets",
            m.http_connection_errors.clone(),
        );
        registry.register(
            "component_errors",
            "Component requests that failed (trap, limit, deadline, upstream error)",
            m.component_errors.clone(),
        );
        registry.register(
            "component_busy",
            "Component requests answered 503 because every instance stayed busy (embedded host)",
            m.component_busy.clone(),
        );
        registry.register(
            "app_messages_sent",
            "Messages from WebSocket apps in the component sent to their clients",
            m.app_messages_sent.clone(),
        );
        registry.register(
            "app_connections_active",
            "Open WebSockets served by an app in the component",
            m.app_connections_active.clone(),
        );
        registry.register(
            "app_requests",
            "Requests to WebSocket apps in the component, by what they carried and how they went",
            m.app_requests.clone(),
        );
        registry.register(
            "app_ignored",
            "Parts of WebSocket apps' answers ignored: unknown or invalid control messages, unprefixed messages, unknown events",
            m.app_ignored.clone(),
        );
        registry.register(
            "app_controls",
            "GRIP control messages from WebSocket apps, by type",
            m.app_controls.clone(),
        );
        registry.register(
            "app_last_events",
            "Connections' last CLOSE or DISCONNECT to their WebSocket app, by how the delivery ended",
            m.app_last_events.clone(),
        );
        registry.register(
            "app_retries",
            "Requests to WebSocket apps sent again after a failed attempt",
            m.app_retries.clone(),
        );
        registry.register(
            "app_late_answers",
            "WebSocket apps' answers that came after their connection had ended",
            m.app_late_answers.clone(),
        );
        registry.register(
            "component_reloads",
            "Reloads of the embedded component (SIGHUP, --watch), by result: ok, unchanged, failed",
            m.component_reloads.clone(),
        );
        registry.register(
            "publishes",
            "Publish requests, by result: ok, refused (400, 413), unauthorized (401), unavailable (503)",
            m.publishes.clone(),
        );
        registry.register("published_items", "Items published", m.published_items.clone());
        registry.register(
            "publications_sent",
            "Publications sent to subscribed clients",
            m.publications_sent.clone(),
        );
        registry.register(
            "publications_dropped",
            "Publications dropped for subscribed clients that were not reading",
            m.publications_dropped.clone(),
        );
        registry.register(
            "channels_evicted",
            "Channels the in-memory broker forgot, history and all, to stay within its bound on channels",
            m.channels_evicted.clone(),
        );
        registry.register(
            "channel_subscriptions",
            "Subscriptions of this gateway's connections to channels",
            m.channel_subscriptions.clone(),
        );
        registry.register(
            "broker_connected",
            "1 while the Redis broker's pub/sub connection is up (always 0 with the in-memory broker)",
            m.broker_connected.clone(),
        );
        registry.register(
            "broker_reconnects",
            "Times the Redis broker's pub/sub connection came back after it was lost",
            m.broker_reconnects.clone(),
        );
        registry.register(
            "lease_renewals",
            "Renewals of this gateway's lease in Redis: ok, failed, or reaped (it had run out and another gateway ended its connections)",
            m.lease_renewals.clone(),
        );
        registry.register(
            "gateways_reaped",
            "Dead gateways whose connections this gateway ended for the component",
            m.gateways_reaped.clone(),
        );
        registry.register(
            "connections_reaped",
            "Connections of dead gateways whose DISCONNECT this gateway sent (see app_last_events for how each went)",
            m.connections_reaped.clone(),
        );
        registry.register(
            "memory_budget",
            "What the memory budgets did, by path (app, gateway) and action (close, refuse); stopped reading shows in ws_outbox_bytes, dropped pushes and publications in their own counters",
            m.memory_budget.clone(),
        );
        Metrics { registry, ..m }
    }

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
    use super::close_code_label;

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
