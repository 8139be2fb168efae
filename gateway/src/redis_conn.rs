//! The command connection to Redis that the broker and the leases share: redis-rs's
//! `ConnectionManager` (one multiplexed connection, reconnected on I/O errors), rebuilt when it
//! cannot recover by itself. A reconnect that Redis refuses at authentication (a password being
//! rotated, a user switched off) leaves a manager that fails every later command without trying
//! again; a fresh one does try.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, RedisError};
use tokio::time::Instant;
use tracing::warn;

/// How long a Redis command may take before it fails (and a publish is a 503).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest wait between two attempts to reach Redis again.
pub const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(5);

/// The fewest seconds between two rebuilds, so a Redis that keeps refusing is not hammered.
const REBUILD_PAUSE: Duration = Duration::from_secs(1);

struct Current {
    manager: ConnectionManager,
    built: Instant,
}

#[derive(Clone)]
pub struct Commands {
    client: ::redis::Client,
    config: ConnectionManagerConfig,
    current: Arc<Mutex<Current>>,
}

impl Commands {
    /// Prepares the connection to Redis, each command answered within [`COMMAND_TIMEOUT`];
    /// nothing is connected until the first command.
    pub fn new(info: ::redis::ConnectionInfo) -> anyhow::Result<Self> {
        let client = ::redis::Client::open(info).map_err(|e| anyhow::anyhow!("--redis: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_max_delay(MAX_RECONNECT_WAIT)
            .set_number_of_retries(2);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|e| anyhow::anyhow!("--redis: {e}"))?;
        Ok(Commands {
            client,
            config,
            current: Arc::new(Mutex::new(Current { manager, built: Instant::now() })),
        })
    }

    /// The client, for connections of other kinds (pub/sub).
    pub fn client(&self) -> &::redis::Client {
        &self.client
    }

    /// A handle to run commands on.
    pub fn get(&self) -> ConnectionManager {
        self.current.lock().unwrap_or_else(PoisonError::into_inner).manager.clone()
    }

    /// Looks at a command's error: one the manager does not recover from gets a new manager.
    pub fn failed(&self, error: &RedisError) {
        let stuck = error.kind() == ErrorKind::AuthenticationFailed || error.code() == Some("NOAUTH");
        if !stuck {
            return;
        }
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.built.elapsed() < REBUILD_PAUSE {
            return;
        }
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(manager) => {
                warn!(%error, "Redis refused this gateway's connection; connecting again");
                *current = Current { manager, built: Instant::now() };
            }
            Err(error) => warn!(%error, "cannot prepare a new Redis connection"),
        }
    }
}
