//! Writing layer tars reproducibly: fixed timestamps, owner 0:0, entries in
//! the order given (callers sort them), gzip with fixed settings.

use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::PathBuf;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::digest::{Digest, HashingWriter};
use crate::error::{IoContext, Result};
use crate::store::Staging;

/// A finished layer blob, staged.
#[derive(Clone, Copy, Debug)]
pub struct BuiltLayer {
    /// Digest of the gzip blob (what the manifest lists).
    pub digest: Digest,
    /// Size of the gzip blob.
    pub size: u64,
    /// Digest of the uncompressed tar (the config's diff_id).
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
}

type Sink = HashingWriter<GzEncoder<HashingWriter<BufWriter<File>>>>;

/// Streams entries into a gzip-compressed layer tar in the staging area.
pub struct LayerWriter {
    tar: tar::Builder<Sink>,
    path: PathBuf,
    mtime: u64,
}

impl LayerWriter {
    /// Starts a layer whose entries all get modification time `mtime`
    /// (seconds since the epoch; builds pass `SOURCE_DATE_EPOCH` or 0).
    pub fn new(staging: &Staging<'_>, mtime: u64) -> Result<LayerWriter> {
        let path = staging.new_file_path("layer");
        let file = crate::store::create_private_file(&path)
            .io_context(|| format!("creating {}", path.display()))?;
        let compressed = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
        let gz = GzEncoder::new(compressed, Compression::new(6));
        let mut tar = tar::Builder::new(HashingWriter::new(gz));
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(LayerWriter { tar, path, mtime })
    }

    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    /// Adds a directory (`path` is relative to the rootfs, no leading `/`).
    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<()> {
        let mut h = self.header(tar::EntryType::Directory, mode, 0);
        self.tar
            .append_data(
                &mut h,
                format!("{}/", path.trim_end_matches('/')),
                io::empty(),
            )
            .io_context(|| format!("adding directory {path} to a layer"))
    }

    /// Adds a regular file of exactly `size` bytes read from `data`.
    pub fn add_file(&mut self, path: &str, mode: u32, size: u64, data: impl Read) -> Result<()> {
        let mut h = self.header(tar::EntryType::Regular, mode, size);
        self.tar
            .append_data(&mut h, path, data.take(size))
            .io_context(|| format!("adding {path} to a layer"))
    }

    /// Adds a symbolic link pointing at `target`.
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let mut h = self.header(tar::EntryType::Symlink, 0o777, 0);
        self.tar
            .append_link(&mut h, path, target)
            .io_context(|| format!("adding symlink {path} to a layer"))
    }

    /// Ends the tar and the gzip stream and registers the blob in `staging`.
    pub fn finish(self, staging: &mut Staging<'_>) -> Result<BuiltLayer> {
        let what = || "finishing a layer".to_string();
        let inner = self.tar.into_inner().io_context(what)?;
        let (gz, diff_id, uncompressed_size) = inner.finish();
        let compressed = gz.finish().io_context(what)?;
        let (buf, digest, size) = compressed.finish();
        let file = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .io_context(what)?;
        file.sync_all().io_context(what)?;
        drop(file);
        staging.adopt_blob(&self.path, digest, size)?;
        Ok(BuiltLayer {
            digest,
            size,
            diff_id,
            uncompressed_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn same_entries_give_the_same_layer_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let build = || {
            let mut staging = store.staging().unwrap();
            let mut w = LayerWriter::new(&staging, 0).unwrap();
            w.add_dir("srv", 0o755).unwrap();
            w.add_file("srv/a.txt", 0o644, 5, &b"hello"[..]).unwrap();
            w.add_symlink("srv/link", "a.txt").unwrap();
            w.finish(&mut staging).unwrap()
        };
        let a = build();
        let b = build();
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.diff_id, b.diff_id);
        assert_ne!(a.digest, a.diff_id, "the blob is compressed");
    }
}
