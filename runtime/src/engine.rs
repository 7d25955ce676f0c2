//! Builds the wasmtime engine(s) from a `RuntimeConfig` and runs the single
//! epoch ticker thread that drives timeouts and cooperative yielding.

use std::num::NonZeroUsize;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, WasmBacktraceDetails, WasmFeatures};

use crate::memory::MappedMemoryCreator;
use crate::{RuntimeConfig, RuntimeError};

/// Extra native stack for host calls (WASI) on top of the wasm stack.
const HOST_STACK_HEADROOM: usize = 1 << 20;

/// Address space a live instance maps for its fiber stack: the wasm stack,
/// the host calls' headroom, and the guard page below them.
pub fn stack_bytes(rc: &RuntimeConfig) -> u64 {
    (rc.max_wasm_stack + HOST_STACK_HEADROOM) as u64 + rustix::param::page_size() as u64
}

/// Frames kept in a trap's wasm backtrace (shown with `--debug`).
const MAX_BACKTRACE_FRAMES: usize = 32;

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
/// - instances allocated on demand, memories from [`MappedMemoryCreator`]:
///   what bounds how many instances a process holds is the kernel's count
///   of memory mappings (`vm.max_map_count`, 65,530 by default), not memory.
///   wasmtime's pooling allocator spends two mappings per pool slot on stack
///   guard pages, whether in use or not, and four more per live memory
///   (reservation split, copy-on-write image), which capped a process near
///   10,000 live instances at the default. On demand, a live instance costs
///   its fiber stack's two mappings (stack and guard page) and its memories
///   almost none (plain read-write mappings that merge with their
///   neighbours). The price: no reservation and no guard region, so the
///   compiled code checks each memory access's bounds, and a memory that
///   grows past its mapping moves (`mremap`); instantiation maps a stack and
///   a memory (microseconds) and copies the data segments instead of
///   mapping them copy-on-write (a small guest's few KiB);
/// - epoch interruption: a cheap check in loops lets one ticker thread stop
///   or yield every running guest;
/// - wasm features limited to what WASI programs built by today's toolchains
///   use: GC, threads, exceptions, stack switching and the async component
///   model are off.
///
/// How many instances may be alive at once is the runtime's own count
/// (`RuntimeConfig::max_instances`, see `slots.rs`), checked before an
/// instance is set up.
pub(crate) fn build_engine(rc: &RuntimeConfig, fuel: bool) -> Result<Engine, RuntimeError> {
    let engine_err = |e: wasmtime::Error| RuntimeError::Engine {
        source: RuntimeError::boxed(e),
    };
    let mut cfg = Config::new();
    cfg.allocation_strategy(InstanceAllocationStrategy::OnDemand)
        .with_host_memory(Arc::new(MappedMemoryCreator))
        .memory_reservation(0)
        .memory_guard_size(0)
        .guard_before_linear_memory(false)
        .memory_reservation_for_growth(0)
        .memory_init_cow(false)
        .epoch_interruption(true)
        .consume_fuel(fuel)
        .max_wasm_stack(rc.max_wasm_stack)
        .async_stack_size(rc.max_wasm_stack + HOST_STACK_HEADROOM)
        .parallel_compilation(true)
        .wasm_backtrace_max_frames(NonZeroUsize::new(MAX_BACKTRACE_FRAMES))
        .wasm_backtrace_details(WasmBacktraceDetails::Disable)
        .cranelift_nan_canonicalization(false)
        .wasm_component_model(true)
        .concurrency_support(false);
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
