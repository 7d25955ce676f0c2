//! `RuntimeConfig`: the process-wide knobs of the one engine — pool sizes,
//! stack size, epoch tick, where compiled modules are cached.

use std::path::PathBuf;
use std::time::Duration;

/// Process-wide settings of a [`crate::Runtime`].
///
/// The defaults suit the foreground CLI and a daemon of about a thousand
/// concurrent instances; a denser daemon raises `max_instances` and lowers
/// `max_memory_per_instance`.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Instances that can be alive at once. Each reserves a pool slot (virtual
    /// address space only, committed on use). Default 1000.
    pub max_instances: u32,
    /// Largest size one linear memory may reach, in bytes; also the upper
    /// bound of any per-instance `Limits::memory`. Default 4 GiB (the wasm32
    /// maximum).
    pub max_memory_per_instance: u64,
    /// Largest number of elements one table may hold. Default 20 000.
    pub max_table_elements: usize,
    /// Wasm stack size in bytes; deeper recursion traps with a stack
    /// overflow. Default 512 KiB. Host calls get 1 MiB on top of it.
    pub max_wasm_stack: usize,
    /// Epoch tick: the granularity of timeouts and of cooperative yielding.
    /// One thread per runtime ticks at this rate. Default 1 ms.
    pub epoch_tick: Duration,
    /// A running guest yields to the executor every this many ticks so many
    /// instances share few threads fairly. Default 10.
    pub yield_every_ticks: u64,
    /// Directory for compiled module artifacts. `None`: no disk cache, every
    /// process compiles each module once. Created (mode 0700) if missing.
    pub cache_dir: Option<PathBuf>,
    /// Directory under which private `/tmp` directories of instances are
    /// created (mode 0700 if created). Default: the host temp dir
    /// + `wrun-scratch`.
    pub scratch_dir: Option<PathBuf>,
}

impl RuntimeConfig {
    /// Settings for a process that runs one guest at a time (the foreground
    /// `wrun run`): a pool of 4 slots. Setting up the pool is most of a
    /// runtime's start-up cost (measured here: about 0.3 ms for 4 slots,
    /// 3.5 ms for the default 1000), so a short-lived process keeps it small.
    pub fn foreground() -> Self {
        Self {
            max_instances: 4,
            ..Self::default()
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory_per_instance: 4 << 30,
            max_table_elements: 20_000,
            max_wasm_stack: 512 << 10,
            epoch_tick: Duration::from_millis(1),
            yield_every_ticks: 10,
            cache_dir: None,
            scratch_dir: None,
        }
    }
}
