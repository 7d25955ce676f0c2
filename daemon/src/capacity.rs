//! How many instances the daemon holds at once: sized from the host when
//! `--max-instances` is not given, shown by `/info`, named by a refused start.

use std::sync::OnceLock;

use crate::error::DaemonError;

/// Kernel mappings one live instance costs: its fiber stack and the stack's
/// guard page. Its memories are read-write mappings that merge with their
/// neighbours (runtime/src/memory.rs); measured with `/proc/PID/maps` at
/// 1,000 and 25,000 idle instances.
pub const MAPPINGS_PER_INSTANCE: u64 = 2;

/// Mappings left for the daemon itself: its code and libraries, thread
/// stacks (tokio's blocking pool may grow to 512 threads), the module
/// cache's mapped artifacts, the allocator's arenas.
pub const MAPPINGS_RESERVED: u64 = 4096;

/// Host memory counted per instance when sizing from memory: an idle
/// instance holds about 53 KiB (docs/benchmarks/daemon-scale.md).
pub const MEMORY_PER_INSTANCE: u64 = 64 << 10;

/// The most instances a daemon sizes itself for, whatever the host.
pub const MAX_DEFAULT_INSTANCES: u64 = 1_000_000;

/// What set the number of instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    /// `--max-instances N`.
    Flag,
    /// The kernel's `vm.max_map_count`.
    MapCount,
    /// The host's memory.
    Memory,
    /// [`MAX_DEFAULT_INSTANCES`].
    Ceiling,
}

/// The daemon's capacity and the host figures it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub instances: u32,
    pub bound: Bound,
    /// `vm.max_map_count`, when readable.
    pub max_map_count: Option<u64>,
    /// `MemTotal` in bytes (0 when unreadable).
    pub host_memory: u64,
}

impl Capacity {
    /// The capacity for `--max-instances` (`None`: sized from the host).
    /// A given number the kernel's mapping limit cannot hold is refused,
    /// with the `sysctl` that would.
    pub fn plan(
        flag: Option<u32>,
        max_map_count: Option<u64>,
        host_memory: u64,
    ) -> anyhow::Result<Self> {
        if let Some(n) = flag {
            if n == 0 {
                anyhow::bail!("--max-instances must be at least 1");
            }
            let needed = mappings_needed(n);
            if let Some(limit) = max_map_count.filter(|&l| needed > l) {
                anyhow::bail!(
                    "--max-instances {n} needs about {needed} memory mappings, over the \
                     kernel's vm.max_map_count of {limit}: raise it (sysctl -w \
                     vm.max_map_count={}) or lower --max-instances",
                    needed.next_power_of_two()
                );
            }
            return Ok(Self {
                instances: n,
                bound: Bound::Flag,
                max_map_count,
                host_memory,
            });
        }
        let by_maps = max_map_count
            .map(|l| l.saturating_sub(MAPPINGS_RESERVED) / MAPPINGS_PER_INSTANCE)
            .unwrap_or(u64::MAX);
        let by_memory = if host_memory == 0 {
            u64::MAX
        } else {
            host_memory / MEMORY_PER_INSTANCE
        };
        let (n, bound) = [
            (by_maps, Bound::MapCount),
            (by_memory, Bound::Memory),
            (MAX_DEFAULT_INSTANCES, Bound::Ceiling),
        ]
        .into_iter()
        .min_by_key(|(n, _)| *n)
        .expect("the list is not empty");
        Ok(Self {
            instances: u32::try_from(n.max(1)).unwrap_or(u32::MAX),
            bound,
            max_map_count,
            host_memory,
        })
    }

    /// The capacity on this host: its `vm.max_map_count` and memory.
    pub fn for_host(flag: Option<u32>) -> anyhow::Result<Self> {
        Self::plan(flag, max_map_count(), crate::host::memory())
    }

    /// What bounds the capacity, in words (`/info`, a refused start).
    pub fn bound_text(&self) -> String {
        match (&self.bound, self.max_map_count) {
            (Bound::Flag, _) => "--max-instances".to_string(),
            (Bound::MapCount, Some(l)) => format!(
                "vm.max_map_count {l} ({MAPPINGS_PER_INSTANCE} mappings per instance, \
                 {MAPPINGS_RESERVED} kept for the daemon)"
            ),
            (Bound::MapCount, None) => "vm.max_map_count".to_string(),
            (Bound::Memory, _) => format!(
                "host memory {} MiB ({} KiB per instance)",
                self.host_memory >> 20,
                MEMORY_PER_INSTANCE >> 10
            ),
            (Bound::Ceiling, _) => format!("wrun's ceiling of {MAX_DEFAULT_INSTANCES}"),
        }
    }

    /// What raises the capacity, as advice on one line.
    pub fn remedy(&self) -> String {
        match self.bound {
            Bound::Flag => "start the daemon with a larger --max-instances (or without it, \
                            to size it from the host)"
                .to_string(),
            Bound::MapCount => {
                let wanted = mappings_needed(self.instances.saturating_mul(2));
                format!(
                    "raise vm.max_map_count (sysctl -w vm.max_map_count={}) and restart the \
                     daemon, or give it --max-instances",
                    wanted.next_power_of_two()
                )
            }
            Bound::Memory | Bound::Ceiling => {
                "start the daemon with a larger --max-instances".to_string()
            }
        }
    }
}

/// Mappings a daemon of `n` instances needs at most.
pub fn mappings_needed(n: u32) -> u64 {
    u64::from(n) * MAPPINGS_PER_INSTANCE + MAPPINGS_RESERVED
}

fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The serving daemon's capacity, set once at start.
static CAPACITY: OnceLock<Capacity> = OnceLock::new();

pub(crate) fn set(capacity: Capacity) {
    let _ = CAPACITY.set(capacity);
}

pub(crate) fn get() -> Option<&'static Capacity> {
    CAPACITY.get()
}

/// A start refused for want of a slot: the runtime's line, what bounds the
/// capacity and what raises it.
pub(crate) fn refused(name: &str, err: wrun_runtime::RuntimeError) -> DaemonError {
    let advice = match get() {
        Some(c) => format!(
            " (bound by {}); stop or remove instances, or {}",
            c.bound_text(),
            c.remedy()
        ),
        None => "; stop or remove instances".to_string(),
    };
    DaemonError::Capacity(format!("cannot start {name}: {err}{advice}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_bounds_the_default_capacity() {
        let gib = 1u64 << 30;
        // This machine kind: 24 GiB, the kernel's default map count.
        let c = Capacity::plan(None, Some(65_530), 24 * gib).unwrap();
        assert_eq!(c.bound, Bound::MapCount);
        assert_eq!(c.instances, (65_530 - 4096) / 2);
        assert!(c.instances >= 25_000);
        // A small host: memory bounds it.
        let c = Capacity::plan(None, Some(65_530), gib).unwrap();
        assert_eq!((c.bound, c.instances), (Bound::Memory, 16_384));
        // A raised map count and plenty of memory: the ceiling.
        let c = Capacity::plan(None, Some(1 << 31), 1 << 40).unwrap();
        assert_eq!(c.bound, Bound::Ceiling);
        assert_eq!(c.instances, 1_000_000);
        // Nothing readable: the ceiling still applies.
        assert_eq!(Capacity::plan(None, None, 0).unwrap().bound, Bound::Ceiling);
    }

    #[test]
    fn a_given_number_is_checked_against_the_map_count() {
        let c = Capacity::plan(Some(3), Some(65_530), 0).unwrap();
        assert_eq!((c.instances, c.bound), (3, Bound::Flag));
        let err = Capacity::plan(Some(100_000), Some(65_530), 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vm.max_map_count of 65530"), "{err}");
        assert!(err.contains("sysctl -w vm.max_map_count=262144"), "{err}");
        assert!(Capacity::plan(Some(0), None, 0).is_err());
    }

    #[test]
    fn a_refusal_names_the_bound_and_the_remedy() {
        let c = Capacity::plan(None, Some(65_530), 24 << 30).unwrap();
        assert!(c.bound_text().starts_with("vm.max_map_count 65530"));
        assert!(c.remedy().contains("sysctl -w vm.max_map_count="));
        let flag = Capacity::plan(Some(3), None, 0).unwrap();
        assert!(flag.remedy().contains("--max-instances"));
    }
}
