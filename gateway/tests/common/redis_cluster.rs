//! A real three-primary Redis Cluster (Debian's `redis-server`, which `make test` installs):
//! `redis-server --cluster-enabled yes` on free loopback ports, each in a directory of its own,
//! joined with `redis-cli --cluster create`; optionally a replica per primary. Never a mock.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::redis::{command_on, free_port, ping};
use super::{STEP, eventually_for, within};

/// How long a primary may be unreachable before the cluster fails it over: short, so a test's
/// failover takes about two seconds.
const NODE_TIMEOUT_MS: u32 = 1000;

struct Node {
    child: Option<Child>,
    port: u16,
}

pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = &mut node.child {
                let _ = child.start_kill();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `port`'s cluster bus port (10,000 higher) is free.
fn bus_free(port: u16) -> bool {
    port.checked_add(10_000).is_some_and(|bus| std::net::TcpListener::bind(("127.0.0.1", bus)).is_ok())
}

/// A free port whose cluster bus port is free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if bus_free(port) {
            return port;
        }
    }
}

impl RedisCluster {
    /// Three primaries, each with a replica when `replicas`; ready (`cluster_state:ok`, replicas
    /// in sync) when this returns.
    pub async fn start(replicas: bool) -> Self {
        let count = if replicas { 6 } else { 3 };
        let first = free_port();
        let dir =
            std::env::temp_dir().join(format!("sidestream-redis-cluster-{}-{first}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = RedisCluster { nodes: Vec::new(), dir };
        for i in 0..count {
            let node = cluster.start_node(if i == 0 { Some(first) } else { None }).await;
            cluster.nodes.push(node);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        create.args(cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        create.args(["--cluster-replicas", if replicas { "1" } else { "0" }, "--cluster-yes"]);
        let out = within("redis-cli --cluster create", create.stdin(Stdio::null()).output()).await.unwrap();
        assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stdout));
        cluster.ready().await;
        cluster
    }

    /// A node on a port of its own that answers PING. A port (or its cluster bus port, 10,000
    /// higher) taken meanwhile by another process on a shared machine, its redis-server exits at
    /// once: it is started again on other ports, up to five times.
    async fn start_node(&self, port: Option<u16>) -> Node {
        let mut port = port.filter(|p| bus_free(*p)).unwrap_or_else(cluster_port);
        for _ in 0..5 {
            let mut child = self.launch(port);
            let answered = tokio::time::timeout(STEP, async {
                loop {
                    if ping(port).await {
                        return true;
                    }
                    if child.try_wait().ok().flatten().is_some() {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            match answered {
                Ok(true) => return Node { child: Some(child), port },
                Ok(false) => port = cluster_port(),
                Err(_) => panic!("timed out: a cluster node on {port} answers PING"),
            }
        }
        panic!("no cluster node started on five pairs of free ports");
    }

    fn launch(&self, port: u16) -> Child {
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--dir"])
            .arg(&dir)
            .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--appendonly", "no", "--save", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is not installed: `make test` installs it (scripts/redis.sh)")
    }

    /// Waits until every live node sees the cluster whole and every replica is in sync.
    pub async fn ready(&self) {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let port = node.port;
            eventually_for("the cluster is ok on every node", Duration::from_secs(30), async || {
                let info = command_on(port, "CLUSTER INFO").await;
                let replication = command_on(port, "INFO replication").await;
                info.contains("cluster_state:ok")
                    && (replication.contains("role:master") || replication.contains("master_link_status:up"))
            })
            .await;
        }
    }

    /// `redis+cluster://` with every primary's address.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().take(3).map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// A live node's port, for commands about the whole cluster.
    fn any(&self) -> u16 {
        self.nodes.iter().find(|n| n.child.is_some()).expect("a live node").port
    }

    /// The port of the primary that owns `channel`'s slot (its keys' hash tag is the channel).
    pub async fn owner(&self, channel: &str) -> u16 {
        let slot: u16 = command_on(self.any(), &format!("CLUSTER KEYSLOT {channel}"))
            .await
            .trim_start_matches(':')
            .trim()
            .parse()
            .expect("a slot");
        let nodes = command_on(self.any(), "CLUSTER NODES").await;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            for range in &fields[8..] {
                let (from, to) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(from), Ok(to)) = (from.trim().parse::<u16>(), to.trim().parse::<u16>())
                    && (from..=to).contains(&slot)
                {
                    let port = fields[1].split(['@', ':']).nth(1).expect("host:port@bus");
                    return port.parse().expect("a port");
                }
            }
        }
        panic!("no primary owns slot {slot}: {nodes}");
    }

    /// One channel name per primary: `prefix-N` for the first N whose slot that primary owns.
    pub async fn channel_per_shard(&self, prefix: &str) -> Vec<String> {
        let mut found: Vec<(u16, String)> = Vec::new();
        for n in 0.. {
            let name = format!("{prefix}-{n}");
            let owner = self.owner(&name).await;
            if !found.iter().any(|(port, _)| *port == owner) {
                found.push((owner, name));
            }
            if found.len() == 3 {
                return found.into_iter().map(|(_, name)| name).collect();
            }
        }
        unreachable!()
    }

    /// The ports of the live primaries.
    pub async fn primaries(&self) -> Vec<u16> {
        let mut ports = Vec::new();
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            if command_on(node.port, "INFO replication").await.contains("role:master") {
                ports.push(node.port);
            }
        }
        ports
    }

    /// `CLIENT KILL TYPE pubsub` on every live node: the gateways' subscriptions are dropped.
    pub async fn kill_pubsub(&self) {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            command_on(node.port, "CLIENT KILL TYPE pubsub").await;
        }
    }

    /// The replica of the primary on `primary`.
    async fn replica_of(&self, primary: u16) -> u16 {
        for node in self.nodes.iter().filter(|n| n.child.is_some() && n.port != primary) {
            let replication = command_on(node.port, "INFO replication").await;
            if replication.contains(&format!("master_port:{primary}")) {
                return node.port;
            }
        }
        panic!("no replica of {primary}");
    }

    /// SIGKILLs the primary on `primary`, as on a lost node; returns once its replica has been
    /// promoted and the cluster is whole again. The time from the kill to then.
    pub async fn kill_primary(&mut self, primary: u16) -> Duration {
        let replica = self.replica_of(primary).await;
        let node = self.nodes.iter_mut().find(|n| n.port == primary).expect("a node");
        let mut child = node.child.take().expect("running");
        let killed = std::time::Instant::now();
        child.start_kill().unwrap();
        within("the primary dies", child.wait()).await.unwrap();
        eventually_for("its replica is promoted", Duration::from_secs(30), async || {
            command_on(replica, "INFO replication").await.contains("role:master")
                && command_on(replica, "CLUSTER INFO").await.contains("cluster_state:ok")
        })
        .await;
        killed.elapsed()
    }

    /// Starts the node on `port` again (it was killed), with its cluster config: a primary that
    /// was failed over comes back as its successor's replica. Returns once the cluster is ready.
    pub async fn restart(&mut self, port: u16) {
        let child = self.launch(port);
        let node = self.nodes.iter_mut().find(|n| n.port == port).expect("a node");
        assert!(node.child.is_none(), "kill it first");
        node.child = Some(child);
        eventually_for("the node answers PING", STEP, async || ping(port).await).await;
        self.ready().await;
    }

    /// A graceful failover (`CLUSTER FAILOVER` on its replica) of the primary on `primary`.
    pub async fn failover(&self, primary: u16) {
        let replica = self.replica_of(primary).await;
        let answer = command_on(replica, "CLUSTER FAILOVER").await;
        assert!(answer.starts_with("+OK"), "CLUSTER FAILOVER: {answer}");
        eventually_for("the replica takes over", Duration::from_secs(30), async || {
            command_on(replica, "INFO replication").await.contains("role:master")
        })
        .await;
        self.ready().await;
    }
}
