//! Gateways on one broker, as the channel suites run them: one gateway process on the in-memory
//! broker, or two on one real `redis-server`, or two on a real three-primary Redis Cluster.

use std::net::SocketAddr;

use super::process::{Spawned, spawn};
use super::redis::Redis;
use super::redis_cluster::RedisCluster;

/// Which broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broker {
    Memory,
    Redis,
    RedisCluster,
}

/// The gateways and, with Redis, the Redis they share.
pub struct Cluster {
    pub gateways: Vec<Spawned>,
    pub redis: Option<Redis>,
    /// With [`Broker::RedisCluster`].
    pub shards: Option<RedisCluster>,
    args: Vec<String>,
}

impl Cluster {
    /// One gateway on the in-memory broker, or two on one Redis; `extra` arguments for each.
    pub async fn start(broker: Broker, extra: &[&str]) -> Cluster {
        let redis = match broker {
            Broker::Memory => None,
            Broker::Redis => Some(Redis::start().await),
            Broker::RedisCluster => return Self::on_cluster(RedisCluster::start(false).await, extra).await,
        };
        Self::on(redis, extra).await
    }

    /// Two gateways on the Redis Cluster `shards`.
    pub async fn on_cluster(shards: RedisCluster, extra: &[&str]) -> Cluster {
        let mut args = vec!["--no-push".to_owned(), "--redis".to_owned(), shards.url()];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut cluster = Cluster { gateways: Vec::new(), redis: None, shards: Some(shards), args };
        for _ in 0..2 {
            let gateway = cluster.spawn().await;
            cluster.gateways.push(gateway);
        }
        cluster
    }

    /// Two gateways on `redis` (one gateway on the in-memory broker for `None`).
    pub async fn on(redis: Option<Redis>, extra: &[&str]) -> Cluster {
        let mut args = vec!["--no-push".to_owned()];
        if let Some(redis) = &redis {
            args.extend(["--redis".to_owned(), redis.url()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let count = if redis.is_some() { 2 } else { 1 };
        let mut cluster = Cluster { gateways: Vec::new(), redis, shards: None, args };
        for _ in 0..count {
            let gateway = cluster.spawn().await;
            cluster.gateways.push(gateway);
        }
        cluster
    }

    async fn spawn(&self) -> Spawned {
        spawn(&self.args.iter().map(String::as_str).collect::<Vec<_>>()).await
    }

    /// SIGKILLs gateway `i` and starts another in its place (on new ports); the dead one's log.
    pub async fn restart(&mut self, i: usize) -> String {
        let log = self.gateways.remove(i).kill().await;
        let fresh = self.spawn().await;
        self.gateways.insert(i, fresh);
        log
    }

    /// Every gateway's (public, admin) addresses.
    pub fn targets(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.gateways.iter().map(|g| (g.addr, g.admin)).collect()
    }

    /// The public address of gateway `i` (any number: they are taken in turn).
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.gateways[i % self.gateways.len()].addr
    }

    /// The admin address of gateway `i`.
    pub fn admin(&self, i: usize) -> SocketAddr {
        self.gateways[i % self.gateways.len()].admin
    }
}
