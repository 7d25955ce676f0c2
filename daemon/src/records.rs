//! How instance records reach the disk: one append-only journal for the
//! daemon, a line per change, made durable in batches by one flusher.
//!
//! A file per instance cost each create an inode for its directory, one for
//! its record and one for the record's temp file; on ext4 without a journal
//! allocating an inode scans past every inode freed in the last minute, which
//! capped create+start far below what the daemon can do on tmpfs
//! (docs/benchmarks/daemon-scale.md, "Records in one journal"). A change is
//! now one appended line in `containers/records.journal`: the record's JSON
//! with its ID, or a tombstone for a removal. The daemon that starts reads
//! the journal (the last line of an ID wins), skips a torn or garbled line
//! with a message, and rewrites the journal with the live records only.
//! While it runs, the flusher rewrites the journal the same way once it
//! has grown past a threshold ([`Thresholds::DAEMON`]), from the live
//! records the daemon hands it ([`LiveRecords`]), while appends go on.
//!
//! A record is a cache of what the daemon knows: after a host crash every
//! instance has ended anyway. So appends are not synced one by one: a
//! background thread `fdatasync`s the journal once a second when something
//! changed, and once more when the daemon shuts down. A host crash or power
//! loss can lose at most about the last second of record changes
//! (docs/daemon.md, "State on disk").

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// How long a changed record may stay in the page cache only.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How long the flusher waits before its first try at repairing a journal
/// that missed a change, and at most between two tries (doubling between).
const REPAIR_FIRST: Duration = FLUSH_EVERY;
const REPAIR_MAX: Duration = Duration::from_secs(64);

/// The journal's name in the daemon's `containers/`.
pub const JOURNAL: &str = "records.journal";

/// One line of the journal: a record, or `record: null` for a removal.
#[derive(Serialize, Deserialize)]
struct Line<T> {
    id: String,
    record: Option<T>,
}

/// The live records of a journal by ID, and what was wrong with it (one
/// message per skipped line).
pub struct Loaded {
    pub records: BTreeMap<String, serde_json::Value>,
    pub problems: Vec<String>,
}

/// Reads the journal in `dir`. Never fails on content: a torn last line (a
/// kill in the middle of an append) or a garbled line is skipped and named
/// in `problems`.
pub fn read(dir: &Path) -> anyhow::Result<Loaded> {
    let path = dir.join(JOURNAL);
    let mut records = BTreeMap::new();
    let mut problems = Vec::new();
    let text = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let complete = text.ends_with(b"\n");
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    for (i, line) in lines.iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Line<serde_json::Value>>(line) {
            Ok(Line {
                id,
                record: Some(r),
            }) => {
                records.insert(id, r);
            }
            Ok(Line { id, record: None }) => {
                records.remove(&id);
            }
            Err(e) => {
                let last = i + 1 == lines.len() && !complete;
                problems.push(if last {
                    format!(
                        "{}: ignoring a torn last line (an append cut short): {e}",
                        path.display()
                    )
                } else {
                    format!("{}: skipping line {}: {e}", path.display(), i + 1)
                });
            }
        }
    }
    Ok(Loaded { records, problems })
}

/// The journal of one daemon's records, open for appends.
pub struct RecordJournal {
    dir: PathBuf,
    path: PathBuf,
    /// Taken for each append, so lines never interleave; the flusher's
    /// `fdatasync` takes it only to clone the handle and holds up no append.
    appending: Mutex<Appending>,
    dirty: AtomicBool,
    /// Taken shared by an owner between appending a change and making it
    /// visible to its [`LiveRecords`]; an online compaction takes it
    /// exclusively for the moment it notes where its snapshot starts.
    in_flight: RwLock<()>,
    /// Online compactions run one at a time.
    compacting: Mutex<()>,
    /// The owner, asked for the live records by an online compaction.
    live: Mutex<Option<Weak<dyn LiveRecords>>>,
    thresholds: Thresholds,
    /// Makes the rename of an online compaction fail: the last step before
    /// the swap, after the copy of the last lines.
    #[cfg(test)]
    fail_rename: AtomicBool,
    /// Makes appends write half their line, then fail as on a full disk.
    #[cfg(test)]
    disk_full: AtomicBool,
}

/// The open journal and what the flusher needs to decide on a compaction.
struct Appending {
    file: Arc<File>,
    /// Bytes in the journal: what the last rewrite wrote and every append
    /// since.
    len: u64,
    /// The length past which the flusher compacts the journal next.
    compact_at: u64,
    /// An append failed since the last rewrite began (a full disk): the
    /// journal misses a change the owner holds (the end of a run, a
    /// removal), so the flusher rewrites it from the live records as soon
    /// as that works.
    missed: bool,
    /// When the flusher may next try that repair, and how long it waits
    /// after the next failed try.
    repair_at: Instant,
    repair_wait: Duration,
}

impl Appending {
    fn new(file: File, len: u64, thresholds: Thresholds, missed: bool) -> Self {
        Self {
            file: Arc::new(file),
            len,
            compact_at: thresholds.compact_at(len),
            missed,
            repair_at: Instant::now(),
            repair_wait: REPAIR_FIRST,
        }
    }
}

/// When the flusher compacts a running daemon's journal: once it is larger
/// than both `floor` and `growth` times what the last rewrite wrote.
#[derive(Clone, Copy)]
struct Thresholds {
    floor: u64,
    growth: u64,
}

impl Thresholds {
    /// 8 MiB, 4×. Below 8 MiB (some 8,000 changes of ~1 KiB) a journal
    /// costs a few milliseconds to replay at start and little disk, not
    /// worth a rewrite and three syncs. Past it, the factor bounds both
    /// costs: a rewrite writes the live set S and the next waits for 3·S
    /// of appends, so rewriting adds at most a third of a byte per byte
    /// appended, and the journal never holds more than 4·S (400 MiB at
    /// 100,000 instances of 1 KiB, rewritten after each ~300,000 changes).
    /// A smaller factor saves disk but asks the daemon for every record
    /// (each instance's lock once) more often; that is the costly part of
    /// a rewrite at that scale.
    const DAEMON: Self = Self {
        floor: 8 << 20,
        growth: 4,
    };

    fn compact_at(self, written: u64) -> u64 {
        self.floor.max(self.growth.saturating_mul(written))
    }
}

/// The temp file of a rewrite. The start-time rewrite and the online ones
/// share it: the start-time one runs in [`RecordJournal::start`] before
/// the journal (and its flusher) exists, online ones run one at a time
/// under `compacting`, and one daemon owns a `containers/`. Sharing it
/// also means the next start overwrites what a crash mid-rewrite left.
fn temp_path(dir: &Path) -> PathBuf {
    dir.join(format!(".{JOURNAL}.tmp"))
}

/// What an online compaction asks its journal's owner for: the records it
/// holds anyway, so the journal needs none in memory.
///
/// The contract that keeps a compaction from losing a change: a change is
/// visible to [`visit_live`](LiveRecords::visit_live) before its line is
/// appended (as when both happen under one lock `visit_live` also takes),
/// or the owner holds [`RecordJournal::in_flight`] from the append until
/// the change is visible. A change visible earlier than its append is
/// fine: its line lands after the snapshot and wins.
pub trait LiveRecords: Send + Sync {
    /// Calls `visit` once per live record, stopping at its first error.
    fn visit_live(
        &self,
        visit: &mut dyn FnMut(&str, &serde_json::Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()>;
}

/// Holds off the start of an online compaction while a change is appended
/// but not yet visible to the journal's [`LiveRecords`].
pub struct InFlight<'a> {
    _held: RwLockReadGuard<'a, ()>,
}

impl RecordJournal {
    /// Rewrites the journal in `dir` with `live` records only (durably:
    /// temp file, fsync, rename, fsync of the directory), opens it for
    /// appends and starts the flusher thread, which lives as long as the
    /// process. The flusher also compacts the journal while the daemon
    /// runs, once [`set_live_source`](RecordJournal::set_live_source) names
    /// where the live records are.
    ///
    /// When that rewrite fails (a full disk), the journal is used as it is
    /// (a torn last line cut off) and rewritten once the disk allows.
    pub fn start(
        dir: &Path,
        live: &BTreeMap<String, serde_json::Value>,
    ) -> anyhow::Result<Arc<Self>> {
        let journal = Arc::new(Self::open(dir, live)?);
        let flusher = Arc::clone(&journal);
        std::thread::Builder::new()
            .name("wrun-records".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flusher.tick();
                }
            })
            .context("starting the record flusher thread")?;
        Ok(journal)
    }

    /// The start's rewrite, or the journal as it is when that fails.
    fn open(dir: &Path, live: &BTreeMap<String, serde_json::Value>) -> anyhow::Result<Self> {
        match Self::compact(dir, live) {
            Ok(j) => Ok(j),
            Err(e) => {
                let Ok(j) = Self::reuse(dir) else {
                    return Err(e);
                };
                eprintln!(
                    "wrun daemon: {}; appending to the journal as it is until a rewrite succeeds",
                    crate::error::describe(&e)
                );
                Ok(j)
            }
        }
    }

    fn compact(dir: &Path, live: &BTreeMap<String, serde_json::Value>) -> anyhow::Result<Self> {
        let path = dir.join(JOURNAL);
        let tmp = temp_path(dir);
        let mut text = Vec::new();
        for (id, record) in live {
            serde_json::to_writer(
                &mut text,
                &Line {
                    id: id.clone(),
                    record: Some(record),
                },
            )?;
            text.push(b'\n');
        }
        // 0600: the journal holds every instance's environment.
        let mut f = wrun_image::store::create_private_file(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        if let Err(e) = f.write_all(&text).and_then(|()| f.sync_all()) {
            // What was written of it is given back to a full disk.
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("writing {}", tmp.display()));
        }
        drop(f);
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
        sync_dir(dir)?;
        // Readable too: an online compaction copies the journal's last
        // lines from this handle, the very file appends went to.
        let file = File::options()
            .read(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self::with(dir, path, file, text.len() as u64, false))
    }

    /// The journal in `dir` as it is, open for appends, when it cannot be
    /// rewritten at start: a torn last line (an append cut short) is cut
    /// off, so the next line starts on a line of its own, and the journal
    /// is marked for a rewrite.
    fn reuse(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(JOURNAL);
        let file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let whole = text
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        if whole < text.len() {
            file.set_len(whole as u64)
                .with_context(|| format!("cutting the torn last line of {}", path.display()))?;
        }
        Ok(Self::with(dir, path, file, whole as u64, true))
    }

    fn with(dir: &Path, path: PathBuf, file: File, len: u64, missed: bool) -> Self {
        let thresholds = Thresholds::DAEMON;
        Self {
            dir: dir.to_owned(),
            path,
            appending: Mutex::new(Appending::new(file, len, thresholds, missed)),
            dirty: AtomicBool::new(false),
            in_flight: RwLock::new(()),
            compacting: Mutex::new(()),
            live: Mutex::new(None),
            thresholds,
            #[cfg(test)]
            fail_rename: AtomicBool::new(false),
            #[cfg(test)]
            disk_full: AtomicBool::new(false),
        }
    }

    /// Names where online compactions get the live records. The journal
    /// keeps a weak reference: the owner holds the journal, not the other
    /// way round; once the owner is gone, compactions stop.
    pub fn set_live_source<S: LiveRecords + 'static>(&self, source: &Arc<S>) {
        let source: Weak<S> = Arc::downgrade(source);
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// For an owner that appends a change before making it visible to its
    /// [`LiveRecords`]: hold this across both. Cheap (a shared lock), but
    /// not reentrant: take one at a time per thread.
    pub fn in_flight(&self) -> InFlight<'_> {
        InFlight {
            _held: self.in_flight.read().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Appends the new version of record `id`. Durable after the next
    /// [`flush`](RecordJournal::flush). On an error (a full disk) the
    /// journal is as it was before the call.
    pub fn put<T: Serialize>(&self, id: &str, record: &T) -> anyhow::Result<()> {
        self.append(&Line {
            id: id.to_owned(),
            record: Some(record),
        })
    }

    /// Appends the removal of record `id`.
    pub fn remove(&self, id: &str) -> anyhow::Result<()> {
        self.append(&Line::<()> {
            id: id.to_owned(),
            record: None,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Appending> {
        // Every field is set whole, after the step it records succeeded:
        // usable after a panic.
        self.appending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append<T: Serialize>(&self, line: &Line<T>) -> anyhow::Result<()> {
        // One write per line (JSON escapes every newline in a string), so a
        // kill leaves whole lines and at most one torn last line.
        let mut bytes = serde_json::to_vec(line)?;
        bytes.push(b'\n');
        let mut appending = self.lock();
        if let Err(e) = self.write_line(&appending.file, &bytes) {
            // A write cut short (a full disk) left part of the line: cut it
            // off, or the next line would be glued to it and both lost.
            let cut = appending.file.set_len(appending.len);
            appending.missed = true;
            let err =
                anyhow::Error::from(e).context(format!("appending to {}", self.path.display()));
            return Err(match cut {
                Ok(()) => err,
                Err(c) => err.context(format!("and cutting off the part written failed: {c}")),
            });
        }
        appending.len += bytes.len() as u64;
        drop(appending);
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    fn write_line(&self, mut file: &File, line: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if self.disk_full.load(Ordering::Acquire) {
            file.write_all(&line[..line.len() / 2])?;
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        file.write_all(line)
    }

    /// Makes every change so far durable: one `fdatasync` of the journal,
    /// when anything changed since the last one, and, when an append
    /// failed since the last rewrite, a rewrite from the live records (the
    /// daemon's shutdown calls this last).
    pub fn flush(&self) -> anyhow::Result<()> {
        self.sync()?;
        if self.lock().missed {
            self.compact_online()
                .with_context(|| format!("repairing {}", self.path.display()))?;
        }
        Ok(())
    }

    /// One `fdatasync` of the journal, when anything was appended since the
    /// last one.
    fn sync(&self) -> anyhow::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        // A compaction that swaps the file meanwhile has synced every line
        // it took over; later appends set `dirty` again.
        let file = Arc::clone(&self.lock().file);
        if let Err(e) = file.sync_data() {
            // Try again at the next round.
            self.dirty.store(true, Ordering::Release);
            return Err(e).with_context(|| format!("syncing {}", self.path.display()));
        }
        Ok(())
    }

    /// The flusher's round: a sync, and a compaction once the journal has
    /// grown past its threshold or missed a change (tried again after 1,
    /// 2, 4 … up to 64 s while that fails). Errors are printed, one line
    /// each.
    fn tick(&self) {
        if let Err(e) = self.sync() {
            eprintln!("wrun daemon: {}", crate::error::describe(&e));
        }
        let (due, repair) = {
            let appending = self.lock();
            (
                appending.len > appending.compact_at,
                appending.missed && Instant::now() >= appending.repair_at,
            )
        };
        if !due && !repair {
            return;
        }
        let doing = if repair { "repairing" } else { "compacting" };
        let result = self
            .compact_online()
            .with_context(|| format!("{doing} {}", self.path.display()));
        if repair {
            let mut appending = self.lock();
            if result.is_ok() {
                appending.repair_wait = REPAIR_FIRST;
            } else {
                appending.repair_at = Instant::now() + appending.repair_wait;
                appending.repair_wait = (appending.repair_wait * 2).min(REPAIR_MAX);
            }
        }
        if let Err(e) = result {
            eprintln!("wrun daemon: {}", crate::error::describe(&e));
        }
    }

    /// Rewrites the journal with the live records while appends go on;
    /// `Ok(false)` when there is no owner to ask for them. On an error the
    /// journal in use stays the one before, untouched (unless only the
    /// directory's sync after the rename failed), and the flusher tries
    /// again once it has doubled: a lasting failure (a full disk) costs a
    /// rewrite per doubling, not one a second.
    fn compact_online(&self) -> anyhow::Result<bool> {
        let _one = self.compacting.lock().unwrap_or_else(|p| p.into_inner());
        let source = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(Weak::upgrade);
        let Some(source) = source else {
            return Ok(false);
        };
        let tmp = temp_path(&self.dir);
        let result = self.rewrite(&*source, &tmp);
        if result.is_err() {
            // Gone already when the rename happened.
            let _ = std::fs::remove_file(&tmp);
            let mut appending = self.lock();
            appending.compact_at = appending.compact_at.max(appending.len.saturating_mul(2));
        }
        result.map(|()| true)
    }

    /// Writes the live records and then the lines appended meanwhile to
    /// `tmp_path`, and swaps it in for the journal.
    ///
    /// Why replay order stays right: the new journal is the snapshot S
    /// followed by T, the old journal's bytes from L (its length when the
    /// compaction began) to its end at the swap. For an ID with a line in
    /// T, its last line in T is its last line in the old journal, and it
    /// still comes last (S precedes T). For an ID without one, its last
    /// line lies before L, and by the [`LiveRecords`] contract that change
    /// was visible when S was taken (S is taken after L is noted, with no
    /// change in flight), so S holds it or a newer version whose line is
    /// still to come and will win. A removal with its tombstone before L
    /// was invisible already: S leaves the ID out. Appends wait only for
    /// the copy of T, two syncs and the rename, not for S.
    ///
    /// A change whose append failed before L was visible when S was taken
    /// (a failed create was never made visible, a failed removal had left
    /// already): S repairs the journal that missed it.
    fn rewrite(&self, source: &dyn LiveRecords, tmp_path: &Path) -> anyhow::Result<()> {
        let (from, missed) = {
            let _settled = self.in_flight.write().unwrap_or_else(|p| p.into_inner());
            let mut appending = self.lock();
            let from = appending
                .file
                .metadata()
                .with_context(|| format!("reading the length of {}", self.path.display()))?
                .len();
            (from, std::mem::take(&mut appending.missed))
        };
        let result = self.rewrite_from(from, source, tmp_path);
        if result.is_err() && missed {
            self.lock().missed = true;
        }
        result
    }

    /// [`rewrite`](RecordJournal::rewrite) once L is noted.
    fn rewrite_from(
        &self,
        from: u64,
        source: &dyn LiveRecords,
        tmp_path: &Path,
    ) -> anyhow::Result<()> {
        let writing = || format!("writing {}", tmp_path.display());
        let tmp = File::options()
            .read(true)
            .append(true)
            .create(true)
            .mode(wrun_image::store::PRIVATE_FILE)
            .open(tmp_path)
            .with_context(|| format!("creating {}", tmp_path.display()))?;
        tmp.set_len(0).with_context(writing)?;
        write_snapshot(&tmp, source).with_context(writing)?;
        // The bulk synced before the lock: the sync under it has T only.
        tmp.sync_data().with_context(writing)?;

        let mut appending = self.lock();
        copy_from(&appending.file, from, &tmp).with_context(|| {
            format!(
                "copying the last lines of {} to {}",
                self.path.display(),
                tmp_path.display()
            )
        })?;
        tmp.sync_data().with_context(writing)?;
        let len = tmp.metadata().with_context(writing)?.len();
        #[cfg(test)]
        if self.fail_rename.load(Ordering::Acquire) {
            anyhow::bail!("renaming {} failed (injected)", tmp_path.display());
        }
        std::fs::rename(tmp_path, &self.path)
            .with_context(|| format!("replacing {}", self.path.display()))?;
        // The new file is the journal now, whatever the directory's sync
        // says: an append to the old one would be lost.
        appending.file = Arc::new(tmp);
        appending.len = len;
        appending.compact_at = self.thresholds.compact_at(len);
        sync_dir(&self.dir)
    }

    #[cfg(test)]
    fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// The journal with thresholds small enough for a test to cross.
    #[cfg(test)]
    fn with_thresholds(self, floor: u64, growth: u64) -> Self {
        let thresholds = Thresholds { floor, growth };
        {
            let mut appending = self.lock();
            appending.compact_at = thresholds.compact_at(appending.len);
        }
        Self { thresholds, ..self }
    }
}

/// Writes one line per live record of `source` to `tmp`. A panic in
/// `source` is an error here: the flusher thread outlives it.
fn write_snapshot(tmp: &File, source: &dyn LiveRecords) -> anyhow::Result<()> {
    let mut out = BufWriter::new(tmp);
    let mut line = |id: &str, record: &serde_json::Value| -> anyhow::Result<()> {
        serde_json::to_writer(
            &mut out,
            &Line {
                id: id.to_owned(),
                record: Some(record),
            },
        )?;
        out.write_all(b"\n")?;
        Ok(())
    };
    std::panic::catch_unwind(AssertUnwindSafe(|| source.visit_live(&mut line)))
        .map_err(|_| anyhow::anyhow!("listing the live records panicked"))?
        .context("listing the live records")?;
    out.flush()?;
    Ok(())
}

/// Appends `from`'s bytes from offset `start` to its end onto `to`.
fn copy_from(from: &File, start: u64, mut to: &File) -> std::io::Result<()> {
    let mut buf = vec![0; 64 << 10];
    let mut at = start;
    loop {
        let n = from.read_at(&mut buf, at)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
        at += n as u64;
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn open(dir: &Path) -> (RecordJournal, Loaded) {
        let loaded = read(dir).unwrap();
        (
            RecordJournal::compact(dir, &loaded.records).unwrap(),
            loaded,
        )
    }

    #[test]
    fn the_last_line_of_an_id_wins_and_a_tombstone_removes() {
        let tmp = tempfile::tempdir().unwrap();
        let (j, _) = open(tmp.path());
        j.put("a", &serde_json::json!({"n": 1})).unwrap();
        j.put("b", &serde_json::json!({"n": "two\nlines"})).unwrap();
        j.put("a", &serde_json::json!({"n": 3})).unwrap();
        j.remove("b").unwrap();
        assert!(j.is_dirty());
        j.flush().unwrap();
        assert!(!j.is_dirty());
        let (_, loaded) = open(tmp.path());
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        assert_eq!(loaded.records.len(), 1);
        assert_eq!(loaded.records["a"]["n"], 3);
        // The start rewrote the journal with the live record only.
        let text = std::fs::read_to_string(tmp.path().join(JOURNAL)).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn a_torn_last_line_and_a_garbled_middle_line_lose_only_themselves() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(JOURNAL),
            "{\"id\":\"a\",\"record\":{\"n\":1}}\n\u{1}garbage\n{\"id\":\"b\",\"record\":{\"n\":2}}\n{\"id\":\"a\",\"record\":{\"n\":",
        )
        .unwrap();
        let (j, loaded) = open(tmp.path());
        assert_eq!(loaded.records.len(), 2);
        assert_eq!(loaded.records["a"]["n"], 1);
        assert_eq!(loaded.records["b"]["n"], 2);
        assert_eq!(loaded.problems.len(), 2, "{:?}", loaded.problems);
        assert!(
            loaded.problems[0].contains("line 2"),
            "{:?}",
            loaded.problems
        );
        assert!(
            loaded.problems[1].contains("torn last line"),
            "{:?}",
            loaded.problems
        );
        // Appends after the rewrite are whole lines again.
        j.put("c", &serde_json::json!({"n": 3})).unwrap();
        let (_, loaded) = open(tmp.path());
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        assert_eq!(loaded.records.len(), 3);
    }

    /// The owner's side of online compaction: records in memory, made
    /// visible before their line is appended, as the contract asks.
    #[derive(Default)]
    struct Live {
        records: Mutex<BTreeMap<String, serde_json::Value>>,
        visits: std::sync::atomic::AtomicUsize,
        fault: Mutex<Option<Fault>>,
        /// Runs once during the next visit, after the snapshot is taken.
        meanwhile: Mutex<Option<Meanwhile>>,
    }

    type Meanwhile = Box<dyn FnOnce(&Live) + Send>;

    #[derive(Clone, Copy)]
    enum Fault {
        Panic,
        Error,
    }

    impl Live {
        fn put(&self, j: &RecordJournal, id: &str, record: serde_json::Value) {
            self.records
                .lock()
                .unwrap()
                .insert(id.to_owned(), record.clone());
            j.put(id, &record).unwrap();
        }

        fn remove(&self, j: &RecordJournal, id: &str) {
            self.records.lock().unwrap().remove(id);
            j.remove(id).unwrap();
        }

        fn snapshot(&self) -> BTreeMap<String, serde_json::Value> {
            self.records.lock().unwrap().clone()
        }

        fn visits(&self) -> usize {
            self.visits.load(Ordering::SeqCst)
        }
    }

    impl LiveRecords for Live {
        fn visit_live(
            &self,
            visit: &mut dyn FnMut(&str, &serde_json::Value) -> anyhow::Result<()>,
        ) -> anyhow::Result<()> {
            self.visits.fetch_add(1, Ordering::SeqCst);
            let fault = *self.fault.lock().unwrap();
            match fault {
                Some(Fault::Panic) => panic!("the owner's records are in pieces"),
                Some(Fault::Error) => anyhow::bail!("the owner cannot list its records"),
                None => {}
            }
            let snapshot = self.snapshot();
            if let Some(meanwhile) = self.meanwhile.lock().unwrap().take() {
                meanwhile(self);
            }
            for (id, record) in &snapshot {
                visit(id, record)?;
            }
            Ok(())
        }
    }

    /// A journal (small thresholds) with `live` registered as its owner.
    fn open_live(dir: &Path, floor: u64) -> (Arc<RecordJournal>, Arc<Live>) {
        let (j, loaded) = open(dir);
        let live = Arc::new(Live::default());
        *live.records.lock().unwrap() = loaded.records;
        let j = Arc::new(j.with_thresholds(floor, 4));
        j.set_live_source(&live);
        (j, live)
    }

    fn journal_bytes(dir: &Path) -> Vec<u8> {
        std::fs::read(dir.join(JOURNAL)).unwrap()
    }

    fn read_clean(dir: &Path) -> BTreeMap<String, serde_json::Value> {
        let loaded = read(dir).unwrap();
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        loaded.records
    }

    #[test]
    fn the_flusher_compacts_a_journal_grown_past_its_threshold() {
        let tmp = tempfile::tempdir().unwrap();
        let (j, live) = open_live(tmp.path(), 8 << 10);
        let pad = "x".repeat(200);
        // Below the threshold a round leaves the superseded lines.
        live.put(&j, "a", serde_json::json!({"n": 0}));
        live.put(&j, "a", serde_json::json!({"n": 1}));
        j.tick();
        assert_eq!(live.visits(), 0);
        let text = String::from_utf8(journal_bytes(tmp.path())).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");

        let mut appended = 0;
        for round in 0..200 {
            for id in 0..20 {
                let id = format!("c{id}");
                let record = serde_json::json!({"round": round, "pad": pad});
                appended += record.to_string().len();
                if id.ends_with('3') && round % 2 == 1 {
                    live.remove(&j, &id);
                } else {
                    live.put(&j, &id, record);
                }
            }
            j.tick();
            // After any round the journal is within its threshold.
            let len = journal_bytes(tmp.path()).len() as u64;
            let (expected_at, compact_at) = {
                let a = j.lock();
                (a.len, a.compact_at)
            };
            assert_eq!(len, expected_at);
            assert!(len <= compact_at, "{len} > {compact_at}");
        }
        assert!(live.visits() > 10, "{} compactions", live.visits());
        let len = journal_bytes(tmp.path()).len();
        assert!(len * 20 < appended, "{len} bytes left of {appended}");
        assert_eq!(read_clean(tmp.path()), live.snapshot());

        // A compaction leaves one line per live record, and later appends
        // go to the new file.
        assert!(j.compact_online().unwrap());
        let text = String::from_utf8(journal_bytes(tmp.path())).unwrap();
        assert_eq!(text.lines().count(), live.snapshot().len(), "{text}");
        live.put(&j, "after", serde_json::json!({"n": 2}));
        live.remove(&j, "a");
        assert_eq!(read_clean(tmp.path()), live.snapshot());
        assert!(!tmp.path().join(format!(".{JOURNAL}.tmp")).exists());
    }

    #[test]
    fn changes_appended_while_the_snapshot_is_taken_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let (j, live) = open_live(tmp.path(), 1 << 20);
        live.put(&j, "kept", serde_json::json!({"n": 1}));
        live.put(&j, "updated", serde_json::json!({"n": 1}));
        live.put(&j, "removed", serde_json::json!({"n": 1}));
        let during = Arc::clone(&j);
        *live.meanwhile.lock().unwrap() = Some(Box::new(move |live: &Live| {
            live.put(&during, "updated", serde_json::json!({"n": 2}));
            live.remove(&during, "removed");
            live.put(&during, "created", serde_json::json!({"n": 1}));
        }));
        assert!(j.compact_online().unwrap());
        assert_eq!(live.visits(), 1);
        let records = read_clean(tmp.path());
        assert_eq!(records, live.snapshot());
        assert_eq!(records["updated"]["n"], 2);
        assert!(!records.contains_key("removed"));
    }

    #[test]
    fn a_change_appended_before_it_is_visible_waits_out_the_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let (j, live) = open_live(tmp.path(), 1 << 20);
        let (visiting, visited) = std::sync::mpsc::channel();
        *live.meanwhile.lock().unwrap() = Some(Box::new(move |_: &Live| {
            let _ = visiting.send(());
        }));
        // A create's order: appended first, visible to the owner later.
        let in_flight = j.in_flight();
        let record = serde_json::json!({"n": 1});
        j.put("created", &record).unwrap();
        let compaction = {
            let j = Arc::clone(&j);
            std::thread::spawn(move || j.compact_online().unwrap())
        };
        // The compaction must not take its snapshot now: it would miss
        // the change, whose line comes before the snapshot's start.
        assert!(
            visited.recv_timeout(Duration::from_millis(300)).is_err(),
            "the snapshot was taken with a change in flight"
        );
        live.records
            .lock()
            .unwrap()
            .insert("created".into(), record);
        drop(in_flight);
        assert!(compaction.join().unwrap());
        assert_eq!(read_clean(tmp.path()), live.snapshot());
    }

    /// Writer `w`'s `i`th change of the racing test: a record, or `None`
    /// for a removal.
    fn change(w: usize, i: usize) -> (String, Option<serde_json::Value>) {
        let id = format!("w{w}-{}", i % 25);
        (
            id,
            (i % 7 != 3).then(|| serde_json::json!({"writer": w, "i": i})),
        )
    }

    #[test]
    fn appends_racing_with_compactions_lose_nothing() {
        const WRITERS: usize = 4;
        const CHANGES: usize = 1500;
        let tmp = tempfile::tempdir().unwrap();
        let (j, live) = open_live(tmp.path(), 1 << 20);
        let writing = Arc::new(std::sync::atomic::AtomicUsize::new(WRITERS));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (j, live, writing) = (Arc::clone(&j), Arc::clone(&live), Arc::clone(&writing));
                std::thread::spawn(move || {
                    for i in 0..CHANGES {
                        match (w % 2, change(w, i)) {
                            // Visible first, then appended.
                            (0, (id, Some(record))) => live.put(&j, &id, record),
                            (0, (id, None)) => live.remove(&j, &id),
                            // Appended first (a create's order), in flight
                            // until visible.
                            (_, (id, record)) => {
                                let _in_flight = j.in_flight();
                                match &record {
                                    Some(r) => j.put(&id, r).unwrap(),
                                    None => j.remove(&id).unwrap(),
                                }
                                let mut records = live.records.lock().unwrap();
                                match record {
                                    Some(r) => records.insert(id, r),
                                    None => records.remove(&id),
                                };
                            }
                        }
                    }
                    writing.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        let mut compactions = 0;
        while writing.load(Ordering::SeqCst) > 0 || compactions < 5 {
            assert!(j.compact_online().unwrap());
            compactions += 1;
        }
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(live.visits(), compactions);
        let mut expected = BTreeMap::new();
        for w in 0..WRITERS {
            for i in 0..CHANGES {
                match change(w, i) {
                    (id, Some(record)) => expected.insert(id, record),
                    (id, None) => expected.remove(&id),
                };
            }
        }
        assert_eq!(read_clean(tmp.path()), expected);
    }

    #[test]
    fn a_failed_compaction_leaves_the_journal_in_use_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let (j, live) = open_live(tmp.path(), 256);
        for n in 0..20 {
            live.put(&j, "a", serde_json::json!({"n": n}));
        }
        live.put(&j, "b", serde_json::json!({"n": 0}));

        let tmp_path = tmp.path().join(format!(".{JOURNAL}.tmp"));
        let fail: [(&str, &dyn Fn(bool)); 4] = [
            ("a panic in the owner", &|on| {
                *live.fault.lock().unwrap() = on.then_some(Fault::Panic);
            }),
            ("an error from the owner", &|on| {
                *live.fault.lock().unwrap() = on.then_some(Fault::Error);
            }),
            // The temp file cannot be created.
            ("a directory at the temp path", &|on| {
                if on {
                    std::fs::create_dir(&tmp_path).unwrap();
                } else {
                    std::fs::remove_dir(&tmp_path).unwrap();
                }
            }),
            ("a failed rename", &|on| {
                j.fail_rename.store(on, Ordering::SeqCst)
            }),
        ];
        for (n, (what, set)) in fail.iter().enumerate() {
            set(true);
            let before = journal_bytes(tmp.path());
            assert!(j.compact_online().is_err(), "{what}");
            assert_eq!(journal_bytes(tmp.path()), before, "{what}");
            // Appends go on, to the journal in use.
            live.put(&j, "a", serde_json::json!({"n": 100 + n}));
            assert_eq!(read_clean(tmp.path()), live.snapshot(), "{what}");
            if !tmp_path.is_dir() {
                assert!(!tmp_path.exists(), "{what}");
            }
            set(false);
        }

        // Once due, the flusher tries, then not again until the journal
        // has doubled.
        let grow_past = |len: u64| {
            while j.lock().len <= len {
                live.put(&j, "b", serde_json::json!({"n": 1}));
            }
        };
        let compact_at = j.lock().compact_at;
        grow_past(compact_at);
        *live.fault.lock().unwrap() = Some(Fault::Error);
        let visits = live.visits();
        j.tick();
        let failed_at = j.lock().len;
        live.put(&j, "b", serde_json::json!({"n": 2}));
        j.tick();
        assert_eq!(live.visits(), visits + 1);
        *live.fault.lock().unwrap() = None;
        grow_past(2 * failed_at);
        j.tick();
        assert_eq!(live.visits(), visits + 2);
        let text = String::from_utf8(journal_bytes(tmp.path())).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert_eq!(read_clean(tmp.path()), live.snapshot());
    }

    #[test]
    fn an_append_cut_short_by_a_full_disk_is_cut_off_and_the_journal_repaired() {
        let tmp = tempfile::tempdir().unwrap();
        let (j, live) = open_live(tmp.path(), 1 << 20);
        live.put(&j, "ran", serde_json::json!({"status": "running"}));
        live.put(&j, "removed", serde_json::json!({"n": 1}));
        let before = journal_bytes(tmp.path());

        j.disk_full.store(true, Ordering::SeqCst);
        // The end of a run: visible in memory, its line not written.
        let ended = serde_json::json!({"status": "exited"});
        live.records
            .lock()
            .unwrap()
            .insert("ran".into(), ended.clone());
        let err = j.put("ran", &ended).unwrap_err();
        assert!(
            crate::error::describe(&err).contains("appending to"),
            "{err:#}"
        );
        // A removal: gone from memory, its tombstone not written.
        live.records.lock().unwrap().remove("removed");
        assert!(j.remove("removed").is_err());
        // A create: refused, never made visible.
        assert!(j.put("refused", &serde_json::json!({"n": 1})).is_err());
        // Each half-written line was cut off again.
        assert_eq!(journal_bytes(tmp.path()), before);
        j.disk_full.store(false, Ordering::SeqCst);

        // The next line is whole and reads back.
        live.put(&j, "later", serde_json::json!({"n": 1}));
        let records = read_clean(tmp.path());
        assert_eq!(records["ran"]["status"], "running");
        assert!(records.contains_key("removed"));
        assert!(records.contains_key("later"));

        // The repair waits while it fails, and flush (the shutdown's)
        // tries at once.
        *live.fault.lock().unwrap() = Some(Fault::Error);
        let visits = live.visits();
        j.tick();
        j.tick();
        assert_eq!(
            live.visits(),
            visits + 1,
            "a failed repair is not retried at once"
        );
        *live.fault.lock().unwrap() = None;
        j.flush().unwrap();
        assert_eq!(read_clean(tmp.path()), live.snapshot());
        assert!(!j.lock().missed);
        // Repaired: the flusher has nothing more to do.
        let visits = live.visits();
        j.tick();
        assert_eq!(live.visits(), visits);
        let records = read_clean(tmp.path());
        assert_eq!(records["ran"]["status"], "exited");
        assert!(!records.contains_key("removed"));
        assert!(!records.contains_key("refused"));
    }

    #[test]
    fn a_start_that_cannot_rewrite_the_journal_appends_to_it_as_it_is() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(JOURNAL),
            "{\"id\":\"a\",\"record\":{\"n\":1}}\n{\"id\":\"b\",\"rec",
        )
        .unwrap();
        // The rewrite's temp file cannot be created.
        std::fs::create_dir(temp_path(tmp.path())).unwrap();
        let loaded = read(tmp.path()).unwrap();
        let j = RecordJournal::open(tmp.path(), &loaded.records).unwrap();
        assert!(j.lock().missed, "marked for a rewrite");
        // The torn last line is cut off: the next line starts afresh.
        j.put("c", &serde_json::json!({"n": 3})).unwrap();
        let records = read_clean(tmp.path());
        assert_eq!(records.keys().collect::<Vec<_>>(), ["a", "c"]);
    }

    #[test]
    fn once_the_owner_is_gone_compactions_stop() {
        let tmp = tempfile::tempdir().unwrap();
        let (j, live) = open_live(tmp.path(), 256);
        live.put(&j, "a", serde_json::json!({"n": 1}));
        live.put(&j, "a", serde_json::json!({"n": 2}));
        drop(live);
        let before = journal_bytes(tmp.path());
        assert!(!j.compact_online().unwrap());
        assert_eq!(journal_bytes(tmp.path()), before);
    }
}
