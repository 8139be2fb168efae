//! The public surface (`--listen`): what the internet may reach. The built-in WebSocket app on
//! `/ws`; every other path, `/livez` and `/metrics` included, belongs to the component: as a
//! WebSocket app when the request is an upgrade, as plain HTTP otherwise.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::Body;
use crate::server::Shared;
use crate::ws;
use crate::{apps, routes};

/// Answers one public request; returns the route's metrics label with the response.
pub async fn route(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> (&'static str, Response<Body>) {
    if req.uri().path() == routes::WS {
        return (routes::WS, ws::upgrade::builtin(shared, req, peer));
    }
    if ws::handshake::is_upgrade(req.headers()) {
        return (routes::WEBSOCKET_APP, apps::open::open(shared, req, peer).await);
    }
    (routes::COMPONENT, shared.backend.serve(req, peer, &shared.metrics).await)
}
