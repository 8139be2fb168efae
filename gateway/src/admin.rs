//! The admin surface (`--admin-listen`): what only the cluster may reach. Liveness, readiness,
//! Prometheus metrics and the publish API; nothing here is ever proxied to the component.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use prometheus_client::registry::Registry;

use crate::backend::Backend;
use crate::body::{self, Body};
use crate::budget::MemoryBudget;
use crate::connection::Router;
use crate::drain::Drain;
use crate::publish::Publisher;
use crate::routes::{self, Route};

/// What the admin surface answers from: handles to read readiness from, not the whole gateway.
pub struct Admin {
    pub publisher: Arc<Publisher>,
    pub drain: Arc<Drain>,
    pub budget: Arc<MemoryBudget>,
    pub backend: Arc<Backend>,
    /// Every subsystem's metrics, registered by each.
    pub registry: Arc<Registry>,
}

impl Router for Admin {
    async fn route(&self, req: Request<Incoming>, _peer: SocketAddr) -> (Route, Response<Body>) {
        let path = req.uri().path();
        let label = routes::admin_route(path);
        if label == Route::Publish {
            return (label, crate::publish::route(&self.publisher, req).await);
        }
        let response = if label == Route::AdminOther {
            body::text(
                StatusCode::NOT_FOUND,
                "not found: the admin port serves /livez, /readyz, /metrics and /publish/",
            )
        } else if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = body::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        } else {
            match path {
                routes::LIVEZ => body::text(StatusCode::OK, "ok"),
                routes::READYZ => self.readiness(),
                _ => self.metrics(),
            }
        };
        (label, response)
    }
}

impl Admin {
    fn readiness(&self) -> Response<Body> {
        if self.drain.is_draining() {
            body::text(StatusCode::SERVICE_UNAVAILABLE, "draining")
        } else if self.budget.is_over() {
            body::text(StatusCode::SERVICE_UNAVAILABLE, "near the memory budget")
        } else if !self.backend.is_ready() {
            body::text(StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable")
        } else {
            body::text(StatusCode::OK, "ready")
        }
    }

    fn metrics(&self) -> Response<Body> {
        let mut r = Response::new(body::full(crate::metrics::encode(&self.registry)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        r
    }
}
