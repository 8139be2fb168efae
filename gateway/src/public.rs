//! The public surface (`--listen`): what the internet may reach. The built-in WebSocket app on
//! `/ws`; every other path, `/livez` and `/metrics` included, belongs to the component: as a
//! WebSocket app when the request is an upgrade, as plain HTTP otherwise.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use tracing::debug_span;

use crate::admission::Admission;
use crate::apps::context::AppContext;
use crate::backend::Backend;
use crate::body::Body;
use crate::connection::Router;
use crate::routes::{self, Route};
use crate::ws::builtin::Builtin;
use crate::ws::handshake;
use crate::ws::push::Schedule;

/// What the public surface routes to.
pub struct Public {
    pub admission: Arc<Admission>,
    pub apps: Arc<AppContext>,
    pub backend: Arc<Backend>,
}

impl Router for Public {
    async fn route(&self, req: Request<Incoming>, peer: SocketAddr) -> (Route, Response<Body>) {
        if req.uri().path() == routes::WS {
            return (Route::Ws, self.builtin(req, peer));
        }
        if handshake::is_upgrade(req.headers()) {
            return (Route::WebsocketApp, crate::apps::open::open(&self.apps, req, peer).await);
        }
        (Route::Component, self.backend.serve(req, peer).await)
    }
}

impl Public {
    /// The built-in `/ws` app: echo, and pushes unless the query says `push=off`.
    fn builtin(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let admitted = match self.admission.admit(&req, peer) {
            Ok(admitted) => admitted,
            Err(turned_away) => return turned_away.response(),
        };
        let id = admitted.slot.id;
        let pushes = !req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv == "push=off"));
        let settings = &self.admission.ws;
        let schedule =
            settings.push.filter(|_| pushes).map(|(min, max)| Schedule::new(min, max, settings.seed, id));
        // A debug-level span: at the default `info` it is never built, which saves ~0.4 KB per idle
        // connection; the events themselves carry `conn`.
        let span = debug_span!("ws", conn = id, %peer, pushes);
        admitted.serve(&mut req, Builtin::new(schedule), span)
    }
}
