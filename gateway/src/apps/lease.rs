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

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::redis::AsyncCommands;
use futures_util::StreamExt;
use tokio::sync::{Notify, oneshot};
use tracing::{info, warn};

use super::session::Session;
use crate::drain::Tasks;
use crate::metrics::Metrics;
use crate::redis_conn::Commands;

/// What sends a dead gateway's connection its `DISCONNECT` (with the usual retries): given to the
/// leases by the wiring, so they need not know how.
pub type Deliver = Arc<dyn Fn(Session) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What the lease tasks are given.
#[derive(Clone)]
pub struct LeaseTasks {
    pub metrics: Arc<Metrics>,
    pub deliver: Deliver,
}

/// The sorted set of every gateway's id, scored by when its lease runs out (Unix ms): the small
/// index the reapers read. Every script touches one gateway's keys only (one hash tag, `{id}`),
/// so on a Redis Cluster each runs on the primary that owns that gateway's slot.
const GATEWAYS: &str = "sidestream:gateways";

/// How long a claim on a dead gateway lasts while its connections are being ended; renewed as
/// the reaper goes, so a reaper that dies too leaves the rest to another.
const CLAIM: Duration = Duration::from_secs(60);

/// How long the tombstone of a reaped gateway stays: a gateway cut off for less than this learns
/// that it was reaped when it comes back.
const TOMBSTONE: Duration = Duration::from_secs(3600);

/// How long a gateway's records outlive its last renewal, so a cluster that was all down for a
/// while still ends the connections it had.
const RECORDS_TTL: Duration = Duration::from_secs(24 * 3600);

/// How often every gateway looks for leases that ran out.
const SWEEP: Duration = Duration::from_secs(1);

/// Most record changes written by one renewal.
const BATCH: usize = 500;

/// Most `DISCONNECT`s one reaper has on their way at once.
const CONCURRENT_DISCONNECTS: usize = 32;

/// Writes records and renews the lease, unless the gateway has been claimed:
/// KEYS lease, claim, records; ARGV lease ms, records ms, then `p id record` or `d id` per change.
const RENEW: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local i = 3
while i <= #ARGV do
  if ARGV[i] == 'p' then
    redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  else
    redis.call('HDEL', KEYS[3], ARGV[i + 1])
    i = i + 2
  end
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return 1
"#;

/// Claims a gateway whose lease is gone: KEYS lease, claim; ARGV claimant, claim ms.
const CLAIM_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"#;

/// A gateway's keys, in one Redis Cluster slot.
struct Keys {
    lease: String,
    claim: String,
    records: String,
}

impl Keys {
    fn of(id: &str) -> Self {
        Keys {
            lease: format!("sidestream:gw:{{{id}}}:lease"),
            claim: format!("sidestream:gw:{{{id}}}:claim"),
            records: format!("sidestream:gw:{{{id}}}:conns"),
        }
    }
}

/// A record to write, or to remove.
enum Change {
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
struct Live {
    /// Tells the connection that the gateway was reaped.
    tx: oneshot::Sender<Reaped>,
    /// Redis answered a write of its record.
    recorded: bool,
}

struct State {
    id: String,
    /// Changes not written yet, by connection id (a later change replaces an earlier one).
    pending: HashMap<String, Change>,
    /// The connections that have not ended yet, by id.
    live: HashMap<String, Live>,
}

struct Inner {
    state: Mutex<State>,
    wake: Notify,
    commands: Commands,
    lease: Duration,
}

/// This gateway's lease and records; without `--redis`, a no-op.
pub struct Leases(Option<Arc<Inner>>);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// An id for this gateway: its host name (the pod's name in Kubernetes) and a random part.
fn gateway_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(63).collect();
    let host = if host.is_empty() { "gateway".to_owned() } else { host };
    format!("{host}-{}", crate::channels::new_epoch())
}

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
        tasks.spawn(renew(inner.clone(), cx.clone()));
        tasks.spawn(sweep(inner.clone(), cx));
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

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the changes to write: the urgent ones, or all of them when `all`.
    fn take(&self, all: bool) -> (String, Vec<(String, Change)>) {
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
    fn written(&self, changes: &[(String, Change)]) {
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
    fn give_back(&self, changes: Vec<(String, Change)>) {
        let mut state = self.state();
        for (id, change) in changes {
            state.pending.entry(id).or_insert(change);
        }
    }

    /// The gateway was reaped: its connections close (the component has heard the end of those
    /// the reaper knew) and it goes on under a new id.
    fn reaped(&self, metrics: &Metrics) {
        let mut state = self.state();
        let old = std::mem::replace(&mut state.id, gateway_id());
        state.pending.clear();
        let connections: Vec<Live> = state.live.drain().map(|(_, live)| live).collect();
        let unrecorded = connections.iter().filter(|live| !live.recorded).count();
        warn!(gateway = %old, now = %state.id, connections = connections.len(), unrecorded,
            "this gateway lost its lease and was reaped; closing its app connections with 1012");
        drop(state);
        metrics.lease_renewal("reaped");
        for Live { tx, recorded } in connections {
            let _ = tx.send(if recorded { Reaped::Ended } else { Reaped::Unrecorded });
        }
    }
}

/// Writes changes as they come and renews the lease every third of it.
async fn renew(inner: Arc<Inner>, cx: LeaseTasks) {
    let every = inner.lease / 3;
    let script = ::redis::Script::new(RENEW);
    let mut failing = false;
    let mut next = tokio::time::Instant::now();
    loop {
        let due = tokio::select! {
            () = tokio::time::sleep_until(next) => true,
            () = inner.wake.notified() => false,
        };
        if due {
            next = tokio::time::Instant::now() + every;
        }
        loop {
            let (id, changes) = inner.take(due);
            if changes.is_empty() && !due {
                break;
            }
            let count = changes.len();
            let keys = Keys::of(&id);
            let mut invocation = script.prepare_invoke();
            invocation
                .key(&keys.lease)
                .key(&keys.claim)
                .key(&keys.records)
                .arg(inner.lease.as_millis() as u64)
                .arg(RECORDS_TTL.as_millis() as u64);
            for (conn, change) in &changes {
                match change {
                    Change::Put { record, .. } => invocation.arg("p").arg(conn).arg(record),
                    Change::Delete => invocation.arg("d").arg(conn),
                };
            }
            let mut conn = inner.commands.get();
            let renewed: Result<i64, _> = invocation.invoke_async(&mut conn).await;
            let listed: Result<(), _> = match renewed {
                Ok(1) => conn.zadd(GATEWAYS, &id, now_ms() + inner.lease.as_millis() as u64).await,
                _ => Ok(()),
            };
            if renewed == Ok(1) {
                inner.written(&changes);
            }
            let result = match (renewed, listed) {
                (Ok(1), Ok(())) => "ok",
                (Ok(1), Err(error)) | (Err(error), _) => {
                    inner.commands.failed(&error);
                    if !failing {
                        warn!(%error, "cannot renew this gateway's lease in Redis; trying again");
                    }
                    inner.give_back(changes);
                    "failed"
                }
                (Ok(_), _) => {
                    inner.reaped(&cx.metrics);
                    break;
                }
            };
            cx.metrics.lease_renewal(result);
            if failing && result == "ok" {
                info!("renewed this gateway's lease in Redis again");
            }
            failing = result == "failed";
            if failing {
                // Keep trying at the renewal pace, not in a tight loop.
                next = next.min(tokio::time::Instant::now() + Duration::from_millis(200));
                break;
            }
            if count < BATCH {
                break;
            }
        }
    }
}

/// Looks for gateways whose lease ran out, and ends the connections of those it claims.
async fn sweep(inner: Arc<Inner>, cx: LeaseTasks) {
    let claim_script = ::redis::Script::new(CLAIM_SCRIPT);
    let mut ticks = tokio::time::interval(SWEEP.min(inner.lease / 2));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mut conn = inner.commands.get();
        let expired: Vec<String> = match conn.zrangebyscore_limit(GATEWAYS, "-inf", now_ms(), 0, 10).await {
            Ok(expired) => expired,
            Err(error) => {
                inner.commands.failed(&error);
                continue;
            }
        };
        let me = inner.state().id.clone();
        for dead in expired.into_iter().filter(|id| *id != me) {
            let keys = Keys::of(&dead);
            let claimed: Result<i64, _> = claim_script
                .key(&keys.lease)
                .key(&keys.claim)
                .arg(&me)
                .arg(CLAIM.as_millis() as u64)
                .invoke_async(&mut conn)
                .await;
            if claimed == Ok(1) {
                reap(&inner, &cx, &dead).await;
            }
        }
    }
}

/// Ends every connection of the dead gateway `dead` for the component, then leaves its tombstone.
async fn reap(inner: &Inner, cx: &LeaseTasks, dead: &str) {
    let keys = Keys::of(dead);
    let mut conn = inner.commands.get();
    let records: HashMap<String, Vec<u8>> = match conn.hgetall(&keys.records).await {
        Ok(records) => records,
        Err(error) => {
            warn!(%error, gateway = dead, "cannot read a dead gateway's connections; another sweep will");
            let _: Result<(), _> = conn.del(&keys.claim).await;
            return;
        }
    };
    info!(
        gateway = dead,
        connections = records.len(),
        "a gateway's lease ran out; ending its connections for the component"
    );
    cx.metrics.gateways_reaped.inc();
    let sessions: Vec<Session> = records
        .iter()
        .filter_map(|(id, record)| {
            let session = Session::from_record(id, record);
            if session.is_none() {
                warn!(gateway = dead, connection = %id, "an unreadable connection record; skipped");
            }
            session
        })
        .collect();
    let deliveries = futures_util::stream::iter(sessions.into_iter().map(|session| {
        let cx = cx.clone();
        let mut conn = inner.commands.get();
        let records = keys.records.clone();
        let claim = keys.claim.clone();
        async move {
            let id = session.id.clone();
            (cx.deliver)(session).await;
            cx.metrics.connections_reaped.inc();
            // Done with it, and still at work: the claim holds.
            let _: Result<(), _> = ::redis::pipe()
                .hdel(&records, &id)
                .pexpire(&claim, CLAIM.as_millis() as i64)
                .query_async(&mut conn)
                .await;
        }
    }));
    deliveries.buffer_unordered(CONCURRENT_DISCONNECTS).for_each(|()| async {}).await;
    // The gateway's own keys (one slot), then the index (another slot on a Redis Cluster).
    let done: Result<(), _> = ::redis::pipe()
        .del(&keys.records)
        .pexpire(&keys.claim, TOMBSTONE.as_millis() as i64)
        .query_async(&mut conn)
        .await;
    let done: Result<(), _> = match done {
        Ok(()) => conn.zrem(GATEWAYS, dead).await,
        Err(error) => Err(error),
    };
    if let Err(error) = done {
        warn!(%error, gateway = dead, "cannot mark a reaped gateway done");
    }
}
