//! Where the component's paths go: the embedded wasmtime host or a Spin runtime upstream. Either
//! way the request the component sees is the same (hop-by-hop headers gone, forwarding headers
//! rewritten as [`TrustedProxies`] says), and no hop-by-hop header of its answer reaches the client.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;

pub mod guard;
#[cfg(feature = "wasm-host")]
pub mod host;
mod metrics;
pub mod outcome;
pub mod proxy;
pub mod settings;

pub use metrics::Metrics;
pub use outcome::{ExchangeError, Reloaded};
pub use settings::{ComponentSource, HostSettings, Settings};

use crate::body::Body;
use crate::drain::Tasks;
use crate::forwarded::TrustedProxies;
use crate::headers;
use crate::publish::Publisher;
use crate::signing::{GRIP_SIG, Signer};
#[cfg(feature = "wasm-host")]
use host::Host;
use proxy::Proxy;

/// The component's side of the gateway.
pub struct Backend {
    target: Target,
    proxies: Arc<TrustedProxies>,
    signer: Signer,
    metrics: Arc<Metrics>,
}

// One per gateway, made once: the size of its variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Target {
    #[cfg(feature = "wasm-host")]
    Host(Host),
    Upstream(Proxy),
}

impl Backend {
    /// Loads the component or prepares the upstream client, as the settings say.
    /// `publisher` serves the embedded component's publishes in-process; an upstream's health
    /// check runs among `tasks`.
    #[cfg_attr(not(feature = "wasm-host"), allow(unused_variables))]
    pub async fn new(
        settings: Settings,
        proxies: Arc<TrustedProxies>,
        publisher: Arc<Publisher>,
        metrics: Metrics,
        tasks: &Tasks,
    ) -> anyhow::Result<Self> {
        let embedded = matches!(settings.source, ComponentSource::Component(_));
        let signer = Signer::from_file(settings.grip_key_file.as_deref(), embedded)?;
        let target = match settings.source {
            #[cfg(feature = "wasm-host")]
            ComponentSource::Component(path) => {
                Target::Host(Host::load(&path, &settings.host, publisher, signer.key())?)
            }
            #[cfg(not(feature = "wasm-host"))]
            ComponentSource::Component(_) => {
                unreachable!("config::backend rejects components without wasm-host")
            }
            ComponentSource::Upstream(uri) => {
                Target::Upstream(Proxy::new(uri, settings.upstream_timeout, tasks))
            }
        };
        Ok(Backend { target, proxies, signer, metrics: Arc::new(metrics) })
    }

    /// Serves a plain HTTP request: what the client sent about its hop and any header only the
    /// gateway may set are removed (see [`Signer::screen`]), forwarding headers rewritten.
    pub async fn serve(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        headers::strip_hop_by_hop(req.headers_mut());
        self.proxies.rewrite(req.headers_mut(), peer);
        self.signer.screen(req.headers_mut());
        let mut response = match &self.target {
            #[cfg(feature = "wasm-host")]
            Target::Host(host) => host.serve(req, &self.metrics).await,
            Target::Upstream(proxy) => proxy.serve(req, &self.metrics).await,
        };
        headers::strip_hop_by_hop(response.headers_mut());
        if response.status() == http::StatusCode::UPGRADE_REQUIRED {
            // A plain request to one of the component's WebSocket apps.
            headers::offer_websocket(response.headers_mut());
        }
        response
    }

    /// One request of a WebSocket app (its headers already set by [`crate::apps`]), signed,
    /// buffered both ways, its answer's body at most `limit` bytes.
    #[cfg_attr(not(feature = "wasm-host"), allow(unused_variables))]
    pub async fn exchange(
        &self,
        mut req: Request<Bytes>,
        limit: usize,
    ) -> Result<Response<Bytes>, ExchangeError> {
        req.headers_mut().insert(GRIP_SIG, self.signer.signature());
        match &self.target {
            #[cfg(feature = "wasm-host")]
            Target::Host(host) => host.exchange(req, limit, &self.metrics).await,
            Target::Upstream(proxy) => proxy.exchange(req, limit).await,
        }
    }

    /// Loads the component's file again (see [`Host::reload`]).
    pub async fn reload(&self) -> anyhow::Result<Reloaded> {
        match &self.target {
            #[cfg(feature = "wasm-host")]
            Target::Host(host) => host.reload().await,
            Target::Upstream(_) => Ok(Reloaded::Upstream),
        }
    }

    /// The component's file, when it is embedded.
    pub fn component_path(&self) -> Option<&std::path::Path> {
        match &self.target {
            #[cfg(feature = "wasm-host")]
            Target::Host(host) => Some(host.path()),
            Target::Upstream(_) => None,
        }
    }

    /// Where component requests spend their time; WebSocket apps add their own stages.
    pub fn stages(&self) -> &crate::stages::Stages {
        &self.metrics.stages
    }

    /// The networks whose forwarding headers are believed.
    pub fn proxies(&self) -> &TrustedProxies {
        &self.proxies
    }

    /// Whether the component can answer (always, when embedded).
    pub fn is_ready(&self) -> bool {
        match &self.target {
            #[cfg(feature = "wasm-host")]
            Target::Host(_) => true,
            Target::Upstream(proxy) => proxy.is_ready(),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            #[cfg(feature = "wasm-host")]
            Target::Host(host) => write!(f, "embedded:{}", host.path().display()),
            Target::Upstream(proxy) => write!(f, "upstream:{}", proxy.upstream()),
        }
    }
}
