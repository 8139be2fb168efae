//! What WebSocket apps count: their connections, requests, ignored parts, GRIP controls, and how
//! each connection's last event went. (Their messages to clients are counted by the outbox that
//! sends them: [`crate::ws::metrics`].)

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::add;
use crate::{label_set, label_values};

#[derive(Debug, Default)]
pub struct Metrics {
    pub app_connections_active: Gauge,
    requests: Family<RequestLabels, Counter>,
    ignored: Family<Ignored, Counter>,
    controls: Family<Control, Counter>,
    last_events: Family<LastEventLabels, Counter>,
    pub app_retries: Counter,
    pub app_late_answers: Counter,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        Metrics {
            app_connections_active: add(
                r,
                "app_connections_active",
                "Open WebSockets served by an app in the component",
            ),
            requests: add(
                r,
                "app_requests",
                "Requests to WebSocket apps in the component, by what they carried and how they went",
            ),
            ignored: add(
                r,
                "app_ignored",
                "Parts of WebSocket apps' answers ignored: unknown or invalid control messages, unprefixed messages, unknown events",
            ),
            controls: add(r, "app_controls", "GRIP control messages from WebSocket apps, by type"),
            last_events: add(
                r,
                "app_last_events",
                "Connections' last CLOSE or DISCONNECT to their WebSocket app, by how the delivery ended",
            ),
            app_retries: add(
                r,
                "app_retries",
                "Requests to WebSocket apps sent again after a failed attempt",
            ),
            app_late_answers: add(
                r,
                "app_late_answers",
                "WebSocket apps' answers that came after their connection had ended",
            ),
        }
    }

    pub fn request(&self, kind: RequestKind, result: RequestResult) {
        self.requests.get_or_create(&RequestLabels { kind, result }).inc();
    }

    pub fn ignored(&self, what: Ignored) {
        self.ignored.get_or_create(&what).inc();
    }

    pub fn control(&self, what: Control) {
        self.controls.get_or_create(&what).inc();
    }

    /// A connection's last event: its request counted, and how the delivery ended.
    pub fn last_event(&self, event: LastEvent, result: RequestResult, delivery: Delivery) {
        self.request(RequestKind::Last, result);
        self.last_events.get_or_create(&LastEventLabels { event, result: delivery }).inc();
    }
}

label_values! {
    /// What a request to a WebSocket app carried.
    pub enum RequestKind {
        Open = "open",
        Events = "events",
        KeepAlive = "keepalive",
        /// The connection's CLOSE or DISCONNECT.
        Last = "last",
    }
}

label_values! {
    /// How a request to a WebSocket app went.
    pub enum RequestResult {
        Ok = "ok",
        /// The component answered 4xx (an OPEN or a last event it said no to).
        Refused = "refused",
        Unavailable = "unavailable",
        Timeout = "timeout",
        Failed = "failed",
        BadAnswer = "bad_answer",
        /// The answer was over the connection's memory budget.
        TooLarge = "too_large",
    }
}

label_values! {
    /// A part of an app's answer that was ignored.
    pub enum Ignored {
        UnknownControl = "unknown_control",
        BadControl = "bad_control",
        Unprefixed = "unprefixed",
        UnknownEvent = "unknown_event",
        /// A `subscribe` to a channel name the gateway does not accept.
        BadChannel = "bad_channel",
        /// A `subscribe` over `--app-max-subscriptions`.
        TooManySubscriptions = "too_many_subscriptions",
    }
}

label_values! {
    /// A GRIP control message's type.
    pub enum Control {
        Subscribe = "subscribe",
        Unsubscribe = "unsubscribe",
        Detach = "detach",
        Session = "session",
        SetMeta = "set_meta",
        KeepAlive = "keep_alive",
        SendDelayed = "send_delayed",
        FlushDelayed = "flush_delayed",
    }
}

label_values! {
    /// A connection's last event.
    pub enum LastEvent {
        Close = "close",
        Disconnect = "disconnect",
    }
}

label_values! {
    /// How the delivery of a connection's last event ended.
    pub enum Delivery {
        Delivered = "delivered",
        /// The component answered 4xx.
        Refused = "refused",
        GaveUp = "gave_up",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    kind: RequestKind,
    result: RequestResult,
}

label_set!(Ignored, "what");
label_set!(Control, "what");

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LastEventLabels {
    event: LastEvent,
    result: Delivery,
}
