//! `RuntimeConfig`: the process-wide knobs of the one engine — instance slots,
//! stack size, epoch tick, where compiled modules are cached.

use std::path::PathBuf;
use std::time::Duration;

/// Process-wide settings of a [`crate::Runtime`].
///
/// The defaults suit the foreground CLI and a daemon of about a thousand
/// concurrent instances; the daemon sizes `max_instances` from the host.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Instances that can be alive at once: a run (or a served request)
    /// takes a slot before it is set up, and fails with
    /// `RuntimeError::Capacity` when all are taken. Nothing is reserved per
    /// slot: a live instance maps its fiber stack and memories when it
    /// starts. Default 1000.
    pub max_instances: u32,
    /// Largest size the memories and tables of one instance may reach, in
    /// bytes: the budget of an instance without `Limits::memory`, and the
    /// upper bound of any. Default 4 GiB (the wasm32 maximum).
    pub max_memory_per_instance: u64,
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
    /// `wrun run`): 4 instance slots.
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
            max_wasm_stack: 512 << 10,
            epoch_tick: Duration::from_millis(1),
            yield_every_ticks: 10,
            cache_dir: None,
            scratch_dir: None,
        }
    }
}
