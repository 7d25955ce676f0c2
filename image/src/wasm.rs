//! Telling WASI core modules (preview 1) from components (WASI 0.2), and
//! checking that a file is a valid WebAssembly binary at all.

use serde::{Deserialize, Serialize};

use crate::error::{ImageError, Result};

/// The two kinds of WebAssembly binary wrun runs, and the OCI `os` each maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleKind {
    /// A core module, run with WASI preview 1 (`os: "wasip1"`).
    Core,
    /// A component, run with WASI 0.2 (`os: "wasip2"`).
    Component,
}

impl ModuleKind {
    /// Reads the kind from the 8-byte header; `None` when the bytes are not
    /// WebAssembly at all.
    pub fn sniff(header: &[u8]) -> Option<ModuleKind> {
        if wasmparser::Parser::is_core_wasm(header) {
            Some(ModuleKind::Core)
        } else if wasmparser::Parser::is_component(header) {
            Some(ModuleKind::Component)
        } else {
            None
        }
    }

    /// The OCI config `os` value for this kind.
    pub fn oci_os(self) -> &'static str {
        match self {
            ModuleKind::Core => "wasip1",
            ModuleKind::Component => "wasip2",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ModuleKind::Core => "core module (WASI preview 1)",
            ModuleKind::Component => "component (WASI 0.2)",
        }
    }
}

/// Validates a whole binary with the feature set wrun's engine accepts and
/// returns its kind. `what` names the file in the error.
pub fn validate(bytes: &[u8], what: &str) -> Result<ModuleKind> {
    let kind = ModuleKind::sniff(bytes).ok_or_else(|| {
        ImageError::invalid(
            what,
            "not a WebAssembly binary (it does not start with the \\0asm header)",
        )
    })?;
    let mut validator = wasmparser::Validator::new_with_features(wasm_features());
    validator.validate_all(bytes).map_err(|e| {
        ImageError::invalid(
            what,
            format!("invalid WebAssembly {}: {e}", kind.describe()),
        )
    })?;
    Ok(kind)
}

/// The proposals a module may use: what WASI programs built by today's
/// toolchains need. GC, threads, exceptions and stack switching stay off,
/// as they do in the runtime's engine (`build_engine` in wrun-runtime), so
/// an image is refused at build or load rather than at its first run.
fn wasm_features() -> wasmparser::WasmFeatures {
    use wasmparser::WasmFeatures as F;
    F::WASM2
        | F::TAIL_CALL
        | F::MULTI_MEMORY
        | F::EXTENDED_CONST
        | F::MEMORY64
        | F::RELAXED_SIMD
        | F::COMPONENT_MODEL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_core_and_component_headers() {
        assert_eq!(
            ModuleKind::sniff(b"\0asm\x01\0\0\0"),
            Some(ModuleKind::Core)
        );
        assert_eq!(
            ModuleKind::sniff(b"\0asm\x0d\0\x01\0"),
            Some(ModuleKind::Component)
        );
        assert_eq!(ModuleKind::sniff(b"\x7fELF\x02\x01\x01\0"), None);
    }

    #[test]
    fn validate_accepts_an_empty_module_and_rejects_garbage() {
        assert_eq!(
            validate(b"\0asm\x01\0\0\0", "empty.wasm").unwrap(),
            ModuleKind::Core
        );
        let err = validate(b"\0asm\x01\0\0\0\x01\xff", "broken.wasm").unwrap_err();
        assert!(err.to_string().contains("broken.wasm"), "{err}");
        let err = validate(b"#!/bin/sh\n", "script").unwrap_err();
        assert!(
            err.to_string().contains("not a WebAssembly binary"),
            "{err}"
        );
    }
}
