//! What a WebSocket app's connection is given: the parts of the gateway it touches, and nothing
//! else. Built once by [`crate::server`].

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use super::Settings;
use super::delivery::LastEvents;
use super::lease::Leases;
use super::metrics::Metrics;
use crate::admission::Admission;
use crate::backend::Backend;
use crate::channels::Channels;
use crate::drain::Tasks;

pub struct AppContext {
    pub settings: Settings,
    /// Admission to the gateway, shared with `/ws`; its WebSocket settings carry the memory budget.
    pub admission: Arc<Admission>,
    pub backend: Arc<Backend>,
    pub channels: Channels,
    pub leases: Arc<Leases>,
    /// Sends a connection's last event.
    pub last: Arc<LastEvents>,
    /// Last events on their way, which the drain waits for.
    pub deliveries: TaskTracker,
    /// Subscriptions starting.
    pub tasks: Tasks,
    pub metrics: Arc<Metrics>,
}
