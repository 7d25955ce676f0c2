//! The runtime's instance slots: how many instances may be alive at once,
//! taken by a run (or a served request) before anything is set up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::RuntimeError;

/// The count of slots in use, shared by every [`InstanceSlot`].
#[derive(Debug)]
pub(crate) struct Slots {
    held: AtomicU32,
    limit: u32,
}

impl Slots {
    pub(crate) fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicU32::new(0),
            limit,
        })
    }

    /// Takes a slot, or says that all `limit` are in use.
    pub(crate) fn take(self: &Arc<Self>) -> Result<InstanceSlot, RuntimeError> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.limit).then_some(held + 1)
            })
            .map_err(|_| RuntimeError::Capacity { limit: self.limit })?;
        Ok(InstanceSlot {
            slots: Arc::clone(self),
        })
    }

    pub(crate) fn held(&self) -> u32 {
        self.held.load(Ordering::Acquire)
    }

    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }
}

/// One instance slot, held from [`crate::Runtime::reserve`] until dropped
/// (a run that ends, or never started, frees it).
#[derive(Debug)]
pub struct InstanceSlot {
    slots: Arc<Slots>,
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        self.slots.held.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_run_out_at_the_limit_and_come_back_when_dropped() {
        let slots = Slots::new(2);
        let a = slots.take().unwrap();
        let _b = slots.take().unwrap();
        assert!(matches!(
            slots.take(),
            Err(RuntimeError::Capacity { limit: 2 })
        ));
        assert_eq!(slots.held(), 2);
        drop(a);
        assert_eq!(slots.held(), 1);
        assert!(slots.take().is_ok());
    }
}
