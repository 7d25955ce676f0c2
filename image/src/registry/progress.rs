//! What a pull or push reports while it runs, layer by layer: the events a
//! terminal's bars (the CLI) or a progress stream (the daemon) are drawn from.

use std::fmt;
use std::sync::Arc;

use crate::digest::Digest;

/// One step of one layer's transfer. Every layer gets `Pending` first (in
/// the manifest's order; a pull sends them all before any byte moves),
/// then either `Exists` (the other side has it: nothing moves) or `Bytes`
/// as they move and `Done` when all arrived (a pull: hashed and checked) or
/// were sent (a push), or, in a push, `Mounted`. A pull ends with `Storing`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferEvent {
    /// The layer is in the image: `size` bytes. `kept` of them are
    /// already here from an interrupted pull (all of them: nothing is
    /// fetched; fewer: the rest is asked for from byte `kept` on); a push
    /// says 0, and a pull says `size` for a layer the store has.
    Pending { layer: Digest, size: u64, kept: u64 },
    /// The other side has it (a pull: the store; a push: the registry).
    Exists { layer: Digest },
    /// A push: the registry mounted it from its repository `from`
    /// (nothing moves).
    Mounted { layer: Digest, from: String },
    /// `done` of `size` bytes have moved (counting kept ones).
    Bytes { layer: Digest, done: u64, size: u64 },
    /// The layer's transfer is complete.
    Done { layer: Digest },
    /// A pull: every layer arrived and the image is being stored (layers
    /// unpacked and checked against the config).
    Storing,
}

/// Where a transfer sends its events: a callback, called from the
/// transfer's threads (one layer's events in order). None by default.
#[derive(Clone, Default)]
pub struct ProgressSink(Option<Arc<dyn Fn(TransferEvent) + Send + Sync>>);

impl ProgressSink {
    pub fn new(f: impl Fn(TransferEvent) + Send + Sync + 'static) -> ProgressSink {
        ProgressSink(Some(Arc::new(f)))
    }

    pub(crate) fn send(&self, event: TransferEvent) {
        if let Some(f) = &self.0 {
            f(event);
        }
    }
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "ProgressSink(callback)"
        } else {
            "ProgressSink(none)"
        })
    }
}

/// How often, in bytes, a transfer reports `Bytes` at most: a 4 GB layer
/// sends about 16,000 events, a small one at least its last.
pub(crate) const REPORT_EVERY: u64 = 256 << 10;
