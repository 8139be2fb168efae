//! The two listeners, their accept loops, and the drain when the shutdown trigger fires.

mod metrics;
pub mod settings;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use self::metrics::Registered;
use crate::admin::Admin;
use crate::admission::Admission;
use crate::apps;
use crate::apps::context::AppContext;
use crate::apps::delivery::LastEvents;
use crate::apps::lease::{self, Deliver, LeaseTasks, Leases};
use crate::authority::HostPolicy;
use crate::backend::Backend;
use crate::channels::Channels;
use crate::config::Config;
use crate::connection::{self, ConnError, Listener, Router};
use crate::drain::Drain;
use crate::forwarded::TrustedProxies;
use crate::public::Public;
use crate::publish::Publisher;
use crate::redis_conn::Commands;
use crate::reload::{self, Reloads};
use crate::ws::{self, handshake::OriginPolicy};

/// A bound, not yet serving, gateway. [`crate::run`] is `bind` + `serve`.
pub struct Gateway {
    public: TcpListener,
    admin: TcpListener,
    parts: Parts,
}

/// Every part, built once; each is handed what it needs, and only this module holds them all.
struct Parts {
    public: Arc<Listener<Public>>,
    admin: Arc<Listener<Admin>>,
    drain: Arc<Drain>,
    backend: Arc<Backend>,
    leases: Arc<Leases>,
    last: Arc<LastEvents>,
    reloads: Arc<Reloads>,
    lease_metrics: Arc<lease::Metrics>,
    ws: Arc<ws::Settings>,
    watch: bool,
    drain_spread: Duration,
    drain_timeout: Duration,
}

impl Gateway {
    /// Validates the config, prepares the backend and binds both ports.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let mut registry = crate::metrics::registry();
        let m = Registered::new(&mut registry);
        let redis = match config.redis_connection()? {
            Some(info) => Some(Commands::new(info)?),
            None => None,
        };
        let drain = Arc::new(Drain::new());
        let channels =
            Channels::new(settings::channels(&config), redis.clone(), m.channels, &drain.background)?;
        let publisher = Arc::new(Publisher::new(
            channels.broker.clone(),
            config.publish_token()?,
            config.max_message_size,
            config.header_read_timeout,
            m.publish,
        ));
        let proxies = Arc::new(TrustedProxies::new(&config.trusted_proxies));
        let backend = Arc::new(
            Backend::new(
                settings::backend(&config)?,
                proxies.clone(),
                publisher.clone(),
                m.backend,
                &drain.background,
            )
            .await?,
        );
        let leases = Arc::new(match redis {
            Some(commands) => Leases::new(commands, config.lease),
            None => Leases::none(),
        });
        let public = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let admin = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("cannot listen on {} (--admin-listen)", config.admin_listen))?;
        let budget = Arc::new(settings::budget(&config, m.budget));
        let ws = Arc::new(settings::ws(&config, budget));
        let (admission, apps, last) =
            connections(&config, (&ws, &drain, (m.ws, m.apps)), proxies, (&backend, &leases), channels);
        let reloads = Arc::new(Reloads { backend: backend.clone(), metrics: m.reload });
        let http = m.http;
        let public_router = Public { admission, apps, backend: backend.clone() };
        let admin_router = Admin {
            publisher,
            drain: drain.clone(),
            budget: ws.budget.clone(),
            backend: backend.clone(),
            registry: Arc::new(registry),
        };
        let parts = Parts {
            public: Listener::shared(
                HostPolicy::new(public.local_addr()?, &config.allowed_hosts),
                public_router,
                (&drain, &http, config.header_read_timeout),
            ),
            admin: Listener::shared(
                HostPolicy::new(admin.local_addr()?, &config.allowed_hosts),
                admin_router,
                (&drain, &http, config.header_read_timeout),
            ),
            drain: drain.clone(),
            backend,
            leases,
            last,
            reloads,
            lease_metrics: m.leases,
            ws,
            watch: config.watch,
            drain_spread: config.effective_drain_spread(),
            drain_timeout: config.drain_timeout,
        };
        Ok(Gateway { public, admin, parts })
    }

    /// The public listener's address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.public.local_addr()
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.local_addr()
    }

    /// The publish API the bound gateway serves, for tests inside the crate.
    #[cfg(test)]
    pub(crate) fn publisher(&self) -> &Arc<Publisher> {
        &self.parts.admin.router.publisher
    }

    /// Serves until `shutdown` completes, then drains (see [`crate::drain`]) and returns. Both
    /// listeners keep answering during the drain, so probes see 503 rather than a refused
    /// connection, and late page loads are still served.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Gateway { public, admin, parts } = self;
        // One stable line with both addresses: tests and scripts read `addr=` from it.
        info!(backend = %parts.backend, "listening addr={} admin={}", public.local_addr()?, admin.local_addr()?);
        parts.start_background();
        let admin_slots = Some(Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS)));
        let accept_public = accept(&parts.public, &public, None);
        let accept_admin = accept(&parts.admin, &admin, admin_slots);
        tokio::pin!(shutdown, accept_public, accept_admin);
        tokio::select! {
            () = &mut shutdown => {}
            never = &mut accept_public => match never {},
            never = &mut accept_admin => match never {},
        }
        let outcome = tokio::select! {
            outcome = parts.drain.run(parts.drain_spread, parts.drain_timeout) => outcome,
            never = &mut accept_public => match never {},
            never = &mut accept_admin => match never {},
        };
        parts.leases.resign(outcome).await;
        parts.drain.background.stop().await;
        info!("stopped");
        Ok(())
    }
}

impl Parts {
    /// The background work, each task tracked by the drain: the memory watch, reloads, leases.
    fn start_background(&self) {
        let tasks = &self.drain.background;
        self.ws.budget.start(tasks);
        reload::start(&self.reloads, self.watch, tasks);
        let last = self.last.clone();
        let deliver: Deliver = Arc::new(move |session| {
            let last = last.clone();
            Box::pin(async move { last.send(&session, None, None).await })
        });
        self.leases.start(LeaseTasks { metrics: self.lease_metrics.clone(), deliver }, tasks);
    }
}

/// The metrics of WebSockets and of WebSocket apps.
type Metrics = (Arc<ws::metrics::Metrics>, Arc<apps::metrics::Metrics>);

/// What WebSocket connections are given: admission, shared by `/ws` and the apps; the apps'
/// context; and what sends an app connection's last event.
fn connections(
    config: &Config,
    (ws, drain, (ws_metrics, metrics)): (&Arc<ws::Settings>, &Arc<Drain>, Metrics),
    proxies: Arc<TrustedProxies>,
    (backend, leases): (&Arc<Backend>, &Arc<Leases>),
    channels: Channels,
) -> (Arc<Admission>, Arc<AppContext>, Arc<LastEvents>) {
    let admission = Arc::new(Admission::new(
        ws.clone(),
        OriginPolicy::new(&config.allowed_origins),
        proxies,
        drain.clone(),
        ws_metrics,
        config.max_connections,
    ));
    let apps_settings = settings::apps(config);
    let last = Arc::new(LastEvents {
        backend: backend.clone(),
        settings: apps_settings.clone(),
        metrics: metrics.clone(),
    });
    let apps = Arc::new(AppContext {
        settings: apps_settings,
        admission: admission.clone(),
        backend: backend.clone(),
        channels,
        leases: leases.clone(),
        last: last.clone(),
        deliveries: drain.deliveries.clone(),
        tasks: drain.background.clone(),
        metrics,
    });
    (admission, apps, last)
}

/// Most connections the admin listener serves at once. Probes, scrapes and publishers are few; a
/// cap keeps a flood of them (each may hold a publish body of a megabyte) from the gateway's
/// memory. A connection past it is closed at once, and counted.
pub const MAX_ADMIN_CONNECTIONS: usize = 256;

/// Accepts connections forever, each served in its own tracked task (at most as many at once as
/// `slots` has, when it is given: the admin listener's [`MAX_ADMIN_CONNECTIONS`]).
async fn accept<R: Router>(
    served: &Arc<Listener<R>>,
    listener: &TcpListener,
    slots: Option<Arc<Semaphore>>,
) -> std::convert::Infallible {
    loop {
        let (stream, peer) = next_connection(listener).await;
        let slot = match &slots {
            None => None,
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    served.metrics.connection_error(ConnError::Busy);
                    drop(stream);
                    continue;
                }
            },
        };
        let serve = connection::serve_connection(served.clone(), stream, peer);
        served.drain.connections.spawn(async move {
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
