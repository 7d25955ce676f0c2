//! How a run ends in Docker's terms: the exit codes of `run` (125, 126,
//! 127, traps and limits), the failures that have their own code, and the
//! report of a guest's end.

use wrun_runtime::RunOutcome;

/// Exit code for failures of other commands (as Docker's CLI).
pub const EXIT_FAILURE: u8 = 1;
/// `run`: wrun itself failed (bad flag, no such image, store error), as Docker.
pub const EXIT_RUN_ERROR: u8 = 125;
/// `run`: the module cannot be run (invalid, wrong kind, not a command), as Docker's 126.
pub const EXIT_CANNOT_RUN: u8 = 126;
/// `run`: the module is not in the image, as Docker's 127 "command not found".
pub const EXIT_NOT_FOUND: u8 = 127;
/// `run`: the guest ran past `--timeout` (the code GNU `timeout` uses).
pub const EXIT_TIMEOUT: u8 = 124;
/// `run`: the guest trapped (unreachable, out of bounds, stack overflow): 128 + SIGABRT.
pub const EXIT_TRAP: u8 = 134;
/// `run`: the guest hit `--memory` and trapped: 128 + SIGKILL, Docker's OOM-killed code.
pub const EXIT_MEMORY: u8 = 137;
/// `run`: the guest used up `--fuel`: 128 + SIGXCPU.
pub const EXIT_FUEL: u8 = 152;

/// Failures of `run` that have their own exit code.
#[derive(Debug)]
pub enum RunFailure {
    /// The entrypoint names no file in the image.
    ModuleMissing(String),
    /// The module exists but cannot run.
    CannotRun(String),
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunFailure::ModuleMissing(m) | RunFailure::CannotRun(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RunFailure {}

/// What `run` prints for a trap, naming the cause.
pub fn trap_summary(reason: wrun_runtime::TrapReason) -> String {
    use wrun_runtime::TrapReason as T;
    match reason {
        T::Timeout => "stopped: the --timeout ran out".into(),
        T::OutOfFuel => "stopped: the --fuel budget ran out".into(),
        T::MemoryLimit => "stopped: the --memory limit was reached".into(),
        other => format!("the guest trapped: {other}"),
    }
}

/// The exit code for a guest stopped by a trap.
pub fn trap_exit_code(reason: wrun_runtime::TrapReason) -> u8 {
    use wrun_runtime::TrapReason as T;
    match reason {
        T::Timeout => EXIT_TIMEOUT,
        T::OutOfFuel => EXIT_FUEL,
        T::MemoryLimit => EXIT_MEMORY,
        _ => EXIT_TRAP,
    }
}

/// How a guest ended, in Docker's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// The process-style exit code (0–255).
    pub exit_code: u8,
    /// Why it was stopped, when a trap stopped it.
    pub error: Option<String>,
    /// Stopped by the memory limit (Docker's `OOMKilled`).
    pub oom_killed: bool,
    pub backtrace: Option<String>,
}

/// Maps an outcome to the exit code and message `run` reports.
pub fn ended(outcome: &RunOutcome, module_name: &str) -> Ended {
    match outcome {
        RunOutcome::Exited(code) => Ended {
            exit_code: (code & 0xff) as u8,
            error: None,
            oom_killed: false,
            backtrace: None,
        },
        RunOutcome::Trapped {
            reason,
            message,
            backtrace,
        } => Ended {
            exit_code: trap_exit_code(*reason),
            error: Some(format!(
                "{module_name}: {} ({message})",
                trap_summary(*reason)
            )),
            oom_killed: *reason == wrun_runtime::TrapReason::MemoryLimit,
            backtrace: backtrace.clone(),
        },
    }
}

/// The exit code of a run that failed before the guest started.
pub fn failure_exit_code(err: &anyhow::Error) -> u8 {
    exit_code(err, true)
}

/// Maps an error to the process exit code; `run` has Docker's 125/126/127.
pub fn exit_code(err: &anyhow::Error, is_run: bool) -> u8 {
    if !is_run {
        return EXIT_FAILURE;
    }
    match err.chain().find_map(|c| c.downcast_ref::<RunFailure>()) {
        Some(RunFailure::ModuleMissing(_)) => EXIT_NOT_FOUND,
        Some(RunFailure::CannotRun(_)) => EXIT_CANNOT_RUN,
        None => EXIT_RUN_ERROR,
    }
}
