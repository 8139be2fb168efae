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

crate::label_values! {
    /// The route a request is counted under (`http_requests`): never the raw path, which a client
    /// chooses. The gateway's own paths are labelled with the path.
    pub enum Route {
        Ws = "/ws",
        /// The component's paths on the public listener.
        Component = "component",
        /// WebSocket upgrades to the component's apps.
        WebsocketApp = "websocket_app",
        Livez = "/livez",
        Readyz = "/readyz",
        Metrics = "/metrics",
        Publish = "/publish",
        /// Any admin path the gateway does not serve.
        AdminOther = "admin_other",
        /// Requests refused before routing (a missing or foreign `Host`).
        Refused = "refused",
    }
}

/// The route of an admin path.
pub fn admin_route(path: &str) -> Route {
    match path {
        LIVEZ => Route::Livez,
        READYZ => Route::Readyz,
        METRICS => Route::Metrics,
        "/publish" | "/publish/" => Route::Publish,
        _ => Route::AdminOther,
    }
}
