//! The lease's background work: renewing it with the records' changes, and looking for gateways
//! whose lease ran out to end their connections.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ::redis::AsyncCommands;
use futures_util::StreamExt;
use tracing::{info, warn};

use super::metrics::{Metrics, Renewal};
use super::state::{BATCH, Change, GATEWAYS, Inner, Keys, now_ms};
use crate::apps::session::Session;

/// What sends a dead gateway's connection its `DISCONNECT` (with the usual retries): given to the
/// leases by the wiring, so they need not know how.
pub type Deliver = Arc<dyn Fn(Session) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What the lease tasks are given.
#[derive(Clone)]
pub struct LeaseTasks {
    pub metrics: Arc<Metrics>,
    pub deliver: Deliver,
}

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

/// Writes changes as they come and renews the lease every third of it.
pub(super) async fn renew(inner: Arc<Inner>, cx: LeaseTasks) {
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
                (Ok(1), Ok(())) => Renewal::Ok,
                (Ok(1), Err(error)) | (Err(error), _) => {
                    inner.commands.failed(&error);
                    if !failing {
                        warn!(%error, "cannot renew this gateway's lease in Redis; trying again");
                    }
                    inner.give_back(changes);
                    Renewal::Failed
                }
                (Ok(_), _) => {
                    inner.reaped(&cx.metrics);
                    break;
                }
            };
            cx.metrics.renewal(result);
            if failing && result == Renewal::Ok {
                info!("renewed this gateway's lease in Redis again");
            }
            failing = result == Renewal::Failed;
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
pub(super) async fn sweep(inner: Arc<Inner>, cx: LeaseTasks) {
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
pub(super) async fn reap(inner: &Inner, cx: &LeaseTasks, dead: &str) {
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
