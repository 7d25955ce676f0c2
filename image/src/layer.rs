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

/// The bytes of a layer tar on their way to a gzip blob in the staging
/// area, hashed before (the diff_id) and after (the blob digest)
/// compression.
pub struct LayerSink {
    out: HashingWriter<GzEncoder<HashingWriter<BufWriter<File>>>>,
    path: PathBuf,
}

impl LayerSink {
    /// A new blob file in `staging`, gzip at `level` (0 to 9).
    pub fn new(staging: &Staging<'_>, level: u32) -> Result<LayerSink> {
        let path = staging.new_file_path("layer");
        let file = crate::store::create_private_file(&path)
            .io_context(|| format!("creating {}", path.display()))?;
        let compressed = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
        let gz = GzEncoder::new(compressed, Compression::new(level));
        Ok(LayerSink {
            out: HashingWriter::new(gz),
            path,
        })
    }

    /// Ends the gzip stream, syncs the blob and registers it in `staging`.
    pub fn finish(self, staging: &mut Staging<'_>) -> Result<BuiltLayer> {
        let what = || "finishing a layer".to_string();
        let (gz, diff_id, uncompressed_size) = self.out.finish();
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

impl io::Write for LayerSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Streams entries into a gzip-compressed layer tar in the staging area.
pub struct LayerWriter {
    tar: tar::Builder<LayerSink>,
    mtime: u64,
}

impl LayerWriter {
    /// Starts a layer whose entries all get modification time `mtime`
    /// (seconds since the epoch; builds pass `SOURCE_DATE_EPOCH` or 0).
    pub fn new(staging: &Staging<'_>, mtime: u64) -> Result<LayerWriter> {
        Self::with_level(staging, mtime, 6)
    }

    /// The same with gzip at `level` (0 to 9).
    pub fn with_level(staging: &Staging<'_>, mtime: u64, level: u32) -> Result<LayerWriter> {
        let mut tar = tar::Builder::new(LayerSink::new(staging, level)?);
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(LayerWriter { tar, mtime })
    }

    /// Adds an entry whose header the caller filled (kind, mode, size,
    /// times, owner); `path` may be any length (GNU long names).
    pub fn append(
        &mut self,
        header: &mut tar::Header,
        path: &std::path::Path,
        data: impl Read,
    ) -> Result<()> {
        self.tar
            .append_data(header, path, data)
            .io_context(|| format!("adding {} to a layer", path.display()))
    }

    /// Adds a symbolic or hard link (`header`'s kind) to `target`.
    pub fn append_link(
        &mut self,
        header: &mut tar::Header,
        path: &std::path::Path,
        target: &std::path::Path,
    ) -> Result<()> {
        self.tar
            .append_link(header, path, target)
            .io_context(|| format!("adding the link {} to a layer", path.display()))
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
        let sink = self
            .tar
            .into_inner()
            .io_context(|| "finishing a layer".to_string())?;
        sink.finish(staging)
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
