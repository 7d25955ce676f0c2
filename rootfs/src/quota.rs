//! The upper's size limit: bytes of file data written or copied up,
//! counted only when a limit is set.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};

pub(crate) struct Quota {
    limit: Option<u64>,
    used: Mutex<u64>,
}

impl Quota {
    pub fn new(limit: Option<u64>, used: u64) -> Quota {
        Quota {
            limit,
            used: Mutex::new(used),
        }
    }

    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// The count, locked: a write that may grow a file holds it across its
    /// size check and the write so the count stays exact.
    pub fn used(&self) -> MutexGuard<'_, u64> {
        self.used.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `bytes` of the limit, or fails with `NoSpace`.
    pub fn reserve(&self, bytes: u64) -> Result<()> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let mut used = self.used();
        let next = used.checked_add(bytes).ok_or(Error::NoSpace)?;
        if next > limit {
            return Err(Error::NoSpace);
        }
        *used = next;
        Ok(())
    }

    pub fn release(&self, bytes: u64) {
        if self.limit.is_some() {
            let mut used = self.used();
            *used = used.saturating_sub(bytes);
        }
    }
}
