//! The on-disk cache of compiled modules: one artifact per (module digest,
//! engine settings), written crash-safely, verified by checksum before use.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::fs::{Dir, File, OpenOptions, OpenOptionsExt};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module, Precompiled};

use crate::host_dir::{IfMissing, descriptor_path, open_host_dir};
use crate::{ModuleDigest, ModuleKind, RuntimeError};

/// Bumped when the layout of cache entries changes.
const CACHE_FORMAT: &str = "wrun-module-cache-v1";

/// A compiled module or component, ready to link.
pub(crate) enum Compiled {
    Module(Module),
    Component(Component),
}

impl Compiled {
    pub(crate) fn kind(&self) -> ModuleKind {
        match self {
            Self::Module(_) => ModuleKind::CoreModule,
            Self::Component(_) => ModuleKind::Component,
        }
    }

    pub(crate) fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        match self {
            Self::Module(m) => m.serialize(),
            Self::Component(c) => c.serialize(),
        }
    }
}

/// What a cache lookup found.
pub(crate) enum Lookup {
    Hit(Compiled),
    Miss,
    /// An entry was there but failed verification; it has been deleted.
    Rejected,
}

pub(crate) struct DiskCache {
    dir: Dir,
}

/// Feeds `Hash` output into sha256 so the key is stable across processes
/// (std's `DefaultHasher` makes no such promise).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0 // unused: the digest is read with `finalize`
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl DiskCache {
    pub(crate) fn open(path: &Path) -> Result<Self, RuntimeError> {
        let dir = open_host_dir(path, IfMissing::CreatePrivate).map_err(|source| {
            RuntimeError::HostDir {
                what: "module cache",
                path: path.to_owned(),
                source,
            }
        })?;
        Ok(Self { dir })
    }

    /// The entry name for `digest` compiled by `engine`: sha256 over the
    /// cache format, the module digest and wasmtime's compatibility hash
    /// (target, compiler flags, tunables such as fuel and epochs, enabled
    /// wasm features, wasmtime version).
    pub(crate) fn key(engine: &Engine, digest: &ModuleDigest) -> String {
        let mut h = Sha256Hasher(Sha256::new());
        CACHE_FORMAT.hash(&mut h);
        digest.as_str().hash(&mut h);
        engine.precompile_compatibility_hash().hash(&mut h);
        hex::encode(h.0.finalize())
    }

    fn names(key: &str) -> (String, String) {
        (format!("{key}.cwasm"), format!("{key}.cwasm.sha256"))
    }

    pub(crate) fn load(&self, engine: &Engine, key: &str) -> Lookup {
        let (artifact, sum) = Self::names(key);
        let file = match self.dir.open(&artifact) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Err(_) => return self.reject(key),
        };
        match self.verify(engine, file, &sum) {
            Some(compiled) => Lookup::Hit(compiled),
            None => self.reject(key),
        }
    }

    fn verify(&self, engine: &Engine, mut file: File, sum_name: &str) -> Option<Compiled> {
        let mut expected = String::new();
        self.dir
            .open(sum_name)
            .ok()?
            .take(128)
            .read_to_string(&mut expected)
            .ok()?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).ok()?;
        if hex::encode(hasher.finalize()) != expected.trim() {
            return None;
        }
        // Map the very file we hashed, not whatever the name points at now.
        let path = descriptor_path(&file);
        let compiled = match Engine::detect_precompiled_file(&path).ok()?? {
            // SAFETY: `deserialize_file` trusts the file to be an artifact
            // this wasmtime wrote and to stay unchanged while mapped. The
            // file lives in the runtime's private (0700) cache directory, was
            // written by `store` below from `Module::serialize` output, and
            // its bytes were just checked against the checksum written beside
            // it, which catches truncation and corruption. Entries are only
            // ever replaced by rename, never modified in place, so the inode
            // opened here does not change while it is mapped. wasmtime
            // itself rejects artifacts of another version or configuration.
            Precompiled::Module => {
                Compiled::Module(unsafe { Module::deserialize_file(engine, &path) }.ok()?)
            }
            // SAFETY: as for the module case just above.
            Precompiled::Component => {
                Compiled::Component(unsafe { Component::deserialize_file(engine, &path) }.ok()?)
            }
        };
        Some(compiled)
    }

    fn reject(&self, key: &str) -> Lookup {
        let (artifact, sum) = Self::names(key);
        let _ = self.dir.remove_file(&artifact);
        let _ = self.dir.remove_file(&sum);
        Lookup::Rejected
    }

    /// Writes an artifact and its checksum: temp file, fsync, rename, fsync
    /// of the directory. A crash leaves the old entry, the new one, or an
    /// artifact whose checksum does not match (rejected and rebuilt).
    pub(crate) fn store(&self, key: &str, artifact: &[u8]) -> std::io::Result<()> {
        let (name, sum) = Self::names(key);
        let checksum = format!("{}\n", hex::encode(Sha256::digest(artifact)));
        self.write_atomically(&name, artifact)?;
        self.write_atomically(&sum, checksum.as_bytes())?;
        rustix::fs::fsync(&self.dir)?;
        Ok(())
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = format!(
            "{name}.tmp-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let result = (|| {
            // 0600: the cache lives in the store, private to its owner.
            let mut f = self.dir.open_with(
                &tmp,
                OpenOptions::new().write(true).create_new(true).mode(0o600),
            )?;
            f.write_all(bytes)?;
            f.sync_all()?;
            self.dir.rename(&tmp, &self.dir, name)
        })();
        if result.is_err() {
            let _ = self.dir.remove_file(&tmp);
        }
        result
    }
}
