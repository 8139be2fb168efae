//! The paths the gateway owns. Every other path belongs to the component.

/// The WebSocket endpoint.
pub const WS: &str = "/ws";
/// Liveness: 200 while the process runs.
pub const LIVEZ: &str = "/livez";
/// Readiness: 200 while accepting, 503 while draining or while the upstream is down.
pub const READYZ: &str = "/readyz";
/// Prometheus metrics.
pub const METRICS: &str = "/metrics";
/// The component's own health endpoint (served by the component, probed by Kubernetes).
pub const COMPONENT_HEALTH: &str = "/health";

/// The metrics label for a request path: the gateway's own routes by name, the rest as `component`.
pub fn label(path: &str) -> &'static str {
    match path {
        WS => WS,
        LIVEZ => LIVEZ,
        READYZ => READYZ,
        METRICS => METRICS,
        _ => "component",
    }
}
