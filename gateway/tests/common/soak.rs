//! `make soak`'s faults: on one Redis, or on a Redis Cluster with a replica per primary.

use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;

use super::cluster::Cluster;
use super::ghost;
use super::workload::{self, Targets};

/// Now and then one fault of four: a gateway SIGKILLed (and another started), Redis killed and
/// restarted with its append-only file, the gateways' pub/sub connections killed, Redis paused
/// past the lease; on a Redis Cluster, see [`cluster_fault`]. Ghosts go to one of `rooms`.
/// Returns how many were injected.
pub async fn inject_faults(
    (cluster, rooms): (&mut Cluster, usize),
    targets: &Targets,
    length: Duration,
    rng: &mut SmallRng,
) -> usize {
    let end = tokio::time::Instant::now() + length;
    let mut count = 0;
    while tokio::time::Instant::now() + Duration::from_secs(30) < end {
        tokio::time::sleep(Duration::from_secs(rng.random_range(8..20))).await;
        count += 1;
        if cluster.shards.is_some() {
            cluster_fault((cluster, rooms), targets, count, rng).await;
            continue;
        }
        match rng.random_range(0..4) {
            0 => {
                let i = rng.random_range(0..cluster.gateways.len());
                eprintln!("fault {count}: SIGKILL gateway {i}");
                cluster.restart(i).await;
                *targets.write().unwrap() = cluster.targets();
            }
            1 => {
                eprintln!("fault {count}: Redis killed and restarted from its AOF");
                let redis = cluster.redis.as_mut().expect("redis");
                redis.kill().await;
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..2000))).await;
                redis.restart().await;
            }
            2 => {
                eprintln!("fault {count}: CLIENT KILL TYPE pubsub");
                cluster.redis.as_ref().expect("redis").command("CLIENT KILL TYPE pubsub").await;
            }
            _ => {
                eprintln!("fault {count}: Redis paused past the lease");
                cluster.redis.as_ref().expect("redis").command("CLIENT PAUSE 4500 ALL").await;
                tokio::time::sleep(Duration::from_millis(4500)).await;
            }
        }
    }
    tokio::time::sleep_until(end).await;
    count
}

/// One fault on a Redis Cluster.
async fn cluster_fault(
    (cluster, rooms): (&mut Cluster, usize),
    targets: &Targets,
    count: usize,
    rng: &mut SmallRng,
) {
    let fault = rng.random_range(0..5);
    if fault == 4 {
        let room = workload::room(rng.random_range(0..rooms));
        eprintln!("fault {count}: a ghost in {room} (delivered, never stored, its position taken next)");
        ghost::haunt(cluster, &room, count).await;
        return;
    }
    if fault == 0 {
        let i = rng.random_range(0..cluster.gateways.len());
        eprintln!("fault {count}: SIGKILL gateway {i}");
        cluster.restart(i).await;
        *targets.write().unwrap() = cluster.targets();
        return;
    }
    let shards = cluster.shards.as_mut().expect("a cluster");
    let primaries = shards.primaries().await;
    let primary = primaries[rng.random_range(0..primaries.len())];
    match fault {
        1 => {
            let took = shards.kill_primary(primary).await;
            eprintln!("fault {count}: primary {primary} SIGKILLed, its replica promoted after {took:?}");
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..2000))).await;
            shards.restart(primary).await;
        }
        2 => {
            eprintln!("fault {count}: CLUSTER FAILOVER of primary {primary}");
            shards.failover(primary).await;
        }
        _ => {
            eprintln!("fault {count}: CLIENT KILL TYPE pubsub on every node");
            shards.kill_pubsub().await;
        }
    }
}
