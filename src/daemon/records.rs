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
//!
//! A record is a cache of what the daemon knows: after a host crash every
//! instance has ended anyway. So appends are not synced one by one: a
//! background thread `fdatasync`s the journal once a second when something
//! changed, and once more when the daemon shuts down. A host crash or power
//! loss can lose at most about the last second of record changes
//! (docs/daemon.md, "State on disk").

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// How long a changed record may stay in the page cache only.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The journal's name in the daemon's `containers/`.
pub const JOURNAL: &str = "records.journal";

/// The record file of one instance in the layout before the journal
/// (`containers/<id>/config.json`), read once to migrate.
pub const LEGACY_RECORD: &str = "config.json";

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

/// Reads the journal in `dir` and the records of the layout before it
/// (`<id>/config.json`, for IDs the journal does not know). Never fails on
/// content: a torn last line (a kill in the middle of an append) or a
/// garbled line is skipped and named in `problems`.
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
    for (id, legacy) in legacy_records(dir) {
        if records.contains_key(&id) {
            continue;
        }
        match std::fs::read(&legacy)
            .map_err(anyhow::Error::from)
            .and_then(|b| Ok(serde_json::from_slice::<serde_json::Value>(&b)?))
        {
            Ok(r) => {
                records.insert(id, r);
            }
            Err(e) => problems.push(format!("skipping {}: {e:#}", legacy.display())),
        }
    }
    Ok(Loaded { records, problems })
}

/// The `<id>/config.json` files of the layout before the journal.
pub fn legacy_records(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let id = e.file_name().into_string().ok()?;
            let path = e.path().join(LEGACY_RECORD);
            path.is_file().then_some((id, path))
        })
        .collect()
}

/// The journal of one daemon's records, open for appends.
pub struct RecordJournal {
    path: PathBuf,
    file: File,
    /// Taken for each append, so lines never interleave; the flusher's
    /// `fdatasync` does not take it and holds up no append.
    appending: Mutex<()>,
    dirty: AtomicBool,
}

impl RecordJournal {
    /// Rewrites the journal in `dir` with `live` records only (durably:
    /// temp file, fsync, rename, fsync of the directory), opens it for
    /// appends and starts the flusher thread, which lives as long as the
    /// process.
    pub fn start(
        dir: &Path,
        live: &BTreeMap<String, serde_json::Value>,
    ) -> anyhow::Result<Arc<Self>> {
        let journal = Arc::new(Self::compact(dir, live)?);
        let flusher = Arc::clone(&journal);
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
        Ok(journal)
    }

    fn compact(dir: &Path, live: &BTreeMap<String, serde_json::Value>) -> anyhow::Result<Self> {
        let path = dir.join(JOURNAL);
        let tmp = dir.join(format!(".{JOURNAL}.tmp"));
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
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(&text)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        drop(f);
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
        let file = File::options()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            path,
            file,
            appending: Mutex::new(()),
            dirty: AtomicBool::new(false),
        })
    }

    /// Appends the new version of record `id`. Durable after the next
    /// [`flush`](RecordJournal::flush).
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

    fn append<T: Serialize>(&self, line: &Line<T>) -> anyhow::Result<()> {
        // One write per line (JSON escapes every newline in a string), so a
        // kill leaves whole lines and at most one torn last line.
        let mut bytes = serde_json::to_vec(line)?;
        bytes.push(b'\n');
        let appending = self.appending.lock().unwrap_or_else(|p| p.into_inner());
        (&self.file)
            .write_all(&bytes)
            .with_context(|| format!("appending to {}", self.path.display()))?;
        drop(appending);
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Makes every line appended so far durable: one `fdatasync` of the
    /// journal, when anything changed since the last one.
    pub fn flush(&self) -> anyhow::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        if let Err(e) = self.file.sync_data() {
            // Try again at the next round.
            self.dirty.store(true, Ordering::Release);
            return Err(e).with_context(|| format!("syncing {}", self.path.display()));
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

    #[test]
    fn records_of_the_layout_before_the_journal_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("old")).unwrap();
        std::fs::write(tmp.path().join("old").join(LEGACY_RECORD), "{\"n\": 7}").unwrap();
        std::fs::create_dir(tmp.path().join("torn")).unwrap();
        std::fs::write(tmp.path().join("torn").join(LEGACY_RECORD), "{\"n\": ").unwrap();
        let (j, loaded) = open(tmp.path());
        assert_eq!(loaded.records.len(), 1);
        assert_eq!(loaded.records["old"]["n"], 7);
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        // The journal's version wins over a legacy file not yet removed.
        j.put("old", &serde_json::json!({"n": 8})).unwrap();
        let (_, loaded) = open(tmp.path());
        assert_eq!(loaded.records["old"]["n"], 8);
    }
}
