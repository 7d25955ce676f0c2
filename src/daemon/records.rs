//! How instance records reach the disk: each change replaces the record by a
//! rename (never torn), and one flusher makes the changes durable in batches.
//!
//! An fsync per state change made every create and start wait for the disk
//! (two each, on the async executor), which capped create+start near
//! 700/s. A record is a cache of what the daemon knows: after a host crash
//! every instance has ended anyway. So a change is written to a temp file
//! and renamed over the record (a killed daemon leaves the old record or the
//! new one), and a background thread syncs the filesystem once a second
//! when something changed, and once more when the daemon shuts down. A host
//! crash or power loss can lose at most about the last second of record
//! changes (docs/daemon.md, "State on disk").

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

/// How long a changed record may stay in the page cache only.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The batching of record syncs for one directory tree (the daemon's
/// `containers/`).
pub struct RecordSync {
    dir: PathBuf,
    dirty: AtomicBool,
}

impl RecordSync {
    /// Starts the flusher thread for records under `dir`; it lives as long
    /// as the process.
    pub fn start(dir: &Path) -> anyhow::Result<Arc<Self>> {
        let sync = Self::new(dir);
        let flusher = Arc::clone(&sync);
        std::thread::Builder::new()
            .name("wrun-records".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    if let Err(e) = flusher.flush() {
                        eprintln!("wrun daemon: {}", crate::commands::describe(&e));
                    }
                }
            })
            .context("starting the record flusher thread")?;
        Ok(sync)
    }

    fn new(dir: &Path) -> Arc<Self> {
        Arc::new(Self {
            dir: dir.to_owned(),
            dirty: AtomicBool::new(false),
        })
    }

    /// Replaces `path` by `bytes`: readers (and a restarted daemon) see the
    /// old content or the new one. Durable after the next [`flush`].
    ///
    /// The new content goes to a temp file beside it, which is then
    /// exchanged with the record (`renameat2(RENAME_EXCHANGE)`): the temp
    /// file keeps the old version and is rewritten in place next time, so
    /// an update neither allocates nor frees an inode. (A rename over the
    /// record frees one each time, and ext4 without a journal scans past
    /// every inode freed in the last minute to allocate a new one: at
    /// thousands of starts a second that scan was most of the daemon's
    /// CPU time.) A plain rename where the exchange is not supported.
    ///
    /// Callers serialize writes to one path (an instance writes its record
    /// under its own lock), so one temp name per path is enough.
    ///
    /// [`flush`]: RecordSync::flush
    pub fn write(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        use rustix::io::Errno;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("record");
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        drop(f);
        match renameat_with(CWD, &tmp, CWD, path, RenameFlags::EXCHANGE) {
            Ok(()) => {}
            // No record yet, or a filesystem without the exchange.
            Err(Errno::NOENT | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("replacing {}", path.display()))?;
            }
            Err(e) => {
                return Err(std::io::Error::from(e))
                    .with_context(|| format!("replacing {}", path.display()));
            }
        }
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Writes the first version of a record at a `path` that does not exist
    /// yet. No temp file: on this path a kill can only leave a torn record of
    /// a create that was never acknowledged, which the next daemon skips.
    /// (Each temp file is a new inode, and ext4 without a journal scans past
    /// every recently freed inode to allocate one: at thousands of creates a
    /// second the renames dominated the daemon's CPU time.)
    pub fn write_new(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        let mut f = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Makes every record written so far durable: one `syncfs` of the
    /// filesystem holding them, when anything changed since the last one.
    pub fn flush(&self) -> anyhow::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let synced = File::open(&self.dir)
            .map_err(anyhow::Error::from)
            .and_then(|d| Ok(rustix::fs::syncfs(&d)?));
        if let Err(e) = synced {
            // Try again at the next round.
            self.dirty.store(true, Ordering::Release);
            return Err(e)
                .with_context(|| format!("syncing the records in {}", self.dir.display()));
        }
        Ok(())
    }

    #[cfg(test)]
    fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_write_replaces_the_record_whole_and_is_flushed_once() {
        let tmp = tempfile::tempdir().unwrap();
        let sync = RecordSync::new(tmp.path());
        let path = tmp.path().join("config.json");
        sync.write_new(&path, b"{\"old\":1}").unwrap();
        assert!(
            sync.write_new(&path, b"{}").is_err(),
            "write_new replaced a record"
        );
        let mut inodes = std::collections::HashSet::new();
        for n in 2..6 {
            let content = format!("{{\"new\":{n}}}");
            sync.write(&path, content.as_bytes()).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), content.as_bytes());
            inodes.insert(std::os::unix::fs::MetadataExt::ino(
                &std::fs::metadata(&path).unwrap(),
            ));
        }
        // The record and its temp file trade places: two inodes in all.
        assert_eq!(inodes.len(), 2, "an update allocated a new inode");
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(sync.is_dirty());
        sync.flush().unwrap();
        assert!(!sync.is_dirty());
        sync.flush().unwrap();
        sync.write(&path, b"{}").unwrap();
        assert!(sync.is_dirty());
        sync.flush().unwrap();
        assert!(!sync.is_dirty());
    }
}
