//! Command-line and environment configuration: one struct, validated before anything binds.

mod component;
mod redis;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use http::Uri;

pub use crate::backend::ComponentSource;
pub use crate::forwarded::Cidr;
pub use crate::logging::LogFormat;
pub use crate::secret::read_secret;

/// The conventional path of the release component, relative to the repository root. Used when
/// neither `--component` nor `--upstream` is given.
pub const DEFAULT_COMPONENT: &str = "target/wasm32-wasip2/release/sidestream_component.wasm";

/// The longest any duration flag may be.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The largest `--max-message-size`.
pub const MAX_MESSAGE_SIZE: usize = 1 << 30;

/// sidestream's gateway: WebSockets on `/ws`, health and metrics, and the front door to the Spin
/// component (embedded, or a Spin runtime upstream).
#[derive(Clone, Debug, Parser)]
#[command(name = "sidestream-gateway", version, about, max_term_width = 100)]
pub struct Config {
    /// Address of the public listener: WebSockets and the component's paths (port 0 picks a free
    /// port; the bound address is logged).
    #[arg(long, env = "SIDESTREAM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Address of the admin listener: /livez, /readyz and /metrics, for the cluster only (port 0 picks
    /// a free port; the bound address is logged).
    #[arg(long, env = "SIDESTREAM_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,

    /// Serve the component in-process from this .wasm file (embedded wasmtime host). Without it and
    /// without --upstream, the release build's conventional path is used.
    #[arg(long, env = "SIDESTREAM_COMPONENT", conflicts_with = "upstream")]
    pub component: Option<PathBuf>,

    /// Reload the component when its file changes (as SIGHUP does): a new build is compiled off the
    /// serving path and swapped in, and no socket closes. `make run` turns it on.
    #[arg(long, env = "SIDESTREAM_WATCH")]
    pub watch: bool,

    /// Proxy every non-gateway path to this Spin runtime (for example http://127.0.0.1:80 in the pod).
    #[arg(long, env = "SIDESTREAM_UPSTREAM", value_parser = parse_upstream)]
    pub upstream: Option<Uri>,

    /// How long the upstream may take to answer (then 504) and to send the next piece of a body
    /// (then the response is cut off).
    #[arg(long, env = "SIDESTREAM_UPSTREAM_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,

    /// Shortest delay between two pushes on a connection.
    #[arg(long, env = "SIDESTREAM_PUSH_MIN", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub push_min: Duration,

    /// Longest delay between two pushes on a connection (0 together with --push-min 0: no pushes).
    #[arg(long, env = "SIDESTREAM_PUSH_MAX", default_value = "3s", value_parser = humantime::parse_duration)]
    pub push_max: Duration,

    /// Turn random pushes off: /ws only echoes.
    #[arg(long, env = "SIDESTREAM_NO_PUSH")]
    pub no_push: bool,

    /// Seed for the push schedules, for reproducible runs (each connection derives its own stream).
    #[arg(long, env = "SIDESTREAM_SEED")]
    pub seed: Option<u64>,

    /// Interval between keepalive Pings on each WebSocket.
    #[arg(long, env = "SIDESTREAM_PING_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,

    /// Close a WebSocket after this long without any frame from the client.
    #[arg(long, env = "SIDESTREAM_IDLE_TIMEOUT", default_value = "75s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Largest WebSocket message accepted, in bytes (larger: close 1009).
    #[arg(long, env = "SIDESTREAM_MAX_MESSAGE_SIZE", default_value_t = 64 * 1024)]
    pub max_message_size: usize,

    /// Kernel send and receive buffer of each WebSocket's socket, in bytes (SO_SNDBUF and SO_RCVBUF;
    /// the kernel doubles the value for its bookkeeping). Bounds what a client that stops reading
    /// costs in kernel memory, which counts against the container's limit; 0 leaves the sizes to the
    /// kernel's autotuning (megabytes per stuck connection).
    #[arg(long, env = "SIDESTREAM_SOCKET_BUFFER", default_value_t = 16 * 1024)]
    pub socket_buffer: usize,

    /// Most WebSockets open at once; beyond it upgrades get 503 with Retry-After.
    #[arg(long, env = "SIDESTREAM_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Origin allowed to open WebSockets besides the request's own host (repeatable; `*` allows any).
    #[arg(long = "allowed-origin", env = "SIDESTREAM_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Host name a loopback listener answers besides localhost and loopback addresses (repeatable;
    /// `*` allows any). Guards a developer's machine against DNS rebinding.
    #[arg(long = "allowed-host", env = "SIDESTREAM_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Network whose X-Forwarded-For, -Proto and -Host are believed (repeatable CIDR, such as
    /// 10.0.0.0/8). From any other peer they are replaced.
    #[arg(long = "trusted-proxy", env = "SIDESTREAM_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<Cidr>,

    /// On SIGTERM, how long everything in flight (WebSockets, HTTP requests) may take to finish before
    /// the process exits (keep it below the pod's terminationGracePeriodSeconds).
    #[arg(long, env = "SIDESTREAM_DRAIN_TIMEOUT", default_value = "25s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// On SIGTERM, the window over which WebSockets get their Close 1001, so their reconnects do not
    /// reach the other replicas as one burst (at most half of --drain-timeout, leaving the rest for
    /// the closing handshakes).
    #[arg(long, env = "SIDESTREAM_DRAIN_SPREAD", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_spread: Duration,

    /// How long a client may take to send a complete request head.
    #[arg(long, env = "SIDESTREAM_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Memory cap of one component instance (embedded host), in MiB: all its linear memories together.
    #[arg(long, env = "SIDESTREAM_COMPONENT_MEMORY_MIB", default_value_t = 64)]
    pub component_memory_mib: u64,

    /// Deadline of one component request (embedded host), from arrival to the end of the response
    /// body; a request that has no answer by then gets 504, a body still running is cut off.
    #[arg(long, env = "SIDESTREAM_COMPONENT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub component_timeout: Duration,

    /// Component instances running at once (embedded host). A request that finds none free within
    /// a short wait gets 503 with Retry-After.
    #[arg(long, env = "SIDESTREAM_COMPONENT_INSTANCES", default_value_t = 256)]
    pub component_instances: u32,

    /// Most bytes of a WebSocket app's events in one request to the component. While that much
    /// waits for the request in flight, the gateway stops reading from the client.
    #[arg(long, env = "SIDESTREAM_APP_BATCH_BYTES", default_value_t = 64 * 1024)]
    pub app_batch_bytes: usize,

    /// Largest answer a WebSocket app's request may get from the component, in bytes (larger: the
    /// connection closes with 1011).
    #[arg(long, env = "SIDESTREAM_APP_MAX_ANSWER_BYTES", default_value_t = 1 << 20)]
    pub app_max_answer_bytes: usize,

    /// More attempts for a WebSocket app's request that did not reach the component, and for a
    /// connection's last CLOSE or DISCONNECT whatever went wrong, with exponential backoff.
    #[arg(long, env = "SIDESTREAM_APP_RETRIES", default_value_t = 5)]
    pub app_retries: u32,

    /// The wait before the first of those attempts; each next one waits twice as long.
    #[arg(long, env = "SIDESTREAM_APP_RETRY_DELAY", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub app_retry_delay: Duration,

    /// Carry channels' publications between gateways, and keep their history, in this Redis
    /// (redis://host:port/db), or this Redis Cluster (redis+cluster://host1:port1,host2:port2: some
    /// of its nodes; sharded pub/sub, Redis 7 or later). Without it one process's channels live
    /// in its memory.
    #[arg(long, env = "SIDESTREAM_REDIS")]
    pub redis: Option<String>,

    /// With --redis: a file holding the password of the URL's user (the URL then carries none), so
    /// the secret stays out of the environment and the process's arguments (a mounted Secret in
    /// Kubernetes). Its surrounding whitespace aside.
    #[arg(long, env = "SIDESTREAM_REDIS_PASSWORD_FILE")]
    pub redis_password_file: Option<PathBuf>,

    /// With --redis: how long this gateway's lease on its connections lasts without renewal. When
    /// a gateway dies without draining, another ends its connections for the component
    /// (DISCONNECT) within about this long plus a second.
    #[arg(long, env = "SIDESTREAM_LEASE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub lease: Duration,

    /// With --redis: a publish is answered 200 only once this many replicas of the channel's
    /// primary have it too (Redis's WAIT, up to 1 s; fewer in time: 503, and a retry with the same
    /// item id repeats nothing). 1 with a replica per primary: a failover then loses nothing that
    /// was answered 200.
    #[arg(long, env = "SIDESTREAM_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,

    /// Publications each channel's history keeps, for clients that come back.
    #[arg(long, env = "SIDESTREAM_HISTORY_SIZE", default_value_t = 1000)]
    pub history_size: usize,

    /// How long a channel's history keeps a publication.
    #[arg(long, env = "SIDESTREAM_HISTORY_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub history_ttl: Duration,

    /// Channels one connection may join.
    #[arg(long, env = "SIDESTREAM_MAX_SUBSCRIPTIONS", default_value_t = 20)]
    pub max_subscriptions: usize,

    /// A file holding the bearer token the publish API asks of requests from outside the pod's
    /// loopback. Without it the publish API asks none (keep the admin port from the internet).
    #[arg(long, env = "SIDESTREAM_PUBLISH_TOKEN_FILE")]
    pub publish_token_file: Option<PathBuf>,

    /// A file holding the key the gateway signs its requests to the component with (`Grip-Sig`,
    /// HS256, as Pushpin signs; at least 16 bytes): the component verifies them with the same key, its
    /// Spin variable `grip_key`. Required with --upstream; an embedded component without it gets a
    /// key generated at start-up.
    #[arg(long, env = "SIDESTREAM_GRIP_KEY_FILE")]
    pub grip_key_file: Option<PathBuf>,

    // --- memory budgets (issue 23) ---
    /// What the embedded host's instance pool may keep resident between requests, in MiB, over all
    /// its slots: each slot's share (this divided by --component-instances) keeps 16 KiB of its
    /// stack and halves the rest between its linear memory and its tables (at most 1 MiB each), so
    /// a reused slot need not fault its pages back in. What running instances use comes on top (at
    /// most --component-memory-mib each)
    #[arg(long, env = "SIDESTREAM_COMPONENT_POOL_RESIDENT_MIB", default_value_t = 64)]
    pub component_pool_resident_mib: u64,

    /// Most bytes one WebSocket app's connection may hold for or from its client: the events
    /// waiting for the component, the request in flight, the component's answer (counted as it
    /// arrives, before it is queued), the outbox, a delayed message, a held publication. At it the
    /// gateway stops reading from the client; an answer that would pass it closes the connection
    /// with 1009. Default: 256 KiB, or more when --app-batch-bytes and --max-message-size need it
    #[arg(long, env = "SIDESTREAM_APP_CONNECTION_BUDGET")]
    pub app_connection_budget: Option<usize>,

    /// Resident memory the whole gateway may use, in bytes. From 90% of it the gateway refuses new
    /// WebSockets with 503, /readyz says not ready, and connections holding messages for clients
    /// that do not read stop being read and are closed with 1008. Default: three quarters of the
    /// container's memory limit (cgroup v2 memory.max), or 2 GiB without one
    #[arg(long, env = "SIDESTREAM_MEMORY_BUDGET")]
    pub memory_budget: Option<u64>,

    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "SIDESTREAM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// The least `--app-connection-budget` may be: a batch, the message that crosses it and one
    /// more being read, the outbox's 32 KiB, and 16 KiB left for an answer.
    pub fn app_budget_floor(&self) -> usize {
        self.app_batch_bytes + 2 * self.max_message_size + (32 + 16) * 1024
    }

    /// `--app-connection-budget`, or its default: 256 KiB, or the floor when that is more.
    pub fn app_budget(&self) -> usize {
        self.app_connection_budget.unwrap_or_else(|| self.app_budget_floor().max(256 * 1024))
    }

    /// The window the drain's closes are spread over: `--drain-spread`, at most half the drain.
    pub fn effective_drain_spread(&self) -> Duration {
        self.drain_spread.min(self.drain_timeout / 2)
    }

    /// The publish API's token, read from `--publish-token-file`.
    pub fn publish_token(&self) -> anyhow::Result<Option<String>> {
        self.publish_token_file.as_deref().map(|path| read_secret("--publish-token-file", path)).transpose()
    }

    /// Whether connections get random pushes at all.
    pub fn pushes_enabled(&self) -> bool {
        !self.no_push && !self.push_max.is_zero()
    }
}

/// Accepts `http://host[:port]` with nothing after the authority but an optional `/`.
fn parse_upstream(value: &str) -> anyhow::Result<Uri> {
    let uri: Uri = value.parse().with_context(|| format!("{value:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("only http:// upstreams are supported (the Spin runtime sits in the same pod)");
    }
    if uri.authority().is_none() {
        bail!("the upstream URL needs a host");
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        bail!("the upstream URL must not have a path or query");
    }
    Ok(uri)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The config the binary would run with for these flags, for tests inside the crate.
    pub(crate) fn parse(args: &[&str]) -> anyhow::Result<Config> {
        let config =
            Config::try_parse_from(std::iter::once("sidestream-gateway").chain(args.iter().copied()))?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.push_min, Duration::from_millis(500));
        assert_eq!(c.push_max, Duration::from_secs(3));
        assert_eq!(c.ping_interval, Duration::from_secs(30));
        assert_eq!(c.idle_timeout, Duration::from_secs(75));
        assert_eq!(c.max_message_size, 65536);
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.drain_timeout, Duration::from_secs(25));
        assert!(c.pushes_enabled());
    }

    #[test]
    fn pushes_turn_off_two_ways() {
        assert!(!parse(&["--no-push"]).unwrap().pushes_enabled());
        assert!(!parse(&["--push-min", "0", "--push-max", "0"]).unwrap().pushes_enabled());
    }

    #[test]
    fn bad_values_are_rejected_with_a_reason() {
        let err = parse(&["--push-min", "5s", "--push-max", "1s"]).unwrap_err().to_string();
        assert!(err.contains("--push-min"), "{err}");
        assert!(parse(&["--listen", "nope"]).is_err());
        assert!(parse(&["--push-min", "soon"]).is_err());
        assert!(parse(&["--max-connections", "0"]).is_err());
        assert!(parse(&["--idle-timeout", "0"]).is_err());
        assert!(parse(&["--upstream", "ftp://x"]).is_err());
        assert!(parse(&["--upstream", "http://x/path"]).is_err());
        assert!(parse(&["--allowed-origin", "not an origin"]).is_err());
        assert!(parse(&["--component", "a.wasm", "--upstream", "http://127.0.0.1:1"]).is_err());
        assert!(parse(&["--log-format", "xml"]).is_err());
    }

    #[test]
    fn values_that_would_overflow_later_are_rejected() {
        for flag in ["--ping-interval", "--idle-timeout", "--header-read-timeout", "--component-timeout"] {
            assert!(parse(&[flag, "18446744073709551615s"]).is_err(), "{flag}");
            assert!(parse(&[flag, "2h"]).is_ok(), "{flag}: two hours is a fine value");
        }
        assert!(parse(&["--push-min", "1s", "--push-max", "18446744073709551615s"]).is_err());
        assert!(parse(&["--max-message-size", "18446744073709551615"]).is_err());
        assert!(parse(&["--max-message-size", "16777216"]).is_ok());
    }

    #[test]
    fn upstream_and_origins_parse() {
        let c = parse(&[
            "--upstream",
            "http://127.0.0.1:3000",
            "--allowed-origin",
            "https://example.com",
            "--allowed-origin",
            "*",
        ])
        .unwrap();
        assert_eq!(c.backend().unwrap(), ComponentSource::Upstream("http://127.0.0.1:3000".parse().unwrap()));
        assert_eq!(c.allowed_origins, ["https://example.com", "*"]);
    }

    #[test]
    fn the_redis_password_comes_from_its_file() {
        use crate::redis_conn::Target;
        fn single(target: Option<Target>) -> ::redis::ConnectionInfo {
            match target {
                Some(Target::Single(info)) => info,
                other => panic!("one Redis: {other:?}"),
            }
        }
        let file = std::env::temp_dir().join(format!("sidestream-redis-password-{}", std::process::id()));
        std::fs::write(&file, "s3cret\n").unwrap();
        let flag = format!("--redis-password-file={}", file.display());
        let c = parse(&["--redis", "redis://sidestream@redis.example:6379/0", &flag]).unwrap();
        let info = single(c.redis_connection().unwrap());
        assert_eq!(info.redis_settings().password(), Some("s3cret"));
        assert_eq!(info.redis_settings().username(), Some("sidestream"));
        let cluster = parse(&["--redis", "redis+cluster://sidestream@r1:7000,r2:7001/0", &flag]).unwrap();
        let Some(Target::Cluster(nodes)) = cluster.redis_connection().unwrap() else { panic!("a cluster") };
        assert_eq!(nodes.len(), 2);
        for node in &nodes {
            assert_eq!(node.redis_settings().password(), Some("s3cret"));
            assert_eq!(node.redis_settings().username(), Some("sidestream"));
        }
        assert_eq!(nodes[1].addr().to_string(), "r2:7001");
        assert!(parse(&[&flag]).is_err(), "a password needs the URL it is for");
        std::fs::write(&file, "\n").unwrap();
        assert!(c.redis_connection().is_err(), "an empty password file is refused");
        std::fs::remove_file(&file).unwrap();
        let plain = parse(&["--redis", "redis://:pw@127.0.0.1:6379"]).unwrap();
        assert_eq!(single(plain.redis_connection().unwrap()).redis_settings().password(), Some("pw"));
        let two = parse(&["--redis", "redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001"]).unwrap();
        let Some(Target::Cluster(nodes)) = two.redis_connection().unwrap() else { panic!("a cluster") };
        assert!(nodes.iter().all(|n| n.redis_settings().password() == Some("pw")));
        for bad in ["redis+cluster://", "redis+cluster://h:1/2", "redis+cluster://h:notaport"] {
            let c = parse(&["--redis", bad]).unwrap();
            assert!(c.redis_connection().is_err(), "{bad}");
        }
        assert!(parse(&["--redis-wait-replicas", "1"]).is_err(), "waiting for replicas needs --redis");
    }

    #[test]
    fn missing_component_says_how_to_build_it() {
        let c = parse(&["--component", "/nonexistent/x.wasm"]).unwrap();
        assert!(c.backend().unwrap_err().to_string().contains("no such file"));
    }
}
