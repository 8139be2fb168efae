//! A real `redis-server` (Debian's package, which `make test` installs) on a free port, in a
//! directory of its own; never a mock.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::{STEP, within};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    durable: bool,
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Redis {
    /// A Redis that keeps nothing on disk.
    pub async fn start() -> Self {
        Self::launch(false).await
    }

    /// A Redis that writes every command to its append-only file before answering
    /// (`appendfsync always`): what the README advises for a history that survives restarts.
    pub async fn durable() -> Self {
        Self::launch(true).await
    }

    async fn launch(durable: bool) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sidestream-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Redis { child: None, port, dir, durable };
        redis.run().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn run(&mut self) {
        let persistence: &[&str] = if self.durable {
            &["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        } else {
            &["--appendonly", "no", "--save", ""]
        };
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--dir"])
            .arg(&self.dir)
            .args(persistence)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is not installed: `make test` installs it (scripts/redis.sh)");
        self.child = Some(child);
        let port = self.port;
        within("redis-server answers PING", async {
            loop {
                if ping(port).await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// SIGKILL: Redis dies at once, as on a lost node.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.start_kill().unwrap();
        within("redis-server dies", child.wait()).await.unwrap();
    }

    /// Starts it again on the same port and directory (with what it kept on disk).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "kill it first");
        self.run().await;
    }

    /// Runs one command (inline form) and returns Redis's raw answer.
    pub async fn command(&self, line: &str) -> String {
        command_on(self.port, line).await
    }
}

/// Runs one command (inline form) on the Redis on `port` and returns its raw answer.
pub async fn command_on(port: u16, line: &str) -> String {
    let mut stream = within("connect to redis", TcpStream::connect(("127.0.0.1", port))).await.unwrap();
    stream.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
    let mut buf = vec![0; 64 * 1024];
    let n = tokio::time::timeout(STEP, stream.read(&mut buf)).await.expect("redis answers").unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Runs one command given as its arguments (any bytes in them) on the Redis on `port` and returns
/// Redis's raw answer.
pub async fn command_args_on(port: u16, args: &[&str]) -> String {
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    let mut stream = within("connect to redis", TcpStream::connect(("127.0.0.1", port))).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0; 64 * 1024];
    let n = tokio::time::timeout(STEP, stream.read(&mut buf)).await.expect("redis answers").unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

pub async fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else { return false };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0; 16];
    matches!(tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await, Ok(Ok(n)) if buf[..n].starts_with(b"+PONG"))
}
