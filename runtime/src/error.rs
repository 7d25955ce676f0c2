//! Errors raised before a guest starts running: bad configuration, bad
//! module, bad spec, missing host directories, no free instance slot.

use std::path::PathBuf;

use crate::ModuleKind;

/// A boxed error kept as the source of a [`RuntimeError`].
///
/// wasmtime's own error type does not implement `std::error::Error`, so its
/// errors are converted with `into_boxed_dyn_error` and kept whole here.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong before the guest could start (or, for `Capacity`, before
/// it could get an instance slot).
///
/// Guest behaviour after start (exit codes, traps, timeouts) is never an
/// error: it is a [`crate::RunOutcome`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The wasmtime engine could not be built from the [`crate::RuntimeConfig`].
    #[error("cannot configure the wasm engine")]
    Engine {
        #[source]
        source: BoxError,
    },

    /// A host directory the runtime or the instance needs could not be opened.
    #[error("cannot open {what} directory {}", path.display())]
    HostDir {
        /// Which grant this directory was for ("rootfs", "volume", "cache", …).
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A module digest is not of the form `sha256:<64 lowercase hex>`.
    #[error("invalid module digest {digest:?}: expected sha256:<64 hex digits>")]
    InvalidDigest { digest: String },

    /// The module bytes do not hash to the digest the caller gave.
    #[error("module bytes hash to {actual}, not to the expected {expected}")]
    DigestMismatch { expected: String, actual: String },

    /// The bytes are neither a core wasm module nor a component.
    #[error("not a WebAssembly module or component (bad magic or version header)")]
    NotWasm,

    /// The module is of the other kind than the image declared.
    #[error("expected a {expected}, found a {found}")]
    WrongModuleKind {
        expected: ModuleKind,
        found: ModuleKind,
    },

    /// The module failed validation or compilation.
    #[error("invalid {kind}")]
    Compile {
        kind: ModuleKind,
        #[source]
        source: BoxError,
    },

    /// The module imports something WASI (p1 for core modules, 0.2 for
    /// components) does not provide.
    #[error("cannot link the {kind} against WASI")]
    Link {
        kind: ModuleKind,
        #[source]
        source: BoxError,
    },

    /// A core module without a `_start` function of type `() -> ()`.
    #[error("the core module has no `_start` function exported (is it a WASI command?)")]
    MissingStart,

    /// A component that exports neither `wasi:cli/run` nor
    /// `wasi:http/incoming-handler`.
    #[error(
        "the component exports neither wasi:cli/run (a WASI 0.2 command) nor wasi:http/incoming-handler (an HTTP handler)"
    )]
    NotACommand {
        #[source]
        source: BoxError,
    },

    /// [`crate::Runtime::run`] was given a `wasi:http/proxy` component.
    #[error("the component is an HTTP handler (wasi:http/proxy), not a command: serve it")]
    HttpProxyNotCommand,

    /// [`crate::Runtime::serve`] was given a module that is not a
    /// `wasi:http/proxy` component.
    #[error("the module does not export wasi:http/incoming-handler: it cannot serve HTTP")]
    NotAnHttpProxy,

    /// A listener handed to [`crate::Runtime::serve`] could not be used.
    #[error("cannot listen for HTTP connections")]
    Listener {
        #[source]
        source: std::io::Error,
    },

    /// The spec asks for a fuel budget but the module was prepared without
    /// fuel metering (see [`crate::PrepareOptions::fuel`]).
    #[error("a fuel limit needs a module prepared with fuel metering")]
    FuelNotPrepared,

    /// A guest path in the spec is not usable as a mount point.
    #[error("invalid guest path {path:?}: {reason}")]
    InvalidGuestPath { path: String, reason: &'static str },

    /// An argument or environment entry the guest cannot receive.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidSpec {
        what: &'static str,
        value: String,
        reason: &'static str,
    },

    /// A core module (WASI preview 1) was given network grants: preview 1
    /// has no sockets, so they could never be used.
    #[error(
        "network grants (-p, --allow-*, --network host) need a WASI 0.2 component: core modules (WASI preview 1) have no sockets"
    )]
    NetworkNeedsComponent,

    /// A host name in an `--allow-connect` rule did not resolve when the
    /// instance started.
    #[error("cannot resolve {host:?} (named by an --allow-connect rule)")]
    ResolveGrant {
        host: String,
        #[source]
        source: std::io::Error,
    },

    /// A published port cannot be set up (host address in use, not ours,
    /// or the grants contradict each other).
    #[error(transparent)]
    Publish(#[from] crate::net::PublishError),

    /// Creating the private `/tmp` for the instance failed.
    #[error("cannot create the instance's private /tmp")]
    Scratch {
        #[source]
        source: std::io::Error,
    },

    /// Every instance slot is in use (`RuntimeConfig::max_instances`).
    #[error("instance capacity reached: all {limit} instance slots are in use")]
    Capacity { limit: u32 },

    /// Instantiation failed for another reason.
    #[error("cannot instantiate the {kind}")]
    Instantiate {
        kind: ModuleKind,
        #[source]
        source: BoxError,
    },

    /// The blocking convenience could not start its private tokio runtime.
    #[error("cannot start the async executor")]
    Executor {
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    pub(crate) fn boxed(err: wasmtime::Error) -> BoxError {
        err.into_boxed_dyn_error()
    }
}
