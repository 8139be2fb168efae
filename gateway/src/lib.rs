//! sidestream's gateway: the long-lived half of the app.
//!
//! It holds the WebSockets Spin cannot (`/ws`: echo plus random-timed pushes) and sends every other
//! public request to the Spin component, either in-process through an embedded wasmtime host
//! (`--component`, the local default) or to a Spin runtime beside it (`--upstream`, in Kubernetes).
//! A second listener, for the cluster only, answers `/livez`, `/readyz` and `/metrics`.
//!
//! Run it: `make run`, or `cargo run --release -p sidestream-gateway -- --help`.

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
pub mod logging;
pub mod metrics;
pub mod public;
pub mod publish;
pub mod redis_conn;
pub mod reload;
pub mod routes;
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
