//! WebSockets: handshake validation, admission, the per-connection loop and its outbox, and the
//! built-in app on `/ws`.

pub mod builtin;
pub mod close;
pub mod conn;
pub mod handler;
pub mod handshake;
pub mod metrics;
pub mod outbox;
pub mod push;
pub mod upgrade;
pub mod websocket;

use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::budget::MemoryBudget;

/// Bytes of echoes and pushes a connection may have queued before the server stops reading from it
/// (echoes) or drops (pushes). Together with the socket writer's buffer and one maximum-size message
/// this bounds what a client that never reads can make the server hold.
pub const OUTBOX_BUDGET: usize = 32 * 1024;

/// The socket writer's batching buffer. Frames collect here between flushes, so a burst of echoes
/// becomes one write; small enough that an idle connection costs little.
pub(crate) const WRITE_BUFFER: usize = 8 * 1024;

/// Per-read buffer. tokio-tungstenite's 128 KiB default costs ~133 KB per idle connection; the
/// buffer is allocated for every connection and zero-filled before each read, so it is sized for
/// the messages this app carries (chat lines, ~80-byte pushes): 1 KiB reads those in one syscall
/// and keeps an idle connection near 4 KB. Larger messages still work, in several reads.
const READ_BUFFER: usize = 1024;

/// A connection's own state: its task, timers, the socket's registration, tungstenite's context with
/// its initial buffers (an idle connection measures about 4 KiB).
pub(crate) const CONNECTION_STATE: usize = 8 * 1024;

/// The most memory one WebSocket can make the gateway hold, whatever its client does, from the
/// bounds in this module: the frame being read and a fragmented message being put together (one
/// `max_message_size` each), the writer's buffer plus the message that overflows it, the outbox's
/// budget plus the message that crossed it, and the connection's own state. The kernel's socket
/// buffers come on top (`--socket-buffer`, doubled by the kernel, in each direction).
pub const fn memory_bound(max_message_size: usize) -> usize {
    CONNECTION_STATE
        + 2 * max_message_size
        + (WRITE_BUFFER + max_message_size)
        + (OUTBOX_BUDGET + max_message_size)
}

/// How long a client gets to answer our Close before the connection is dropped.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// The same during a drain: never longer than the drain itself.
    pub drain_close_timeout: Duration,
    /// SO_SNDBUF and SO_RCVBUF of each WebSocket's socket; `None` leaves them to the kernel.
    pub socket_buffer: Option<usize>,
    pub protocol: WebSocketConfig,
    /// The gateway-wide memory budget: near it, connections that hold stop reading and are shed.
    pub budget: Arc<MemoryBudget>,
}

/// tungstenite's settings for messages of at most `max_message_size` bytes from clients, and
/// messages to them as large as `app_budget` (`--app-connection-budget`) lets an app's answer be.
pub fn protocol(max_message_size: usize, app_budget: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        // The writer never holds more than its buffer plus one message: the connection loop only
        // hands it a frame once it has flushed. An app's message may be as large as its
        // connection's budget lets an answer be; a larger frame would be refused by the writer and
        // end the connection.
        .max_write_buffer_size(WRITE_BUFFER + max_message_size.max(app_budget) + OUTBOX_BUDGET)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}
