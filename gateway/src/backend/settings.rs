//! What the component's side is built from: the wiring makes it from the flags.

use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

/// Where requests for the component go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComponentSource {
    /// The embedded wasmtime host, loading this file.
    Component(PathBuf),
    /// A Spin runtime over HTTP.
    Upstream(Uri),
}

/// The backend's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub source: ComponentSource,
    /// `--grip-key-file`; without it an embedded component gets a new random key.
    pub grip_key_file: Option<PathBuf>,
    /// `--upstream-timeout`.
    pub upstream_timeout: Duration,
    pub host: HostSettings,
}

/// The embedded host's limits (unused with `--upstream`).
#[derive(Clone, Debug)]
pub struct HostSettings {
    /// `--component-memory-mib`: each instance's linear memory.
    pub memory_mib: u64,
    /// `--component-pool-resident-mib`.
    pub pool_resident_mib: u64,
    /// `--component-instances`: instances at once.
    pub instances: u32,
    /// `--component-timeout`: one request's deadline.
    pub timeout: Duration,
}
