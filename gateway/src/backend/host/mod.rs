//! The embedded wasmtime host: serves the component in-process, one fresh instance per request.
//!
//! Shaped after wasmtime's `serve` command and the `wasmtime-wasi-http` crate example: the Engine
//! and Linker are built once, the component is compiled and pre-instantiated once per version;
//! each request gets its own Store with a memory cap ([`limits`]) and one wall-clock deadline, from
//! the request's arrival to the end of its response body ([`bounded`]). The guest has no filesystem
//! and no environment; its only outbound HTTP is the gateway's publish API, served in-process.
//!
//! A new version ([`Host::reload`]) is compiled off the serving path and swapped in atomically:
//! a request takes the version current when it starts and keeps it to its end, so requests in
//! flight finish on the old one; a file that does not load leaves the current one serving.

mod bounded;
mod call;
mod engine;
mod guests;
mod limits;
mod missing;
mod state;
mod store;
mod variables;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, Semaphore};
use wasmtime::component::Linker;

use self::engine::{Version, digest, engine, keep_resident, prepare};
use self::state::State;
use self::store::Stores;
use self::variables::Variables;
use crate::backend::outcome::Reloaded;
use crate::backend::settings::HostSettings;
use crate::publish::Publisher;

pub use self::state::{PUBLISH_ORIGIN, PUBLISH_URL};

/// Epoch tick: how often a running guest is interrupted to check its deadline and let other tasks
/// run. A guest stuck in a loop therefore holds a worker thread for at most one tick at a time.
const TICK: Duration = Duration::from_millis(10);

/// The loaded component, ready to serve.
pub struct Host {
    path: PathBuf,
    linker: Linker<State>,
    current: RwLock<Arc<Version>>,
    /// One reload at a time (SIGHUP and the file watch may both ask).
    reloading: Mutex<()>,
    timeout: Duration,
    slots: Arc<Semaphore>,
    /// What each request's Store is made from (the engine among it).
    stores: Arc<Stores>,
    ticker: Arc<AtomicBool>,
    /// Guests run on their own runtime ([`guests`]). (Always `Some` until drop.)
    guests: Option<Runtime>,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.ticker.store(false, Ordering::Relaxed);
        // Dropping a runtime blocks, which is not allowed inside the gateway's own runtime.
        if let Some(guests) = self.guests.take() {
            guests.shutdown_background();
        }
    }
}

impl Host {
    /// Compiles and links the component once. Fails with the reason when it does not load.
    /// `grip_key` is the key the gateway signs the component's requests with: the component gets
    /// it as its Spin variable of that name.
    pub fn load(
        path: &Path,
        settings: &HostSettings,
        publisher: Arc<Publisher>,
        grip_key: &str,
    ) -> anyhow::Result<Self> {
        let memory_bytes = usize::try_from(settings.memory_mib * 1024 * 1024)?;
        let keep = keep_resident(settings.pool_resident_mib, settings.instances);
        let engine = engine(memory_bytes, settings.instances, keep)?;
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        variables::add_to_linker::<State, wasmtime::component::HasSelf<State>>(&mut linker, |state| state)?;
        let bytes = std::fs::read(path).with_context(|| format!("reading component {}", path.display()))?;
        let version = prepare(&engine, &linker, path, &bytes)?;

        let ticker = Arc::new(AtomicBool::new(true));
        let running = ticker.clone();
        let ticking = engine.clone();
        std::thread::Builder::new().name("wasm-epoch".into()).spawn(move || {
            while running.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                ticking.increment_epoch();
            }
        })?;

        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let guests =
            guests::runtime(guests::workers(cores)).context("starting the runtime for wasm guests")?;

        Ok(Host {
            path: path.to_owned(),
            linker,
            current: RwLock::new(Arc::new(version)),
            reloading: Mutex::new(()),
            stores: Arc::new(Stores {
                engine,
                memory_bytes,
                publisher,
                variables: Variables::embedded(grip_key, PUBLISH_URL),
            }),
            timeout: settings.timeout,
            slots: Arc::new(Semaphore::new(settings.instances as usize)),
            ticker,
            guests: Some(guests),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The version serving now.
    fn current(&self) -> Arc<Version> {
        // A poisoned lock still holds a whole Arc: the swap is a single assignment.
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Reads the component's file again and, when it changed, compiles it (on a blocking thread,
    /// off the serving path) and swaps it in. On error the version serving now keeps serving.
    pub async fn reload(&self) -> anyhow::Result<Reloaded> {
        let _one = self.reloading.lock().await;
        let serving = self.current().digest;
        let (engine, linker, path) = (self.stores.engine.clone(), self.linker.clone(), self.path.clone());
        let version = tokio::task::spawn_blocking(move || {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading component {}", path.display()))?;
            if digest(&bytes) == serving {
                return Ok(None);
            }
            prepare(&engine, &linker, &path, &bytes).map(Some)
        })
        .await
        .context("the compiling thread failed")??;
        let Some(version) = version else { return Ok(Reloaded::Unchanged) };
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(version);
        Ok(Reloaded::Swapped)
    }
}
