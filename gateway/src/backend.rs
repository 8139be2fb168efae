//! Where the component's paths go: the embedded wasmtime host or a Spin runtime upstream.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::Body;
use crate::config::{self, Config};
#[cfg(feature = "wasm-host")]
use crate::host::Host;
use crate::metrics::Metrics;
use crate::proxy::Proxy;

/// The component's side of the gateway.
pub enum Backend {
    #[cfg(feature = "wasm-host")]
    Host(Host),
    Upstream(Proxy),
}

impl Backend {
    /// Loads the component or prepares the upstream client, as the config says.
    pub async fn new(config: &Config) -> anyhow::Result<Self> {
        match config.backend()? {
            #[cfg(feature = "wasm-host")]
            config::Backend::Component(path) => Ok(Backend::Host(Host::load(&path, config)?)),
            #[cfg(not(feature = "wasm-host"))]
            config::Backend::Component(_) => {
                unreachable!("config::backend rejects components without wasm-host")
            }
            config::Backend::Upstream(uri) => Ok(Backend::Upstream(Proxy::new(uri, config.upstream_timeout))),
        }
    }

    pub async fn serve(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        metrics: &Arc<Metrics>,
    ) -> Response<Body> {
        match self {
            #[cfg(feature = "wasm-host")]
            Backend::Host(host) => host.serve(req, metrics).await,
            Backend::Upstream(proxy) => proxy.serve(req, peer, metrics).await,
        }
    }

    /// Whether the component can answer (always, when embedded).
    pub fn is_ready(&self) -> bool {
        match self {
            #[cfg(feature = "wasm-host")]
            Backend::Host(_) => true,
            Backend::Upstream(proxy) => proxy.is_ready(),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "wasm-host")]
            Backend::Host(host) => write!(f, "embedded:{}", host.path().display()),
            Backend::Upstream(proxy) => write!(f, "upstream:{}", proxy.upstream()),
        }
    }
}
