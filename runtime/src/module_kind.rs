//! Which WASI world a module runs in: core module (preview 1) or component
//! (0.2). Kept apart from `module.rs` so that `RuntimeError` can name it.

use std::fmt;

/// Which WASI world a module runs in, told from its header
/// ([`ModuleKind::detect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModuleKind {
    /// A core wasm module, run as a WASI preview 1 command (`_start`).
    CoreModule,
    /// A component, run as a WASI 0.2 command (`wasi:cli/run`).
    Component,
}

impl fmt::Display for ModuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CoreModule => "core wasm module (WASI preview 1)",
            Self::Component => "wasm component (WASI 0.2)",
        })
    }
}
