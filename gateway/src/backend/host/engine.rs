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

/// What each slot of the pool keeps resident of its linear memory, of its tables and of its stack
/// once its instance is gone: `--component-pool-resident-mib` shared by the slots (a third each),
/// at most 1 MiB, in whole pages; the rest is given back to the kernel. So the pool keeps at most
/// the flag's amount resident between requests, for a component of one memory (a Rust one).
pub(super) fn keep_resident(pool_mib: u64, instances: u32) -> usize {
    let share = (pool_mib << 20) / u64::from(instances.max(1)) / 3;
    (share.min(1 << 20) as usize) & !0xfff
}

/// An engine with epoch interruption and, when the machine allows it, the pooling allocator.
pub(super) fn engine(memory_bytes: usize, instances: u32, keep: usize) -> anyhow::Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    // The shipped component is stripped, so a wasm backtrace is a list of unnamed functions in
    // front of the one line that matters: the trap's reason.
    config.wasm_backtrace_max_frames(None);
    // Without zeroing, whatever a guest's stack touched stays resident in its slot for good: with
    // 300 /echo clients sending 16 KiB texts, about 90 MiB over 256 slots after every socket was
    // gone. Zeroed, a slot's stack keeps `keep` bytes and gives the rest back.
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
        .linear_memory_keep_resident(keep)
        .table_keep_resident(keep)
        .async_stack_keep_resident(keep)
        .max_unused_warm_slots(0)
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => {
            info!(instances, keep_resident = keep, "wasm host: pooling allocator");
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
