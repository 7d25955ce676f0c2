//! The upper's size limit: bytes of file data written or copied up,
//! counted only when a limit is set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};

pub(crate) struct Quota {
    limit: Option<u64>,
    used: Mutex<u64>,
    /// Whether a write was ever refused for the limit: what tells a build
    /// step that failed because it filled its upper from one that failed
    /// for its own reasons.
    refused: AtomicBool,
}

impl Quota {
    pub fn new(limit: Option<u64>, used: u64) -> Quota {
        Quota {
            limit,
            used: Mutex::new(used),
            refused: AtomicBool::new(false),
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
        let next = used.checked_add(bytes).ok_or_else(|| self.refuse())?;
        if next > limit {
            return Err(self.refuse());
        }
        *used = next;
        Ok(())
    }

    /// The error of a write the limit refuses, remembered.
    pub fn refuse(&self) -> Error {
        self.refused.store(true, Ordering::Relaxed);
        Error::NoSpace
    }

    /// Whether [`Quota::refuse`] was ever called.
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn release(&self, bytes: u64) {
        if self.limit.is_some() {
            let mut used = self.used();
            *used = used.saturating_sub(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_reservation_is_remembered() {
        let quota = Quota::new(Some(10), 0);
        quota.reserve(10).unwrap();
        assert!(
            !quota.refused(),
            "a reservation up to the limit is no refusal"
        );
        assert!(matches!(quota.reserve(1), Err(Error::NoSpace)));
        assert!(quota.refused());
        quota.release(10);
        assert!(
            quota.refused(),
            "room given back does not forget the refusal"
        );
    }
}
