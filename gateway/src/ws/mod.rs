//! The `/ws` endpoint: handshake validation and the per-connection loop.

pub mod conn;
pub mod handshake;
pub mod push;

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::Config;

/// Bytes of echoes and pushes a connection may have queued before the server stops reading from it
/// (echoes) or drops (pushes). Together with the socket writer's buffer and one maximum-size message
/// this bounds what a client that never reads can make the server hold.
pub const OUTBOX_BUDGET: usize = 32 * 1024;

/// The socket writer's batching buffer. Frames collect here between flushes, so a burst of echoes
/// becomes one write; small enough that an idle connection costs little.
const WRITE_BUFFER: usize = 8 * 1024;

/// Per-read buffer. tokio-tungstenite's 128 KiB default costs ~133 KB per idle connection; 4 KiB
/// still reads a typical message in one syscall and brings an idle connection to a few KB.
const READ_BUFFER: usize = 4 * 1024;

/// Everything a connection needs to know, fixed at start-up.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `(min, max)` delay between pushes, or `None` when pushes are off.
    pub push: Option<(Duration, Duration)>,
    pub seed: Option<u64>,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    /// How long a closing handshake may take before the connection is dropped.
    pub close_timeout: Duration,
    pub protocol: WebSocketConfig,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        Settings {
            push: config.pushes_enabled().then_some((config.push_min, config.push_max)),
            seed: config.seed,
            ping_interval: config.ping_interval,
            idle_timeout: config.idle_timeout,
            close_timeout: Duration::from_secs(5),
            protocol: WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER)
                .write_buffer_size(WRITE_BUFFER)
                // The writer never holds more than its buffer plus one message: the connection
                // loop only hands it a frame once it has flushed.
                .max_write_buffer_size(WRITE_BUFFER + config.max_message_size + OUTBOX_BUDGET)
                .max_message_size(Some(config.max_message_size))
                .max_frame_size(Some(config.max_message_size)),
        }
    }
}
