//! What clap cannot check about a [`Config`]: ranges that depend on each other and values that
//! would overflow later. Runs before any port is bound.

use std::time::Duration;

use anyhow::bail;

use super::redis::CLUSTER;
use super::{Config, MAX_DURATION, MAX_MESSAGE_SIZE};

impl Config {
    /// Checks what clap cannot: relations between values. Runs before any port is bound.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.check_connections()?;
        self.check_sizes()?;
        self.check_redis()?;
        self.check_surfaces()?;
        Ok(())
    }

    /// The WebSocket and HTTP limits, and every duration.
    fn check_connections(&self) -> anyhow::Result<()> {
        if self.push_min > self.push_max {
            bail!(
                "--push-min ({}) must not exceed --push-max ({})",
                humantime::format_duration(self.push_min),
                humantime::format_duration(self.push_max)
            );
        }
        if self.max_message_size < 125 {
            bail!("--max-message-size must be at least 125 bytes (the largest control frame)");
        }
        if self.socket_buffer != 0 && !(4096..=16 << 20).contains(&self.socket_buffer) {
            bail!("--socket-buffer must be 0 (the kernel's autotuning) or between 4096 and 16777216 bytes");
        }
        if self.max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        // Timers add these to the current instant; the ceiling keeps that far from overflow.
        for (flag, value, zero_ok) in [
            ("--ping-interval", self.ping_interval, false),
            ("--idle-timeout", self.idle_timeout, false),
            ("--header-read-timeout", self.header_read_timeout, false),
            ("--upstream-timeout", self.upstream_timeout, false),
            ("--component-timeout", self.component_timeout, false),
            ("--push-max", self.push_max, true),
            ("--drain-timeout", self.drain_timeout, true),
            ("--drain-spread", self.drain_spread, true),
            ("--app-retry-delay", self.app_retry_delay, false),
            ("--history-ttl", self.history_ttl, false),
        ] {
            if value.is_zero() && !zero_ok {
                bail!("{flag} must be longer than 0");
            }
            if value > MAX_DURATION {
                bail!("{flag} must be at most {}", humantime::format_duration(MAX_DURATION));
            }
        }
        Ok(())
    }

    /// Sizes and counts: messages, the component, apps, history.
    fn check_sizes(&self) -> anyhow::Result<()> {
        if self.max_message_size > MAX_MESSAGE_SIZE {
            bail!("--max-message-size must be at most {MAX_MESSAGE_SIZE} bytes (1 GiB)");
        }
        if self.component_memory_mib == 0 || self.component_memory_mib > 4096 {
            bail!("--component-memory-mib must be between 1 and 4096");
        }
        if !(1024..=64 << 20).contains(&self.app_batch_bytes) {
            bail!("--app-batch-bytes must be between 1024 and 67108864");
        }
        if !(1024..=64 << 20).contains(&self.app_max_answer_bytes) {
            bail!("--app-max-answer-bytes must be between 1024 and 67108864");
        }
        if !(1..=100_000).contains(&self.history_size) {
            bail!("--history-size must be between 1 and 100000");
        }
        if !(1..=1000).contains(&self.max_subscriptions) {
            bail!("--max-subscriptions must be between 1 and 1000");
        }
        Ok(())
    }

    /// `--redis` and the flags about it, the lease, retries, the pool.
    fn check_redis(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.redis
            && !(url.starts_with("redis://") || url.starts_with("redis+unix://") || url.starts_with(CLUSTER))
        {
            bail!("--redis must be a redis://, redis+unix:// or redis+cluster:// URL");
        }
        if self.redis_wait_replicas > 0 && self.redis.is_none() {
            bail!("--redis-wait-replicas is about --redis's replicas: give --redis too");
        }
        if self.redis_wait_replicas > 16 {
            bail!("--redis-wait-replicas must be at most 16");
        }
        if self.redis_password_file.is_some() && self.redis.is_none() {
            bail!("--redis-password-file is the password of --redis's user: give --redis too");
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&self.lease) {
            bail!("--lease must be between 1s and 5m");
        }
        if self.app_retries > 20 {
            bail!("--app-retries must be at most 20");
        }
        if self.component_pool_resident_mib > 65_536 {
            bail!("--component-pool-resident-mib must be at most 65536");
        }
        Ok(())
    }

    /// Budgets and instances, the two listeners, hosts and origins.
    fn check_surfaces(&self) -> anyhow::Result<()> {
        if let Some(budget) = self.app_connection_budget
            && budget < self.app_budget_floor()
        {
            bail!(
                "--app-connection-budget must be at least {} bytes: --app-batch-bytes, twice \
                 --max-message-size and the outbox's 32 KiB, with room for an answer",
                self.app_budget_floor()
            );
        }
        if self.component_instances == 0 || self.component_instances > 10_000 {
            bail!("--component-instances must be between 1 and 10000");
        }
        if self.watch && self.upstream.is_some() {
            bail!("--watch reloads an embedded component: it has nothing to watch with --upstream");
        }
        if self.admin_listen == self.listen && self.listen.port() != 0 {
            bail!("--admin-listen must differ from --listen: the admin surface is a listener of its own");
        }
        for host in &self.allowed_hosts {
            if host != "*" && !crate::authority::is_host_name(host) {
                bail!("--allowed-host {host:?} is not a host name like app.example.com");
            }
        }
        for origin in &self.allowed_origins {
            if origin != "*" && crate::ws::handshake::parse_origin(origin).is_none() {
                bail!("--allowed-origin {origin:?} is not an origin like https://example.com");
            }
        }
        Ok(())
    }
}
