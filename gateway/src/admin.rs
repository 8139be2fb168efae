//! The admin surface (`--admin-listen`): what only the cluster may reach. Liveness, readiness,
//! Prometheus metrics and the publish API; nothing here is ever proxied to the component.

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::routes;
use crate::server::Shared;

/// Answers one admin request; returns the route's metrics label with the response.
pub async fn route(shared: &Arc<Shared>, req: Request<Incoming>) -> (&'static str, Response<Body>) {
    let path = req.uri().path();
    let label = routes::admin_label(path);
    if label == routes::PUBLISH {
        return (label, crate::publish::route(&shared.publisher, req).await);
    }
    let response = if label == routes::ADMIN_OTHER {
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
            routes::READYZ => readiness(shared),
            _ => metrics(shared),
        }
    };
    (label, response)
}

fn readiness(shared: &Shared) -> Response<Body> {
    if shared.drain.is_draining() {
        body::text(StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if shared.ws.budget.is_over() {
        body::text(StatusCode::SERVICE_UNAVAILABLE, "near the memory budget")
    } else if !shared.backend.is_ready() {
        body::text(StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable")
    } else {
        body::text(StatusCode::OK, "ready")
    }
}

fn metrics(shared: &Shared) -> Response<Body> {
    let mut r = Response::new(body::full(shared.metrics.encode()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}
