//! Guest standard streams: where stdin comes from and where stdout/stderr go,
//! including caller-supplied sinks that receive output in bounded chunks.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// The largest chunk a guest write is handed to an [`OutputSink`] in.
///
/// A guest writing 100 MiB in one call produces many calls of at most this
/// size; nothing in the runtime buffers more than one chunk per stream.
pub const MAX_SINK_CHUNK: usize = 64 * 1024;

/// Receives a guest's output, chunk by chunk, as it is written.
///
/// The daemon implements this with bounded, rotating log files. `write` runs
/// on the executor thread in the middle of the guest's write call: it should
/// be quick (append to a file, push to a bounded buffer) and never wait on
/// the guest. Returning an error closes the stream: the guest's current and
/// later writes fail with an I/O error.
pub trait OutputSink: Send + Sync + 'static {
    /// Takes one chunk of at most [`MAX_SINK_CHUNK`] bytes.
    fn write(&self, chunk: &[u8]) -> std::io::Result<()>;

    /// Whether the guest is told its stream is a terminal (`isatty`): false
    /// unless the sink writes to one, as a foreground CLI's may.
    fn is_terminal(&self) -> bool {
        false
    }
}

/// Where a guest's stdout or stderr goes.
#[derive(Clone, Default)]
pub enum OutputTarget {
    /// Discarded (the default).
    #[default]
    Null,
    /// Written to the host process's own stdout/stderr (the foreground CLI).
    Inherit,
    /// Handed to a caller-supplied sink in bounded chunks.
    Sink(Arc<dyn OutputSink>),
}

impl std::fmt::Debug for OutputTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Null => "Null",
            Self::Inherit => "Inherit",
            Self::Sink(_) => "Sink(..)",
        })
    }
}

/// Where a guest's stdin comes from.
#[derive(Clone, Debug, Default)]
pub enum InputSource {
    /// Closed: reads return end of file (the default; Docker without `-i`).
    #[default]
    Null,
    /// The host process's stdin (the foreground CLI with `-i`).
    Inherit,
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
    /// What the host writes into a pipe while the guest runs (the daemon's
    /// attached stdin), then end of file when the writer closes.
    Stream(InputStream),
}

type BoxedReader = Pin<Box<dyn tokio::io::AsyncRead + Send + Sync>>;

/// The reading end of a host pipe, handed to one instance: the first
/// instance built from a spec takes it, any other sees a closed stdin.
#[derive(Clone)]
pub struct InputStream(Arc<std::sync::Mutex<Option<BoxedReader>>>);

impl InputStream {
    pub fn new(reader: impl tokio::io::AsyncRead + Send + Sync + 'static) -> Self {
        Self(Arc::new(std::sync::Mutex::new(Some(Box::pin(reader)))))
    }

    pub(crate) fn take(&self) -> Option<BoxedReader> {
        // An Option taken whole: usable after a panic.
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl std::fmt::Debug for InputStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InputStream(..)")
    }
}

/// Adapts an [`OutputSink`] to wasmtime-wasi's stdout/stderr stream traits.
pub(crate) struct SinkStdout(pub(crate) Arc<dyn OutputSink>);

impl IsTerminal for SinkStdout {
    fn is_terminal(&self) -> bool {
        self.0.is_terminal()
    }
}

impl StdoutStream for SinkStdout {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(SinkStream(Arc::clone(&self.0)))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(SinkStream(Arc::clone(&self.0)))
    }
}

struct SinkStream(Arc<dyn OutputSink>);

impl SinkStream {
    fn write_chunked(&self, bytes: &[u8]) -> std::io::Result<()> {
        bytes
            .chunks(MAX_SINK_CHUNK)
            .try_for_each(|c| self.0.write(c))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for SinkStream {
    // Always ready: the sink takes each chunk synchronously.
    async fn ready(&mut self) {}
}

impl OutputStream for SinkStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_chunked(&bytes)
            .map_err(|e| StreamError::LastOperationFailed(wasmtime::Error::new(e)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_SINK_CHUNK)
    }
}

impl tokio::io::AsyncWrite for SinkStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(MAX_SINK_CHUNK);
        Poll::Ready(self.0.write(&buf[..n]).map(|()| n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
