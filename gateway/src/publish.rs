//! The publish API (admin listener, `POST /publish/`), in Pushpin's format, so Python's
//! `gripcontrol` (`GripPubControl`) and npm's `@fanoutio/grip` (`Publisher`) publish to sidestream
//! unchanged. The component reaches it too: in the pod over loopback, embedded in-process.
//!
//! A body that is not valid gets `400` with one line saying why, and nothing of it is published;
//! one over [`MAX_BODY`] gets `413`. With `--publish-token-file`, a request from anywhere but the
//! pod's own loopback (its other containers) needs `Authorization: Bearer <token>`, else `401`.
//! Items are published in order; one the broker cannot take is a `503` (the items before it were
//! published: give items an `id` and a retry repeats none of them).

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use sidestream_events::publish::{Limits, parse};
use tracing::warn;

use crate::body::{self, Body};
use crate::channels::{Broker, Engine};
use crate::metrics::Metrics;

/// The largest publish body, as Pushpin's.
pub const MAX_BODY: usize = 1_000_000;

/// Items in one body.
pub const MAX_ITEMS: usize = 1000;

/// Who may publish, and where it goes.
pub struct Publisher {
    broker: Arc<Engine>,
    token: Option<String>,
    limits: Limits,
    metrics: Arc<Metrics>,
}

/// A publish request's answer: the status and a one-line body.
pub struct Answer {
    pub status: StatusCode,
    pub message: String,
}

impl Publisher {
    pub fn new(
        broker: Arc<Engine>,
        token: Option<String>,
        max_content: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Publisher { broker, token, limits: Limits { max_items: MAX_ITEMS, max_content }, metrics }
    }

    /// Whether a request from `peer` with these headers may publish.
    pub fn allows(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> bool {
        let Some(token) = &self.token else { return true };
        if peer.is_some_and(|ip| ip.to_canonical().is_loopback()) {
            return true;
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Compared in full whatever the first difference, so the time taken says nothing.
        given.is_some_and(|given| {
            given.len() == token.len()
                && given.bytes().zip(token.bytes()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
        })
    }

    /// Publishes a body already read, from a caller already allowed.
    pub async fn publish(&self, body: &[u8]) -> Answer {
        let items = match parse(body, self.limits) {
            Ok(items) => items,
            Err(refusal) => {
                self.metrics.publish("refused");
                return Answer { status: StatusCode::BAD_REQUEST, message: refusal.0 };
            }
        };
        for item in &items {
            if let Err(error) = self.broker.publish(item).await {
                self.metrics.publish("unavailable");
                warn!(%error, "a publish the broker could not take");
                return Answer {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: format!("the broker cannot take it now: {error}"),
                };
            }
        }
        self.metrics.publish("ok");
        self.metrics.published_items.inc_by(items.len() as u64);
        Answer { status: StatusCode::OK, message: "Published".into() }
    }

    /// The answer to a body over [`MAX_BODY`], counted as refused.
    pub fn too_large(&self) -> Response<Bytes> {
        self.metrics.publish("refused");
        let answer =
            Answer { status: StatusCode::PAYLOAD_TOO_LARGE, message: "Request body too large.".into() };
        respond(&answer, &HeaderMap::new())
    }

    /// The whole exchange for a buffered request (the admin route and the component's in-process
    /// path both come here).
    pub async fn handle(&self, req: Request<Bytes>, peer: Option<IpAddr>) -> Response<Bytes> {
        let answer = if req.method() != Method::POST {
            Answer {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: format!("Method not allowed: {}.", req.method()),
            }
        } else if !self.allows(req.headers(), peer) {
            self.metrics.publish("unauthorized");
            Answer {
                status: StatusCode::UNAUTHORIZED,
                message: "a bearer token is required (Authorization: Bearer ...)".into(),
            }
        } else if req.body().len() > MAX_BODY {
            return self.too_large();
        } else {
            self.publish(req.body()).await
        };
        respond(&answer, req.headers())
    }
}

/// The answer as text, or as JSON when the request asks for it (as Pushpin's does).
fn respond(answer: &Answer, request: &HeaderMap) -> Response<Bytes> {
    let json = request
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').map(|t| t.trim()).any(|t| t.starts_with("application/json")));
    let (content_type, body) = if json && answer.status == StatusCode::OK {
        ("application/json", format!("{}\n", serde_json::json!({"message": answer.message})))
    } else {
        ("text/plain; charset=utf-8", format!("{}\n", answer.message))
    };
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = answer.status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    match answer.status {
        StatusCode::METHOD_NOT_ALLOWED => {
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        StatusCode::UNAUTHORIZED => {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    response
}

/// The admin route: reads the body (at most [`MAX_BODY`]) and publishes it.
pub async fn route(
    publisher: &Publisher,
    req: Request<hyper::body::Incoming>,
    peer: IpAddr,
) -> Response<Body> {
    let (parts, incoming) = req.into_parts();
    let incoming = http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(
        incoming,
        body::BoxError::from,
    ));
    let bytes = match body::read_limited(incoming, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(body::ReadError::TooLarge(_)) => return publisher.too_large().map(body::full),
        Err(body::ReadError::Broken(_)) => {
            return body::text(StatusCode::BAD_REQUEST, "the request body did not arrive whole");
        }
    };
    let response = publisher.handle(Request::from_parts(parts, bytes), Some(peer)).await;
    response.map(body::full)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::channels::{Retention, hub::Hub, memory::MemoryBroker};

    fn publisher(token: Option<&str>) -> Publisher {
        let metrics = Arc::new(Metrics::new());
        let hub = Arc::new(Hub::new(metrics.clone()));
        let retention = Retention { size: 10, ttl: Duration::from_secs(60) };
        let broker = Arc::new(Engine::Memory(MemoryBroker::new(hub, retention)));
        Publisher::new(broker, token.map(str::to_owned), 1024, metrics)
    }

    async fn status(publisher: &Publisher, peer: [u8; 4], authorization: Option<&str>) -> StatusCode {
        let body = r#"{"items":[{"channel":"c","formats":{"ws-message":{"content":"x"}}}]}"#;
        let mut req = Request::post("/publish/");
        if let Some(value) = authorization {
            req = req.header(header::AUTHORIZATION, value);
        }
        let response = publisher.handle(req.body(Bytes::from(body)).unwrap(), Some(IpAddr::from(peer))).await;
        if response.status() == StatusCode::UNAUTHORIZED {
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        }
        response.status()
    }

    #[tokio::test]
    async fn with_a_token_only_the_pods_loopback_publishes_without_it() {
        let guarded = publisher(Some("s3cret"));
        let pod = [10, 1, 2, 3];
        assert_eq!(status(&guarded, pod, None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(&guarded, pod, Some("Bearer wrong!")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(&guarded, pod, Some("Bearer s3cre")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(&guarded, pod, Some("Basic s3cret")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(&guarded, pod, Some("Bearer s3cret")).await, StatusCode::OK);
        assert_eq!(status(&guarded, [127, 0, 0, 1], None).await, StatusCode::OK, "the component beside it");

        let open = publisher(None);
        assert_eq!(status(&open, pod, None).await, StatusCode::OK, "no token file, no token asked");
    }

    /// The Kubernetes deployment relies on this: the gateway that `--publish-token-file` starts
    /// asks for that file's token.
    #[tokio::test]
    async fn the_gateways_publish_api_asks_the_token_of_its_token_file() {
        let file = std::env::temp_dir().join(format!("sidestream-publish-token-{}", std::process::id()));
        std::fs::write(&file, "s3cret\n").unwrap();
        let token_flag = format!("--publish-token-file={}", file.display());
        let config = crate::config::tests::parse(&[
            "--listen=127.0.0.1:0",
            "--admin-listen=127.0.0.1:0",
            "--upstream=http://127.0.0.1:9",
            &token_flag,
        ])
        .unwrap();
        let gateway = crate::Gateway::bind(config).await;
        std::fs::remove_file(&file).unwrap();
        let gateway = gateway.expect("binds");
        let publisher = &gateway.shared().publisher;
        let pod = [10, 1, 2, 3];
        assert_eq!(status(publisher, pod, None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(publisher, pod, Some("Bearer s3cret")).await, StatusCode::OK, "the file's line");
    }
}
