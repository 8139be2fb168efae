//! What one component instance may take: all its linear memories together stay under
//! `--component-memory-mib`, and it creates only a few instances, tables and memories.
//!
//! wasmtime's own `StoreLimits` caps each linear memory on its own, so a component of several
//! modules (a guest plus an adapter, say) could take the cap once per memory.

use wasmtime::ResourceLimiter;

/// Instances, tables and memories one request's Store may create: a component of a few modules.
const MAX_INSTANCES: usize = 16;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 16;
/// Elements of one table; a function table far larger than any real component's.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Counts the bytes of every linear memory of one Store against one cap.
#[derive(Debug)]
pub struct InstanceLimiter {
    cap: usize,
    total: usize,
}

impl InstanceLimiter {
    pub fn new(cap: usize) -> Self {
        InstanceLimiter { cap, total: 0 }
    }
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called for a memory's creation too (from 0), so `total` is the sum of every memory.
        let after = self.total.saturating_sub(current).saturating_add(desired);
        if after > self.cap || maximum.is_some_and(|max| desired > max) {
            // A trap, not a failed `memory.grow`: the guest learns nothing it could retry, and the
            // log says what happened.
            wasmtime::bail!(
                "the instance's memory cap of {} MiB is reached ({} KiB asked for in all)",
                self.cap >> 20,
                after >> 10
            );
        }
        self.total = after;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("growing the instance's memory failed"))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS || maximum.is_some_and(|max| desired > max) {
            wasmtime::bail!("a table of {desired} elements is over the limit of {MAX_TABLE_ELEMENTS}");
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn every_memory_of_the_instance_counts_against_one_cap() {
        let mut limiter = InstanceLimiter::new(64 * MIB);
        assert!(limiter.memory_growing(0, 40 * MIB, None).unwrap(), "a first memory of 40 MiB");
        // A second memory of 30 MiB fits the cap on its own, but not beside the first.
        assert!(limiter.memory_growing(0, 30 * MIB, None).is_err());
        assert!(limiter.memory_growing(0, 20 * MIB, None).unwrap(), "20 MiB more fits: 60 in all");
        // Growing the first memory from 40 to 44 MiB makes 64 in all: exactly the cap.
        assert!(limiter.memory_growing(40 * MIB, 44 * MIB, None).unwrap());
        assert!(limiter.memory_growing(44 * MIB, 45 * MIB, None).is_err());
        assert!(limiter.memory_growing(0, MIB, Some(0)).is_err(), "a memory's own maximum holds too");
    }
}
