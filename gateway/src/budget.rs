//! The gateway-wide memory budget (`--memory-budget`): what the process may have resident before
//! it protects itself, rather than letting the kernel's OOM killer close every socket at once.
//!
//! A watcher reads the process's resident memory (`/proc/self/statm`) ten times a second. From
//! 90% of the budget the gateway is *over*: new upgrades get `503` with `Retry-After`, `/readyz`
//! says not ready, connections that hold anything for their client stop reading from it, and
//! those that hold at least [`SHED_BYTES`] close with 1008 when they next wake (their next frame,
//! write, timer or keep-alive ping). Below 80%, or after 5 s without rising, it is not over any
//! more; when it calmed above 80%, what was resident then is the allocator's keepings (it keeps some
//! of what a burst freed, and reuses it), so it is over again only once the resident memory rises a
//! twentieth of the budget above that level (and is at least at 90%). Counted in
//! `memory_budget{path="gateway"}`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tracing::{info, warn};

use crate::label_values;

/// What a connection holds for its client before the gateway, over its budget, closes it.
pub const SHED_BYTES: usize = 16 * 1024;

/// Without a container limit (cgroup v2 `memory.max`), the budget is this.
const FIXED_BUDGET: u64 = 2 << 30;

/// How often the resident memory is read.
const EVERY: Duration = Duration::from_millis(100);

/// Readings in a row, over the budget and not rising, after which the pressure is taken to be gone
/// (5 s): what is resident then is memory the allocator kept after the burst, reused by the next
/// connections rather than added to. Without it a gateway could stay over, refusing every
/// upgrade, long after its adversaries left: built with glibc's allocator, one with 450
/// adversaries on a 140 MiB budget kept 126-130 MiB, over 90%, once they were gone.
const CALM_READINGS: u32 = 50;

#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    metrics: Metrics,
    over: AtomicBool,
    /// Where the resident memory calmed when the budget was last left that way (0 otherwise).
    settled: AtomicU64,
}

impl MemoryBudget {
    /// `--memory-budget`, or three quarters of the container's limit (the rest for the kernel's
    /// socket buffers and the margin above the budget), or [`FIXED_BUDGET`].
    pub fn new(configured: Option<u64>, metrics: Metrics) -> Self {
        let limit = configured.or_else(|| cgroup_limit().map(|max| max / 4 * 3)).unwrap_or(FIXED_BUDGET);
        Self::with_limit(limit, metrics)
    }

    fn with_limit(limit: u64, metrics: Metrics) -> Self {
        MemoryBudget { limit, metrics, over: AtomicBool::new(false), settled: AtomicU64::new(0) }
    }

    /// Counts what a budget did, this one or a WebSocket app's connection's.
    pub fn count(&self, path: BudgetPath, action: BudgetAction) {
        self.metrics.actions.get_or_create(&BudgetLabels { path, action }).inc();
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether the gateway is near its budget: refuse, stop reading, shed.
    pub fn is_over(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// Watches the resident memory for as long as the budget is in use.
    pub fn start(self: &Arc<Self>, tasks: &crate::drain::Tasks) {
        let budget = Arc::downgrade(self);
        info!(bytes = self.limit, "memory budget");
        tasks.spawn(watch(budget));
    }

    /// Takes a reading of `resident` bytes, after `calm` readings in a row that did not rise: over
    /// from 90% of the limit (and a twentieth of it above where it last settled), back from 80%,
    /// or after [`CALM_READINGS`] calm ones.
    fn update(&self, resident: u64, calm: u32) {
        let settled = self.settled.load(Ordering::Relaxed);
        let (high, low) = ((self.limit / 10 * 9).max(settled + self.limit / 20), self.limit / 10 * 8);
        let was = self.is_over();
        let now = if was { resident >= low && calm < CALM_READINGS } else { resident >= high };
        if now != was {
            self.over.store(now, Ordering::Relaxed);
            self.settled.store(if !now && resident >= low { resident } else { 0 }, Ordering::Relaxed);
            if now {
                warn!(resident, limit = self.limit, "near the memory budget: refusing upgrades, shedding");
            } else {
                info!(resident, limit = self.limit, "back under the memory budget");
            }
        }
    }
}

/// What the memory budgets did.
#[derive(Debug, Default)]
pub struct Metrics {
    actions: Family<BudgetLabels, Counter>,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        Metrics {
            actions: crate::metrics::add(
                r,
                "memory_budget",
                "What the memory budgets did, by path (app, gateway) and action (close, refuse); stopped reading shows in ws_outbox_bytes, dropped pushes and publications in their own counters",
            ),
        }
    }
}

label_values! {
    /// Which budget acted (issue 23).
    pub enum BudgetPath {
        /// A WebSocket app's connection (`--app-connection-budget`).
        App = "app",
        /// The whole gateway (`--memory-budget`).
        Gateway = "gateway",
    }
}

label_values! {
    /// Which of a budget's documented actions it took.
    pub enum BudgetAction {
        /// A connection closed (1009 for an answer over its budget, 1008 when the gateway sheds it).
        Close = "close",
        /// An upgrade refused with 503.
        Refuse = "refuse",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    path: BudgetPath,
    action: BudgetAction,
}

async fn watch(budget: Weak<MemoryBudget>) {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut calm, mut last) = (0, u64::MAX);
    loop {
        ticks.tick().await;
        let Some(budget) = budget.upgrade() else { return };
        if let Some(resident) = resident_bytes() {
            // Calm: not more than a page or so above the reading before.
            let settled = resident <= last.saturating_add(64 << 10);
            calm = if settled { calm + 1 } else { 0 };
            last = resident;
            budget.update(resident, calm);
        }
    }
}

/// The process's resident memory: the second field of `/proc/self/statm`, in pages.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// cgroup v2's `memory.max` of this process's cgroup, when it is a number.
fn cgroup_limit() -> Option<u64> {
    std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_labels_are_lowercase_as_documented() {
        let mut registry = crate::metrics::registry();
        let budget = MemoryBudget::with_limit(1000, Metrics::register(&mut registry));
        budget.count(BudgetPath::Gateway, BudgetAction::Close);
        budget.count(BudgetPath::App, BudgetAction::Refuse);
        let text = crate::metrics::encode(&registry);
        for line in [
            "sidestream_memory_budget_total{path=\"gateway\",action=\"close\"} 1",
            "sidestream_memory_budget_total{path=\"app\",action=\"refuse\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn over_from_ninety_percent_and_back_below_eighty() {
        let budget = MemoryBudget::with_limit(1000, Metrics::default());
        for (resident, over) in
            [(899, false), (900, true), (850, true), (800, true), (799, false), (850, false)]
        {
            budget.update(resident, 0);
            assert_eq!(budget.is_over(), over, "at {resident}");
        }
    }

    #[test]
    fn over_and_calm_long_enough_is_over_no_more() {
        let budget = MemoryBudget::with_limit(1000, Metrics::default());
        budget.update(950, 0);
        budget.update(850, CALM_READINGS - 1);
        assert!(budget.is_over(), "not calm for long enough yet");
        budget.update(850, CALM_READINGS);
        assert!(!budget.is_over(), "calm: what is resident is the allocator's");
        budget.update(899, CALM_READINGS);
        assert!(!budget.is_over(), "under 90%: still fine");
        budget.update(900, 0);
        assert!(budget.is_over(), "over 90% again");
    }

    #[test]
    fn calm_above_ninety_percent_is_over_no_more_until_it_rises_again() {
        let budget = MemoryBudget::with_limit(1000, Metrics::default());
        budget.update(980, 0);
        budget.update(930, CALM_READINGS);
        assert!(!budget.is_over(), "calm at 93%: the allocator's keepings, not use");
        budget.update(979, 0);
        assert!(!budget.is_over(), "under a twentieth above where it settled");
        budget.update(980, 0);
        assert!(budget.is_over(), "risen a twentieth above it");
        budget.update(790, 0);
        assert!(!budget.is_over(), "under 80%");
        budget.update(900, 0);
        assert!(budget.is_over(), "from under 80%, 90% is over again");
    }
}
