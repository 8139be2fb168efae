//! `--upstream`: the component's paths proxied to the Spin runtime beside the gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::backend::Metrics;
use crate::backend::guard::Guarded;
use crate::backend::outcome::ExchangeError;
use crate::body::{self, Body, BoxError};
use crate::drain::Tasks;
use crate::routes;

/// How often the upstream's `/health` is checked for `/readyz` (probes never wait on it).
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// What the client sends: a client's body passed on, or a WebSocket app's buffered request.
type OutBody = UnsyncBoxBody<Bytes, BoxError>;

/// A keep-alive client for one upstream, and its health.
pub struct Proxy {
    upstream: Uri,
    client: Client<HttpConnector, OutBody>,
    timeout: Duration,
    healthy: Arc<AtomicBool>,
    checker: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.checker.abort();
    }
}

impl Proxy {
    /// Must be called inside the runtime: it starts the background health check, one of the
    /// drain's `tasks`, so it ends with the gateway's other background work when `serve` returns
    /// (not whenever the last holder of the backend lets go); a proxy dropped before that ends it
    /// too.
    pub fn new(upstream: Uri, timeout: Duration, tasks: &Tasks) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client =
            Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        let healthy = Arc::new(AtomicBool::new(false));
        let checker = tasks.spawn(check_health(upstream.clone(), healthy.clone()));
        Proxy { upstream, client, timeout, healthy, checker }
    }

    pub fn upstream(&self) -> &Uri {
        &self.upstream
    }

    pub fn is_ready(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Forwards one request whose headers the [`crate::backend`] has already made fit to pass on.
    pub async fn serve(&self, req: Request<Incoming>, metrics: &Arc<Metrics>) -> Response<Body> {
        let req = match self.forward_request(req.map(|body| body.map_err(BoxError::from).boxed_unsync())) {
            Ok(req) => req,
            Err(reason) => return body::text(StatusCode::BAD_REQUEST, reason),
        };
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Ok(Ok(response)) => {
                let (parts, incoming) = response.into_parts();
                let body = self.stall_guard(incoming, Some(metrics.clone()));
                Response::from_parts(parts, body.boxed_unsync())
            }
            Ok(Err(error)) => {
                metrics.component_errors.inc();
                warn!(upstream = %self.upstream, %error, "upstream request failed");
                body::text(StatusCode::BAD_GATEWAY, "bad gateway: the upstream did not answer")
            }
            Err(_) => {
                metrics.component_errors.inc();
                warn!(upstream = %self.upstream, timeout = ?self.timeout, "upstream request timed out");
                body::text(StatusCode::GATEWAY_TIMEOUT, "gateway timeout: the upstream was too slow")
            }
        }
    }

    /// One request of a WebSocket app over the keep-alive pool, buffered both ways: its answer, at
    /// most `limit` bytes of body, within `--upstream-timeout` for the head and for each piece of
    /// the body.
    pub async fn exchange(
        &self,
        req: Request<Bytes>,
        limit: usize,
    ) -> Result<Response<Bytes>, ExchangeError> {
        let req = req.map(|body| Full::new(body).map_err(|never| match never {}).boxed_unsync());
        let req = self.forward_request(req).map_err(|reason| ExchangeError::Failed(reason.into()))?;
        let response = match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Ok(Ok(response)) => response,
            // Never reached: worth another attempt.
            Ok(Err(error)) if error.is_connect() => {
                return Err(ExchangeError::Unavailable(error.to_string()));
            }
            Ok(Err(error)) => return Err(ExchangeError::Failed(error.to_string())),
            Err(_) => return Err(ExchangeError::Timeout),
        };
        let (parts, body) = response.into_parts();
        let body = self.stall_guard(body, None).boxed_unsync();
        match body::read_limited(body, limit).await {
            Ok(body) => Ok(Response::from_parts(parts, body)),
            Err(body::ReadError::TooLarge(limit)) => Err(ExchangeError::TooLarge(limit)),
            Err(body::ReadError::Broken(error)) if error.is::<Stalled>() => Err(ExchangeError::Timeout),
            Err(body::ReadError::Broken(error)) => Err(ExchangeError::Failed(error.to_string())),
        }
    }

    /// The upstream's response body, cut off when the upstream stays silent for the timeout while
    /// the gateway waits for the next piece of it: a stalled upstream must not hold the client's
    /// connection (and its slot) forever. With `report`, the cut-off is logged and counted as a
    /// component error; without, the caller reports it.
    fn stall_guard(&self, body: Incoming, report: Option<Arc<Metrics>>) -> Guarded<Incoming> {
        let (upstream, limit) = (self.upstream.clone(), self.timeout);
        Guarded::stall(body, limit, (), move || {
            if let Some(metrics) = &report {
                metrics.component_errors.inc();
                warn!(%upstream, timeout = ?limit, "upstream body stalled; response cut off");
            }
            Stalled(limit).into()
        })
    }

    /// Points the request at the upstream: same method, path, query, headers and body.
    fn forward_request(&self, req: Request<OutBody>) -> Result<Request<OutBody>, &'static str> {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut uri = Uri::builder().path_and_query(path);
        if let Some(scheme) = self.upstream.scheme() {
            uri = uri.scheme(scheme.clone());
        }
        if let Some(authority) = self.upstream.authority() {
            uri = uri.authority(authority.clone());
        }
        parts.uri = uri.build().map_err(|_| "bad request target")?;
        Ok(Request::from_parts(parts, body))
    }
}

/// Polls the upstream's `/health` and records whether it answered 2xx.
async fn check_health(upstream: Uri, healthy: Arc<AtomicBool>) {
    let client: Client<HttpConnector, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let health = format!("{}{}", upstream.to_string().trim_end_matches('/'), routes::COMPONENT_HEALTH);
    let Ok(uri) = health.parse::<Uri>() else { return };
    let mut interval = tokio::time::interval(HEALTH_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let ok = matches!(
            tokio::time::timeout(HEALTH_INTERVAL, client.get(uri.clone())).await,
            Ok(Ok(response)) if response.status().is_success()
        );
        if healthy.swap(ok, Ordering::Relaxed) != ok {
            if ok {
                info!(%upstream, "upstream is healthy");
            } else {
                warn!(%upstream, "upstream health check failing");
            }
        }
    }
}

/// The error a stalled body ends with.
#[derive(Debug)]
struct Stalled(Duration);

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the upstream sent nothing for {:?}", self.0)
    }
}

impl std::error::Error for Stalled {}
