//! Builds the wasmtime engine(s) from a `RuntimeConfig` and runs the single
//! epoch ticker thread that drives timeouts and cooperative yielding.

use std::num::NonZeroUsize;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, WasmBacktraceDetails,
    WasmFeatures,
};

use crate::{RuntimeConfig, RuntimeError};

/// Extra native stack for host calls (WASI) on top of the wasm stack.
const HOST_STACK_HEADROOM: usize = 1 << 20;

/// Frames kept in a trap's wasm backtrace (shown with `--debug`).
const MAX_BACKTRACE_FRAMES: usize = 32;

/// Core instances, memories and tables a pool reserves per instance slot: a
/// WASI 0.2 component built by Rust instantiates a few core modules.
const CORE_INSTANCES_PER_SLOT: u32 = 4;
const MEMORIES_PER_SLOT: u32 = 2;
const TABLES_PER_SLOT: u32 = 4;

/// The engines of one runtime: the plain one, and a fuel-metering one built
/// on first use.
///
/// Fuel metering is compiled into the machine code (a counter update in
/// every loop and call), so it cannot be switched per store without taxing
/// every guest. Guests without `--fuel` run on the plain engine; guests with
/// it get modules compiled (and cached) separately for the metered engine.
pub(crate) struct Engines {
    pub(crate) plain: Engine,
    metered: Mutex<Option<Engine>>,
    config: RuntimeConfig,
}

impl Engines {
    pub(crate) fn new(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        Ok(Self {
            plain: build_engine(config, false)?,
            metered: Mutex::new(None),
            config: config.clone(),
        })
    }

    /// The engine for `fuel` metering or not, building the metered one on
    /// first use (a failure is returned and retried on the next call).
    pub(crate) fn get(&self, fuel: bool) -> Result<Engine, RuntimeError> {
        if !fuel {
            return Ok(self.plain.clone());
        }
        let mut metered = self.lock_metered();
        if let Some(engine) = &*metered {
            return Ok(engine.clone());
        }
        let engine = build_engine(&self.config, true)?;
        *metered = Some(engine.clone());
        Ok(engine)
    }

    fn lock_metered(&self) -> std::sync::MutexGuard<'_, Option<Engine>> {
        // The slot is written in one assignment: a poisoned lock still
        // holds a consistent value.
        self.metered.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tick(&self) {
        self.plain.increment_epoch();
        if let Some(metered) = &*self.lock_metered() {
            metered.increment_epoch();
        }
    }
}

/// The wasmtime configuration every module of the runtime is compiled and
/// run with. Why each setting is what it is:
///
/// - pooling allocator: instantiation takes a pre-reserved slot instead of
///   mmapping, so it costs microseconds, and the pool caps the total;
/// - copy-on-write memory images: a module's data segments are mapped, not
///   copied, at instantiation, and reset by `madvise` on reuse;
/// - epoch interruption: a cheap check in loops lets one ticker thread stop
///   or yield every running guest;
/// - wasm features limited to what WASI programs built by today's toolchains
///   use: GC, threads, exceptions, stack switching and the async component
///   model are off.
pub(crate) fn build_engine(rc: &RuntimeConfig, fuel: bool) -> Result<Engine, RuntimeError> {
    let engine_err = |e: wasmtime::Error| RuntimeError::Engine {
        source: RuntimeError::boxed(e),
    };
    let mut pool = PoolingAllocationConfig::new();
    let slots = rc.max_instances.max(1);
    let max_memory = usize::try_from(rc.max_memory_per_instance).unwrap_or(usize::MAX);
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_SLOT))
        .total_memories(slots.saturating_mul(MEMORIES_PER_SLOT))
        .total_tables(slots.saturating_mul(TABLES_PER_SLOT))
        .total_stacks(slots)
        .max_memory_size(max_memory)
        .table_elements(rc.max_table_elements)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .max_core_instances_per_component(CORE_INSTANCES_PER_SLOT * 8)
        .max_memories_per_component(MEMORIES_PER_SLOT * 4)
        .max_tables_per_component(TABLES_PER_SLOT * 8);

    let mut cfg = Config::new();
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_init_cow(true)
        .epoch_interruption(true)
        .consume_fuel(fuel)
        .max_wasm_stack(rc.max_wasm_stack)
        .async_stack_size(rc.max_wasm_stack + HOST_STACK_HEADROOM)
        // A reused stack slot must not leak the previous guest's frames.
        .async_stack_zeroing(true)
        .parallel_compilation(true)
        .wasm_backtrace_max_frames(NonZeroUsize::new(MAX_BACKTRACE_FRAMES))
        .wasm_backtrace_details(WasmBacktraceDetails::Disable)
        .cranelift_nan_canonicalization(false)
        .wasm_component_model(true)
        .concurrency_support(false);
    if max_memory < (4 << 30) {
        // Reserve only what a memory may reach; bounds checks replace the
        // 4 GiB guard region, so many more slots fit in the address space.
        cfg.memory_reservation(rc.max_memory_per_instance);
    }
    for off in [
        WasmFeatures::GC,
        WasmFeatures::THREADS,
        WasmFeatures::SHARED_EVERYTHING_THREADS,
        WasmFeatures::EXCEPTIONS,
        WasmFeatures::LEGACY_EXCEPTIONS,
        WasmFeatures::STACK_SWITCHING,
        WasmFeatures::CM_ASYNC,
        WasmFeatures::CM_MORE_ASYNC_BUILTINS,
        WasmFeatures::CM_ASYNC_STACKFUL,
        WasmFeatures::CM_THREADING,
        WasmFeatures::CM_ERROR_CONTEXT,
        WasmFeatures::CM_GC,
        WasmFeatures::MEMORY64,
        WasmFeatures::CUSTOM_PAGE_SIZES,
    ] {
        cfg.wasm_features(off, false);
    }
    Engine::new(&cfg).map_err(engine_err)
}

/// The one thread that advances the epoch of the runtime's engines. It stops
/// when the runtime drops its sender.
pub(crate) struct EpochTicker {
    _stop: Sender<()>,
}

impl EpochTicker {
    pub(crate) fn start(engines: Arc<Engines>, tick: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("wrun-epoch".to_owned())
            .spawn(move || ticker_loop(&engines, &stopped, tick))?;
        Ok(Self { _stop: stop })
    }
}

fn ticker_loop(engines: &Engines, stopped: &Receiver<()>, tick: Duration) {
    loop {
        match stopped.recv_timeout(tick) {
            Err(RecvTimeoutError::Timeout) => engines.tick(),
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
