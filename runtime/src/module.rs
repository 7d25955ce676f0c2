//! What a module is before it runs: its content digest, and its kind (core
//! module for WASI preview 1, or component for WASI 0.2) told from its header.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::{ModuleKind, RuntimeError};

/// The sha256 digest of a module's bytes, as the image names it
/// (`sha256:<64 lowercase hex>`). The module cache is keyed by it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleDigest(String);

impl ModuleDigest {
    /// Parses `sha256:<64 lowercase hex>`; anything else is refused so a
    /// digest can later be used in a file name safely.
    pub fn parse(digest: &str) -> Result<Self, RuntimeError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        match hex {
            Some(_) => Ok(Self(digest.to_owned())),
            None => Err(RuntimeError::InvalidDigest {
                digest: digest.to_owned(),
            }),
        }
    }

    /// Computes the digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// The digest as `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl fmt::Display for ModuleDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ModuleKind {
    /// Tells the kind from the wasm header, or `NotWasm`.
    pub fn detect(bytes: &[u8]) -> Result<Self, RuntimeError> {
        if wasmparser::Parser::is_component(bytes) {
            Ok(Self::Component)
        } else if wasmparser::Parser::is_core_wasm(bytes) {
            Ok(Self::CoreModule)
        } else {
            Err(RuntimeError::NotWasm)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_with_path_characters_is_refused() {
        for bad in [
            "sha256:../../etc/passwd",
            "sha256:ABCDEF0000000000000000000000000000000000000000000000000000000000",
            "sha512:0000000000000000000000000000000000000000000000000000000000000000",
            "sha256:000",
            "",
        ] {
            assert!(ModuleDigest::parse(bad).is_err(), "{bad} accepted");
        }
        let good = ModuleDigest::of(b"x");
        assert_eq!(ModuleDigest::parse(good.as_str()).ok(), Some(good));
    }

    #[test]
    fn kind_is_told_from_the_header() {
        assert_eq!(
            ModuleKind::detect(b"\0asm\x01\0\0\0").ok(),
            Some(ModuleKind::CoreModule)
        );
        assert_eq!(
            ModuleKind::detect(b"\0asm\x0d\0\x01\0").ok(),
            Some(ModuleKind::Component)
        );
        assert!(matches!(
            ModuleKind::detect(b"\x7fELF\x02\x01\x01\0"),
            Err(RuntimeError::NotWasm)
        ));
    }
}
