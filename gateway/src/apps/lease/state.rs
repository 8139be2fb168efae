//! A gateway's lease and records as this gateway keeps them: its keys in Redis, the changes still
//! to write, the connections that have not ended yet.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, oneshot};
use tracing::warn;

use super::metrics::{Metrics, Renewal};
use crate::redis_conn::Commands;

/// The sorted set of every gateway's id, scored by when its lease runs out (Unix ms): the small
/// index the reapers read. Every script touches one gateway's keys only (one hash tag, `{id}`),
/// so on a Redis Cluster each runs on the primary that owns that gateway's slot.
pub(super) const GATEWAYS: &str = "sidestream:gateways";

/// Most record changes written by one renewal.
pub(super) const BATCH: usize = 500;

/// A gateway's keys, in one Redis Cluster slot.
pub(super) struct Keys {
    pub(super) lease: String,
    pub(super) claim: String,
    pub(super) records: String,
}

impl Keys {
    pub(super) fn of(id: &str) -> Self {
        Keys {
            lease: format!("sidestream:gw:{{{id}}}:lease"),
            claim: format!("sidestream:gw:{{{id}}}:claim"),
            records: format!("sidestream:gw:{{{id}}}:conns"),
        }
    }
}

/// A record to write, or to remove.
pub(super) enum Change {
    /// `urgent` for a new connection: written now, not with the next renewal.
    Put {
        record: String,
        urgent: bool,
    },
    Delete,
}

/// What a connection hears when its gateway is found reaped.
#[derive(Debug, PartialEq)]
pub enum Reaped {
    /// The reaper read its record and sent its `DISCONNECT`: nothing more is told.
    Ended,
    /// Its record never reached Redis, so the reaper did not know it: its `DISCONNECT` is still
    /// to be sent, by its own gateway.
    Unrecorded,
}

/// A connection that has a record (or one on its way).
pub(super) struct Live {
    /// Tells the connection that the gateway was reaped.
    pub(super) tx: oneshot::Sender<Reaped>,
    /// Redis answered a write of its record.
    pub(super) recorded: bool,
}

pub(super) struct State {
    pub(super) id: String,
    /// Changes not written yet, by connection id (a later change replaces an earlier one).
    pub(super) pending: HashMap<String, Change>,
    /// The connections that have not ended yet, by id.
    pub(super) live: HashMap<String, Live>,
}

pub(super) struct Inner {
    pub(super) state: Mutex<State>,
    pub(super) wake: Notify,
    pub(super) commands: Commands,
    pub(super) lease: Duration,
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// An id for this gateway: its host name (the pod's name in Kubernetes) and a random part.
pub(super) fn gateway_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(63).collect();
    let host = if host.is_empty() { "gateway".to_owned() } else { host };
    format!("{host}-{}", crate::channels::new_epoch())
}

impl Inner {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the changes to write: the urgent ones, or all of them when `all`.
    pub(super) fn take(&self, all: bool) -> (String, Vec<(String, Change)>) {
        let mut state = self.state();
        let keys: Vec<String> = state
            .pending
            .iter()
            .filter(|(_, change)| all || !matches!(change, Change::Put { urgent: false, .. }))
            .map(|(id, _)| id.clone())
            .take(BATCH)
            .collect();
        let changes = keys.into_iter().filter_map(|id| state.pending.remove_entry(&id)).collect();
        (state.id.clone(), changes)
    }

    /// Redis has written these changes: their connections are known to a reaper.
    pub(super) fn written(&self, changes: &[(String, Change)]) {
        let mut state = self.state();
        for (id, change) in changes {
            if let Change::Put { .. } = change
                && let Some(live) = state.live.get_mut(id)
            {
                live.recorded = true;
            }
        }
    }

    /// Puts changes that could not be written back, unless newer ones came meanwhile.
    pub(super) fn give_back(&self, changes: Vec<(String, Change)>) {
        let mut state = self.state();
        for (id, change) in changes {
            state.pending.entry(id).or_insert(change);
        }
    }

    /// The gateway was reaped: its connections close (the component has heard the end of those
    /// the reaper knew) and it goes on under a new id.
    pub(super) fn reaped(&self, metrics: &Metrics) {
        let mut state = self.state();
        let old = std::mem::replace(&mut state.id, gateway_id());
        state.pending.clear();
        let connections: Vec<Live> = state.live.drain().map(|(_, live)| live).collect();
        let unrecorded = connections.iter().filter(|live| !live.recorded).count();
        warn!(gateway = %old, now = %state.id, connections = connections.len(), unrecorded,
            "this gateway lost its lease and was reaped; closing its app connections with 1012");
        drop(state);
        metrics.renewal(Renewal::Reaped);
        for Live { tx, recorded } in connections {
            let _ = tx.send(if recorded { Reaped::Ended } else { Reaped::Unrecorded });
        }
    }
}
