//! `Runtime`: the process's one engine, its prepared modules, and running an
//! `InstanceSpec` against a prepared module to a `RunOutcome`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Engine, ExternType, InstancePre, Linker, Module, Store};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::cache::{Compiled, DiskCache, Lookup};
use crate::engine::{Engines, EpochTicker};
use crate::limiter::InstanceLimiter;
use crate::outcome::{DeadlineExceeded, classify, timed_out_while_blocked};
use crate::outgoing::OutgoingHttp;
use crate::sandbox::{SharedViews, grant_shared};
use crate::scratch::ScratchRoot;
use crate::slots::{InstanceSlot, Slots};
use crate::sockets::InstanceSockets;
use crate::store::{ComponentState, CoreState, HasLimiter, new_store};
use crate::{InstanceSpec, ModuleDigest, ModuleKind, RunOutcome, RuntimeConfig, RuntimeError};

/// How a module is to be prepared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrepareOptions {
    /// The kind the image declares (`os: wasip1` → core module, `wasip2` →
    /// component). `None`: accept either. A mismatch is
    /// [`RuntimeError::WrongModuleKind`].
    pub expect: Option<ModuleKind>,
    /// Compile with fuel metering, needed to run with `Limits::fuel`. Off by
    /// default: metered code is slower, so it is compiled (and cached)
    /// separately, on a second engine built on first use.
    pub fuel: bool,
}

/// Where a [`PreparedModule`] came from, for tests, logs and benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleOrigin {
    /// Compiled from the wasm bytes by this call.
    Compiled,
    /// Mapped from the on-disk cache.
    DiskCache,
    /// Already prepared earlier in this process.
    Memory,
}

/// Counters of the module cache since the runtime started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Modules compiled from wasm.
    pub compiled: u64,
    /// Modules mapped from the disk cache.
    pub disk_hits: u64,
    /// `prepare` calls answered from memory.
    pub memory_hits: u64,
    /// Disk entries that failed verification (corrupt, truncated, stale)
    /// and were deleted and rebuilt.
    pub rejected: u64,
    /// Artifacts that could not be written to the disk cache (the run went
    /// on; the next process compiles again).
    pub write_errors: u64,
}

#[derive(Default)]
struct Counters {
    compiled: AtomicU64,
    disk_hits: AtomicU64,
    memory_hits: AtomicU64,
    rejected: AtomicU64,
    write_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A module compiled, linked against WASI and ready to instantiate many
/// times. Cheap to clone; holds no per-instance state.
#[derive(Clone)]
pub struct PreparedModule {
    inner: Arc<PreparedInner>,
    origin: ModuleOrigin,
}

struct PreparedInner {
    digest: ModuleDigest,
    fuel: bool,
    pre: Pre,
}

enum Pre {
    Core(InstancePre<CoreState>),
    Component(CommandPre<ComponentState>),
    /// A component exporting `wasi:http/incoming-handler`: served, not run.
    Proxy(ProxyPre<ComponentState>),
}

impl PreparedModule {
    /// The module's digest.
    pub fn digest(&self) -> &ModuleDigest {
        &self.inner.digest
    }

    /// Core module (WASI p1) or component (WASI 0.2).
    pub fn kind(&self) -> ModuleKind {
        match self.inner.pre {
            Pre::Core(_) => ModuleKind::CoreModule,
            Pre::Component(_) | Pre::Proxy(_) => ModuleKind::Component,
        }
    }

    /// Whether this is a `wasi:http/proxy` component (it exports
    /// `wasi:http/incoming-handler` and not `wasi:cli/run`): such a module is
    /// served with [`Runtime::serve`]; [`Runtime::run`] refuses it.
    pub fn serves_http(&self) -> bool {
        matches!(self.inner.pre, Pre::Proxy(_))
    }

    pub(crate) fn proxy_pre(&self) -> Option<&ProxyPre<ComponentState>> {
        match &self.inner.pre {
            Pre::Proxy(pre) => Some(pre),
            _ => None,
        }
    }

    /// Whether it was compiled with fuel metering.
    pub fn fuel_metered(&self) -> bool {
        self.inner.fuel
    }

    /// Where this handle came from.
    pub fn origin(&self) -> ModuleOrigin {
        self.origin
    }
}

impl std::fmt::Debug for PreparedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedModule")
            .field("digest", &self.inner.digest)
            .field("kind", &self.kind())
            .field("fuel", &self.inner.fuel)
            .field("origin", &self.origin)
            .finish()
    }
}

/// The process's wasm runtime: one engine (plus a fuel-metering one on
/// demand), one epoch ticker thread, the module cache, and the prepared
/// modules. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engines: Arc<Engines>,
    config: RuntimeConfig,
    cache: Option<DiskCache>,
    scratch: Mutex<Option<Arc<ScratchRoot>>>,
    /// Directory handles shared by instances with the same rootfs and
    /// volumes and no private `/tmp`.
    views: SharedViews,
    prepared: Mutex<HashMap<(ModuleDigest, bool), PreparedModule>>,
    counters: Counters,
    slots: Arc<Slots>,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds the engine and its instance slots, opens (creating if needed)
    /// the cache directory, and starts the epoch ticker thread.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let engines = Arc::new(Engines::new(&config)?);
        let cache = config
            .cache_dir
            .as_deref()
            .map(DiskCache::open)
            .transpose()?;
        let ticker = EpochTicker::start(Arc::clone(&engines), config.epoch_tick).map_err(|e| {
            RuntimeError::Engine {
                source: Box::new(e),
            }
        })?;
        let slots = Slots::new(config.max_instances.max(1));
        Ok(Self {
            inner: Arc::new(Inner {
                engines,
                config,
                cache,
                scratch: Mutex::new(None),
                views: SharedViews::default(),
                prepared: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                slots,
                _ticker: ticker,
            }),
        })
    }

    /// The configuration this runtime was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The plain (unmetered) wasmtime engine, for embedders that need it.
    pub fn engine(&self) -> &Engine {
        &self.inner.engines.plain
    }

    /// Takes one of the `max_instances` instance slots, held until the
    /// returned value is dropped; [`RuntimeError::Capacity`] when all are in
    /// use. [`Runtime::run_in_slot`] takes it, so a caller can learn that
    /// there is no room before it promises a run (a daemon's start).
    pub fn reserve(&self) -> Result<InstanceSlot, RuntimeError> {
        self.inner.slots.take()
    }

    /// An instance's budget for memories and tables: its own limit, never
    /// above the runtime's `max_memory_per_instance`.
    pub(crate) fn memory_budget(&self, limit: Option<u64>) -> u64 {
        let cap = self.inner.config.max_memory_per_instance;
        limit.map_or(cap, |l| l.min(cap))
    }

    /// Instance slots in use now, and how many there are.
    pub fn slots_in_use(&self) -> (u32, u32) {
        (self.inner.slots.held(), self.inner.slots.limit())
    }

    /// Module cache counters since this runtime started.
    pub fn cache_stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        CacheStats {
            compiled: c.compiled.load(Ordering::Relaxed),
            disk_hits: c.disk_hits.load(Ordering::Relaxed),
            memory_hits: c.memory_hits.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
        }
    }

    /// Prepares `wasm`, whose sha256 is `digest`, for running: answered from
    /// memory if this process prepared it before; else mapped from the disk
    /// cache if a verified artifact is there; else validated, compiled and
    /// written to the cache. Then linked against WASI p1 (core module) or
    /// WASI 0.2 (component).
    ///
    /// The bytes are hashed and must match `digest` unless the answer comes
    /// from memory. Compiling is CPU-heavy and synchronous: an async caller
    /// should run this on a blocking thread.
    pub fn prepare(
        &self,
        digest: &ModuleDigest,
        wasm: &[u8],
        options: PrepareOptions,
    ) -> Result<PreparedModule, RuntimeError> {
        let key = (digest.clone(), options.fuel);
        if let Some(found) = self.lock_prepared().get(&key) {
            check_kind(options.expect, found.kind())?;
            bump(&self.inner.counters.memory_hits);
            return Ok(PreparedModule {
                inner: Arc::clone(&found.inner),
                origin: ModuleOrigin::Memory,
            });
        }

        let kind = ModuleKind::detect(wasm)?;
        check_kind(options.expect, kind)?;
        let actual = ModuleDigest::of(wasm);
        if &actual != digest {
            return Err(RuntimeError::DigestMismatch {
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        let engine = self.inner.engines.get(options.fuel)?;
        let (compiled, origin) = self.load_or_compile(&engine, digest, wasm, kind)?;
        let pre = link(&engine, compiled)?;
        let prepared = PreparedModule {
            inner: Arc::new(PreparedInner {
                digest: digest.clone(),
                fuel: options.fuel,
                pre,
            }),
            origin,
        };
        self.lock_prepared().insert(key, prepared.clone());
        Ok(prepared)
    }

    /// Prepares `digest` without its bytes when this process or the disk
    /// cache already has it compiled and verified; `Ok(None)` means "read the
    /// module and call [`Runtime::prepare`]". This is how a warm start skips
    /// reading and hashing the module: the digest comes from the image record.
    pub fn prepare_cached(
        &self,
        digest: &ModuleDigest,
        options: PrepareOptions,
    ) -> Result<Option<PreparedModule>, RuntimeError> {
        let key = (digest.clone(), options.fuel);
        if let Some(found) = self.lock_prepared().get(&key) {
            check_kind(options.expect, found.kind())?;
            bump(&self.inner.counters.memory_hits);
            return Ok(Some(PreparedModule {
                inner: Arc::clone(&found.inner),
                origin: ModuleOrigin::Memory,
            }));
        }
        let Some(cache) = &self.inner.cache else {
            return Ok(None);
        };
        let engine = self.inner.engines.get(options.fuel)?;
        let compiled = match cache.load(&engine, &DiskCache::key(&engine, digest)) {
            Lookup::Hit(compiled) => compiled,
            Lookup::Rejected => {
                bump(&self.inner.counters.rejected);
                return Ok(None);
            }
            Lookup::Miss => return Ok(None),
        };
        // A cached artifact of the other kind is not an error here: the
        // full path re-checks the bytes and says what is wrong.
        if options.expect.is_some_and(|k| k != compiled.kind()) {
            return Ok(None);
        }
        bump(&self.inner.counters.disk_hits);
        let prepared = PreparedModule {
            inner: Arc::new(PreparedInner {
                digest: digest.clone(),
                fuel: options.fuel,
                pre: link(&engine, compiled)?,
            }),
            origin: ModuleOrigin::DiskCache,
        };
        self.lock_prepared().insert(key, prepared.clone());
        Ok(Some(prepared))
    }

    fn lock_prepared(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(ModuleDigest, bool), PreparedModule>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (inserts are single calls), so a poisoned lock is still usable.
        self.inner
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &ModuleDigest,
        wasm: &[u8],
        kind: ModuleKind,
    ) -> Result<(Compiled, ModuleOrigin), RuntimeError> {
        let counters = &self.inner.counters;
        let cache_key = self
            .inner
            .cache
            .as_ref()
            .map(|_| DiskCache::key(engine, digest));
        if let (Some(cache), Some(key)) = (&self.inner.cache, &cache_key) {
            match cache.load(engine, key) {
                Lookup::Hit(compiled) if compiled.kind() == kind => {
                    bump(&counters.disk_hits);
                    return Ok((compiled, ModuleOrigin::DiskCache));
                }
                Lookup::Hit(_) | Lookup::Rejected => bump(&counters.rejected),
                Lookup::Miss => {}
            }
        }
        let compile_err = |e| RuntimeError::Compile {
            kind,
            source: RuntimeError::boxed(e),
        };
        let compiled = match kind {
            ModuleKind::CoreModule => {
                Compiled::Module(Module::new(engine, wasm).map_err(compile_err)?)
            }
            ModuleKind::Component => {
                Compiled::Component(Component::new(engine, wasm).map_err(compile_err)?)
            }
        };
        bump(&counters.compiled);
        if let (Some(cache), Some(key)) = (&self.inner.cache, &cache_key) {
            let written = compiled
                .serialize()
                .map_err(|e| std::io::Error::other(e.into_boxed_dyn_error()))
                .and_then(|bytes| cache.store(key, &bytes));
            if written.is_err() {
                bump(&counters.write_errors);
            }
        }
        Ok((compiled, ModuleOrigin::Compiled))
    }

    /// The directory handles shared by instances without a private `/tmp`.
    pub(crate) fn views(&self) -> &SharedViews {
        &self.inner.views
    }

    /// The engine `module` was compiled for.
    pub(crate) fn engine_of(&self, module: &PreparedModule) -> Result<Engine, RuntimeError> {
        self.inner.engines.get(module.inner.fuel)
    }

    /// A new private `/tmp` (empty, under the scratch directory) to give
    /// several instances through [`InstanceSpec::shared_tmp`]: removed
    /// with its contents once this handle and every instance given a clone
    /// of it are gone.
    pub fn shared_tmp(&self) -> Result<crate::SharedTmp, RuntimeError> {
        self.scratch()?.create()
    }

    pub(crate) fn scratch(&self) -> Result<Arc<ScratchRoot>, RuntimeError> {
        let mut slot = self.inner.scratch.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(root) = &*slot {
            return Ok(Arc::clone(root));
        }
        let path = self
            .inner
            .config
            .scratch_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("wrun-scratch"));
        let root = Arc::new(ScratchRoot::open(&path)?);
        *slot = Some(Arc::clone(&root));
        Ok(root)
    }

    /// Runs one instance of `module` as `spec` grants, to completion.
    ///
    /// Must be polled inside a tokio runtime with the time driver enabled.
    /// The guest runs on a fiber of its own: an idle or sleeping guest holds
    /// no thread, and a busy one yields to the executor every
    /// `yield_every_ticks` epochs. Dropping the future stops the guest and
    /// frees its instance slot and private `/tmp`.
    ///
    /// `Err` means the guest never started (bad spec, missing directory, no
    /// free slot, link failure); everything the guest does is in the
    /// [`RunOutcome`].
    pub async fn run(
        &self,
        module: &PreparedModule,
        spec: InstanceSpec,
    ) -> Result<RunOutcome, RuntimeError> {
        let slot = self.reserve()?;
        self.run_in_slot(slot, module, spec).await
    }

    /// [`Runtime::run`] in a slot taken beforehand with
    /// [`Runtime::reserve`]; the slot is freed when the run ends.
    pub async fn run_in_slot(
        &self,
        slot: InstanceSlot,
        module: &PreparedModule,
        spec: InstanceSpec,
    ) -> Result<RunOutcome, RuntimeError> {
        let _slot = slot;
        if spec.limits.fuel.is_some() && !module.inner.fuel {
            return Err(RuntimeError::FuelNotPrepared);
        }
        if module.kind() == ModuleKind::CoreModule && !spec.network.is_none() {
            return Err(RuntimeError::NetworkNeedsComponent);
        }
        let mut spec = spec;
        crate::sockets::resolve(&mut spec.network).await?;
        let started = Instant::now();
        let deadline = spec.limits.timeout.map(|t| started + t);
        let scratch = if spec.tmp {
            Some(self.scratch()?)
        } else {
            None
        };
        let grants = grant_shared(&spec, scratch.as_deref(), &self.inner.views)?;
        let engine = self.inner.engines.get(module.inner.fuel)?;
        let yield_every = self.inner.config.yield_every_ticks.max(1);
        let limiter = InstanceLimiter::new(
            Some(self.memory_budget(spec.limits.memory)),
            spec.memory_gauge.clone(),
        );

        let guest = async {
            match &module.inner.pre {
                Pre::Core(pre) => {
                    let mut b = grants.builder;
                    let mut wasi = b.build_p1();
                    // p1 makes its descriptors from the context at the first
                    // call, so the view installed now is what the guest gets.
                    if let Some(view) = &grants.shared {
                        view.install(wasi.ctx().ctx);
                    }
                    let rootfs =
                        crate::rootfs_p1::ViewFds::attach(spec.writable_rootfs.clone(), &mut wasi)?;
                    let state = CoreState {
                        wasi,
                        limiter,
                        rootfs,
                        read_only: crate::rootfs_p1::ReadOnlyFds::new(
                            crate::sandbox::read_only_preopen_fds(&spec),
                        ),
                        _tmp: grants.tmp,
                    };
                    let mut store = new_store(&engine, state, &spec.limits, deadline, yield_every)?;
                    let instance = match pre.instantiate_async(&mut store).await {
                        Ok(i) => i,
                        Err(e) => return instantiate_failed(e, ModuleKind::CoreModule, &store),
                    };
                    let start = instance
                        .get_typed_func::<(), ()>(&mut store, "_start")
                        .map_err(|_| RuntimeError::MissingStart)?;
                    match start.call_async(&mut store, ()).await {
                        Ok(()) => Ok(RunOutcome::Exited(0)),
                        Err(e) => guest_failed(e, &store),
                    }
                }
                Pre::Component(pre) => {
                    let mut b = grants.builder;
                    let mut ctx = b.build();
                    if let Some(view) = &grants.shared {
                        view.install(&mut ctx);
                    }
                    let state = ComponentState {
                        ctx,
                        table: ResourceTable::new(),
                        limiter,
                        http: WasiHttpCtx::new(),
                        outgoing: OutgoingHttp::new(&spec.network),
                        sockets: InstanceSockets::new(&spec.network),
                        rootfs: spec.writable_rootfs.clone(),
                        _tmp: grants.tmp,
                    };
                    let mut store = new_store(&engine, state, &spec.limits, deadline, yield_every)?;
                    let command = match pre.instantiate_async(&mut store).await {
                        Ok(c) => c,
                        Err(e) => return instantiate_failed(e, ModuleKind::Component, &store),
                    };
                    match command.wasi_cli_run().call_run(&mut store).await {
                        Ok(Ok(())) => Ok(RunOutcome::Exited(0)),
                        Ok(Err(())) => Ok(RunOutcome::Exited(1)),
                        Err(e) => guest_failed(e, &store),
                    }
                }
                Pre::Proxy(_) => Err(RuntimeError::HttpProxyNotCommand),
            }
        };
        match deadline {
            None => guest.await,
            Some(at) => match tokio::time::timeout_at(at.into(), guest).await {
                Ok(result) => result,
                // The guest was waiting in the host (sleep, poll, read) when
                // time ran out; the epoch callback only sees running wasm.
                Err(_elapsed) => Ok(timed_out_while_blocked()),
            },
        }
    }

    /// [`Runtime::run`] on a private current-thread tokio runtime, for the
    /// foreground CLI. Do not call from inside an async context.
    pub fn run_blocking(
        &self,
        module: &PreparedModule,
        spec: InstanceSpec,
    ) -> Result<RunOutcome, RuntimeError> {
        let executor = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| RuntimeError::Executor { source })?;
        executor.block_on(self.run(module, spec))
    }
}

fn check_kind(expect: Option<ModuleKind>, found: ModuleKind) -> Result<(), RuntimeError> {
    match expect {
        Some(expected) if expected != found => {
            Err(RuntimeError::WrongModuleKind { expected, found })
        }
        _ => Ok(()),
    }
}

fn link(engine: &Engine, compiled: Compiled) -> Result<Pre, RuntimeError> {
    match compiled {
        Compiled::Module(module) => {
            let kind = ModuleKind::CoreModule;
            let link_err = |e| RuntimeError::Link {
                kind,
                source: RuntimeError::boxed(e),
            };
            let is_command = matches!(
                module.get_export("_start"),
                Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0
            );
            if !is_command {
                return Err(RuntimeError::MissingStart);
            }
            let mut linker = Linker::<CoreState>::new(engine);
            // wasmtime-wasi's preview 1 functions through `CoreState`, which
            // serves the filesystem calls on a writable rootfs itself and
            // hands every other call to `WasiP1Ctx` (see `rootfs_p1`).
            wasmtime_wasi::p1::wasi_snapshot_preview1::add_to_linker(&mut linker, |s| s)
                .map_err(link_err)?;
            Ok(Pre::Core(
                linker.instantiate_pre(&module).map_err(link_err)?,
            ))
        }
        Compiled::Component(component) => {
            let kind = ModuleKind::Component;
            let link_err = |e| RuntimeError::Link {
                kind,
                source: RuntimeError::boxed(e),
            };
            let mut linker = wasmtime::component::Linker::<ComponentState>::new(engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link_err)?;
            crate::sockets::add_to_linker(&mut linker).map_err(link_err)?;
            // wasi:filesystem over the writable rootfs of an instance that
            // has one; wasmtime-wasi's own for everything else.
            crate::rootfs_p2::add_to_linker(&mut linker).map_err(link_err)?;
            // Every component may make outgoing HTTP requests; the grants
            // decide where they may go (see `outgoing::OutgoingHttp`).
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link_err)?;
            let pre = linker.instantiate_pre(&component).map_err(link_err)?;
            // A command if it exports wasi:cli/run (even if it also handles
            // HTTP); else an HTTP proxy if it exports the handler.
            match CommandPre::new(pre.clone()) {
                Ok(command) => Ok(Pre::Component(command)),
                Err(not_command) => match ProxyPre::new(pre) {
                    Ok(proxy) => Ok(Pre::Proxy(proxy)),
                    Err(_) => Err(RuntimeError::NotACommand {
                        source: RuntimeError::boxed(not_command),
                    }),
                },
            }
        }
    }
}

/// Sorts an instantiation failure into "the guest trapped or hit its limit
/// while starting" (an outcome) and other errors.
fn instantiate_failed<T: HasLimiter>(
    err: wasmtime::Error,
    kind: ModuleKind,
    store: &Store<T>,
) -> Result<RunOutcome, RuntimeError> {
    let grow_denied = store.data().grow_denied();
    if grow_denied
        || err.is::<wasmtime::Trap>()
        || err.is::<wasmtime_wasi::I32Exit>()
        || err.is::<DeadlineExceeded>()
    {
        return Ok(classify(&err, grow_denied));
    }
    Err(RuntimeError::Instantiate {
        kind,
        source: RuntimeError::boxed(err),
    })
}

/// The outcome of a guest call that failed (a trap, an exit, a limit).
fn guest_failed<T: HasLimiter>(
    err: wasmtime::Error,
    store: &Store<T>,
) -> Result<RunOutcome, RuntimeError> {
    Ok(classify(&err, store.data().grow_denied()))
}
