//! The publish API (admin listener, `POST /publish/`), in Pushpin's format, so Python's
//! `gripcontrol` (`GripPubControl`) and npm's `@fanoutio/grip` (`Publisher`) publish to sidestream
//! unchanged. The component reaches it too: in the pod over loopback, embedded in-process.
//!
//! A body that is not valid gets `400` with one line saying why, and nothing of it is published;
//! one over [`MAX_BODY`] gets `413`, one that does not arrive within `--header-read-timeout` `408` (a slow publisher must not
//! hold a connection, and a megabyte, for as long as it likes). With
//! `--publish-token-file`, every request over the network, the pod's loopback included, needs
//! `Authorization: Bearer <token>`, else `401`, checked from the headers before any of the body is
//! read: a proxy or a port-forward that connects over 127.0.0.1 vouches for nobody. Only the
//! embedded component's in-process publishes need none. Items are published in order; one the
//! broker cannot take is a `503` (the items before it were published: give items an `id` and a
//! retry repeats none of them).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sidestream_events::publish::{Limits, parse};
use tracing::warn;

use crate::body::{self, Body};
use crate::channels::{AnyBroker, Broker};
use crate::metrics::add;
use crate::{label_set, label_values};

/// The largest publish body, as Pushpin's.
pub const MAX_BODY: usize = 1_000_000;

/// Items in one body.
pub const MAX_ITEMS: usize = 1000;

/// Who is publishing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The embedded component, in-process: only the gateway's own component can call this way.
    InProcess,
    /// Anyone over the network (loopback included): shows the token when there is one.
    Network,
}

/// The publish API's counts.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Family<Published, Counter>,
    items: Counter,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        Metrics {
            requests: add(
                r,
                "publishes",
                "Publish requests, by result: ok, refused (400, 413), unauthorized (401), unavailable (503)",
            ),
            items: add(r, "published_items", "Items published"),
        }
    }

    fn publish(&self, result: Published) {
        self.requests.get_or_create(&result).inc();
    }
}

label_values! {
    /// How a publish request went.
    pub enum Published {
        Ok = "ok",
        /// 400 or 413.
        Refused = "refused",
        /// 401.
        Unauthorized = "unauthorized",
        /// 503.
        Unavailable = "unavailable",
    }
}

label_set!(Published, "result");

/// Who may publish, and where it goes.
pub struct Publisher {
    broker: Arc<AnyBroker>,
    token: Option<String>,
    limits: Limits,
    /// How long a publisher may take to send its body.
    body_deadline: Duration,
    metrics: Metrics,
}

/// A publish request's answer: the status and a one-line body.
pub struct Reply {
    pub status: StatusCode,
    pub message: String,
}

impl Publisher {
    pub fn new(
        broker: Arc<AnyBroker>,
        token: Option<String>,
        max_content: usize,
        body_deadline: Duration,
        metrics: Metrics,
    ) -> Self {
        let limits = Limits { max_items: MAX_ITEMS, max_content };
        Publisher { broker, token, limits, body_deadline, metrics }
    }

    /// A publisher on an in-memory broker of its own, for unit tests.
    #[cfg(test)]
    pub(crate) fn in_memory(token: Option<&str>) -> Self {
        use crate::channels::{Retention, hub::Hub, memory::MemoryBroker};
        let hub = Arc::new(Hub::new(Arc::default()));
        let retention = Retention { size: 10, ttl: Duration::from_secs(60) };
        let tasks = crate::drain::Tasks::default();
        let broker = Arc::new(AnyBroker::Memory(MemoryBroker::new(hub, retention, &tasks)));
        Publisher::new(broker, token.map(str::to_owned), 1024, Duration::from_secs(10), Metrics::default())
    }

    /// Whether `caller`, with these headers, may publish.
    pub fn allows(&self, headers: &HeaderMap, caller: Caller) -> bool {
        let Some(token) = &self.token else { return true };
        if caller == Caller::InProcess {
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
    pub async fn publish(&self, body: &[u8]) -> Reply {
        let items = match parse(body, self.limits) {
            Ok(items) => items,
            Err(refusal) => {
                self.metrics.publish(Published::Refused);
                return Reply { status: StatusCode::BAD_REQUEST, message: refusal.0 };
            }
        };
        for item in &items {
            if let Err(error) = self.broker.publish(item).await {
                self.metrics.publish(Published::Unavailable);
                warn!(%error, "a publish the broker could not take");
                return Reply {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: format!("the broker cannot take it now: {error}"),
                };
            }
        }
        self.metrics.publish(Published::Ok);
        self.metrics.items.inc_by(items.len() as u64);
        Reply { status: StatusCode::OK, message: "Published".into() }
    }

    /// The answer to a body over [`MAX_BODY`], counted as refused.
    pub fn too_large(&self) -> Response<Bytes> {
        self.metrics.publish(Published::Refused);
        let answer =
            Reply { status: StatusCode::PAYLOAD_TOO_LARGE, message: "Request body too large.".into() };
        respond(&answer, &HeaderMap::new())
    }

    /// The whole exchange for a buffered request from the embedded component (the admin route
    /// checks method and token before it reads the body, then comes here too).
    pub async fn handle(&self, req: Request<Bytes>, caller: Caller) -> Response<Bytes> {
        if let Some(refusal) = self.refusal(req.method(), req.headers(), caller) {
            return respond(&refusal, req.headers());
        }
        if req.body().len() > MAX_BODY {
            return self.too_large();
        }
        let answer = self.publish(req.body()).await;
        respond(&answer, req.headers())
    }

    /// What a request is refused with before its body is read: a method other than `POST`, or a
    /// missing or wrong token.
    fn refusal(&self, method: &Method, headers: &HeaderMap, caller: Caller) -> Option<Reply> {
        if method != Method::POST {
            return Some(Reply {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: format!("Method not allowed: {method}."),
            });
        }
        if !self.allows(headers, caller) {
            self.metrics.publish(Published::Unauthorized);
            return Some(Reply {
                status: StatusCode::UNAUTHORIZED,
                message: "a bearer token is required (Authorization: Bearer ...)".into(),
            });
        }
        None
    }
}

/// The answer as text, or as JSON when the request asks for it (as Pushpin's does).
fn respond(answer: &Reply, request: &HeaderMap) -> Response<Bytes> {
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

/// The admin route: checks method and token, then reads the body (at most [`MAX_BODY`], within
/// the body deadline) and publishes it.
pub async fn route(publisher: &Publisher, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let (parts, incoming) = req.into_parts();
    if let Some(refusal) = publisher.refusal(&parts.method, &parts.headers, Caller::Network) {
        return respond(&refusal, &parts.headers).map(body::full);
    }
    let incoming = http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(
        incoming,
        body::BoxError::from,
    ));
    let bytes =
        match tokio::time::timeout(publisher.body_deadline, body::read_limited(incoming, MAX_BODY)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(body::ReadError::TooLarge(_))) => return publisher.too_large().map(body::full),
            Ok(Err(body::ReadError::Broken(_))) => {
                return body::text(StatusCode::BAD_REQUEST, "the request body did not arrive whole");
            }
            Err(_) => {
                publisher.metrics.publish(Published::Refused);
                let mut response =
                    body::text(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time");
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                return response;
            }
        };
    let answer = publisher.publish(&bytes).await;
    respond(&answer, &parts.headers).map(body::full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher(token: Option<&str>) -> Publisher {
        Publisher::in_memory(token)
    }

    async fn status(publisher: &Publisher, caller: Caller, authorization: Option<&str>) -> StatusCode {
        let body = r#"{"items":[{"channel":"c","formats":{"ws-message":{"content":"x"}}}]}"#;
        let mut req = Request::post("/publish/");
        if let Some(value) = authorization {
            req = req.header(header::AUTHORIZATION, value);
        }
        let response = publisher.handle(req.body(Bytes::from(body)).unwrap(), caller).await;
        if response.status() == StatusCode::UNAUTHORIZED {
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        }
        response.status()
    }

    #[tokio::test]
    async fn with_a_token_only_the_embedded_component_publishes_without_it() {
        let guarded = publisher(Some("s3cret"));
        let net = Caller::Network;
        assert_eq!(status(&guarded, net, None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(&guarded, net, Some("Bearer wrong!")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(&guarded, net, Some("Bearer s3cre")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(&guarded, net, Some("Basic s3cret")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(&guarded, net, Some("Bearer s3cret")).await, StatusCode::OK);
        assert_eq!(status(&guarded, Caller::InProcess, None).await, StatusCode::OK, "the embedded component");

        let open = publisher(None);
        assert_eq!(status(&open, net, None).await, StatusCode::OK, "no token file, no token asked");
    }

    /// The Kubernetes deployment relies on this: the gateway that `--publish-token-file` starts
    /// asks for that file's token.
    #[tokio::test]
    async fn the_gateways_publish_api_asks_the_token_of_its_token_file() {
        let file = std::env::temp_dir().join(format!("sidestream-publish-token-{}", std::process::id()));
        std::fs::write(&file, "s3cret\n").unwrap();
        let key = file.with_extension("grip-key");
        std::fs::write(&key, "a grip key of some length").unwrap();
        let token_flag = format!("--publish-token-file={}", file.display());
        let key_flag = format!("--grip-key-file={}", key.display());
        let config = crate::config::tests::parse(&[
            "--listen=127.0.0.1:0",
            "--admin-listen=127.0.0.1:0",
            "--upstream=http://127.0.0.1:9",
            &token_flag,
            &key_flag,
        ])
        .unwrap();
        let gateway = crate::Gateway::bind(config).await;
        std::fs::remove_file(&file).unwrap();
        std::fs::remove_file(&key).unwrap();
        let gateway = gateway.expect("binds");
        let publisher = &gateway.publisher();
        assert_eq!(status(publisher, Caller::Network, None).await, StatusCode::UNAUTHORIZED);
        let with_token = status(publisher, Caller::Network, Some("Bearer s3cret")).await;
        assert_eq!(with_token, StatusCode::OK, "the file's line");
    }
}
