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
mod guests;
mod limits;
mod missing;
mod variables;

use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, Semaphore, oneshot};
use tokio::time::{Instant, timeout_at};
use tracing::{info, warn};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use self::bounded::Bounded;
use self::limits::InstanceLimiter;
use self::variables::Variables;
use crate::backend::outcome::{ExchangeError, Reloaded};
use crate::body::{self, Body};
use crate::config::Config;
use crate::logging::clip;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::stages::{self, Stages};

/// Epoch tick: how often a running guest is interrupted to check its deadline and let other tasks
/// run. A guest stuck in a loop therefore holds a worker thread for at most one tick at a time.
const TICK: Duration = Duration::from_millis(10);

/// How long a request waits for a free instance before the host answers 503: long enough to ride
/// out a burst of quick requests, short enough that a full host sheds load instead of queueing it
/// without bound.
const SLOT_WAIT: Duration = Duration::from_millis(500);

/// Per-request state inside the Store.
struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: InstanceLimiter,
    hooks: Outbound,
    variables: Variables,
}

impl variables::Host for State {
    fn get(&mut self, name: String) -> Result<String, variables::Error> {
        self.variables.get(&name)
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// The one origin the component may reach: the gateway's publish API, as `spin.toml`'s
/// `allowed_outbound_hosts` names it. Embedded, it is served in-process whatever port the admin
/// listener has; every other outbound request is denied.
pub const PUBLISH_ORIGIN: &str = "127.0.0.1:9090";

/// The embedded component's `publish_url` variable: the in-process publish API.
pub const PUBLISH_URL: &str = "http://127.0.0.1:9090/publish/";

/// The guest's outbound HTTP: publishes served in-process, anything else denied.
struct Outbound {
    publisher: Arc<Publisher>,
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        let publisher = self.publisher.clone();
        Box::new(async move {
            let to_publish = request.uri().scheme_str() == Some("http")
                && request.uri().authority().is_some_and(|a| a.as_str() == PUBLISH_ORIGIN)
                && crate::routes::admin_label(request.uri().path()) == crate::routes::PUBLISH;
            if !to_publish {
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            }
            let (parts, body) = request.into_parts();
            // Read as the admin route reads it: at most MAX_BODY, else a 413 like there.
            let response = match http_body_util::Limited::new(body, crate::publish::MAX_BODY).collect().await
            {
                Ok(collected) => {
                    // In-process: only the gateway's own component can make this call.
                    let request = Request::from_parts(parts, collected.to_bytes());
                    publisher.handle(request, crate::publish::Caller::InProcess).await
                }
                Err(error) if error.is::<http_body_util::LengthLimitError>() => publisher.too_large(),
                Err(_) => return Err(wasmtime_wasi_http::Error::HttpRequestDenied),
            };
            let response = response.map(|b| Full::new(b).map_err(|never| match never {}).boxed_unsync());
            let done: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// The guest ran past its deadline.
#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Every instance was busy for the whole of [`SLOT_WAIT`].
#[derive(Debug)]
struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("every component instance is busy")
    }
}

impl std::error::Error for Busy {}

/// One version of the component: compiled, linked, ready to instantiate.
struct Version {
    pre: ProxyPre<State>,
    /// Of the file's bytes: a reload of the same bytes compiles nothing.
    digest: u64,
}

/// The loaded component, ready to serve.
pub struct Host {
    path: PathBuf,
    engine: Engine,
    linker: Linker<State>,
    current: RwLock<Arc<Version>>,
    /// One reload at a time (SIGHUP and the file watch may both ask).
    reloading: Mutex<()>,
    memory_bytes: usize,
    timeout: Duration,
    slots: Arc<Semaphore>,
    publisher: Arc<Publisher>,
    variables: Variables,
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
        config: &Config,
        publisher: Arc<Publisher>,
        grip_key: &str,
    ) -> anyhow::Result<Self> {
        let memory_bytes = usize::try_from(config.component_memory_mib * 1024 * 1024)?;
        let keep = keep_resident(config.component_pool_resident_mib, config.component_instances);
        let engine = engine(memory_bytes, config.component_instances, keep)?;
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
            engine,
            linker,
            current: RwLock::new(Arc::new(version)),
            reloading: Mutex::new(()),
            memory_bytes,
            timeout: config.component_timeout,
            slots: Arc::new(Semaphore::new(config.component_instances as usize)),
            publisher,
            variables: Variables::embedded(grip_key, PUBLISH_URL),
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
        let (engine, linker, path) = (self.engine.clone(), self.linker.clone(), self.path.clone());
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

    /// Runs the component on one request. A guest that traps, exceeds its memory or never answers
    /// costs this request a 500 (504 past the deadline) and one log line; a host whose instances
    /// are all busy answers 503 with `Retry-After`; nothing else is affected.
    pub async fn serve(&self, req: Request<Incoming>, metrics: &Arc<Metrics>) -> Response<Body> {
        let method = req.method().clone();
        // Clipped: the client chooses it, up to the 32 KiB of a request head.
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let target = clip(target, 256).into_owned();
        match self.call(req, metrics, &target, Arc::default()).await {
            Ok(response) => response,
            Err(error) if error.is::<Busy>() => {
                metrics.component_busy.inc();
                let mut r = body::text(StatusCode::SERVICE_UNAVAILABLE, "every component instance is busy");
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            Err(error) => {
                metrics.component_errors.inc();
                // `is` sees a context too, where a deadline that interrupted the guest is recorded.
                let deadline = error.is::<DeadlineExceeded>();
                let error = format!("{error:#}");
                warn!(%method, uri = %target, error = %clip(&error, 512), "component request failed");
                if deadline {
                    body::text(
                        StatusCode::GATEWAY_TIMEOUT,
                        "gateway timeout: the component ran past its deadline",
                    )
                } else {
                    body::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error: the component failed")
                }
            }
        }
    }

    /// One request of a WebSocket app, buffered both ways: its answer, at most `limit` bytes of
    /// body, within the same deadline as any request.
    pub async fn exchange(
        &self,
        req: Request<Bytes>,
        limit: usize,
        metrics: &Arc<Metrics>,
    ) -> Result<Response<Bytes>, ExchangeError> {
        let target = clip(req.uri().path(), 256).into_owned();
        let returned = Arc::new(OnceLock::new());
        let response = match self.call(req.map(Full::new), metrics, &target, returned.clone()).await {
            Ok(response) => response,
            Err(error) if error.is::<Busy>() => {
                metrics.component_busy.inc();
                return Err(ExchangeError::Unavailable("every component instance is busy".into()));
            }
            Err(error) if error.is::<DeadlineExceeded>() => return Err(ExchangeError::Timeout),
            Err(error) => return Err(ExchangeError::Failed(clip(&format!("{error:#}"), 512).into_owned())),
        };
        let (parts, body) = response.into_parts();
        match body::read_limited(body, limit).await {
            Ok(body) => {
                let back = returned.get().map_or(Duration::ZERO, |end| end.elapsed());
                stages::observe(&metrics.stages.answer, back);
                Ok(Response::from_parts(parts, body))
            }
            Err(body::ReadError::TooLarge(limit)) => Err(ExchangeError::TooLarge(limit)),
            // The body guard ends a body that runs past the deadline.
            Err(body::ReadError::Broken(_)) => Err(ExchangeError::Timeout),
        }
    }

    async fn call<B>(
        &self,
        req: Request<B>,
        metrics: &Arc<Metrics>,
        target: &str,
        returned: Arc<OnceLock<Instant>>,
    ) -> anyhow::Result<Response<Body>>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        // One deadline for everything: the wait for an instance, the guest's work before its
        // answer, and the body it streams after it.
        let arrived = Instant::now();
        let deadline = arrived + self.timeout;
        let version = self.current();
        let slot =
            match timeout_at((arrived + SLOT_WAIT).min(deadline), self.slots.clone().acquire_owned()).await {
                Ok(slot) => slot.context("the wasm host is shutting down")?,
                Err(_) => return Err(Busy.into()),
            };
        let stages = metrics.stages.clone();
        stages::observe(&stages.queue, arrived.elapsed());
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
        let deadline_hit = Arc::new(AtomicBool::new(false));
        let hit = deadline_hit.clone();
        let wall_deadline = deadline.into_std();
        let yields = stages.guest_yields.clone();
        store.epoch_deadline_callback(move |_| {
            if std::time::Instant::now() < wall_deadline {
                yields.inc();
                return Ok(UpdateDeadline::Yield(1));
            }
            hit.store(true, Ordering::Relaxed);
            Ok(UpdateDeadline::Interrupt)
        });

        let (sender, receiver) = oneshot::channel();
        let req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        // This request's version, to its end: a reload meanwhile does not change it.
        let pre = version.pre.clone();
        let guests = self.guests.as_ref().context("the wasm host is shutting down")?;
        // The guest runs in its own task so it can keep streaming the body after the head is sent.
        let guest_end = returned.clone();
        let spawned = Instant::now();
        let task = guests.spawn(async move {
            let _slot = slot;
            let _running = Running::start(&stages);
            let started = Instant::now();
            stages::observe(&stages.schedule, started - spawned);
            // One tick from now, not from when the request was made: a guest that waited for its
            // turn across a tick would otherwise yield at its first instruction and queue again.
            store.set_epoch_deadline(1);
            let proxy = pre.instantiate_async(&mut store).await?;
            let instantiated = Instant::now();
            stages::observe(&stages.instantiate, instantiated - started);
            let result = proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await;
            let _ = guest_end.set(Instant::now());
            stages::observe(&stages.guest, guest_end.get().map_or(Duration::ZERO, |end| *end - instantiated));
            result
        });

        // If the client goes away before the head is ready, the guest has nobody to answer: stop
        // it rather than let it run to its deadline.
        let mut task = AbortOnDrop(Some(task));
        match timeout_at(deadline, receiver).await {
            Ok(Ok(Ok(response))) => {
                // From here the guest may still be streaming the body: the body owns the task,
                // stops it when the client leaves, and cuts the body off at the deadline.
                let (parts, body) = response.into_parts();
                let body = Bounded::new(body, deadline, task, metrics.clone(), target.to_owned());
                Ok(Response::from_parts(parts, body.boxed_unsync()))
            }
            Ok(Ok(Err(code))) => anyhow::bail!("the component answered with an error: {code:?}"),
            // The sender was dropped without an answer: the guest returned or trapped. Its own
            // error is the one worth reporting.
            Ok(Err(_)) => match task.join().await {
                Ok(Ok(())) => anyhow::bail!("the component returned without setting a response"),
                Ok(Err(error)) if deadline_hit.load(Ordering::Relaxed) => {
                    Err(anyhow::Error::from(error).context(DeadlineExceeded))
                }
                Ok(Err(error)) => Err(anyhow::Error::from(error).context("the component trapped")),
                Err(join) => Err(anyhow::Error::from(join).context("the component task failed")),
            },
            Err(_) => Err(anyhow::Error::new(DeadlineExceeded)),
        }
    }
}

/// Counts a guest on the guests' runtime while it lives (an aborted one too).
struct Running(Stages);

impl Running {
    fn start(stages: &Stages) -> Self {
        stages.guests_running.inc();
        stages.guests_in_flight.observe(stages.guests_running.get() as f64);
        Running(stages.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.guests_running.dec();
    }
}

/// Aborts the guest's task when dropped.
struct AbortOnDrop(Option<tokio::task::JoinHandle<wasmtime::Result<()>>>);

impl AbortOnDrop {
    async fn join(&mut self) -> Result<wasmtime::Result<()>, tokio::task::JoinError> {
        match self.0.as_mut() {
            Some(handle) => handle.await,
            None => Ok(Ok(())),
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

/// Compiles and links one version of the component from its file's bytes. An import the host does
/// not provide (Spin's key-value store, say) is linked to a trap that names it: the component loads,
/// and only a call to that import fails, with that request's 500.
fn prepare(engine: &Engine, linker: &Linker<State>, path: &Path, bytes: &[u8]) -> anyhow::Result<Version> {
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

fn digest(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// What each slot of the pool keeps resident of its linear memory, of its tables and of its stack
/// once its instance is gone: `--component-pool-resident-mib` shared by the slots (a third each),
/// at most 1 MiB, in whole pages; the rest is given back to the kernel. So the pool keeps at most
/// the flag's amount resident between requests, for a component of one memory (a Rust one).
fn keep_resident(pool_mib: u64, instances: u32) -> usize {
    let share = (pool_mib << 20) / u64::from(instances.max(1)) / 3;
    (share.min(1 << 20) as usize) & !0xfff
}

/// An engine with epoch interruption and, when the machine allows it, the pooling allocator.
fn engine(memory_bytes: usize, instances: u32, keep: usize) -> anyhow::Result<Engine> {
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
