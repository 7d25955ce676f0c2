//! The states of an instance and the transitions between them, checked:
//! each operation asks whether the state allows it before it changes
//! anything, and gets Docker's error when it does not.

use serde::{Deserialize, Serialize};

use crate::error::DaemonError;

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

    /// Running or paused: the instance holds a guest.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }

    /// `start` (and a restart policy's start): a new run from created or
    /// exited; nothing to do when running (`304`); refused when paused or
    /// while removing, as Docker does.
    pub fn start(self, id: &str) -> Result<Start, DaemonError> {
        match self {
            Status::Created | Status::Exited => Ok(Start::Run),
            Status::Running => Ok(Start::AlreadyRunning),
            Status::Paused => Err(DaemonError::conflict(
                "cannot start a paused container, try unpause instead",
            )),
            Status::Removing => Err(marked_for_removal(id)),
        }
    }

    /// `stop` (and the daemon's shutdown): a live instance is told to end;
    /// one waiting for its policy restart has the restart cancelled (not at
    /// shutdown: the daemon starts nothing from then on).
    pub fn stop(self, restarting: bool, kind: StopKind) -> Stopping {
        if self.is_live() {
            Stopping::Signal
        } else if restarting && !matches!(kind, StopKind::Shutdown) {
            Stopping::CancelRestart
        } else {
            Stopping::NotRunning
        }
    }

    /// `kill`: as [`stop`](Status::stop), but with nothing running it is
    /// Docker's 409 (the request adds `Cannot kill container: KEY: `, KEY
    /// as the client named the instance).
    pub fn kill(self, restarting: bool, id: &str) -> Result<Stopping, DaemonError> {
        match self.stop(restarting, StopKind::Signal(9)) {
            Stopping::NotRunning => Err(DaemonError::conflict(format!(
                "Container {id} is not running"
            ))),
            decided => Ok(decided),
        }
    }

    /// `restart`: a stop if live (paused too), then a start; refused
    /// while removing.
    pub fn restart(self, id: &str) -> Result<(), DaemonError> {
        match self {
            Status::Removing => Err(marked_for_removal(id)),
            _ => Ok(()),
        }
    }

    /// `pause`: only a running instance, and not one serving HTTP (its
    /// requests run outside the gate). Returns the status to record.
    pub fn pause(self, id: &str, serving: bool) -> Result<Status, DaemonError> {
        match self {
            Status::Running if serving => Err(DaemonError::conflict(format!(
                "Container {id} serves HTTP and cannot be paused: stop it instead (requests in flight finish)"
            ))),
            Status::Running => Ok(Status::Paused),
            Status::Paused => Err(DaemonError::conflict(format!(
                "Container {id} is already paused"
            ))),
            Status::Created | Status::Exited | Status::Removing => Err(not_running(id)),
        }
    }

    /// `unpause`: only a paused instance. Returns the status to record.
    pub fn unpause(self, id: &str) -> Result<Status, DaemonError> {
        match self {
            Status::Paused => Ok(Status::Running),
            _ => Err(DaemonError::conflict(format!(
                "Container {id} is not paused"
            ))),
        }
    }

    /// `attach` follows the log until the next run ends, in every state
    /// but two, refused as Docker refuses them: a paused instance, and one
    /// waiting for its policy restart. What differs is whose stdin an
    /// attach may write. `key` is how the client named the instance.
    pub fn attach(self, restarting: bool, key: &str) -> Result<AttachTo, DaemonError> {
        if self == Status::Paused {
            return Err(DaemonError::conflict(format!(
                "container {key} is paused, unpause the container before attach"
            )));
        }
        if restarting {
            return Err(DaemonError::conflict(format!(
                "container {key} is restarting, wait until the container is running"
            )));
        }
        Ok(if self.is_live() {
            AttachTo::CurrentRun
        } else {
            AttachTo::NextRun
        })
    }

    /// `DELETE /containers/{id}`: a live instance only with `force` (killed
    /// first); removing one already removed is done already.
    pub fn remove(self, id: &str, force: bool) -> Result<Removal, DaemonError> {
        match (self, force) {
            (Status::Running | Status::Paused, true) => Ok(Removal::KillFirst),
            (Status::Running, false) => Err(DaemonError::conflict(format!(
                "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
            ))),
            (Status::Paused, false) => Err(DaemonError::conflict(format!(
                "You cannot remove a paused container {id}. Unpause and then stop the container before attempting removal or force remove"
            ))),
            (Status::Created | Status::Exited | Status::Removing, _) => Ok(Removal::Remove),
        }
    }

    /// Whether a restart policy's pending start still applies: it was not
    /// started, stopped or removed since it was scheduled.
    pub fn policy_may_start(self, restarting: bool) -> bool {
        restarting && self == Status::Exited
    }

    /// Whether a record loaded at daemon start was held by a previous
    /// daemon that went away: it is recorded as exited, with
    /// [`EXIT_DAEMON_GONE`].
    pub fn interrupted(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Removing)
    }
}

/// What a `start` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Start a new run.
    Run,
    /// Running or paused already: nothing changes.
    AlreadyRunning,
}

/// What a `stop` or `kill` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopping {
    /// Tell the run to end and wait for it.
    Signal,
    /// Nothing runs, but a policy restart is pending: cancel it.
    CancelRestart,
    /// Nothing to do (`304` for `stop`).
    NotRunning,
}

/// Whose stdin an attach with `stdin=1` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachTo {
    /// The current run's, unless another attach took it.
    CurrentRun,
    /// The next run's: a pipe made now, handed to the run at its start.
    NextRun,
}

/// What a remove does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Forget the instance and delete its logs.
    Remove,
    /// End its run first (`SIGKILL`), then remove it.
    KillFirst,
}

/// Docker's 409 for an operation that needs a running instance.
pub(crate) fn not_running(id: &str) -> DaemonError {
    DaemonError::conflict(format!("Container {id} is not running"))
}

fn marked_for_removal(id: &str) -> DaemonError {
    DaemonError::conflict(format!(
        "container {id} is marked for removal and cannot be started"
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Status; 5] = [
        Status::Created,
        Status::Running,
        Status::Paused,
        Status::Exited,
        Status::Removing,
    ];

    /// An operation's answer as one line: the decision, or the HTTP status
    /// and message of the refusal.
    fn shown<T: std::fmt::Debug>(r: Result<T, DaemonError>) -> String {
        match r {
            Ok(decided) => format!("{decided:?}"),
            Err(e) => format!("{} {}", e.status().as_u16(), e.message()),
        }
    }

    /// Every operation on an instance `ID` named `web`, not waiting for a
    /// policy restart, not serving HTTP unless the operation says so.
    fn row(s: Status) -> [String; 11] {
        [
            shown(s.start("ID")),
            format!("{:?}", s.stop(false, StopKind::Stop)),
            format!("{:?}", s.stop(false, StopKind::Shutdown)),
            shown(s.kill(false, "ID")),
            shown(s.restart("ID")),
            shown(s.pause("ID", false)),
            shown(s.pause("ID", true)),
            shown(s.unpause("ID")),
            shown(s.attach(false, "ID")),
            shown(s.remove("ID", false)),
            shown(s.remove("ID", true)),
        ]
    }

    const NOT_RUNNING: &str = "409 Container ID is not running";
    const NOT_PAUSED: &str = "409 Container ID is not paused";
    const CANNOT_KILL: &str = "409 Container ID is not running";
    const MARKED: &str = "409 container ID is marked for removal and cannot be started";
    const SERVES: &str = "409 Container ID serves HTTP and cannot be paused: stop it instead (requests in flight finish)";
    const RUNNING_RM: &str = "409 You cannot remove a running container ID. Stop the container before attempting removal or force remove";

    #[test]
    fn attach_waits_for_no_policy_restart() {
        for s in [Status::Created, Status::Exited] {
            assert_eq!(
                shown(s.attach(true, "web")),
                "409 container web is restarting, wait until the container is running"
            );
        }
    }

    #[test]
    fn every_operation_in_every_status() {
        // start, stop, shutdown, kill, restart, pause, pause (serving),
        // unpause, attach, rm, rm -f
        let table: [(Status, [&str; 11]); 5] = [
            (
                Status::Created,
                [
                    "Run",
                    "NotRunning",
                    "NotRunning",
                    CANNOT_KILL,
                    "()",
                    NOT_RUNNING,
                    NOT_RUNNING,
                    NOT_PAUSED,
                    "NextRun",
                    "Remove",
                    "Remove",
                ],
            ),
            (
                Status::Running,
                [
                    "AlreadyRunning",
                    "Signal",
                    "Signal",
                    "Signal",
                    "()",
                    "Paused",
                    SERVES,
                    NOT_PAUSED,
                    "CurrentRun",
                    RUNNING_RM,
                    "KillFirst",
                ],
            ),
            (
                Status::Paused,
                [
                    "409 cannot start a paused container, try unpause instead",
                    "Signal",
                    "Signal",
                    "Signal",
                    "()",
                    "409 Container ID is already paused",
                    "409 Container ID is already paused",
                    "Running",
                    "409 container ID is paused, unpause the container before attach",
                    "409 You cannot remove a paused container ID. Unpause and then stop the container before attempting removal or force remove",
                    "KillFirst",
                ],
            ),
            (
                Status::Exited,
                [
                    "Run",
                    "NotRunning",
                    "NotRunning",
                    CANNOT_KILL,
                    "()",
                    NOT_RUNNING,
                    NOT_RUNNING,
                    NOT_PAUSED,
                    "NextRun",
                    "Remove",
                    "Remove",
                ],
            ),
            (
                Status::Removing,
                [
                    MARKED,
                    "NotRunning",
                    "NotRunning",
                    CANNOT_KILL,
                    MARKED,
                    NOT_RUNNING,
                    NOT_RUNNING,
                    NOT_PAUSED,
                    "NextRun",
                    "Remove",
                    "Remove",
                ],
            ),
        ];
        assert_eq!(table.map(|(s, _)| s), ALL, "one row per status");
        for (status, expected) in table {
            assert_eq!(row(status), expected.map(String::from), "{status:?}");
        }
    }

    #[test]
    fn a_pending_policy_restart_is_cancelled_by_stop_and_kill_but_not_by_shutdown() {
        for s in ALL {
            let (stop, kill, shutdown) = if s.is_live() {
                ("Signal", "Signal", "Signal")
            } else {
                ("CancelRestart", "CancelRestart", "NotRunning")
            };
            assert_eq!(format!("{:?}", s.stop(true, StopKind::Stop)), stop, "{s:?}");
            assert_eq!(shown(s.kill(true, "ID")), kill, "{s:?}");
            assert_eq!(
                format!("{:?}", s.stop(true, StopKind::Shutdown)),
                shutdown,
                "{s:?}"
            );
        }
    }

    #[test]
    fn only_an_exited_instance_waiting_for_its_policy_is_started_by_it() {
        for s in ALL {
            assert_eq!(s.policy_may_start(true), s == Status::Exited, "{s:?}");
            assert!(!s.policy_may_start(false), "{s:?}");
        }
    }

    #[test]
    fn a_record_left_live_by_a_daemon_that_went_away_was_interrupted() {
        let interrupted: Vec<Status> = ALL.into_iter().filter(|s| s.interrupted()).collect();
        assert_eq!(
            interrupted,
            [Status::Running, Status::Paused, Status::Removing]
        );
        let live: Vec<Status> = ALL.into_iter().filter(|s| s.is_live()).collect();
        assert_eq!(live, [Status::Running, Status::Paused]);
    }

    #[test]
    fn stop_kinds_record_dockers_exit_codes() {
        assert_eq!(StopKind::Stop.exit(), (143, ""));
        assert_eq!(StopKind::Signal(9).exit(), (137, ""));
        assert_eq!(StopKind::Shutdown.exit().0, EXIT_DAEMON_GONE);
        assert_eq!(StopKind::Stop.signal(), Some(15));
        assert_eq!(StopKind::Shutdown.signal(), None);
    }
}
