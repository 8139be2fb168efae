//! The command connection to Redis that the broker and the leases share.
//!
//! One Redis (`redis://`): redis-rs's `ConnectionManager` (one multiplexed connection, reconnected
//! on I/O errors), rebuilt when it cannot recover by itself. A reconnect that Redis refuses at
//! authentication (a password being rotated, a user switched off) leaves a manager that fails
//! every later command without trying again; a fresh one does try.
//!
//! A Redis Cluster (`redis+cluster://`): redis-rs's cluster connection, which keeps a connection
//! to each primary, sends each command to the primary that owns its key's slot, follows `MOVED`
//! and `ASK`, and reads the slot map again after a failover. No command here spans two slots.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, ConnectionInfo, ErrorKind, Pipeline, RedisError, RedisFuture, Value};
use tokio::time::Instant;
use tracing::warn;

/// How long a Redis command may take before it fails (and a publish is a 503).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest wait between two attempts to reach Redis again.
pub const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(5);

/// The fewest seconds between two rebuilds, so a Redis that keeps refusing is not hammered.
const REBUILD_PAUSE: Duration = Duration::from_secs(1);

/// Where Redis is: one server, or the seed nodes of a Redis Cluster.
#[derive(Clone, Debug)]
pub enum Target {
    Single(ConnectionInfo),
    Cluster(Vec<ConnectionInfo>),
}

struct Current {
    manager: ConnectionManager,
    built: Instant,
}

/// One Redis: what rebuilds its manager, and the manager in use.
struct Single {
    client: ::redis::Client,
    config: ConnectionManagerConfig,
    current: Mutex<Current>,
}

/// The connection itself: one node's, or the cluster's.
#[derive(Clone)]
enum Deployment {
    Single(Arc<Single>),
    Cluster(ClusterConnection),
}

#[derive(Clone)]
pub struct Commands {
    target: Target,
    deployment: Deployment,
}

/// A handle to run commands on, whichever Redis it is.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A cluster client for `nodes`, each command answered within [`COMMAND_TIMEOUT`] (retries
/// after `MOVED`, `ASK` or a lost node included); `resp3` for pub/sub.
pub fn cluster_client(nodes: &[ConnectionInfo], push: Option<PushSender>) -> anyhow::Result<ClusterClient> {
    let mut builder = ClusterClientBuilder::new(nodes.to_vec())
        .connection_timeout(COMMAND_TIMEOUT)
        .response_timeout(COMMAND_TIMEOUT)
        .overall_response_timeout(Some(COMMAND_TIMEOUT))
        .max_retry_wait(500);
    if let Some(push) = push {
        builder = builder.use_protocol(::redis::ProtocolVersion::RESP3).push_sender(push);
    }
    builder.build().map_err(|e| anyhow::anyhow!("--redis: {e}"))
}

/// Where a cluster connection's pushes (pub/sub messages, lost connections) go.
pub type PushSender = tokio::sync::mpsc::UnboundedSender<::redis::PushInfo>;

/// A cluster connection that connects on its first command (a cluster that is down at start-up
/// is waited for, not a reason not to start).
pub fn cluster_connection(client: &ClusterClient) -> ClusterConnection {
    let config =
        ClusterConfig::new().set_connection_timeout(COMMAND_TIMEOUT).set_response_timeout(COMMAND_TIMEOUT);
    client.get_pending_async_connection_with_config(config)
}

impl Commands {
    /// Prepares the connection to Redis, each command answered within [`COMMAND_TIMEOUT`];
    /// nothing is connected until the first command.
    pub fn new(target: Target) -> anyhow::Result<Self> {
        let deployment = match &target {
            Target::Single(info) => {
                let client =
                    ::redis::Client::open(info.clone()).map_err(|e| anyhow::anyhow!("--redis: {e}"))?;
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(COMMAND_TIMEOUT))
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_max_delay(MAX_RECONNECT_WAIT)
                    .set_number_of_retries(2);
                let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                    .map_err(|e| anyhow::anyhow!("--redis: {e}"))?;
                let current = Mutex::new(Current { manager, built: Instant::now() });
                Deployment::Single(Arc::new(Single { client, config, current }))
            }
            Target::Cluster(nodes) => Deployment::Cluster(cluster_connection(&cluster_client(nodes, None)?)),
        };
        Ok(Commands { target, deployment })
    }

    /// Where Redis is, for connections of other kinds (pub/sub).
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// A handle to run commands on.
    pub fn get(&self) -> Conn {
        match &self.deployment {
            Deployment::Single(single) => {
                Conn::Single(single.current.lock().unwrap_or_else(PoisonError::into_inner).manager.clone())
            }
            Deployment::Cluster(conn) => Conn::Cluster(conn.clone()),
        }
    }

    /// Looks at a command's error: one the manager does not recover from gets a new manager.
    pub fn failed(&self, error: &RedisError) {
        let Deployment::Single(single) = &self.deployment else { return };
        let Single { client, config, current } = &**single;
        let stuck = error.kind() == ErrorKind::AuthenticationFailed || error.code() == Some("NOAUTH");
        if !stuck {
            return;
        }
        let mut current = current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.built.elapsed() < REBUILD_PAUSE {
            return;
        }
        match ConnectionManager::new_lazy_with_config(client.clone(), config.clone()) {
            Ok(manager) => {
                warn!(%error, "Redis refused this gateway's connection; connecting again");
                *current = Current { manager, built: Instant::now() };
            }
            Err(error) => warn!(%error, "cannot prepare a new Redis connection"),
        }
    }
}
