//! Per-instance logs: the guest's stdout/stderr in Docker's multiplexed
//! frame format, first in the daemon's shared pack ([`super::logpack`]),
//! then, past a few KiB, in a bounded file of its own (rotated once at
//! `max_size`); and readers that replay, tail and follow it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};
use wrun_runtime::{MAX_SINK_CHUNK, OutputSink};

use super::logpack::LogPack;

use wrun_api::stream::{HEADER_LEN as HEADER, split_frame};
pub use wrun_api::stream::{STDERR, STDOUT};
/// How much a reader reads from the file at once.
const READ_CHUNK: u64 = 256 * 1024;

/// Where the log stands: in the pack or in its file, which file (bumped
/// at each rotation), how many bytes it holds, how many runs have ended.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    packed: bool,
    generation: u64,
    size: u64,
    runs_ended: u64,
}

/// One instance's log. It starts in the daemon's pack and moves to
/// `containers/logs/<id>.log` once it outgrows it, and `.1` once
/// rotated. The bytes at each offset are the same wherever they
/// are kept, so a reader never notices the move.
///
/// The file is opened for each append and closed again, so an idle
/// instance holds no file descriptor.
pub struct LogFile {
    path: PathBuf,
    /// The pack and this log's key in it; `None` for a log that only ever
    /// lives in its file.
    pack: Option<(Arc<LogPack>, String)>,
    max_size: u64,
    written: Mutex<Progress>,
    progress: watch::Sender<Progress>,
    /// Live readers, and a signal each time one goes away: the files of a
    /// removed instance stay until its last reader (an attached `run`)
    /// has read them.
    readers: AtomicUsize,
    reader_gone: Notify,
}

impl LogFile {
    /// The log of an instance the daemon knows from before that has log
    /// files: its file if it has one (then anything packed for it is a
    /// leftover of a move cut short, and dropped), else what the pack holds.
    pub fn open(path: PathBuf, max_size: u64, pack: Option<(Arc<LogPack>, String)>) -> Arc<Self> {
        let file_size = std::fs::metadata(&path).map(|m| m.len());
        let p = match (&pack, file_size) {
            (Some((pack, id)), Err(_)) if !rotated_path(&path).exists() => Progress {
                packed: true,
                size: pack.size_of(id),
                ..Progress::default()
            },
            (pack, size) => {
                if let Some((pack, id)) = pack {
                    pack.forget(id);
                }
                Progress {
                    size: size.unwrap_or(0),
                    ..Progress::default()
                }
            }
        };
        Self::with(path, max_size, pack, p)
    }

    /// A log with no file (yet): what `pack` holds for `id`, nothing for a
    /// new instance; kept there until it outgrows it.
    pub fn packed(path: PathBuf, max_size: u64, pack: Arc<LogPack>, id: String) -> Arc<Self> {
        let p = Progress {
            packed: true,
            size: pack.size_of(&id),
            ..Progress::default()
        };
        Self::with(path, max_size, Some((pack, id)), p)
    }

    fn with(
        path: PathBuf,
        max_size: u64,
        pack: Option<(Arc<LogPack>, String)>,
        p: Progress,
    ) -> Arc<Self> {
        Arc::new(Self {
            path,
            pack,
            max_size: max_size.max((MAX_SINK_CHUNK + HEADER) as u64),
            written: Mutex::new(p),
            progress: watch::Sender::new(p),
            readers: AtomicUsize::new(0),
            reader_gone: Notify::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotated(&self) -> PathBuf {
        rotated_path(&self.path)
    }

    /// Bytes the log holds on disk (in the pack, or in its two files).
    pub fn disk_bytes(&self) -> u64 {
        let w = *self.lock();
        if w.packed {
            return w.size;
        }
        [self.path.clone(), self.rotated()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Deletes what the log holds, wherever it is.
    pub fn delete(&self) {
        if let Some((pack, id)) = &self.pack {
            pack.forget(id);
        }
        if self.lock().packed {
            return; // it never had a file
        }
        for p in [self.path.clone(), self.rotated()] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => eprintln!("wrun daemon: removing {}: {e}", p.display()),
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        // Progress is plain counters, consistent after any panic.
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one frame; rotates first when it would pass `max_size`.
    pub fn append(&self, stream: u8, chunk: &[u8]) -> std::io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let frame = wrun_api::stream::encode(stream, chunk);
        let mut w = self.lock();
        if w.packed {
            if let Some((pack, id)) = &self.pack {
                if pack.append(id, &frame)? {
                    w.size += frame.len() as u64;
                    self.progress.send_replace(*w);
                    return Ok(());
                }
                self.move_to_file(pack, id)?;
            }
            w.packed = false;
        }
        if w.size > 0 && w.size + frame.len() as u64 > self.max_size {
            std::fs::rename(&self.path, self.rotated())?;
            w.generation += 1;
            w.size = 0;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        file.write_all(&frame)?;
        w.size += frame.len() as u64;
        self.progress.send_replace(*w);
        Ok(())
    }

    /// Moves the packed log to its own file (whole, or not at all: written
    /// beside it, then renamed) and drops it from the pack. The caller
    /// holds the log's lock, so no append or read runs meanwhile.
    fn move_to_file(&self, pack: &LogPack, id: &str) -> std::io::Result<()> {
        let bytes = pack.read(id, 0, u64::MAX)?;
        let tmp = moving_path(&self.path);
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        drop(file);
        std::fs::rename(&tmp, &self.path)?;
        pack.forget(id);
        Ok(())
    }

    /// Up to `end` bytes of the current file (or the pack), from `offset`.
    fn read_current(&self, offset: u64, end: u64) -> std::io::Result<Vec<u8>> {
        {
            let w = self.lock();
            if let (true, Some((pack, id))) = (w.packed, &self.pack) {
                // Under the lock: the log cannot move out of the pack meanwhile.
                return pack.read(id, offset, end);
            }
        }
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        f.take(end.saturating_sub(offset)).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// Marks the end of a run: followers waiting on it finish.
    pub fn end_run(&self) {
        let mut w = self.lock();
        w.runs_ended += 1;
        self.progress.send_replace(*w);
    }

    /// Returns once no reader is left.
    pub async fn readers_done(&self) {
        loop {
            let gone = self.reader_gone.notified();
            tokio::pin!(gone);
            gone.as_mut().enable();
            if self.readers.load(Ordering::SeqCst) == 0 {
                return;
            }
            gone.await;
        }
    }

    pub fn has_readers(&self) -> bool {
        self.readers.load(Ordering::SeqCst) > 0
    }

    pub fn runs_ended(&self) -> u64 {
        self.lock().runs_ended
    }

    /// A sink for the guest's stdout (`STDOUT`) or stderr (`STDERR`).
    pub fn sink(self: &Arc<Self>, stream: u8) -> Arc<dyn OutputSink> {
        Arc::new(StreamSink {
            log: Arc::clone(self),
            stream,
        })
    }

    /// A reader of everything kept (the rotated file, then the current one).
    pub fn reader_all(self: &Arc<Self>, streams: Streams, follow: Follow) -> LogReader {
        let w = *self.lock();
        let generation = if w.generation > 0 && self.rotated().exists() {
            w.generation - 1
        } else {
            w.generation
        };
        LogReader::new(self, generation, 0, streams, follow)
    }

    /// Only what is written from now on.
    pub fn reader_from_end(self: &Arc<Self>, streams: Streams, follow: Follow) -> LogReader {
        let w = *self.lock();
        LogReader::new(self, w.generation, w.size, streams, follow)
    }

    /// The last `lines` lines (as multiplexed frames) and a reader of what
    /// comes after them.
    pub fn tail(
        self: &Arc<Self>,
        lines: usize,
        streams: Streams,
        follow: Follow,
    ) -> std::io::Result<(Vec<u8>, LogReader)> {
        let w = *self.lock();
        let mut bytes = Vec::new();
        if w.generation > 0 {
            bytes.extend(read_prefix(&self.rotated(), u64::MAX)?);
        }
        bytes.extend(self.read_current(0, w.size)?);
        let mut all: Vec<(u8, &[u8])> = Vec::new();
        for (stream, payload) in frames(&bytes).0 {
            if !streams.wants(stream) {
                continue;
            }
            for line in payload.split_inclusive(|&b| b == b'\n') {
                all.push((stream, line));
            }
        }
        let start = all.len().saturating_sub(lines);
        let mut out = Vec::new();
        for (stream, line) in &all[start..] {
            wrun_api::stream::encode_into(&mut out, *stream, line);
        }
        Ok((
            out,
            LogReader::new(self, w.generation, w.size, streams, follow),
        ))
    }
}

fn read_prefix(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    match File::open(path) {
        Ok(f) => {
            let mut out = Vec::new();
            f.take(max).read_to_end(&mut out)?;
            Ok(out)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The complete frames at the start of `bytes` and how many bytes they
/// span. A header announcing more than a sink chunk is damage: parsing
/// stops there.
fn frames(bytes: &[u8]) -> (Vec<(u8, &[u8])>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((stream, payload, used)) = split_frame(&bytes[at..]) {
        if payload.len() > MAX_SINK_CHUNK {
            break;
        }
        out.push((stream, payload));
        at += used;
    }
    (out, at)
}

struct StreamSink {
    log: Arc<LogFile>,
    stream: u8,
}

impl OutputSink for StreamSink {
    fn write(&self, chunk: &[u8]) -> std::io::Result<()> {
        self.log.append(self.stream, chunk)
    }
}

/// Which streams a reader passes on.
#[derive(Clone, Copy, Debug)]
pub struct Streams {
    pub stdout: bool,
    pub stderr: bool,
}

impl Streams {
    fn wants(self, stream: u8) -> bool {
        match stream {
            STDOUT => self.stdout,
            STDERR => self.stderr,
            _ => false,
        }
    }
}

/// When a reader stops: at the end of what is written, or once the log
/// has caught up after run number `n` ended.
#[derive(Clone, Copy, Debug)]
pub enum Follow {
    No,
    UntilRunEnds(u64),
}

/// Reads frames from a log, following rotation, as the file grows.
pub struct LogReader {
    log: Arc<LogFile>,
    generation: u64,
    offset: u64,
    streams: Streams,
    follow: Follow,
    rx: watch::Receiver<Progress>,
}

impl LogReader {
    fn new(
        log: &Arc<LogFile>,
        generation: u64,
        offset: u64,
        streams: Streams,
        follow: Follow,
    ) -> Self {
        log.readers.fetch_add(1, Ordering::SeqCst);
        Self {
            log: Arc::clone(log),
            generation,
            offset,
            streams,
            follow,
            rx: log.progress.subscribe(),
        }
    }

    /// The next frames of the wanted streams; `None` at the end.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            let p = *self.rx.borrow_and_update();
            let rotated = self.generation < p.generation;
            let end = if rotated { u64::MAX } else { p.size };
            if self.offset < end {
                let read = if rotated {
                    read_frames(&self.log.rotated(), self.offset, end)
                } else {
                    self.log
                        .read_current(self.offset, end.min(self.offset + READ_CHUNK))
                        .map(whole_frames)
                };
                match read {
                    Ok((data, consumed)) if consumed > 0 => {
                        self.offset += consumed as u64;
                        let mut out = Vec::new();
                        for (stream, payload) in frames(&data).0 {
                            if self.streams.wants(stream) {
                                wrun_api::stream::encode_into(&mut out, stream, payload);
                            }
                        }
                        if !out.is_empty() {
                            return Some(out);
                        }
                        continue;
                    }
                    // Nothing whole left (or the file went away): this file is done.
                    _ => self.offset = end,
                }
            }
            if self.generation < p.generation {
                self.generation += 1;
                self.offset = 0;
                continue;
            }
            match self.follow {
                Follow::No => return None,
                Follow::UntilRunEnds(n) if p.runs_ended > n => return None,
                Follow::UntilRunEnds(_) => {}
            }
            if self.rx.changed().await.is_err() {
                return None;
            }
        }
    }
}

impl Drop for LogReader {
    fn drop(&mut self) {
        self.log.readers.fetch_sub(1, Ordering::SeqCst);
        self.log.reader_gone.notify_waiters();
    }
}

/// Reads whole frames of `path` from `offset`, at most up to `end`.
fn read_frames(path: &Path, offset: u64, end: u64) -> std::io::Result<(Vec<u8>, usize)> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take(READ_CHUNK.min(end - offset)).read_to_end(&mut buf)?;
    Ok(whole_frames(buf))
}

/// The whole frames at the start of `buf`, and how many bytes they span.
fn whole_frames(mut buf: Vec<u8>) -> (Vec<u8>, usize) {
    let consumed = frames(&buf).1;
    buf.truncate(consumed);
    (buf, consumed)
}

fn rotated_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// Where a log moving out of the pack is written before its rename.
fn moving_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".moving");
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Streams = Streams {
        stdout: true,
        stderr: true,
    };

    fn payloads(bytes: &[u8]) -> Vec<(u8, String)> {
        frames(bytes)
            .0
            .into_iter()
            .map(|(s, p)| (s, String::from_utf8_lossy(p).into_owned()))
            .collect()
    }

    #[tokio::test]
    async fn frames_replay_filter_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::open(dir.path().join("c.log"), 1 << 20, None);
        log.append(STDOUT, b"one\ntwo\n").unwrap();
        log.append(STDERR, b"oops\n").unwrap();
        log.append(STDOUT, b"three\n").unwrap();
        let mut all = log.reader_all(BOTH, Follow::No);
        let mut got = Vec::new();
        while let Some(b) = all.next().await {
            got.extend(payloads(&b));
        }
        assert_eq!(
            got,
            vec![
                (STDOUT, "one\ntwo\n".into()),
                (STDERR, "oops\n".into()),
                (STDOUT, "three\n".into())
            ]
        );
        let only_err = Streams {
            stdout: false,
            stderr: true,
        };
        let mut r = log.reader_all(only_err, Follow::No);
        assert_eq!(
            payloads(&r.next().await.unwrap()),
            vec![(STDERR, "oops\n".into())]
        );
        assert!(r.next().await.is_none());
        let (tail, _) = log.tail(2, BOTH, Follow::No).unwrap();
        assert_eq!(
            payloads(&tail),
            vec![(STDERR, "oops\n".into()), (STDOUT, "three\n".into())]
        );
    }

    #[tokio::test]
    async fn a_log_moves_from_the_pack_to_its_file_unseen_by_readers() {
        use crate::logpack::{INLINE_BYTES, LogPack};
        let dir = tempfile::tempdir().unwrap();
        let (pack, _) = LogPack::open(dir.path().join("logs.pack")).unwrap();
        let pack = Arc::new(pack);
        let path = dir.path().join("c.log");
        let log = LogFile::packed(path.clone(), 1 << 20, Arc::clone(&pack), "c".into());
        let mut follower = log.reader_all(BOTH, Follow::UntilRunEnds(0));
        log.append(STDOUT, b"ready\n").unwrap();
        assert_eq!(
            payloads(&follower.next().await.unwrap()),
            vec![(STDOUT, "ready\n".into())]
        );
        // A packed log has no file.
        assert!(!path.exists());
        assert_eq!(pack.size_of("c"), log.disk_bytes());
        // Past the pack's bound the log moves to its file, whole.
        let line = vec![b'x'; 999];
        let mut sent = 0;
        while (sent as u64) < 2 * INLINE_BYTES {
            log.append(STDERR, &line).unwrap();
            sent += line.len();
        }
        log.end_run();
        assert!(path.exists());
        assert_eq!(pack.size_of("c"), 0);
        let mut got = 0;
        while let Some(b) = follower.next().await {
            for (stream, p) in payloads(&b) {
                assert_eq!(stream, STDERR);
                got += p.len();
            }
        }
        assert_eq!(got, sent);
        let mut all = log.reader_all(BOTH, Follow::No);
        let first = payloads(&all.next().await.unwrap());
        assert_eq!(first[0], (STDOUT, "ready\n".into()));
        let (tail, _) = log.tail(1, BOTH, Follow::No).unwrap();
        assert_eq!(payloads(&tail), vec![(STDERR, "x".repeat(999))]);
        // Reopened (a daemon restart), the log is its file's.
        let again = LogFile::open(path.clone(), 1 << 20, Some((Arc::clone(&pack), "c".into())));
        assert_eq!(again.disk_bytes(), std::fs::metadata(&path).unwrap().len());
        again.delete();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn the_file_stays_bounded_and_followers_see_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let max = (MAX_SINK_CHUNK + HEADER) as u64;
        let log = LogFile::open(dir.path().join("c.log"), max, None);
        let mut follower = log.reader_from_end(BOTH, Follow::UntilRunEnds(0));
        let chunk = vec![b'x'; MAX_SINK_CHUNK / 2];
        for _ in 0..5 {
            log.append(STDOUT, &chunk).unwrap();
        }
        log.end_run();
        let mut total = 0;
        while let Some(b) = follower.next().await {
            total += payloads(&b).iter().map(|(_, p)| p.len()).sum::<usize>();
        }
        // Two rotations happened: the follower read the live file as it
        // grew only up to what it had not yet lost.
        assert!(total >= chunk.len() * 2, "read {total}");
        let on_disk = std::fs::metadata(log.path()).unwrap().len()
            + std::fs::metadata(log.rotated()).unwrap().len();
        assert!(on_disk <= 2 * max, "{on_disk} bytes kept");
    }
}
