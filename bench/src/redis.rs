//! A throwaway `redis-server` for the `publish` variant with two gateways: loopback only, a free
//! port, persistence off (the workload measures the publish path, not fsync).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub struct Redis {
    child: Child,
    pub url: String,
}

pub async fn start(program: &Path) -> anyhow::Result<Redis> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
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
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline || redis.child.try_wait()?.is_some() {
            redis.stop().await;
            bail!("redis-server did not listen on {port} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
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
