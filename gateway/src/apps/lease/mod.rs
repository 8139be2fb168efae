//! Leases (with `--redis`): the connections of a gateway that dies without draining (SIGKILL, a
//! lost node) are ended for the component by another gateway, which sends their `DISCONNECT`s.
//!
//! Each gateway has an id and a lease in Redis that it renews every third of `--lease`, and keeps
//! there a record of each of its app connections (what [`Session::record`] writes: enough to send
//! the connection's `DISCONNECT`). Opens and closes are written at once; meta changes ride along
//! with the next renewal, so a record is at most a third of the lease behind. Every gateway looks
//! once a second for leases that have run out; the first to claim one (atomically, and only while
//! the lease is gone) sends a `DISCONNECT` for each of its records, with the usual retries, and
//! leaves a tombstone. Records and renewals are written by one script that first checks for that
//! claim, so nothing is added to a gateway that is being reaped.
//!
//! A gateway that was only cut off from Redis and comes back to find itself reaped has had its
//! connections ended for the component: it closes them with 1012 (they reconnect, and open anew)
//! and goes on under a new id. A connection whose record never reached Redis (it opened while the
//! gateway was cut off, or just before) was unknown to the reaper: it closes with 1012 too, and its
//! own gateway sends its `DISCONNECT`. The component may hear a connection's end twice, never
//! not at all: from its own gateway and from the reaper when the connection ended while its
//! gateway was cut off (its record could not be removed), or when a record's write got no answer
//! (it counts as not written). A gateway whose drain finishes removes its lease and records itself;
//! one whose drain runs out of time leaves them to a reaper.

mod metrics;
mod state;
mod tasks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::AsyncCommands;
use tokio::sync::{Notify, oneshot};
use tracing::{info, warn};

use self::state::{Change, GATEWAYS, Inner, Keys, Live, State, gateway_id};
use super::session::Session;
use crate::drain::Tasks;
use crate::redis_conn::Commands;

pub use self::metrics::{Metrics, Renewal};
pub use self::state::Reaped;
pub use self::tasks::{Deliver, LeaseTasks};

/// This gateway's lease and records; without `--redis`, a no-op.
pub struct Leases(Option<Arc<Inner>>);

impl Leases {
    /// No leases (no Redis).
    pub fn none() -> Self {
        Leases(None)
    }

    /// Leases in Redis, lasting `lease`; nothing happens until [`Leases::start`].
    pub fn new(commands: Commands, lease: Duration) -> Self {
        let state = State { id: gateway_id(), pending: HashMap::new(), live: HashMap::new() };
        Leases(Some(Arc::new(Inner { state: Mutex::new(state), wake: Notify::new(), commands, lease })))
    }

    /// Renews the lease and reaps dead gateways until `tasks` are stopped.
    pub fn start(&self, cx: LeaseTasks, tasks: &Tasks) {
        let Some(inner) = &self.0 else { return };
        info!(gateway = %inner.state().id, lease = ?inner.lease, "keeping a lease on this gateway's connections in Redis");
        tasks.spawn(tasks::renew(inner.clone(), cx.clone()));
        tasks.spawn(tasks::sweep(inner.clone(), cx));
    }

    /// Keeps a record of a new connection; the receiver fires if the gateway is found reaped.
    pub fn register(&self, session: &Session) -> Option<oneshot::Receiver<Reaped>> {
        let inner = self.0.as_ref()?;
        let (tx, rx) = oneshot::channel();
        let mut state = inner.state();
        state.pending.insert(session.id.clone(), Change::Put { record: session.record(), urgent: true });
        state.live.insert(session.id.clone(), Live { tx, recorded: false });
        drop(state);
        inner.wake.notify_one();
        Some(rx)
    }

    /// The connection's meta changed: its record follows with the next renewal.
    pub fn update(&self, session: &Session) {
        let Some(inner) = &self.0 else { return };
        let mut state = inner.state();
        // Until Redis has a record of it, the connection's record goes with the next write.
        let Some(urgent) = state.live.get(&session.id).map(|live| !live.recorded) else { return };
        state.pending.insert(session.id.clone(), Change::Put { record: session.record(), urgent });
    }

    /// The connection has ended and the component has been told (or given up on).
    pub fn release(&self, id: &str) {
        let Some(inner) = &self.0 else { return };
        let mut state = inner.state();
        if state.live.remove(id).is_some() {
            state.pending.insert(id.to_owned(), Change::Delete);
            drop(state);
            inner.wake.notify_one();
        }
    }

    /// At the end of a drain that finished: the lease and records go, so no other gateway reaps
    /// this one. A drain that ran out of time leaves them: the connections it could not end, and
    /// the `DISCONNECT`s it was still delivering, are ended by the gateway that reaps this one once
    /// its lease has run out.
    pub async fn resign(&self, outcome: crate::drain::Outcome) {
        let Some(inner) = &self.0 else { return };
        if outcome != crate::drain::Outcome::Finished {
            warn!(?outcome, "the drain did not finish; this gateway's connections are left to a reaper");
            return;
        }
        let id = inner.state().id.clone();
        let keys = Keys::of(&id);
        let mut conn = inner.commands.get();
        // Two commands, not one pipeline: on a Redis Cluster the index and a gateway's own keys
        // live in different slots. Gone from the index first, so no reaper looks for it.
        let unlisted: Result<(), _> = conn.zrem(GATEWAYS, &id).await;
        let result: Result<(), _> = match unlisted {
            Ok(()) => ::redis::pipe().del(&keys.records).del(&keys.lease).query_async(&mut conn).await,
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            warn!(%error, "cannot remove this gateway's lease; another gateway will end its connections again");
        }
    }
}
