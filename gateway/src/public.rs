//! The public surface (`--listen`): what the internet may reach. The built-in WebSocket app on
//! `/ws`; every other path, `/livez` and `/metrics` included, belongs to the component.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::Body;
use crate::routes;
use crate::server::Shared;
use crate::ws;

/// Answers one public request; returns the route's metrics label with the response.
pub async fn route(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> (&'static str, Response<Body>) {
    if req.uri().path() == routes::WS {
        return (routes::WS, ws::upgrade::builtin(shared, req, peer));
    }
    (routes::COMPONENT, shared.backend.serve(req, peer, &shared.metrics).await)
}
