//! What WebSockets count: connections, messages, pushes, closes, refused upgrades, the outbox.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::add;
use crate::{label_set, label_values};

/// Every WebSocket's counts, `/ws` and the apps alike.
#[derive(Debug, Default)]
pub struct Metrics {
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
    handshake_rejections: Family<Reject, Counter>,
    closes: Family<CloseLabels, Counter>,
    /// An app's messages and a channel's publications are counted by the outbox that sends them,
    /// on the hot path with the echoes, so their counters live here under their own names.
    pub app_messages_sent: Counter,
    pub publications_sent: Counter,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        Metrics {
            connections_active: add(r, "ws_connections_active", "Open WebSockets"),
            connections_total: add(r, "ws_connections", "WebSockets accepted"),
            outbox_bytes: add(
                r,
                "ws_outbox_bytes",
                "Bytes of messages queued for clients that are slow to read",
            ),
            messages_received: add(r, "ws_messages_received", "Text and Binary messages received"),
            messages_echoed: add(r, "ws_messages_echoed", "Messages echoed back"),
            pushes_sent: add(r, "ws_pushes_sent", "Random-timed pushes queued for sending"),
            pushes_dropped: add(r, "ws_pushes_dropped", "Pushes dropped because the client was not reading"),
            bytes_received: add(r, "ws_received_bytes", "Payload bytes of messages received"),
            bytes_sent: add(r, "ws_sent_bytes", "Payload bytes of echoes and pushes sent"),
            idle_timeouts: add(r, "ws_idle_timeouts", "WebSockets closed for silence"),
            handshake_rejections: add(r, "ws_handshake_rejections", "WebSocket upgrades refused, by reason"),
            closes: add(r, "ws_closes", "WebSockets closed, by initiator and close code"),
            app_messages_sent: add(
                r,
                "app_messages_sent",
                "Messages from WebSocket apps in the component sent to their clients",
            ),
            publications_sent: add(r, "publications_sent", "Publications sent to subscribed clients"),
        }
    }

    pub fn reject(&self, reason: Reject) {
        self.handshake_rejections.get_or_create(&reason).inc();
    }

    pub fn closed(&self, by: ClosedBy, code: Option<u16>) {
        self.closes.get_or_create(&CloseLabels { by, code: close_code_label(code) }).inc();
    }
}

label_values! {
    /// Why a WebSocket upgrade was refused.
    pub enum Reject {
        /// Not a GET.
        Method = "method",
        /// No `Upgrade: websocket`.
        Upgrade = "upgrade",
        /// No `Connection: Upgrade`.
        Connection = "connection",
        /// A missing or unsupported `Sec-WebSocket-Version`.
        Version = "version",
        /// A missing or malformed `Sec-WebSocket-Key`.
        Key = "key",
        /// A cross-origin request.
        Origin = "origin",
        Draining = "draining",
        /// Near the gateway-wide memory budget.
        Memory = "memory",
        /// At `--max-connections`.
        Capacity = "capacity",
        /// The component's app did not accept the connection.
        App = "app",
    }
}

label_set!(Reject, "reason");

label_values! {
    /// Who started a WebSocket's close (a stream that just ended counts as the client's).
    pub enum ClosedBy {
        Client = "client",
        Server = "server",
        Component = "component",
    }
}

/// Who closed a WebSocket and with which code, bucketed by [`close_code_label`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabels {
    by: ClosedBy,
    code: &'static str,
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

#[cfg(test)]
mod tests {
    use super::*;

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
