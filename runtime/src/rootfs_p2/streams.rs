//! `wasi:io` input and output streams over a file of the writable view
//! (`read-via-stream`, `write-via-stream`, `append-via-stream`): each read
//! or write runs on a blocking thread, as wasmtime-wasi's file streams do,
//! so a big one never holds the executor other guests run on.

use std::mem;

use bytes::{Bytes, BytesMut};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::runtime::{AbortOnDropJoinHandle, spawn_blocking};
use wrun_rootfs::{Error, ViewFile};

/// Most bytes one read takes from the file and most one write is given
/// (`check-write`): wasmtime-wasi's own figure for files.
const MAX_CHUNK: usize = 64 * 1024;

/// What a read asks for when the guest polls before reading.
const DEFAULT_READ: usize = 4096;

fn failed(e: Error) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::Error::new(e))
}

/// Reads a view file from an offset on.
pub(super) struct ViewReader {
    file: ViewFile,
    position: u64,
    state: ReadState,
}

enum ReadState {
    Idle,
    Waiting(AbortOnDropJoinHandle<ReadState>),
    Data(Bytes),
    Failed(Error),
    Closed,
}

impl ViewReader {
    pub(super) fn new(file: ViewFile, position: u64) -> ViewReader {
        ViewReader {
            file,
            position,
            state: ReadState::Idle,
        }
    }

    fn start(&mut self, size: usize) -> AbortOnDropJoinHandle<ReadState> {
        let (file, at) = (self.file.clone(), self.position);
        spawn_blocking(move || read_chunk(&file, at, size))
    }

    async fn settle(&mut self) {
        if let ReadState::Waiting(task) = &mut self.state {
            self.state = task.await;
        }
    }
}

fn read_chunk(file: &ViewFile, at: u64, size: usize) -> ReadState {
    let mut buf = BytesMut::zeroed(size.min(MAX_CHUNK));
    loop {
        return match file.read_at(&mut buf, at) {
            Ok(0) => ReadState::Closed,
            Ok(n) => {
                buf.truncate(n);
                ReadState::Data(buf.freeze())
            }
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => ReadState::Failed(e),
        };
    }
}

#[wasmtime_wasi::async_trait]
impl InputStream for ViewReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        match &mut self.state {
            ReadState::Idle => {
                if size > 0 {
                    self.state = ReadState::Waiting(self.start(size));
                }
                Ok(Bytes::new())
            }
            ReadState::Waiting(_) => Ok(Bytes::new()),
            ReadState::Data(data) => {
                let chunk = data.split_to(data.len().min(size));
                if data.is_empty() {
                    self.state = ReadState::Idle;
                }
                self.position += chunk.len() as u64;
                Ok(chunk)
            }
            ReadState::Failed(_) => match mem::replace(&mut self.state, ReadState::Closed) {
                ReadState::Failed(e) => Err(failed(e)),
                _ => unreachable!("matched Failed above"),
            },
            ReadState::Closed => Err(StreamError::Closed),
        }
    }

    /// Reads up to `size` bytes in one blocking-thread call (the default
    /// would go through `ready`, which reads 4 KiB at a time).
    async fn blocking_read(&mut self, size: usize) -> StreamResult<Bytes> {
        self.settle().await;
        if let ReadState::Idle = self.state
            && size > 0
        {
            self.state = self.start(size).await;
        }
        self.read(size)
    }

    async fn cancel(&mut self) {
        if let ReadState::Waiting(task) = mem::replace(&mut self.state, ReadState::Closed) {
            // A read already on its thread cannot be stopped: wait for it,
            // so a guest cannot pile up background reads.
            task.cancel().await;
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ViewReader {
    async fn ready(&mut self) {
        if let ReadState::Idle = self.state {
            self.state = ReadState::Waiting(self.start(DEFAULT_READ));
        }
        self.settle().await;
    }
}

/// Where a [`ViewWriter`] writes.
#[derive(Clone, Copy)]
enum WriteMode {
    At(u64),
    Append,
}

/// Writes a view file at an offset (moving on) or at its end.
pub(super) struct ViewWriter {
    file: ViewFile,
    mode: WriteMode,
    state: WriteState,
}

enum WriteState {
    Ready,
    Waiting(AbortOnDropJoinHandle<Result<usize, Error>>),
    Failed(Error),
    Closed,
}

impl ViewWriter {
    pub(super) fn at(file: ViewFile, position: u64) -> ViewWriter {
        ViewWriter {
            file,
            mode: WriteMode::At(position),
            state: WriteState::Ready,
        }
    }

    pub(super) fn append(file: ViewFile) -> ViewWriter {
        ViewWriter {
            file,
            mode: WriteMode::Append,
            state: WriteState::Ready,
        }
    }

    /// The error of the last write, once (the stream is closed after it).
    fn take_error(&mut self) -> StreamResult<()> {
        match mem::replace(&mut self.state, WriteState::Closed) {
            WriteState::Failed(e) => Err(failed(e)),
            other => {
                self.state = other;
                Ok(())
            }
        }
    }
}

/// Writes all of `buf` (a short write goes on from where it stopped).
fn write_all(file: &ViewFile, mut buf: Bytes, mode: WriteMode) -> Result<usize, Error> {
    let mut total = 0;
    while !buf.is_empty() {
        let n = match mode {
            WriteMode::At(at) => file.write_at(&buf, at + total as u64),
            WriteMode::Append => file.append(&buf),
        };
        let n = match n {
            Ok(0) => return Err(Error::Io(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => n,
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let _ = buf.split_to(n);
        total += n;
    }
    Ok(total)
}

#[wasmtime_wasi::async_trait]
impl OutputStream for ViewWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        match self.state {
            WriteState::Ready => {}
            WriteState::Closed => return Err(StreamError::Closed),
            WriteState::Waiting(_) | WriteState::Failed(_) => {
                return Err(StreamError::trap(
                    "write not permitted: check-write not called first",
                ));
            }
        }
        let (file, mode) = (self.file.clone(), self.mode);
        self.state = WriteState::Waiting(spawn_blocking(move || write_all(&file, bytes, mode)));
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Nothing is buffered here: a write is on its way to the file as
        // soon as it is accepted.
        match self.state {
            WriteState::Closed => Err(StreamError::Closed),
            _ => self.take_error(),
        }
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        match self.state {
            WriteState::Ready => Ok(MAX_CHUNK),
            WriteState::Waiting(_) => Ok(0),
            WriteState::Closed => Err(StreamError::Closed),
            WriteState::Failed(_) => self.take_error().map(|()| 0),
        }
    }

    async fn cancel(&mut self) {
        if let WriteState::Waiting(task) = mem::replace(&mut self.state, WriteState::Closed) {
            task.cancel().await;
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ViewWriter {
    async fn ready(&mut self) {
        if let WriteState::Waiting(task) = &mut self.state {
            self.state = match task.await {
                Ok(n) => {
                    if let WriteMode::At(at) = &mut self.mode {
                        *at += n as u64;
                    }
                    WriteState::Ready
                }
                Err(e) => WriteState::Failed(e),
            };
        }
    }
}
