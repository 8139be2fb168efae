//! The paths the gateway owns, and the bounded labels requests are counted under. On the public
//! listener every path but `/ws` belongs to the component; the admin listener has its own few.

/// The built-in WebSocket app (echo and random pushes).
pub const WS: &str = "/ws";
/// Liveness (admin): 200 while the process runs.
pub const LIVEZ: &str = "/livez";
/// Readiness (admin): 200 while accepting, 503 while draining or while the upstream is down.
pub const READYZ: &str = "/readyz";
/// Prometheus metrics (admin).
pub const METRICS: &str = "/metrics";
/// The publish API (admin), with or without the trailing slash, as Pushpin's.
pub const PUBLISH: &str = "/publish";
/// The component's own health endpoint (served by the component, probed by Kubernetes).
pub const COMPONENT_HEALTH: &str = "/health";

/// Label of the component's paths on the public listener.
pub const COMPONENT: &str = "component";
/// Label of WebSocket upgrades to the component's apps.
pub const WEBSOCKET_APP: &str = "websocket_app";
/// Label of any admin path the gateway does not serve.
pub const ADMIN_OTHER: &str = "admin_other";
/// Label of requests refused before routing (a missing or foreign `Host`).
pub const REFUSED: &str = "refused";

/// The metrics label of a public path: never the raw path, which a client chooses.
pub fn public_label(path: &str) -> &'static str {
    if path == WS { WS } else { COMPONENT }
}

/// The metrics label of an admin path.
pub fn admin_label(path: &str) -> &'static str {
    match path {
        LIVEZ => LIVEZ,
        READYZ => READYZ,
        METRICS => METRICS,
        "/publish" | "/publish/" => PUBLISH,
        _ => ADMIN_OTHER,
    }
}
