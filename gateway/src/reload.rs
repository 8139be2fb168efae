//! When the embedded component is reloaded: on SIGHUP, and with `--watch` whenever its file
//! changes. What a reload does is the host's ([`crate::backend::host::Host::reload`]: compiled off the
//! serving path, swapped in atomically, the old version kept when the new one does not load);
//! this module decides when, and reports each reload in one log line and
//! `component_reloads_total{result}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::backend::{Backend, Reloaded};
use crate::drain::Tasks;
use crate::logging::clip;
use crate::{label_set, label_values};

/// How often `--watch` looks at the file. A change is taken once the file has held still for one
/// look, so a build that is still writing it is not compiled half-written.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// What a reload touches: the component's side, and the count of reloads.
pub struct Reloads {
    pub backend: Arc<Backend>,
    pub metrics: Metrics,
}

/// The count of reloads, by result.
#[derive(Debug, Default)]
pub struct Metrics {
    reloads: Family<ReloadResult, Counter>,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        Metrics {
            reloads: crate::metrics::add(
                r,
                "component_reloads",
                "Reloads of the embedded component (SIGHUP, --watch), by result: ok, unchanged, failed",
            ),
        }
    }

    fn reload(&self, result: ReloadResult) {
        self.reloads.get_or_create(&result).inc();
    }
}

label_values! {
    /// How a reload went.
    pub enum ReloadResult {
        /// The new version serves from now on.
        Ok = "ok",
        /// The same file as the version serving.
        Unchanged = "unchanged",
        /// Refused: the version serving keeps serving.
        Failed = "failed",
    }
}

label_set!(ReloadResult, "result");

/// Starts listening for SIGHUP and, with `watch` (`--watch`), watching the component's file,
/// until `tasks` are stopped.
pub fn start(reloads: &Arc<Reloads>, watch_file: bool, tasks: &Tasks) {
    tasks.spawn(on_sighup(reloads.clone()));
    if watch_file && let Some(path) = reloads.backend.component_path() {
        tasks.spawn(watch(reloads.clone(), path.to_owned()));
    }
}

async fn on_sighup(reloads: Arc<Reloads>) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            warn!(%error, "cannot listen for SIGHUP: the component reloads only with --watch");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        reload(&reloads, "SIGHUP").await;
    }
}

/// What tells one state of the file from another without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp { len: meta.len(), modified: meta.modified().ok(), inode: meta.ino() })
}

async fn watch(reloads: Arc<Reloads>, path: PathBuf) {
    info!(component = %path.display(), "watching the component for changes");
    let mut serving = stamp(&path);
    let mut changed: Option<Stamp> = None;
    let mut looks = tokio::time::interval(WATCH_INTERVAL);
    looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        looks.tick().await;
        // A file that is gone for a moment (a build replacing it) is waited for, not reloaded.
        let Some(now) = stamp(&path) else { continue };
        if Some(&now) == serving.as_ref() {
            changed = None;
        } else if changed.as_ref() == Some(&now) {
            serving = Some(now);
            changed = None;
            reload(&reloads, "file changed").await;
        } else {
            changed = Some(now);
        }
    }
}

async fn reload(reloads: &Reloads, why: &'static str) {
    let metrics = &reloads.metrics;
    match reloads.backend.reload().await {
        Ok(Reloaded::Swapped) => {
            metrics.reload(ReloadResult::Ok);
            info!(
                why,
                "component reloaded: requests and WebSocket-app events from now on use the new version"
            );
        }
        Ok(Reloaded::Unchanged) => {
            metrics.reload(ReloadResult::Unchanged);
            info!(why, "component unchanged: the same file as the version serving");
        }
        Ok(Reloaded::Upstream) => info!(why, "nothing to reload: the component runs upstream"),
        Err(error) => {
            metrics.reload(ReloadResult::Failed);
            let error = format!("{error:#}");
            warn!(why, error = %clip(&error, 512), "component reload refused: the version serving keeps serving");
        }
    }
}
