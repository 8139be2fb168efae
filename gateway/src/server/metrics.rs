//! Every part's metrics in the one registry: each part registers its own, and the wiring hands
//! each part what it registered.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::apps::lease;
use crate::{apps, backend, budget, channels, connection, publish, reload, ws};

/// What each part registered, until the wiring hands it over.
pub(super) struct Registered {
    pub backend: backend::Metrics,
    pub ws: Arc<ws::metrics::Metrics>,
    pub http: Arc<connection::Metrics>,
    pub apps: Arc<apps::metrics::Metrics>,
    pub reload: reload::Metrics,
    pub publish: publish::Metrics,
    pub channels: Arc<channels::metrics::Metrics>,
    pub leases: Arc<lease::Metrics>,
    pub budget: budget::Metrics,
}

impl Registered {
    /// Each part's metrics, registered in `registry` in the order `/metrics` lists them.
    pub fn new(r: &mut Registry) -> Self {
        Registered {
            backend: backend::Metrics::register(r),
            ws: Arc::new(ws::metrics::Metrics::register(r)),
            http: Arc::new(connection::Metrics::register(r)),
            apps: Arc::new(apps::metrics::Metrics::register(r)),
            reload: reload::Metrics::register(r),
            publish: publish::Metrics::register(r),
            channels: Arc::new(channels::metrics::Metrics::register(r)),
            leases: Arc::new(lease::Metrics::register(r)),
            budget: budget::Metrics::register(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode, registry};

    /// Every metric's name, help and type, as `/metrics` exposed them before each part registered
    /// its own (the README, k8s, the dashboards and the benchmarks read these names).
    const EXPOSED: &str = include_str!("exposed.txt");

    #[test]
    fn every_metric_keeps_its_name_help_and_type() {
        let mut registry = registry();
        let _registered = Registered::new(&mut registry);
        let text = encode(&registry);
        let mut heads: Vec<&str> =
            text.lines().filter(|l| l.starts_with("# HELP") || l.starts_with("# TYPE")).collect();
        heads.sort_unstable();
        assert_eq!(heads, EXPOSED.lines().collect::<Vec<_>>());
    }

    #[test]
    fn labels_keep_their_names_and_lowercase_values() {
        use crate::apps::metrics::{Control, Delivery, Ignored, LastEvent, RequestKind, RequestResult};
        use crate::connection::ConnError;
        use crate::ws::metrics::{ClosedBy, Reject};
        let mut registry = registry();
        let m = Registered::new(&mut registry);
        m.ws.reject(Reject::Origin);
        m.ws.reject(Reject::Capacity);
        m.ws.closed(ClosedBy::Client, None);
        m.ws.closed(ClosedBy::Server, Some(1011));
        m.ws.closed(ClosedBy::Component, Some(4001));
        m.http.connection_error(ConnError::TooLarge);
        m.http.connection_error(ConnError::Busy);
        m.apps.request(RequestKind::KeepAlive, RequestResult::Ok);
        m.apps.request(RequestKind::Open, RequestResult::BadAnswer);
        m.apps.ignored(Ignored::UnknownControl);
        m.apps.ignored(Ignored::TooManySubscriptions);
        m.apps.control(Control::SetMeta);
        m.apps.last_event(LastEvent::Disconnect, RequestResult::Failed, Delivery::GaveUp);
        m.leases.renewal(lease::Renewal::Reaped);
        m.http.http(crate::routes::Route::Ws, 101);
        m.http.http(crate::routes::Route::AdminOther, 404);
        let text = encode(&registry);
        for line in [
            r#"sidestream_ws_handshake_rejections_total{reason="origin"} 1"#,
            r#"sidestream_ws_handshake_rejections_total{reason="capacity"} 1"#,
            r#"sidestream_ws_closes_total{by="client",code="none"} 1"#,
            r#"sidestream_ws_closes_total{by="server",code="1011"} 1"#,
            r#"sidestream_ws_closes_total{by="component",code="4xxx"} 1"#,
            r#"sidestream_http_connection_errors_total{kind="too_large"} 1"#,
            r#"sidestream_http_connection_errors_total{kind="busy"} 1"#,
            r#"sidestream_app_requests_total{kind="keepalive",result="ok"} 1"#,
            r#"sidestream_app_requests_total{kind="open",result="bad_answer"} 1"#,
            r#"sidestream_app_requests_total{kind="last",result="failed"} 1"#,
            r#"sidestream_app_ignored_total{what="unknown_control"} 1"#,
            r#"sidestream_app_ignored_total{what="too_many_subscriptions"} 1"#,
            r#"sidestream_app_controls_total{what="set_meta"} 1"#,
            r#"sidestream_app_last_events_total{event="disconnect",result="gave_up"} 1"#,
            r#"sidestream_lease_renewals_total{result="reaped"} 1"#,
            r#"sidestream_http_requests_total{route="/ws",status="101"} 1"#,
            r#"sidestream_http_requests_total{route="admin_other",status="404"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
