//! The two listeners, their accept loops, and the drain when the shutdown trigger fires.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::apps;
use crate::apps::lease::Leases;
use crate::authority::HostPolicy;
use crate::backend::Backend;
use crate::channels::Channels;
use crate::config::Config;
use crate::drain::Drain;
use crate::forwarded::TrustedProxies;
use crate::http::{self, Surface};
use crate::metrics::{ConnErrorLabels, Metrics};
use crate::publish::Publisher;
use crate::redis_conn::Commands;
use crate::ws::{self, handshake::OriginPolicy};

/// State shared by every connection of both listeners.
pub struct Shared {
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub ws: Arc<ws::Settings>,
    pub apps: apps::Settings,
    pub origins: OriginPolicy,
    pub proxies: TrustedProxies,
    pub public_hosts: HostPolicy,
    pub admin_hosts: HostPolicy,
    pub backend: Backend,
    pub channels: Channels,
    pub publisher: Arc<Publisher>,
    pub leases: Leases,
    pub drain: Drain,
    /// Open WebSockets, against `--max-connections`.
    pub active: AtomicUsize,
    pub next_id: AtomicU64,
}

/// A bound, not yet serving, gateway. [`crate::run`] is `bind` + `serve`.
pub struct Gateway {
    public: TcpListener,
    admin: TcpListener,
    shared: Arc<Shared>,
}

impl Gateway {
    /// Validates the config, prepares the backend and binds both ports.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let metrics = Arc::new(Metrics::new());
        let redis = match config.redis_connection()? {
            Some(info) => Some(Commands::new(info)?),
            None => None,
        };
        let channels = Channels::new(&config, redis.clone(), metrics.clone())?;
        let publisher = Arc::new(Publisher::new(
            channels.broker.clone(),
            config.publish_token()?,
            config.max_message_size,
            config.header_read_timeout,
            metrics.clone(),
        ));
        let backend = Backend::new(&config, publisher.clone()).await?;
        let leases = match redis {
            Some(commands) => Leases::new(commands, config.lease),
            None => Leases::none(),
        };
        let public = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let admin = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("cannot listen on {} (--admin-listen)", config.admin_listen))?;
        let shared = Arc::new(Shared {
            metrics,
            channels,
            publisher,
            leases,
            ws: Arc::new(ws::Settings::from_config(&config)),
            apps: apps::Settings::from_config(&config),
            origins: OriginPolicy::new(&config.allowed_origins),
            proxies: TrustedProxies::new(&config.trusted_proxies),
            public_hosts: HostPolicy::new(public.local_addr()?, &config.allowed_hosts),
            admin_hosts: HostPolicy::new(admin.local_addr()?, &config.allowed_hosts),
            backend,
            drain: Drain::new(),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            config,
        });
        Ok(Gateway { public, admin, shared })
    }

    /// The public listener's address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.public.local_addr()
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.local_addr()
    }

    /// What the bound gateway serves with, for tests inside the crate.
    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Serves until `shutdown` completes, then drains (see [`crate::drain`]) and returns. Both
    /// listeners keep answering during the drain, so probes see 503 rather than a refused
    /// connection, and late page loads are still served.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Gateway { public, admin, shared } = self;
        // One stable line with both addresses: tests and scripts read `addr=` from it.
        info!(backend = %shared.backend, "listening addr={} admin={}", public.local_addr()?, admin.local_addr()?);
        shared.leases.start(shared.clone());
        shared.ws.budget.start();
        crate::reload::start(&shared);
        let accept_public = accept(&shared, &public, Surface::Public);
        let accept_admin = accept(&shared, &admin, Surface::Admin);
        tokio::pin!(shutdown, accept_public, accept_admin);
        tokio::select! {
            () = &mut shutdown => {}
            never = &mut accept_public => match never {},
            never = &mut accept_admin => match never {},
        }
        let config = &shared.config;
        let outcome = tokio::select! {
            outcome = shared.drain.run(config.effective_drain_spread(), config.drain_timeout) => outcome,
            never = &mut accept_public => match never {},
            never = &mut accept_admin => match never {},
        };
        shared.leases.resign(outcome).await;
        info!("stopped");
        Ok(())
    }
}

/// Most connections the admin listener serves at once. Probes, scrapes and publishers are few; a
/// cap keeps a flood of them (each may hold a publish body of a megabyte) from the gateway's
/// memory. A connection past it is closed at once, and counted.
pub const MAX_ADMIN_CONNECTIONS: usize = 256;

/// Accepts connections forever, each served in its own tracked task (on the admin listener, at
/// most [`MAX_ADMIN_CONNECTIONS`] at once).
async fn accept(shared: &Arc<Shared>, listener: &TcpListener, surface: Surface) -> std::convert::Infallible {
    let admin_slots = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let (stream, peer) = next_connection(listener).await;
        let slot = match surface {
            Surface::Public => None,
            Surface::Admin => match admin_slots.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    shared
                        .metrics
                        .http_connection_errors
                        .get_or_create(&ConnErrorLabels { kind: "busy" })
                        .inc();
                    drop(stream);
                    continue;
                }
            },
        };
        let serve = http::serve_connection(shared.clone(), stream, peer, surface);
        shared.drain.connections.spawn(async move {
            let _slot = slot;
            serve.await;
        });
    }
}

/// The next accepted connection. Accept errors (out of file descriptors, say) are logged and
/// retried after a pause instead of spinning.
async fn next_connection(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(conn) => return conn,
            Err(error) => {
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
