//! How a guest run ended: its exit code, or the trap that stopped it and
//! why, told apart from errors that kept it from starting.

use std::fmt;

use wasmtime::{Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;

/// How a guest that started ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// The guest exited: its `proc_exit` / `wasi:cli/exit` code; 0 when
    /// `_start` returned; 1 when `wasi:cli/run` returned `Err`.
    Exited(i32),
    /// The guest was stopped by a trap.
    Trapped {
        reason: TrapReason,
        /// One line describing the trap, as wasmtime words it.
        message: String,
        /// The wasm call stack at the trap, one frame a line, when known.
        backtrace: Option<String>,
    },
}

/// Why a guest was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TrapReason {
    /// `unreachable` executed (Rust panics and aborts end here).
    Unreachable,
    /// A load or store outside linear memory.
    MemoryOutOfBounds,
    /// The wasm call stack was exhausted (deep recursion).
    StackOverflow,
    /// `Limits::timeout` ran out.
    Timeout,
    /// `Limits::fuel` ran out.
    OutOfFuel,
    /// A memory or table grow was refused by the limit and the guest then
    /// trapped (typically an allocation failure turned into an abort).
    MemoryLimit,
    /// Anything else: integer division by zero, a bad indirect call, a
    /// failing host call.
    Other,
}

impl fmt::Display for TrapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unreachable => "unreachable executed",
            Self::MemoryOutOfBounds => "out-of-bounds memory access",
            Self::StackOverflow => "stack overflow",
            Self::Timeout => "timeout",
            Self::OutOfFuel => "out of fuel",
            Self::MemoryLimit => "memory limit reached",
            Self::Other => "trap",
        })
    }
}

/// The error type an epoch callback returns when the deadline passed.
#[derive(Debug)]
pub(crate) struct DeadlineExceeded;

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the instance ran past its timeout")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Turns the error a guest call returned into an outcome.
pub(crate) fn classify(err: &wasmtime::Error, grow_denied: bool) -> RunOutcome {
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return RunOutcome::Exited(exit.0);
    }
    let trap = err.downcast_ref::<Trap>().copied();
    let mut reason = match trap {
        Some(Trap::UnreachableCodeReached) => TrapReason::Unreachable,
        Some(Trap::MemoryOutOfBounds) => TrapReason::MemoryOutOfBounds,
        Some(Trap::StackOverflow) => TrapReason::StackOverflow,
        Some(Trap::OutOfFuel) => TrapReason::OutOfFuel,
        Some(Trap::Interrupt) => TrapReason::Timeout,
        _ if err.is::<DeadlineExceeded>() => TrapReason::Timeout,
        _ => TrapReason::Other,
    };
    if grow_denied
        && matches!(
            reason,
            TrapReason::Unreachable | TrapReason::MemoryOutOfBounds | TrapReason::Other
        )
    {
        reason = TrapReason::MemoryLimit;
    }
    let message = match trap {
        Some(t) => t.to_string(),
        None if reason == TrapReason::Timeout => DeadlineExceeded.to_string(),
        None => err
            .chain()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(": "),
    };
    let backtrace = err
        .downcast_ref::<WasmBacktrace>()
        .filter(|bt| !bt.frames().is_empty())
        .map(|bt| bt.to_string());
    RunOutcome::Trapped {
        reason,
        message,
        backtrace,
    }
}

/// The outcome of a guest that was still blocked in a host call (a sleep, a
/// poll, a read) when its timeout ran out.
pub(crate) fn timed_out_while_blocked() -> RunOutcome {
    RunOutcome::Trapped {
        reason: TrapReason::Timeout,
        message: "the instance ran past its timeout while waiting in a WASI call".to_owned(),
        backtrace: None,
    }
}
