//! Per-instance logs: the guest's stdout/stderr as Docker-framed chunks,
//! each with the time it was written, first in the daemon's shared pack
//! ([`super::logpack`]), then, past a few KiB, in a bounded file of its own
//! (rotated once at `max_size`); and readers that replay, tail and follow
//! it, filtered by time and prefixed with it as `docker logs` asks.
//!
//! A write that cannot be kept (a full disk) is dropped, as dockerd's
//! json-file driver drops a line it cannot write: the guest never sees the
//! failure, the daemon says so once on stderr, and again with the count
//! dropped once a write succeeds.
//!
//! A stored frame is Docker's 8-byte header (stream, three bytes, length)
//! and the payload. Byte 1 of the header says which: `0`, the payload is
//! the output itself (logs written before times were kept); [`TIMED`], the
//! payload starts with the write's time, 8 bytes of big-endian Unix
//! nanoseconds, counted in the length. Readers send clients plain frames.

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
/// Header byte 1 of a stored frame whose payload starts with its time.
const TIMED: u8 = 1;
/// Bytes of the time at the start of a [`TIMED`] frame's payload.
const TIME_LEN: usize = 8;
/// The largest stored frame: a sink's chunk, its time and the header.
const MAX_STORED_FRAME: usize = MAX_SINK_CHUNK + TIME_LEN + HEADER;
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
    /// Guest output dropped since the last write that was kept.
    dropped: Mutex<Dropped>,
    /// Makes file writes write half their bytes, then fail as on a full
    /// disk.
    #[cfg(test)]
    disk_full: std::sync::atomic::AtomicBool,
}

/// Writes of guest output the log could not keep, and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Dropped {
    writes: u64,
    bytes: u64,
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
            max_size: max_size.max(MAX_STORED_FRAME as u64),
            written: Mutex::new(p),
            progress: watch::Sender::new(p),
            readers: AtomicUsize::new(0),
            reader_gone: Notify::new(),
            dropped: Mutex::new(Dropped::default()),
            #[cfg(test)]
            disk_full: std::sync::atomic::AtomicBool::new(false),
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

    /// Appends one frame, stamped with the time now; rotates first when
    /// it would pass `max_size`.
    pub fn append(&self, stream: u8, chunk: &[u8]) -> std::io::Result<()> {
        self.append_at(stream, unix_nanos_now(), chunk)
    }

    /// Appends one frame written at `time` (Unix nanoseconds).
    fn append_at(&self, stream: u8, time: i64, chunk: &[u8]) -> std::io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let frame = timed_frame(stream, time, chunk);
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
        if let Err(e) = self.write_file(&mut file, &frame) {
            // A write cut short (a full disk) left part of the frame: cut
            // it off, or readers would stop at it and the next frame would
            // land after it.
            let _ = file.set_len(w.size);
            return Err(e);
        }
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
        let written = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| self.write_file(&mut file, &bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            // The log stays packed; what was written of the copy is given
            // back to a full disk.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        pack.forget(id);
        Ok(())
    }

    fn write_file(&self, file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if self.disk_full.load(Ordering::Acquire) {
            file.write_all(&bytes[..bytes.len() / 2])?;
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        file.write_all(bytes)
    }

    /// Up to `end` bytes of the log's file number `generation` (or of the
    /// pack), from `offset`; `None` once that file is gone (rotated away
    /// twice). Which file holds the generation is decided, and the file
    /// opened, under the log's lock: a rotation right after cannot put
    /// another file's bytes at these offsets (a reader once read the new
    /// file at the old one's offsets, then the old file again, and passed
    /// lines on twice).
    fn read_generation(
        &self,
        generation: u64,
        offset: u64,
        end: u64,
    ) -> std::io::Result<Option<Vec<u8>>> {
        let file = {
            let w = self.lock();
            let path = if generation == w.generation {
                if let (true, Some((pack, id))) = (w.packed, &self.pack) {
                    // Under the lock: the log cannot move out of the pack meanwhile.
                    return pack.read(id, offset, end).map(Some);
                }
                self.path.clone()
            } else if generation + 1 == w.generation {
                self.rotated()
            } else {
                return Ok(None);
            };
            open_if_there(&path)?
        };
        let mut buf = Vec::new();
        if let Some(mut f) = file {
            f.seek(SeekFrom::Start(offset))?;
            f.take(end.saturating_sub(offset)).read_to_end(&mut buf)?;
        }
        Ok(Some(buf))
    }

    /// Everything the log keeps (the rotated file, then the current one or
    /// the pack), as of one moment, and where the log stood then.
    fn read_kept(&self) -> std::io::Result<(Progress, Vec<u8>)> {
        let (w, rotated, current) = {
            let w = self.lock();
            if let (true, Some((pack, id))) = (w.packed, &self.pack) {
                return Ok((*w, pack.read(id, 0, w.size)?));
            }
            let rotated = if w.generation > 0 {
                open_if_there(&self.rotated())?
            } else {
                None
            };
            (*w, rotated, open_if_there(&self.path)?)
        };
        let mut bytes = Vec::new();
        if let Some(mut f) = rotated {
            f.read_to_end(&mut bytes)?;
        }
        if let Some(f) = current {
            f.take(w.size).read_to_end(&mut bytes)?;
        }
        Ok((w, bytes))
    }

    /// Appends one write of the guest's output, or drops it when it cannot
    /// be kept: the first drop is said on stderr, and the count dropped
    /// once a write is kept again.
    pub fn append_output(&self, stream: u8, chunk: &[u8]) {
        let result = self.append(stream, chunk);
        let mut dropped = self.dropped.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) if dropped.writes == 0 => {}
            Ok(()) => {
                say(format_args!(
                    "instance {}: its log is written again; {} write{} ({} bytes) of its output dropped meanwhile",
                    self.instance_id(),
                    dropped.writes,
                    if dropped.writes == 1 { "" } else { "s" },
                    dropped.bytes
                ));
                *dropped = Dropped::default();
            }
            Err(e) => {
                if dropped.writes == 0 {
                    say(format_args!(
                        "instance {}: writing its log: {}; dropping its output until a write succeeds",
                        self.instance_id(),
                        crate::error::describe(&anyhow::Error::from(e))
                    ));
                }
                dropped.writes += 1;
                dropped.bytes += chunk.len() as u64;
            }
        }
    }

    /// The instance this is the log of (its file is named after it).
    fn instance_id(&self) -> String {
        match &self.pack {
            Some((_, id)) => id.clone(),
            None => self
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
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
    pub fn reader_all(self: &Arc<Self>, view: LogView, follow: Follow) -> LogReader {
        let w = *self.lock();
        let generation = if w.generation > 0 && self.rotated().exists() {
            w.generation - 1
        } else {
            w.generation
        };
        LogReader::new(self, generation, 0, view, follow)
    }

    /// Only what is written from now on.
    pub fn reader_from_end(self: &Arc<Self>, view: LogView, follow: Follow) -> LogReader {
        let w = *self.lock();
        LogReader::new(self, w.generation, w.size, view, follow)
    }

    /// The last `lines` lines (as multiplexed frames) and a reader of what
    /// comes after them. As in Docker, the lines are counted first, then
    /// `view`'s `since` and `until` apply to them.
    pub fn tail(
        self: &Arc<Self>,
        lines: usize,
        view: LogView,
        follow: Follow,
    ) -> std::io::Result<(Vec<u8>, LogReader)> {
        let (w, bytes) = self.read_kept()?;
        let mut all: Vec<Entry<'_>> = Vec::new();
        for e in frames(&bytes).0 {
            if !view.streams.wants(e.stream) {
                continue;
            }
            for line in e.payload.split_inclusive(|&b| b == b'\n') {
                all.push(Entry { payload: line, ..e });
            }
        }
        let start = all.len().saturating_sub(lines);
        let mut out = Vec::new();
        let mut reader = LogReader::new(self, w.generation, w.size, view, follow);
        for e in &all[start..] {
            if !reader.render(e, &mut out) {
                break;
            }
        }
        Ok((out, reader))
    }
}

/// A line on the daemon's stderr that cannot fail: that may be a file on
/// the very disk that is full (`daemon.log`), where `eprintln!` would panic.
fn say(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "wrun daemon: {message}");
}

/// The time now in Unix nanoseconds (0 for a clock before 1970).
fn unix_nanos_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// One stored frame: the header marked [`TIMED`], the time, the chunk.
fn timed_frame(stream: u8, time: i64, chunk: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER + TIME_LEN + chunk.len());
    frame.extend_from_slice(&wrun_api::stream::header(stream, TIME_LEN + chunk.len()));
    frame[1] = TIMED;
    frame.extend_from_slice(&time.to_be_bytes());
    frame.extend_from_slice(chunk);
    frame
}

/// `docker logs -t`'s prefix: RFC 3339 in UTC with all nine digits of
/// nanoseconds (Go's `RFC3339NanoFixed`), then a space; an output kept
/// with no time (from before times were kept) shows Go's zero time.
fn timestamp_prefix(time: Option<i64>, out: &mut Vec<u8>) {
    use std::io::Write;
    let t =
        time.and_then(|ns| time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).ok());
    let _ = match t {
        Some(t) => write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z ",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond()
        ),
        None => write!(out, "0001-01-01T00:00:00.000000000Z "),
    };
}

/// `path` opened for reading; `None` when there is no such file.
fn open_if_there(path: &Path) -> std::io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// One stored frame, read back.
#[derive(Clone, Copy, Debug)]
struct Entry<'a> {
    stream: u8,
    /// When it was written (Unix nanoseconds); `None` for a frame kept
    /// before times were.
    time: Option<i64>,
    payload: &'a [u8],
}

/// The complete frames at the start of `bytes` and how many bytes they
/// span. A header announcing more than a sink chunk (and its time), or
/// of a kind this daemon does not know, is damage: parsing stops there.
fn frames(bytes: &[u8]) -> (Vec<Entry<'_>>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((stream, payload, used)) = split_frame(&bytes[at..]) {
        let (time, payload) = match bytes[at + 1] {
            0 => (None, payload),
            TIMED if payload.len() >= TIME_LEN => {
                let (time, rest) = payload.split_at(TIME_LEN);
                let time: [u8; TIME_LEN] = time.try_into().unwrap_or_default();
                (Some(i64::from_be_bytes(time)), rest)
            }
            _ => break,
        };
        if payload.len() > MAX_SINK_CHUNK {
            break;
        }
        out.push(Entry {
            stream,
            time,
            payload,
        });
        at += used;
    }
    (out, at)
}

struct StreamSink {
    log: Arc<LogFile>,
    stream: u8,
}

impl OutputSink for StreamSink {
    /// Never fails: output the log cannot keep is dropped (see
    /// [`LogFile::append_output`]), and the guest goes on.
    fn write(&self, chunk: &[u8]) -> std::io::Result<()> {
        self.log.append_output(self.stream, chunk);
        Ok(())
    }
}

/// Which streams a reader passes on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Streams {
    pub stdout: bool,
    pub stderr: bool,
}

/// What a reader passes on, and how: `docker logs`'s `stdout`, `stderr`,
/// `timestamps`, `since` and `until`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogView {
    pub streams: Streams,
    /// Each line starts with the time it was written and a space.
    pub timestamps: bool,
    /// Only output written at or after this time (Unix nanoseconds);
    /// output kept with no time is older than any.
    pub since: Option<i128>,
    /// Only output written at or before this time: the first later output
    /// ends the read, a follow included.
    pub until: Option<i128>,
}

impl From<Streams> for LogView {
    fn from(streams: Streams) -> Self {
        Self {
            streams,
            ..Self::default()
        }
    }
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
    view: LogView,
    follow: Follow,
    rx: watch::Receiver<Progress>,
    /// Whether the next output of stdout, stderr starts a line (where a
    /// timestamp goes).
    line_start: [bool; 2],
    /// Output past `until` was met: nothing more is read.
    past_until: bool,
}

impl LogReader {
    fn new(
        log: &Arc<LogFile>,
        generation: u64,
        offset: u64,
        view: LogView,
        follow: Follow,
    ) -> Self {
        log.readers.fetch_add(1, Ordering::SeqCst);
        Self {
            log: Arc::clone(log),
            generation,
            offset,
            view,
            follow,
            rx: log.progress.subscribe(),
            line_start: [true; 2],
            past_until: false,
        }
    }

    /// Appends `e` to `out` as the client sees it: a plain frame, only if
    /// its stream is wanted and its time in range, with a timestamp at
    /// the start of each line when asked. `false` once past `until`.
    fn render(&mut self, e: &Entry<'_>, out: &mut Vec<u8>) -> bool {
        let view = self.view;
        if !view.streams.wants(e.stream) {
            return true;
        }
        let time = e.time.map(i128::from);
        if view
            .until
            .is_some_and(|until| time.is_some_and(|t| t > until))
        {
            self.past_until = true;
            return false;
        }
        let line_start = &mut self.line_start[usize::from(e.stream == STDERR)];
        if view
            .since
            .is_some_and(|since| time.is_none_or(|t| t < since))
        {
            // What follows starts afresh, with its own timestamp.
            *line_start = true;
            return true;
        }
        if !view.timestamps {
            wrun_api::stream::encode_into(out, e.stream, e.payload);
            *line_start = e.payload.ends_with(b"\n");
            return true;
        }
        let mut text = Vec::with_capacity(e.payload.len() + 32);
        for piece in e.payload.split_inclusive(|&b| b == b'\n') {
            if *line_start {
                timestamp_prefix(e.time, &mut text);
            }
            text.extend_from_slice(piece);
            *line_start = piece.ends_with(b"\n");
        }
        wrun_api::stream::encode_into(out, e.stream, &text);
        true
    }

    /// The next frames of the wanted streams; `None` at the end.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if self.past_until {
                return None;
            }
            let p = *self.rx.borrow_and_update();
            if self.generation + 1 < p.generation {
                // Rotated away twice: go on with the oldest file kept (a
                // reader this slow loses what was rotated away).
                self.generation = p.generation - 1;
                self.offset = 0;
            }
            let rotated = self.generation < p.generation;
            let end = if rotated { u64::MAX } else { p.size };
            if self.offset < end {
                let read = self
                    .log
                    .read_generation(
                        self.generation,
                        self.offset,
                        end.min(self.offset + READ_CHUNK),
                    )
                    .map(|bytes| bytes.map(whole_frames));
                match read {
                    // Rotated away twice since `p` (sent under the lock the
                    // read took, so `rx` holds it now): look again.
                    Ok(None) => continue,
                    Ok(Some((data, consumed))) if consumed > 0 => {
                        self.offset += consumed as u64;
                        let mut out = Vec::new();
                        for e in frames(&data).0 {
                            if !self.render(&e, &mut out) {
                                break;
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
            .map(|e| (e.stream, String::from_utf8_lossy(e.payload).into_owned()))
            .collect()
    }

    const SEC: i64 = 1_000_000_000;

    /// Everything a reader passes on, frame by frame.
    async fn read_to_end(mut r: LogReader) -> Vec<(u8, String)> {
        let mut got = Vec::new();
        while let Some(b) = r.next().await {
            got.extend(payloads(&b));
        }
        got
    }

    fn view(timestamps: bool, since: Option<i64>, until: Option<i64>) -> LogView {
        LogView {
            streams: BOTH,
            timestamps,
            since: since.map(i128::from),
            until: until.map(i128::from),
        }
    }

    fn out(text: &str) -> (u8, String) {
        (STDOUT, text.into())
    }

    fn err(text: &str) -> (u8, String) {
        (STDERR, text.into())
    }

    #[tokio::test]
    async fn times_filter_and_stamp_what_readers_pass_on() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::open(dir.path().join("c.log"), 1 << 20, None);
        log.append_at(STDOUT, 10 * SEC + 5, b"one\ntwo\n").unwrap();
        log.append_at(STDERR, 20 * SEC, b"half").unwrap();
        log.append_at(STDERR, 21 * SEC, b" a line\n").unwrap();
        log.append_at(STDOUT, 30 * SEC, b"three\n").unwrap();
        let all = |v| read_to_end(log.reader_all(v, Follow::No));
        // Each line starts with its time; a line written in two pieces
        // has the time of its first.
        assert_eq!(
            all(view(true, None, None)).await,
            [
                out("1970-01-01T00:00:10.000000005Z one\n1970-01-01T00:00:10.000000005Z two\n"),
                err("1970-01-01T00:00:20.000000000Z half"),
                err(" a line\n"),
                out("1970-01-01T00:00:30.000000000Z three\n"),
            ]
        );
        // since is inclusive; output cut by it starts afresh, stamped.
        assert_eq!(
            all(view(false, Some(20 * SEC), None)).await,
            [err("half"), err(" a line\n"), out("three\n")]
        );
        assert_eq!(
            all(view(true, Some(21 * SEC), None)).await,
            [
                err("1970-01-01T00:00:21.000000000Z  a line\n"),
                out("1970-01-01T00:00:30.000000000Z three\n"),
            ]
        );
        // until is inclusive, and the first later output ends the read.
        assert_eq!(
            all(view(false, None, Some(20 * SEC))).await,
            [out("one\ntwo\n"), err("half")]
        );
        assert_eq!(
            all(view(false, Some(11 * SEC), Some(29 * SEC))).await,
            [err("half"), err(" a line\n")]
        );
        // The tail counts lines first, then since and until apply.
        let (tail, rest) = log
            .tail(2, view(false, None, Some(25 * SEC)), Follow::No)
            .unwrap();
        assert_eq!(payloads(&tail), [err(" a line\n")]);
        assert!(read_to_end(rest).await.is_empty());
        let (tail, _) = log
            .tail(1, view(false, None, Some(25 * SEC)), Follow::No)
            .unwrap();
        assert!(payloads(&tail).is_empty());
        let (tail, _) = log
            .tail(3, view(true, Some(21 * SEC), None), Follow::No)
            .unwrap();
        assert_eq!(
            payloads(&tail),
            [
                err("1970-01-01T00:00:21.000000000Z  a line\n"),
                out("1970-01-01T00:00:30.000000000Z three\n"),
            ]
        );
    }

    #[tokio::test]
    async fn a_follow_with_until_ends_at_the_first_later_output() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::open(dir.path().join("c.log"), 1 << 20, None);
        let mut follower =
            log.reader_from_end(view(false, None, Some(50 * SEC)), Follow::UntilRunEnds(0));
        log.append_at(STDOUT, 40 * SEC, b"in\n").unwrap();
        assert_eq!(payloads(&follower.next().await.unwrap()), [out("in\n")]);
        // The run goes on; the follow does not.
        log.append_at(STDOUT, 60 * SEC, b"out\n").unwrap();
        assert!(follower.next().await.is_none());
    }

    #[tokio::test]
    async fn output_kept_before_times_were_reads_as_of_the_zero_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        // Frames as an older daemon wrote them: no time.
        let old = [
            wrun_api::stream::encode(STDOUT, b"old\n"),
            wrun_api::stream::encode(STDERR, b"err\n"),
        ]
        .concat();
        std::fs::write(&path, &old).unwrap();
        let log = LogFile::open(path, 1 << 20, None);
        log.append_at(STDOUT, 5 * SEC, b"new\n").unwrap();
        let all = |v| read_to_end(log.reader_all(v, Follow::No));
        assert_eq!(
            all(view(false, None, None)).await,
            [out("old\n"), err("err\n"), out("new\n")]
        );
        assert_eq!(
            all(view(true, None, None)).await,
            [
                out("0001-01-01T00:00:00.000000000Z old\n"),
                err("0001-01-01T00:00:00.000000000Z err\n"),
                out("1970-01-01T00:00:05.000000000Z new\n"),
            ]
        );
        // Older than any since, within any until.
        assert_eq!(all(view(false, Some(0), None)).await, [out("new\n")]);
        assert_eq!(
            all(view(false, None, Some(SEC))).await,
            [out("old\n"), err("err\n")]
        );
        // A frame of a kind this daemon does not know is damage: the read
        // stops there.
        let mut odd = wrun_api::stream::encode(STDOUT, b"odd\n");
        odd[1] = 7;
        let bytes = [old.clone(), odd].concat();
        let (entries, used) = frames(&bytes);
        assert_eq!((entries.len(), used), (2, old.len()));
    }

    #[tokio::test]
    async fn frames_replay_filter_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::open(dir.path().join("c.log"), 1 << 20, None);
        log.append(STDOUT, b"one\ntwo\n").unwrap();
        log.append(STDERR, b"oops\n").unwrap();
        log.append(STDOUT, b"three\n").unwrap();
        let mut all = log.reader_all(BOTH.into(), Follow::No);
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
        let mut r = log.reader_all(only_err.into(), Follow::No);
        assert_eq!(
            payloads(&r.next().await.unwrap()),
            vec![(STDERR, "oops\n".into())]
        );
        assert!(r.next().await.is_none());
        let (tail, _) = log.tail(2, BOTH.into(), Follow::No).unwrap();
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
        let mut follower = log.reader_all(BOTH.into(), Follow::UntilRunEnds(0));
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
        let mut all = log.reader_all(BOTH.into(), Follow::No);
        let first = payloads(&all.next().await.unwrap());
        assert_eq!(first[0], (STDOUT, "ready\n".into()));
        let (tail, _) = log.tail(1, BOTH.into(), Follow::No).unwrap();
        assert_eq!(payloads(&tail), vec![(STDERR, "x".repeat(999))]);
        // Reopened (a daemon restart), the log is its file's.
        let again = LogFile::open(path.clone(), 1 << 20, Some((Arc::clone(&pack), "c".into())));
        assert_eq!(again.disk_bytes(), std::fs::metadata(&path).unwrap().len());
        again.delete();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn output_that_cannot_be_kept_is_dropped_and_counted_and_leaves_no_trace() {
        use crate::logpack::{INLINE_BYTES, LogPack};
        let dir = tempfile::tempdir().unwrap();
        let (pack, _) = LogPack::open(dir.path().join("logs.pack")).unwrap();
        let pack = Arc::new(pack);
        let path = dir.path().join("c.log");
        let log = LogFile::packed(path.clone(), 1 << 20, Arc::clone(&pack), "c".into());
        let sink = log.sink(STDOUT);
        sink.write(b"kept\n").unwrap();
        let line = vec![b'x'; 999];
        log.disk_full.store(true, Ordering::SeqCst);
        // The log would move to its file now, and cannot: it stays in the
        // pack, the copy is removed, and the guest never sees a failure.
        let mut sent = 0;
        while sent < 2 * INLINE_BYTES {
            sink.write(&line).unwrap();
            sent += line.len() as u64;
        }
        assert!(!path.exists());
        assert!(!moving_path(&path).exists());
        let dropped = *log.dropped.lock().unwrap();
        assert!(
            dropped.writes > 0 && dropped.bytes == dropped.writes * 999,
            "{dropped:?}"
        );
        // Space is back: the log moves, and keeps the next write.
        log.disk_full.store(false, Ordering::SeqCst);
        sink.write(&line).unwrap();
        assert!(path.exists());
        assert_eq!(*log.dropped.lock().unwrap(), Dropped::default());
        // In its file, a write cut short leaves no part of its frame.
        let size = std::fs::metadata(&path).unwrap().len();
        log.disk_full.store(true, Ordering::SeqCst);
        sink.write(b"lost\n").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        log.disk_full.store(false, Ordering::SeqCst);
        sink.write(b"back\n").unwrap();
        log.end_run();
        // Readers see every kept write, whole, in order.
        let got = read_to_end(log.reader_all(BOTH.into(), Follow::No)).await;
        let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
        let x = "x".repeat(999);
        assert_eq!(texts.first(), Some(&"kept\n"));
        assert_eq!(texts.last(), Some(&"back\n"));
        assert!(
            texts[1..texts.len() - 1].iter().all(|t| *t == x),
            "{texts:?}"
        );
        assert!(!texts.contains(&"lost\n"));
    }

    #[tokio::test]
    async fn the_file_stays_bounded_and_followers_see_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let max = MAX_STORED_FRAME as u64;
        let log = LogFile::open(dir.path().join("c.log"), max, None);
        let mut follower = log.reader_from_end(BOTH.into(), Follow::UntilRunEnds(0));
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

    /// The numbers of the `line NNNNNNNN\n` lines a reader passed on;
    /// fails on anything else (a frame read at another file's offset).
    async fn numbered_lines(mut r: LogReader) -> Vec<u32> {
        let mut text = String::new();
        while let Some(b) = r.next().await {
            for (_, p) in payloads(&b) {
                text.push_str(&p);
            }
        }
        text.lines()
            .map(|l| {
                l.strip_prefix("line ")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("not a line written: {l:?}"))
            })
            .collect()
    }

    /// Readers racing a writer that moves the log out of the pack and
    /// rotates its file again and again: none may pass on a line twice,
    /// out of order or torn (a rotation between a reader's look at the
    /// log and its read of the file once made it read the new file at
    /// the old one's offset). Lines a slow reader lost to rotation are
    /// allowed. Tails taken meanwhile are whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn readers_racing_moves_and_rotations_see_each_line_once_in_order() {
        use crate::logpack::LogPack;
        const LINES: u32 = 60_000;
        let dir = tempfile::tempdir().unwrap();
        let (pack, _) = LogPack::open(dir.path().join("logs.pack")).unwrap();
        let log = LogFile::packed(
            dir.path().join("c.log"),
            MAX_STORED_FRAME as u64,
            Arc::new(pack),
            "c".into(),
        );
        let mut readers = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let r = log.reader_from_end(BOTH.into(), Follow::UntilRunEnds(0));
            readers.spawn(numbered_lines(r));
        }
        let writer = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..LINES {
                    log.append(STDOUT, format!("line {i:08}\n").as_bytes())
                        .unwrap();
                }
                log.end_run();
            })
        };
        // Readers of everything, and tails, again and again while it is
        // written: a tail is a run of consecutive lines.
        let mut replays = 0;
        while !writer.is_finished() {
            let r = log.reader_all(BOTH.into(), Follow::No);
            readers.spawn(numbered_lines(r));
            let (tail, _) = log.tail(3000, BOTH.into(), Follow::No).unwrap();
            let tail: Vec<u32> = payloads(&tail)
                .iter()
                .flat_map(|(_, p)| p.lines().map(|l| l[5..].parse::<u32>().unwrap()))
                .collect();
            assert!(
                tail.windows(2).all(|p| p[1] == p[0] + 1),
                "a tail of lines {:?}",
                tail
            );
            replays += 1;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        writer.join().unwrap();
        assert!(replays > 1);
        while let Some(seen) = readers.join_next().await {
            let seen = seen.unwrap();
            for pair in seen.windows(2) {
                assert!(pair[0] < pair[1], "line {} after line {}", pair[1], pair[0]);
            }
        }
        // Read after the end, the log holds its last lines, whole.
        let last = numbered_lines(log.reader_all(BOTH.into(), Follow::No)).await;
        assert_eq!(last.last(), Some(&(LINES - 1)));
        assert!(last.windows(2).all(|p| p[1] == p[0] + 1));
    }
}
