//! sidestream's gateway: the long-lived half of the app.
//!
//! It holds the WebSockets Spin cannot (`/ws`: echo plus random-timed pushes) and sends every other
//! public request to the Spin component, either in-process through an embedded wasmtime host
//! (`--component`, the local default) or to a Spin runtime beside it (`--upstream`, in Kubernetes).
//! A second listener, for the cluster only, answers `/livez`, `/readyz` and `/metrics`.
//!
//! Run it: `make run`, or `cargo run --release -p sidestream-gateway -- --help`.
//!
//! # The map
//!
//! Five layers, each importing only from the layers below it (`python3 scripts/structure.py`
//! checks that the imports have no cycle, and that nothing imports the wiring's modules, `config`
//! and `server`). A request meets the modules in this order.
//!
//! Wiring and lifecycle: the one place that knows every part.
//! - [`config`]: the flags, validated before any port is bound.
//! - [`server`]: builds every part ([`server::settings`] makes each part's settings from the
//!   flags), binds, accepts, runs the drain.
//! - [`shutdown`], [`logging`]: the signals, and the log lines' format.
//!
//! Surfaces: what each listener answers.
//! - [`connection`]: one accepted TCP connection served as HTTP/1, its Host checked.
//! - [`public`]: the internet's surface: `/ws`, WebSocket apps, the component's paths.
//! - [`admin`]: the cluster's surface: probes, metrics, the publish API.
//!
//! Features: what the surfaces offer.
//! - [`admission`]: a WebSocket's way in, shared by `/ws` and the apps.
//! - [`apps`]: WebSocket apps in the component, over WebSocket-over-HTTP and GRIP.
//! - [`publish`]: the publish API, over HTTP and from the embedded component.
//! - [`reload`]: when the embedded component is loaded again.
//!
//! Engines: what does the work.
//! - [`ws`]: a WebSocket's loop, its outbox, the built-in echo and pushes.
//! - [`channels`]: the hub of subscriptions and the brokers (in memory, Redis).
//! - [`backend`]: where the component runs: the embedded [`backend::host`] or the
//!   [`backend::proxy`] to a runtime upstream.
//! - [`drain`]: the drain's state and its one budget, and the background [`drain::Tasks`].
//! - [`budget`]: the gateway-wide memory budget.
//! - [`redis_conn`]: the Redis connection the brokers and the leases share.
//! - [`metrics`]: what every part's metrics share (enum label values, the exposition); each part
//!   registers its own beside its code (`ws::metrics`, `apps::metrics`, `channels::metrics`, ...),
//!   and [`stages`] says where a component request's time goes.
//!
//! Protocol: parsing and deciding, no I/O and no runtime (besides [`ws::handshake`],
//! [`apps::session`] and [`channels::filter`], which live with their engines).
//! - [`authority`]: which Host names a listener answers to.
//! - [`headers`]: the hop-by-hop headers no hop passes on.
//! - [`forwarded`]: which forwarding headers to believe, and the ones the component gets.
//! - [`routes`]: the route labels.
//! - [`signing`]: the `Grip-Sig` the gateway signs the component's requests with.
//! - [`secret`]: a secret read from the file a flag names.
//! - [`body`]: the one response body type.

pub mod admin;
pub mod admission;
pub mod apps;
pub mod authority;
pub mod backend;
pub mod body;
pub mod budget;
pub mod channels;
pub mod config;
pub mod connection;
pub mod drain;
pub mod forwarded;
pub mod headers;
pub mod logging;
pub mod metrics;
pub mod public;
pub mod publish;
pub mod redis_conn;
pub mod reload;
pub mod routes;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod signing;
pub mod stages;
pub mod ws;

use std::future::Future;

pub use config::Config;
pub use server::Gateway;

/// Binds, serves, and drains when `shutdown` completes. Tests pass any future as the trigger;
/// the binary passes what [`shutdown::signal`] returns.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    Gateway::bind(config).await?.serve(shutdown).await
}
