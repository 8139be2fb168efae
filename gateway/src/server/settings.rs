//! Each part's settings, made from the flags: the one place below `main` that reads [`Config`],
//! so no part needs to know the flags' names or how their defaults combine.

use std::sync::Arc;

use crate::apps;
use crate::backend::{self, HostSettings};
use crate::budget::{self, MemoryBudget};
use crate::channels::Retention;
use crate::config::Config;
use crate::ws;

/// The built-in WebSocket app's and every connection's settings.
pub fn ws(config: &Config, budget: Arc<MemoryBudget>) -> ws::Settings {
    ws::Settings {
        push: config.pushes_enabled().then_some((config.push_min, config.push_max)),
        seed: config.seed,
        ping_interval: config.ping_interval,
        idle_timeout: config.idle_timeout,
        close_timeout: ws::CLOSE_TIMEOUT,
        drain_close_timeout: ws::CLOSE_TIMEOUT.min(config.drain_timeout),
        socket_buffer: (config.socket_buffer != 0).then_some(config.socket_buffer),
        budget,
        protocol: ws::protocol(config.max_message_size, config.app_budget()),
    }
}

/// The limits of WebSocket apps.
pub fn apps(config: &Config) -> apps::Settings {
    apps::Settings {
        batch_bytes: config.app_batch_bytes.min(config.app_budget() / 8),
        max_answer_bytes: config.app_max_answer_bytes,
        budget: config.app_budget(),
        retries: config.app_retries,
        retry_delay: config.app_retry_delay,
        max_subscriptions: config.max_subscriptions,
    }
}

/// The gateway-wide memory budget (`--memory-budget`).
pub fn budget(config: &Config, metrics: budget::Metrics) -> MemoryBudget {
    MemoryBudget::new(config.memory_budget, metrics)
}

/// Where the component runs, and how.
pub fn backend(config: &Config) -> anyhow::Result<backend::Settings> {
    Ok(backend::Settings {
        source: config.backend()?,
        grip_key_file: config.grip_key_file.clone(),
        upstream_timeout: config.upstream_timeout,
        host: host(config),
    })
}

/// The embedded host's limits.
pub fn host(config: &Config) -> HostSettings {
    HostSettings {
        memory_mib: config.component_memory_mib,
        pool_resident_mib: config.component_pool_resident_mib,
        instances: config.component_instances,
        timeout: config.component_timeout,
    }
}

/// The channels' history and, with Redis, the replicas a publish waits for.
pub fn channels(config: &Config) -> (Retention, u32) {
    (Retention { size: config.history_size, ttl: config.history_ttl }, config.redis_wait_replicas)
}
