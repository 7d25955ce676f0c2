//! Per-instance logs: the guest's stdout/stderr appended to a bounded file
//! (rotated once at `max_size`) in Docker's multiplexed frame format, and
//! readers that replay, tail and follow it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};
use wrun_runtime::{MAX_SINK_CHUNK, OutputSink};

/// Stream numbers of the frame header (Docker's stdcopy).
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
const HEADER: usize = 8;
/// How much a reader reads from the file at once.
const READ_CHUNK: u64 = 256 * 1024;

/// Where the log file stands: which file (bumped at each rotation), how
/// many bytes it holds, how many runs have ended.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    generation: u64,
    size: u64,
    runs_ended: u64,
}

/// One instance's log: `containers/logs/<id>.log` (`containers/<id>/container.log`
/// for an instance created before the record journal), and `.1` once rotated.
///
/// The file is opened for each append and closed again, so an idle
/// instance holds no file descriptor.
pub struct LogFile {
    path: PathBuf,
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
    pub fn open(path: PathBuf, max_size: u64) -> Arc<Self> {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let p = Progress {
            size,
            ..Progress::default()
        };
        Arc::new(Self {
            path,
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
        let mut p = self.path.clone().into_os_string();
        p.push(".1");
        PathBuf::from(p)
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
        let mut frame = Vec::with_capacity(HEADER + chunk.len());
        frame.extend_from_slice(&[stream, 0, 0, 0]);
        frame.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        frame.extend_from_slice(chunk);
        let mut w = self.lock();
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
        bytes.extend(read_prefix(&self.path, w.size)?);
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
            push_frame(&mut out, *stream, line);
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

fn push_frame(out: &mut Vec<u8>, stream: u8, payload: &[u8]) {
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// The complete frames at the start of `bytes` and how many bytes they
/// span. A header announcing more than a sink chunk is damage: parsing
/// stops there.
fn frames(bytes: &[u8]) -> (Vec<(u8, &[u8])>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let h = &bytes[at..at + HEADER];
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        if len > MAX_SINK_CHUNK || bytes.len() - at - HEADER < len {
            break;
        }
        out.push((h[0], &bytes[at + HEADER..at + HEADER + len]));
        at += HEADER + len;
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
            let (path, end) = if self.generation < p.generation {
                (self.log.rotated(), u64::MAX)
            } else {
                (self.log.path.clone(), p.size)
            };
            if self.offset < end {
                match read_frames(&path, self.offset, end) {
                    Ok((data, consumed)) if consumed > 0 => {
                        self.offset += consumed as u64;
                        let mut out = Vec::new();
                        for (stream, payload) in frames(&data).0 {
                            if self.streams.wants(stream) {
                                push_frame(&mut out, stream, payload);
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
    let consumed = frames(&buf).1;
    buf.truncate(consumed);
    Ok((buf, consumed))
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
        let log = LogFile::open(dir.path().join("c.log"), 1 << 20);
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
    async fn the_file_stays_bounded_and_followers_see_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let max = (MAX_SINK_CHUNK + HEADER) as u64;
        let log = LogFile::open(dir.path().join("c.log"), max);
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
