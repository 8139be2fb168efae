//! The wasmtime engine and its instance pool, and each version of the component compiled for it.

use std::hash::{DefaultHasher, Hasher};
use std::path::Path;

use anyhow::Context as _;
use tracing::{info, warn};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::missing;
use super::state::State;

/// One version of the component: compiled, linked, ready to instantiate.
pub(super) struct Version {
    pub pre: ProxyPre<State>,
    /// Of the file's bytes: a reload of the same bytes compiles nothing.
    pub digest: u64,
}

/// Compiles and links one version of the component from its file's bytes. An import the host does
/// not provide (Spin's key-value store, say) is linked to a trap that names it: the component loads,
/// and only a call to that import fails, with that request's 500.
pub(super) fn prepare(
    engine: &Engine,
    linker: &Linker<State>,
    path: &Path,
    bytes: &[u8],
) -> anyhow::Result<Version> {
    let component = Component::from_binary(engine, bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("loading component {}", path.display()))?;
    let mut linker = linker.clone();
    let lacking = missing::link_as_traps(&mut linker, engine, &component)?;
    if !lacking.is_empty() {
        info!(component = %path.display(), ?lacking, "imports the host does not provide trap when called");
    }
    let pre = ProxyPre::new(linker.instantiate_pre(&component)?)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} is not a wasi:http component", path.display()))?;
    Ok(Version { pre, digest: digest(bytes) })
}

pub(super) fn digest(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// What each slot of the pool keeps resident once its instance is gone; the rest is given back
/// to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Keep {
    memory: usize,
    table: usize,
    stack: usize,
}

/// The stack a slot keeps: zeroed after every request, so kept small. A request to the shipped
/// component touches less than this of its fiber stack; 86 KiB (a third of the default share)
/// cost 3% more CPU per app message at C=100 (`ab --app`, BENCHMARKS.md).
const STACK_KEEP: usize = 16 << 10;

/// `--component-pool-resident-mib` shared by the slots: each slot's stack keeps [`STACK_KEEP`]
/// (or its whole share when that is less), and its linear memory and its tables share the rest in
/// halves, at most 1 MiB each, in whole pages. So the pool keeps at most the flag's amount
/// resident between requests, for a component of one memory (a Rust one).
pub(super) fn keep_resident(pool_mib: u64, instances: u32) -> Keep {
    let share = (pool_mib << 20) / u64::from(instances.max(1));
    let stack = share.min(STACK_KEEP as u64);
    let half = ((share - stack) / 2).min(1 << 20);
    let pages = |bytes: u64| (bytes as usize) & !0xfff;
    Keep { memory: pages(half), table: pages(half), stack: pages(stack) }
}

/// An engine with epoch interruption and, when the machine allows it, the pooling allocator.
pub(super) fn engine(memory_bytes: usize, instances: u32, keep: Keep) -> anyhow::Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    // The shipped component is stripped, so a wasm backtrace is a list of unnamed functions in
    // front of the one line that matters: the trap's reason.
    config.wasm_backtrace_max_frames(None);
    // Without zeroing, whatever a guest's stack touched stays resident in its slot for good: with
    // 300 /echo clients sending 16 KiB texts, about 90 MiB over 256 slots after every socket was
    // gone. Zeroed, a slot's stack keeps `keep.stack` bytes and gives the rest back.
    config.async_stack_zeroing(true);
    let mut pool = PoolingAllocationConfig::default();
    // Per component instance: a Rust component has 3 core instances, a TypeScript one (j2w) 4, a
    // Python one (componentize-py) 14, so room for 16 each, and as many tables; a slot is
    // bookkeeping and address space, not memory, until an instance uses it. With 4 each, a Python
    // component could run only 73 requests at once and the 74th failed (1011 on its connection).
    pool.total_component_instances(instances)
        .total_core_instances(instances * 16)
        .total_memories(instances * 2)
        .total_tables(instances * 16)
        .max_memory_size(memory_bytes)
        // Resetting a slot's memory by unmapping it faulted every page back in on the next
        // request (a fifth of the host's CPU in the benchmark). Keeping the first pages resident
        // and letting the kernel report which pages were touched (PAGEMAP_SCAN, Linux 6.7+;
        // ignored elsewhere) resets only what a request dirtied: about 2.5x the requests per
        // second with 1 MiB. What is kept is bounded by --component-pool-resident-mib
        // ([`keep_resident`]), and no warm slot is left unused while a used one is free, so the
        // set of slots ever touched is the most instances that ran at once.
        .linear_memory_keep_resident(keep.memory)
        .table_keep_resident(keep.table)
        .async_stack_keep_resident(keep.stack)
        .max_unused_warm_slots(0)
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => {
            info!(instances, ?keep, "wasm host: pooling allocator");
            Ok(engine)
        }
        Err(error) => {
            warn!(
                error = format!("{error:#}"),
                "wasm host: pooling allocator unavailable, allocating on demand"
            );
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&config).map_err(anyhow::Error::from).context("creating the wasm engine")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slots_keep_at_most_the_pool_between_them() {
        for pool_mib in [0, 1, 3, 16, 64, 100, 256, 768, 4096, 65_536] {
            for instances in [1, 2, 7, 16, 100, 256, 1000, 10_000] {
                let keep = keep_resident(pool_mib, instances);
                let kept = (keep.memory + keep.table + keep.stack) as u64 * u64::from(instances);
                assert!(kept <= pool_mib << 20, "{pool_mib} MiB over {instances}: {keep:?}");
                assert!(keep.memory <= 1 << 20 && keep.stack <= STACK_KEEP, "{keep:?}");
                assert!([keep.memory, keep.table, keep.stack].iter().all(|b| b % 4096 == 0), "{keep:?}");
            }
        }
    }

    #[test]
    fn the_default_pool_keeps_a_small_stack_and_the_rest_for_memory_and_tables() {
        let keep = keep_resident(64, 256);
        assert_eq!(keep, Keep { memory: 120 << 10, table: 120 << 10, stack: 16 << 10 });
        assert_eq!(keep_resident(0, 256), Keep { memory: 0, table: 0, stack: 0 });
        assert_eq!(keep_resident(768, 256).memory, 1 << 20, "at most 1 MiB each");
    }
}
