//! What the daemon reads of the host it runs on, for `/info`, `stats` and
//! the capacity plan.

/// The host's memory in bytes (`MemTotal` of `/proc/meminfo`); 0 when
/// unreadable.
pub fn memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let kib = s
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// The running kernel's release, as `uname -r` prints it.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The host's CPU time over all CPUs in nanoseconds (`/proc/stat`, in
/// USER_HZ = 100 ticks per second); 0 when unreadable.
pub fn cpu_nanos() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?.strip_prefix("cpu ")?.to_string();
            Some(
                line.split_whitespace()
                    .filter_map(|t| t.parse::<u64>().ok())
                    .sum::<u64>()
                    .saturating_mul(10_000_000),
            )
        })
        .unwrap_or(0)
}
