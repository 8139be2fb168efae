//! What each request's Store is made from, and the making of it: a fresh Store per request, with
//! its memory cap and its deadline.
//!
//! A Store is made on the guests' runtime, by the task that runs the guest and drops it: what it
//! allocates is freed by the thread that allocated it (made on the connection's thread and
//! dropped on a guest's, each of its allocations was a cross-thread free).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;

use super::limits::InstanceLimiter;
use super::state::{Outbound, State};
use super::variables::Variables;
use crate::publish::Publisher;

/// The parts every request's Store shares: one `Arc` for a request to take along.
pub(super) struct Stores {
    /// The one engine: every version of the component is compiled for it.
    pub engine: Engine,
    /// `--component-memory-mib`: the most linear memory and tables one instance may have.
    pub memory_bytes: usize,
    /// The in-process publish API, the guest's one outbound request.
    pub publisher: Arc<Publisher>,
    /// The component's Spin variables.
    pub variables: Variables,
}

impl Stores {
    /// A fresh Store for one request, with its memory cap and its deadline. `deadline_hit` is set
    /// when the deadline stops the guest; `yields` counts the guest's yields at epoch ticks.
    pub fn fresh(&self, deadline: Instant, deadline_hit: Arc<AtomicBool>, yields: Counter) -> Store<State> {
        let wasi = WasiCtx::builder()
            .inherit_stderr()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = State {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: InstanceLimiter::new(self.memory_bytes),
            hooks: Outbound { publisher: self.publisher.clone() },
            variables: self.variables.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        // Epoch ticks interrupt the guest while it runs wasm: each tick it yields (so a spinning
        // guest holds a worker for one tick at a time), and past the deadline it is stopped. The
        // deadline itself is wall-clock time, so time spent in host calls counts as well.
        let wall_deadline = deadline.into_std();
        store.epoch_deadline_callback(move |_| {
            if std::time::Instant::now() < wall_deadline {
                yields.inc();
                return Ok(UpdateDeadline::Yield(1));
            }
            deadline_hit.store(true, Ordering::Relaxed);
            Ok(UpdateDeadline::Interrupt)
        });
        // One tick from now, not from when the request was made: a guest that waited for its
        // turn across a tick would otherwise yield at its first instruction and queue again.
        store.set_epoch_deadline(1);
        store
    }
}
