//! The first few KiB of every instance's log, packed into one file:
//! `containers/logs.pack`.
//!
//! Most instances print a line or two (`ready`) and then sit idle. A file
//! per instance cost each of them an inode at its first output, and on ext4
//! without a journal allocating an inode scans past every inode freed in
//! the last minutes: after a mass `rm`, that alone more than doubled the
//! daemon's CPU per create+start (docs/benchmarks/daemon-scale.md, "Small
//! logs in one pack"). So a log starts here, as records appended to one
//! file the daemon holds open, and moves to its own bounded file
//! (`logs/<id>.log`, see [`super::logs`]) once it passes [`INLINE_BYTES`] or
//! [`INLINE_FRAMES`]. Either way a reader sees the same bytes at the same
//! offsets: the instance's output as [`super::logs`] stores it, Docker
//! frames that carry the time of their write.
//!
//! A record is `b"WL"`, the ID's length (one byte), a zero byte, the frame's
//! length (u32, big-endian), the ID, then one stored frame (Docker's 8-byte
//! header, its byte 1 saying whether a time leads the payload). Records are written with one positioned write each at the
//! pack's end, so a kill leaves whole records and at most one torn last
//! record, which the next daemon drops. Like per-instance log files, the
//! pack is not synced: logs are what the page cache holds at a host crash.
//!
//! Memory: the index keeps, per instance with packed output, its ID and the
//! position of each frame (at most [`INLINE_FRAMES`]); the bytes stay on
//! disk. Space: removed instances leave dead records, rewritten away
//! ([`Pack::rewrite`]) once they outweigh the live ones and pass
//! [`REWRITE_MIN`], and at every daemon start.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;

/// A log moves to its own file once its frames would pass this many bytes...
pub const INLINE_BYTES: u64 = 4096;
/// ...or this many frames (each costs the index 16 bytes).
pub const INLINE_FRAMES: usize = 32;
/// Dead bytes the pack may hold before a rewrite, whatever the live ones.
const REWRITE_MIN: u64 = 4 << 20;

const MAGIC: &[u8; 2] = b"WL";
const RECORD_HEADER: usize = 8;
/// The Docker frame header inside a record.
use wrun_api::stream::{HEADER_LEN as FRAME_HEADER, STDERR, STDOUT};

/// Where one frame of a log sits in the pack.
#[derive(Clone, Copy, Debug)]
struct Extent {
    at: u64,
    len: u32,
}

/// The pack file and its index.
pub struct LogPack {
    path: PathBuf,
    inner: Mutex<Pack>,
}

struct Pack {
    file: File,
    /// Where the next record goes (bytes past it are a torn record, or
    /// the remains of a failed write, and get overwritten).
    end: u64,
    /// Bytes of records no log refers to any more.
    dead: u64,
    logs: HashMap<String, Vec<Extent>>,
}

fn record_len(id: &str, frame_len: u32) -> u64 {
    (RECORD_HEADER + id.len()) as u64 + u64::from(frame_len)
}

impl LogPack {
    /// Opens (or creates) the pack at `path` and indexes its records.
    /// Never fails on content: reading stops at the first record that is
    /// torn or damaged, and `problems` says what was dropped.
    pub fn open(path: PathBuf) -> anyhow::Result<(Self, Vec<String>)> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let size = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let (logs, end) = index(&file).with_context(|| format!("reading {}", path.display()))?;
        let mut problems = Vec::new();
        let dead = if end < size {
            problems.push(format!(
                "{}: dropping {} bytes after offset {end} (a record cut short or damaged)",
                path.display(),
                size - end
            ));
            size - end
        } else {
            0
        };
        let pack = Pack {
            file,
            end,
            dead,
            logs,
        };
        Ok((
            Self {
                path,
                inner: Mutex::new(pack),
            },
            problems,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, Pack> {
        // Every change to Pack leaves it consistent before it can fail.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes of log `id` held in the pack.
    pub fn size_of(&self, id: &str) -> u64 {
        self.lock()
            .logs
            .get(id)
            .map_or(0, |e| e.iter().map(|x| u64::from(x.len)).sum())
    }

    /// Appends one frame to log `id`; `Ok(false)` when the log has no room
    /// left here (it belongs in its own file from now on).
    pub fn append(&self, id: &str, frame: &[u8]) -> std::io::Result<bool> {
        let mut p = self.lock();
        let (bytes, frames) = p.logs.get(id).map_or((0, 0), |e| {
            (e.iter().map(|x| u64::from(x.len)).sum::<u64>(), e.len())
        });
        if frames >= INLINE_FRAMES
            || bytes + frame.len() as u64 > INLINE_BYTES
            || id.is_empty()
            || id.len() > usize::from(u8::MAX)
        {
            return Ok(false);
        }
        let len = frame.len() as u32;
        let mut record = Vec::with_capacity(RECORD_HEADER + id.len() + frame.len());
        record.extend_from_slice(MAGIC);
        record.extend_from_slice(&[id.len() as u8, 0]);
        record.extend_from_slice(&len.to_be_bytes());
        record.extend_from_slice(id.as_bytes());
        record.extend_from_slice(frame);
        let at = p.end;
        if let Err(e) = p.file.write_all_at(&record, at) {
            // A write cut short (a full disk): the part written is given
            // back (a restart would drop it as a torn record anyway).
            let _ = p.file.set_len(at);
            return Err(e);
        }
        p.end += record.len() as u64;
        p.logs.entry(id.to_owned()).or_default().push(Extent {
            at: at + (RECORD_HEADER + id.len()) as u64,
            len,
        });
        Ok(true)
    }

    /// The bytes of log `id` from logical offset `from` up to `to`.
    pub fn read(&self, id: &str, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
        let p = self.lock();
        let mut out = Vec::new();
        let mut pos = 0u64;
        for e in p.logs.get(id).into_iter().flatten() {
            let (start, end) = (pos, pos + u64::from(e.len));
            pos = end;
            let (a, b) = (start.max(from), end.min(to));
            if a >= b {
                continue;
            }
            let mut buf = vec![0; (b - a) as usize];
            p.file.read_exact_at(&mut buf, e.at + (a - start))?;
            out.extend_from_slice(&buf);
        }
        Ok(out)
    }

    /// Drops log `id` from the pack (the instance is gone, or its log moved
    /// to its own file); rewrites the pack when the dead records outweigh
    /// the live ones.
    pub fn forget(&self, id: &str) {
        let mut p = self.lock();
        let Some(extents) = p.logs.remove(id) else {
            return;
        };
        p.dead += extents.iter().map(|e| record_len(id, e.len)).sum::<u64>();
        if p.dead > REWRITE_MIN && p.dead > p.end - p.dead {
            self.rewrite_locked(&mut p);
        }
    }

    /// Keeps only the logs of instances `keep` accepts, then rewrites the
    /// pack if anything in it is dead (the daemon's start).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut p = self.lock();
        let gone: Vec<String> = p.logs.keys().filter(|id| !keep(id)).cloned().collect();
        for id in gone {
            if let Some(extents) = p.logs.remove(&id) {
                p.dead += extents.iter().map(|e| record_len(&id, e.len)).sum::<u64>();
            }
        }
        if p.dead > 0 {
            self.rewrite_locked(&mut p);
        }
    }

    /// Rewrites the pack with the live records only.
    #[cfg(test)]
    fn rewrite(&self) {
        let mut p = self.lock();
        self.rewrite_locked(&mut p);
    }

    /// Writes the live records to a new file, syncs it, renames it over the
    /// pack and switches to it. On failure the old pack stays in use (its
    /// dead records with it) and the error is printed.
    fn rewrite_locked(&self, p: &mut Pack) {
        let tmp = self.path.with_extension("pack.tmp");
        match write_live(p, &tmp).and_then(|(file, logs, end)| {
            std::fs::rename(&tmp, &self.path)
                .with_context(|| format!("replacing {}", self.path.display()))?;
            Ok((file, logs, end))
        }) {
            Ok((file, logs, end)) => {
                p.file = file;
                p.logs = logs;
                p.end = end;
                p.dead = 0;
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                eprintln!(
                    "wrun daemon: rewriting {}: {}",
                    self.path.display(),
                    crate::error::describe(&e)
                );
            }
        }
    }
}

type Index = HashMap<String, Vec<Extent>>;

/// Copies the live records of `p` into a new file at `tmp`, synced. One
/// pass through the old file, in order, so each log's frames keep theirs.
/// A log forgotten never comes back, so the live records are those of the
/// logs still in the index.
fn write_live(p: &Pack, tmp: &Path) -> anyhow::Result<(File, Index, u64)> {
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let mut logs: Index = HashMap::with_capacity(p.logs.len());
    let mut out = BufWriter::with_capacity(256 * 1024, &file);
    let mut end = 0u64;
    // Appends and reads are positioned: the file's own offset is only
    // ever used by these scans.
    (&p.file).seek(SeekFrom::Start(0))?;
    let mut records = Records::new((&p.file).take(p.end));
    while let Some(r) = records.next_record()? {
        if !p.logs.contains_key(&r.id) {
            continue;
        }
        out.write_all(&r.bytes)?;
        let head = (RECORD_HEADER + r.id.len()) as u64;
        logs.entry(r.id).or_default().push(Extent {
            at: end + head,
            len: r.frame_len,
        });
        end += r.bytes.len() as u64;
    }
    out.flush()?;
    drop(out);
    file.sync_data()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    Ok((file, logs, end))
}

/// Reads the records of a pack from its start; returns the index and
/// where the last whole, well-formed record ends.
fn index(file: &File) -> std::io::Result<(Index, u64)> {
    let mut logs: Index = HashMap::new();
    let mut records = Records::new(file);
    let mut at = 0u64;
    while let Some(r) = records.next_record()? {
        let head = (RECORD_HEADER + r.id.len()) as u64;
        logs.entry(r.id).or_default().push(Extent {
            at: at + head,
            len: r.frame_len,
        });
        at += r.bytes.len() as u64;
    }
    Ok((logs, at))
}

/// One record read back: its log's ID, its frame's length, and all its
/// bytes (header, ID, frame).
struct Record {
    id: String,
    frame_len: u32,
    bytes: Vec<u8>,
}

/// Reads records one after another; stops (`None`) at the end, or at the
/// first one torn or not well formed.
struct Records<R: Read> {
    r: BufReader<R>,
}

impl<R: Read> Records<R> {
    fn new(r: R) -> Self {
        Self {
            r: BufReader::with_capacity(256 * 1024, r),
        }
    }

    fn next_record(&mut self) -> std::io::Result<Option<Record>> {
        let mut head = [0u8; RECORD_HEADER];
        if !read_whole(&mut self.r, &mut head)? {
            return Ok(None);
        }
        let id_len = usize::from(head[2]);
        let frame_len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if &head[..2] != MAGIC
            || head[3] != 0
            || id_len == 0
            || u64::from(frame_len) > INLINE_BYTES
            || (frame_len as usize) < FRAME_HEADER
        {
            return Ok(None);
        }
        let mut bytes = vec![0u8; RECORD_HEADER + id_len + frame_len as usize];
        bytes[..RECORD_HEADER].copy_from_slice(&head);
        if !read_whole(&mut self.r, &mut bytes[RECORD_HEADER..])? {
            return Ok(None);
        }
        // The frame must say what the record says, and be stdout or stderr.
        let frame = &bytes[RECORD_HEADER + id_len..];
        let whole = wrun_api::stream::split_frame(frame).is_some_and(|(stream, _, used)| {
            used == frame.len() && matches!(stream, STDOUT | STDERR)
        });
        if !whole {
            return Ok(None);
        }
        let Ok(id) = std::str::from_utf8(&bytes[RECORD_HEADER..RECORD_HEADER + id_len]) else {
            return Ok(None);
        };
        Ok(Some(Record {
            id: id.to_owned(),
            frame_len,
            bytes,
        }))
    }
}

/// Fills `buf`; `false` at the end of the file (even part way).
fn read_whole(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use wrun_api::stream::encode as frame;

    fn open(path: &Path) -> (LogPack, Vec<String>) {
        LogPack::open(path.to_owned()).unwrap()
    }

    #[test]
    fn logs_read_back_by_offset_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.pack");
        let (pack, problems) = open(&path);
        assert!(problems.is_empty());
        let (a1, b1, a2) = (
            frame(1, b"ready\n"),
            frame(2, b"oops\n"),
            frame(1, b"done\n"),
        );
        assert!(pack.append("a", &a1).unwrap());
        assert!(pack.append("b", &b1).unwrap());
        assert!(pack.append("a", &a2).unwrap());
        let whole_a = [a1.clone(), a2.clone()].concat();
        assert_eq!(pack.read("a", 0, u64::MAX).unwrap(), whole_a);
        assert_eq!(pack.size_of("a"), whole_a.len() as u64);
        // A range that starts inside the first frame and ends in the second.
        assert_eq!(
            pack.read("a", 3, a1.len() as u64 + 2).unwrap(),
            whole_a[3..a1.len() + 2]
        );
        drop(pack);
        let (pack, problems) = open(&path);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(pack.read("a", 0, u64::MAX).unwrap(), whole_a);
        assert_eq!(pack.read("b", 0, u64::MAX).unwrap(), b1);
        assert!(pack.read("c", 0, u64::MAX).unwrap().is_empty());
    }

    #[test]
    fn a_log_past_the_inline_bounds_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (pack, _) = open(&dir.path().join("logs.pack"));
        let big = frame(1, &vec![b'x'; INLINE_BYTES as usize]);
        assert!(!pack.append("a", &big).unwrap());
        for _ in 0..INLINE_FRAMES {
            assert!(pack.append("b", &frame(1, b"x\n")).unwrap());
        }
        assert!(!pack.append("b", &frame(1, b"x\n")).unwrap());
        assert_eq!(pack.size_of("a"), 0);
    }

    #[test]
    fn a_torn_or_damaged_tail_is_dropped_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.pack");
        let (pack, _) = open(&path);
        pack.append("a", &frame(1, b"one\n")).unwrap();
        pack.append("a", &frame(1, b"two\n")).unwrap();
        drop(pack);
        // Cut the last record short, as a kill in the middle of a write does.
        let len = std::fs::metadata(&path).unwrap().len();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (pack, problems) = open(&path);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(pack.read("a", 0, u64::MAX).unwrap(), frame(1, b"one\n"));
        // The next append lands where the torn record began.
        pack.append("a", &frame(2, b"three\n")).unwrap();
        drop(pack);
        let (pack, problems) = open(&path);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            pack.read("a", 0, u64::MAX).unwrap(),
            [frame(1, b"one\n"), frame(2, b"three\n")].concat()
        );
        // Garbage that is not a record stops the index there too.
        drop(pack);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"WL\x01\x00\xff\xff\xff\xffx");
        std::fs::write(&path, &bytes).unwrap();
        let (pack, problems) = open(&path);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            pack.size_of("a"),
            (frame(1, b"one\n").len() + frame(2, b"three\n").len()) as u64
        );
    }

    #[test]
    fn removing_many_logs_shrinks_the_pack_while_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.pack");
        let (pack, _) = open(&path);
        let line = frame(1, &[b'x'; 200]);
        let n = (2 * REWRITE_MIN / line.len() as u64) as usize;
        for i in 0..n {
            pack.append(&format!("{i:064}"), &line).unwrap();
        }
        let full = std::fs::metadata(&path).unwrap().len();
        for i in 1..n {
            pack.forget(&format!("{i:064}"));
        }
        let left = std::fs::metadata(&path).unwrap().len();
        assert!(left < full / 2, "{left} of {full} bytes left");
        assert_eq!(pack.read(&format!("{:064}", 0), 0, u64::MAX).unwrap(), line);
        // Appends go on in the rewritten pack.
        pack.append("late", &frame(2, b"late\n")).unwrap();
        drop(pack);
        let (pack, problems) = open(&path);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(pack.read(&format!("{:064}", 0), 0, u64::MAX).unwrap(), line);
        assert_eq!(pack.read("late", 0, u64::MAX).unwrap(), frame(2, b"late\n"));
    }

    #[test]
    fn dead_records_are_rewritten_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.pack");
        let (pack, _) = open(&path);
        for i in 0..100 {
            pack.append(
                &format!("id{i}"),
                &frame(1, format!("line {i}\n").as_bytes()),
            )
            .unwrap();
        }
        let full = std::fs::metadata(&path).unwrap().len();
        pack.retain(|id| id == "id7" || id == "id42");
        let small = std::fs::metadata(&path).unwrap().len();
        assert!(small * 40 < full, "{small} of {full} bytes left");
        assert_eq!(
            pack.read("id42", 0, u64::MAX).unwrap(),
            frame(1, b"line 42\n")
        );
        pack.forget("id7");
        pack.rewrite();
        pack.append("id9", &frame(2, b"new\n")).unwrap();
        drop(pack);
        let (pack, problems) = open(&path);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(pack.size_of("id7"), 0);
        assert_eq!(
            pack.read("id42", 0, u64::MAX).unwrap(),
            frame(1, b"line 42\n")
        );
        assert_eq!(pack.read("id9", 0, u64::MAX).unwrap(), frame(2, b"new\n"));
    }
}
