//! Pushpin as a peer for `app-echo` and `publish`: Pushpin (the Debian package, run as this user
//! with a config of our own in a temp dir) in front of the project's component, which the gateway's
//! embedded host serves over plain HTTP. Pushpin turns each WebSocket into WebSocket-over-HTTP
//! requests to the backend (`over_http` in the routes file), exactly as the gateway does
//! in-process, so only the WebSocket side differs.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::procfs;
use crate::servers::{self, Running, Server, Spec, free_port};

/// A running Pushpin and its backend.
pub struct Pushpin {
    runner: Child,
    backend: Server,
    dir: PathBuf,
    /// Where clients connect (condure's HTTP/WebSocket port).
    pub addr: String,
    /// Pushpin's HTTP publish API (`push_in_http_port`, 5561 by default).
    pub publish_url: String,
}

/// The config: Debian's `/etc/pushpin/pushpin.conf` with every path in `dir` and every port free,
/// zurl started by the runner on IPC sockets in `dir` (Pushpin 1.36's proxy makes its requests to the
/// backend through zurl; Debian's config leaves zurl out of `services` and expects a system zurl at
/// `/var/run/zurl`, and without one every connection gets `502`), and the handler's publish rate
/// limit lifted. Pushpin's default `message_rate=2500` caps the
/// deliveries of all publications together at 2,500 a second (`handlerengine.cpp`: one rate-limited
/// action per subscriber and item), which would measure the limit, not Pushpin.
fn config(dir: &Path, http: u16, publish: u16, ports: [u16; 3]) -> String {
    let d = dir.display();
    let [push_in, push_sub, command] = ports;
    // Pushpin signs its requests to the component as the gateway does (Grip-Sig), with the key the
    // backend gateway's embedded component verifies with.
    let key = servers::GRIP_KEY;
    format!(
        "[global]
include=/usr/lib/pushpin/internal.conf
rundir={d}/run
ipc_prefix=bench-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port={http}
logdir={d}/log
log_level=2
client_buffer_size=8192
client_maxconn=50000
condure_bin=condure

[proxy]
zurl_out_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in
zurl_out_stream_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in-stream
zurl_in_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-out
routesfile={d}/routes
debug=false
auto_cross_origin=false
sig_iss=pushpin
sig_key={key}
updates_check=off

[handler]
push_in_spec=tcp://127.0.0.1:{push_in}
push_in_sub_specs=tcp://127.0.0.1:{push_sub}
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port={publish}
push_in_http_max_headers_size=10000
push_in_http_max_body_size=1000000
stats_spec=ipc://{{rundir}}/{{ipc_prefix}}stats
command_spec=tcp://127.0.0.1:{command}
message_rate=10000000
message_hwm=10000000
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
"
    )
}

/// Starts the backend (`backend` is the gateway's spec, serving the component), then Pushpin with
/// a route to it, and waits until Pushpin's ports accept connections.
pub async fn start(pushpin: &Path, backend: &Spec) -> anyhow::Result<Pushpin> {
    let backend = servers::start(backend).await.context("starting Pushpin's backend")?;
    let port = |s: &str| s.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
    let backend_port = port(&backend.addr).context("backend address")?;
    let dir = std::env::temp_dir().join(format!("sidestream-bench-pushpin-{}", std::process::id()));
    for sub in ["run", "log"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let (http, publish) = (free_port()?, free_port()?);
    let ports = [free_port()?, free_port()?, free_port()?];
    std::fs::write(dir.join("pushpin.conf"), config(&dir, http, publish, ports))?;
    // `over_http`: WebSocket connections become WebSocket-over-HTTP requests to the backend.
    std::fs::write(dir.join("routes"), format!("* 127.0.0.1:{backend_port},over_http\n"))?;
    let runner = Command::new(pushpin)
        .arg("--config")
        .arg(dir.join("pushpin.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", pushpin.display()))?;
    let mut pp = Pushpin {
        runner,
        backend,
        dir,
        addr: format!("127.0.0.1:{http}"),
        publish_url: format!("http://127.0.0.1:{publish}/publish/"),
    };
    for p in [http, publish] {
        if let Err(e) = servers::wait_for_port(p, &mut pp.runner, Duration::from_secs(30)).await {
            let log = std::fs::read_to_string(pp.dir.join("log/pushpin-proxy.log")).unwrap_or_default();
            pp.stop().await;
            bail!("Pushpin {e:#}: {}", log.lines().last().unwrap_or(""));
        }
    }
    // The proxy and handler connect to condure over ZeroMQ after condure listens: give them a
    // moment, so the first handshakes do not race the internal sockets.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(pp)
}

impl Pushpin {
    /// Every process of the server under test: the runner and what it started (condure,
    /// pushpin-proxy, pushpin-handler), and the backend.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = self.runner.id().map(procfs::tree).unwrap_or_default();
        pids.extend(self.backend.pid().ok());
        pids
    }

    /// SIGTERM to the runner, which stops its services; SIGKILL to whatever is left after 10 s.
    pub async fn stop(mut self) {
        let tree = self.runner.id().map(procfs::tree).unwrap_or_default();
        if let Some(pid) = self.runner.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.runner.wait()).await;
        for pid in tree.iter().skip(1) {
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status().await;
            }
        }
        let _ = self.runner.start_kill();
        self.backend.stop().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Running for Pushpin {
    fn stop(self) -> impl Future<Output = ()> {
        Pushpin::stop(self)
    }
}
