//! The drain: what the first SIGTERM sets off, and the one budget everything in flight shares.
//!
//! At once: `/readyz` turns 503, new upgrades are refused, and every HTTP connection is told to
//! shut down gracefully (hyper answers the request in flight with `Connection: close`, and idle
//! keep-alive connections close). WebSockets get their Close 1001 spread evenly over
//! `--drain-spread`, so the reconnects of a whole replica do not reach the others as one burst.
//! Upgraded sockets escape hyper's graceful shutdown, so they are tracked here, and so are the last
//! events of WebSocket apps on their way to the component. The drain ends when everything has
//! finished, or when `--drain-timeout` has passed since it began. The gateway's own background
//! work ([`Tasks`]: reloads, leases, the memory watch, subscriptions starting, the broker's
//! listener, recoveries and sweep) goes last, once the drain is over.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// The drain's state, shared by both listeners and every connection.
#[derive(Debug, Default)]
pub struct Drain {
    /// Set when the drain begins: new upgrades are refused, `/readyz` turns 503 and newly accepted
    /// HTTP connections answer one request. Open WebSockets hear it through their own signal in
    /// `sockets`.
    draining: AtomicBool,
    /// One signal per open WebSocket. A oneshot per connection rather than one shared
    /// CancellationToken: polling a shared token takes a lock that every connection contends for.
    sockets: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    /// Tells HTTP connections to finish their request in flight and close.
    http: CancellationToken,
    /// WebSocket tasks.
    pub websockets: TaskTracker,
    /// HTTP connection tasks of both listeners.
    pub connections: TaskTracker,
    /// WebSocket apps' last events on their way to the component.
    pub deliveries: TaskTracker,
    /// The gateway's background work, ended after everything else.
    pub background: Tasks,
}

/// Background tasks: each runs until it ends or [`Tasks::stop`] cancels it, and `stop` waits for
/// all of them, so nothing the gateway started outlives its `serve`.
#[derive(Clone, Debug, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Tasks {
    /// Runs `task` in the background until it ends or the tasks are stopped. The handle lets an
    /// owner end it sooner (a broker dropped before the gateway stops).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> tokio::task::JoinHandle<()> {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = task => {}
                () = cancel.cancelled() => {}
            }
        })
    }

    /// Cancels every task and waits until each has let go of what it held.
    pub async fn stop(&self) {
        self.tracker.close();
        self.cancel.cancel();
        self.tracker.wait().await;
    }
}

/// How a drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything in flight finished.
    Finished,
    /// The budget ran out with this much still open.
    TimedOut { websockets: usize, connections: usize, deliveries: usize },
}

impl Drain {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The signal HTTP connections shut down on.
    pub fn http_signal(&self) -> CancellationToken {
        self.http.clone()
    }

    fn sockets(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<()>>> {
        // The map stays consistent whatever a panicking holder did: recover it.
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a WebSocket for its 1001; `None` once the drain has begun (refuse the upgrade).
    /// Checked under the lock the drain takes, so no connection slips past it unsignalled.
    pub fn register(&self, id: u64) -> Option<oneshot::Receiver<()>> {
        let mut sockets = self.sockets();
        if self.is_draining() {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        sockets.insert(id, tx);
        Some(rx)
    }

    pub fn unregister(&self, id: u64) {
        self.sockets().remove(&id);
    }

    /// Runs the drain to its end: at most `timeout`, with the WebSocket closes spread over
    /// `spread`. The listeners keep accepting meanwhile (the caller polls them beside this), so
    /// probes see 503 rather than a refused connection.
    pub async fn run(&self, spread: Duration, timeout: Duration) -> Outcome {
        let start = Instant::now();
        let deadline = start + timeout;
        let signals: Vec<_> = {
            let mut sockets = self.sockets();
            self.draining.store(true, Ordering::SeqCst);
            sockets.drain().map(|(_, tx)| tx).collect()
        };
        self.http.cancel();
        info!(websockets = signals.len(), ?timeout, ?spread, "draining");

        // Evenly spaced, so the last close goes out at `spread`, however many there are.
        let count = signals.len().max(1) as u32;
        let closes = async {
            for (i, tx) in signals.into_iter().enumerate() {
                sleep_until(start + spread * i as u32 / count).await;
                let _ = tx.send(());
            }
        };
        self.websockets.close();
        self.connections.close();
        // Deliveries start as WebSockets end, so they are waited for after those.
        let finished = async {
            tokio::join!(closes, self.websockets.wait(), self.connections.wait());
            self.deliveries.close();
            self.deliveries.wait().await;
        };
        tokio::select! {
            () = finished => {
                info!("drained: every connection finished");
                Outcome::Finished
            }
            () = sleep_until(deadline) => {
                let outcome = Outcome::TimedOut {
                    websockets: self.websockets.len(),
                    connections: self.connections.len(),
                    deliveries: self.deliveries.len(),
                };
                warn!(?outcome, "drain timeout passed; dropping the rest");
                outcome
            }
        }
    }
}
