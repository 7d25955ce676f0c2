//! The states of an instance and the transitions between them, checked:
//! each operation asks whether the state allows it before it changes
//! anything, and gets Docker's error when it does not.

use serde::{Deserialize, Serialize};

/// Exit code of an instance that was running when the daemon stopped.
pub const EXIT_DAEMON_GONE: i64 = 255;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    /// Running, but its guest is not scheduled (see `gate`).
    Paused,
    Exited,
    Removing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Exited => "exited",
            Status::Removing => "removing",
        }
    }
}

/// How a running instance is asked to end (WASI has no signals: both end
/// the guest at once; they differ in the exit code recorded).
#[derive(Clone, Copy, Debug)]
pub enum StopKind {
    /// `stop`: recorded as 143 (128 + SIGTERM).
    Stop,
    /// `kill -s N`: recorded as 128 + N.
    Signal(u8),
    /// The daemon is shutting down.
    Shutdown,
}

impl StopKind {
    /// The event's signal attribute: the number `kill` was given.
    pub(crate) fn signal(self) -> Option<u8> {
        match self {
            StopKind::Stop => Some(15),
            StopKind::Signal(n) => Some(n),
            StopKind::Shutdown => None,
        }
    }

    pub fn exit(self) -> (i64, &'static str) {
        match self {
            StopKind::Stop => (143, ""),
            StopKind::Signal(n) => (128 + i64::from(n), ""),
            StopKind::Shutdown => (EXIT_DAEMON_GONE, "the daemon shut down"),
        }
    }
}
