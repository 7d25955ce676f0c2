//! Per-instance accounting of linear memory and tables against
//! `Limits::memory`, remembering whether a grow was refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many bytes one table element counts for against `Limits::memory`
/// (a function reference is a pointer on the host).
pub const TABLE_ELEMENT_BYTES: u64 = 8;

/// The bytes of linear memory plus tables an instance has in use, readable
/// from outside while it runs (the daemon's `stats`).
///
/// Counts what the guest was granted (initial sizes and every successful
/// grow; a table element as [`TABLE_ELEMENT_BYTES`]); wasm memory never
/// shrinks, so the figure only rises until the instance ends.
#[derive(Clone, Debug, Default)]
pub struct MemoryGauge(Arc<AtomicU64>);

impl MemoryGauge {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes in use now.
    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Core instances, memories and tables one store may create. A WASI 0.2
/// component built by Rust has a handful of core instances; more than this
/// is refused rather than let one instance take without bound.
const MAX_CORE_INSTANCES: usize = 32;
const MAX_MEMORIES: usize = 8;
const MAX_TABLES: usize = 32;

#[derive(Debug, Default)]
pub(crate) struct InstanceLimiter {
    /// The byte budget for memories plus tables; `None`: unlimited here (the
    /// runtime always passes one: the instance's limit or its own cap).
    budget: Option<u64>,
    used: u64,
    gauge: Option<MemoryGauge>,
    /// Set when a memory or table grow was refused, by us or by the memory.
    pub(crate) grow_denied: bool,
}

impl InstanceLimiter {
    pub(crate) fn new(budget: Option<u64>, gauge: Option<MemoryGauge>) -> Self {
        Self {
            budget,
            used: 0,
            gauge,
            grow_denied: false,
        }
    }

    fn charge(&mut self, extra: u64) -> bool {
        let Some(total) = self.used.checked_add(extra) else {
            self.grow_denied = true;
            return false;
        };
        if self.budget.is_some_and(|b| total > b) {
            self.grow_denied = true;
            return false;
        }
        self.used = total;
        if let Some(g) = &self.gauge {
            g.0.store(total, Ordering::Relaxed);
        }
        true
    }
}

impl wasmtime::ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|m| desired > m) {
            self.grow_denied = true;
            return Ok(false);
        }
        Ok(self.charge(desired.saturating_sub(current) as u64))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The memory could not grow (no room to map): the guest sees -1, we
        // remember why.
        self.grow_denied = true;
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|m| desired > m) {
            self.grow_denied = true;
            return Ok(false);
        }
        let extra = (desired.saturating_sub(current) as u64).saturating_mul(TABLE_ELEMENT_BYTES);
        Ok(self.charge(extra))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_denied = true;
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memory_and_tables_share_one_budget() -> wasmtime::Result<()> {
        let gauge = MemoryGauge::new();
        let mut l = InstanceLimiter::new(Some(65536 + 8 * 10), Some(gauge.clone()));
        assert!(l.memory_growing(0, 65536, None)?);
        assert!(l.table_growing(0, 10, None)?);
        assert!(!l.grow_denied);
        assert!(!l.table_growing(10, 11, None)?);
        assert!(!l.memory_growing(65536, 131072, None)?);
        assert!(l.grow_denied);
        assert_eq!(
            gauge.bytes(),
            65536 + 8 * 10,
            "the gauge shows what was granted"
        );
        Ok(())
    }

    #[test]
    fn unlimited_budget_still_honours_declared_maximum() -> wasmtime::Result<()> {
        let mut l = InstanceLimiter::new(None, None);
        assert!(l.memory_growing(0, 1 << 30, None)?);
        assert!(!l.memory_growing(0, 2, Some(1))?);
        Ok(())
    }
}
