//! The `publish` variant through Redis: a throwaway `redis-server` (loopback only, a free port,
//! persistence off: the workload measures the publish path, not fsync) and two gateways on it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::servers::{self, Running, Server, Spec, free_port};

pub struct Redis {
    child: Child,
    pub url: String,
}

pub async fn start(program: &Path) -> anyhow::Result<Redis> {
    let port = free_port()?;
    let child = Command::new(program)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
        .args([
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--dir",
            &std::env::temp_dir().display().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let mut redis = Redis { child, url: format!("redis://127.0.0.1:{port}") };
    if let Err(e) = servers::wait_for_port(port, &mut redis.child, Duration::from_secs(10)).await {
        redis.stop().await;
        bail!("redis-server {e:#}");
    }
    Ok(redis)
}

impl Redis {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// A fresh Redis and two gateways on it.
pub struct Pair {
    pub gateways: [Server; 2],
    pub redis: Redis,
}

/// Starts Redis, then two gateways from `gateway` with `--redis URL` added; whatever started is
/// stopped again when a later step fails.
pub async fn start_pair(redis_server: &Path, gateway: &Spec) -> anyhow::Result<Pair> {
    let redis = start(redis_server).await?;
    let mut spec = gateway.clone();
    spec.args.extend(["--redis".into(), redis.url.clone()]);
    let first = match servers::start(&spec).await {
        Ok(g) => g,
        Err(e) => {
            redis.stop().await;
            return Err(e);
        }
    };
    match servers::start(&spec).await {
        Ok(second) => Ok(Pair { gateways: [first, second], redis }),
        Err(e) => {
            first.stop().await;
            redis.stop().await;
            Err(e)
        }
    }
}

impl Pair {
    /// Both gateways' public addresses.
    pub fn addrs(&self) -> Vec<String> {
        self.gateways.iter().map(|g| g.addr.clone()).collect()
    }

    /// Every process of the server under test: both gateways and Redis.
    pub fn pids(&self) -> Vec<u32> {
        self.gateways.iter().filter_map(|g| g.pid().ok()).chain(self.redis.pid()).collect()
    }
}

impl Running for Pair {
    async fn stop(self) {
        let [a, b] = self.gateways;
        a.stop().await;
        b.stop().await;
        self.redis.stop().await;
    }
}

/// A three-primary Redis Cluster (no replicas, persistence off) on free loopback ports, made with
/// `redis-cli --cluster create`.
pub struct Shards {
    children: Vec<Child>,
    ports: Vec<u16>,
    dir: std::path::PathBuf,
    pub url: String,
}

pub async fn start_cluster(program: &Path) -> anyhow::Result<Shards> {
    let dir = std::env::temp_dir().join(format!("sidestream-bench-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut shards = Shards { children: Vec::new(), ports: Vec::new(), dir, url: String::new() };
    for _ in 0..3 {
        let port = free_port()?;
        let node_dir = shards.dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir)?;
        let mut child = Command::new(program)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--dir"])
            .arg(&node_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        servers::wait_for_port(port, &mut child, Duration::from_secs(10)).await?;
        shards.children.push(child);
        shards.ports.push(port);
    }
    let nodes: Vec<String> = shards.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&nodes)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null())
        .output()
        .await
        .context("redis-cli --cluster create")?;
    if !out.status.success() {
        bail!("redis-cli --cluster create: {}", String::from_utf8_lossy(&out.stdout));
    }
    for port in &shards.ports {
        let ok = async {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .await;
                if info.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok")) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), ok).await.context("the cluster is not ok")?;
    }
    shards.url = format!("redis+cluster://{}", nodes.join(","));
    Ok(shards)
}

impl Shards {
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(Child::id).collect()
    }

    pub async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
