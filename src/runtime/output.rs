//! Guest output streams: stdout into a bounded channel (so a slow client
//! pauses the guest instead of growing a buffer), stderr into the log.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Most bytes one `write` may carry: what `check_write` grants when the
/// channel has room. WASI preview 1 writes in 4 KiB pieces anyway.
const WRITE_BUDGET: usize = 64 * 1024;

/// Creates a guest stdout that sends each write as one chunk into a channel
/// holding at most `capacity` chunks, and the receiver that reads them.
///
/// The receiver yields `None` once the instance is gone (all senders are
/// dropped with the store). A closed receiver makes the guest's next write
/// fail with a broken pipe.
pub fn output_channel(capacity: usize) -> (OutputSender, OutputReceiver) {
    let (tx, rx) = mpsc::channel(capacity);
    (OutputSender { tx }, OutputReceiver(rx))
}

/// The receiving half of [`output_channel`]: the guest's output as a body
/// of data frames, ending once the instance is gone.
#[derive(Debug)]
pub struct OutputReceiver(mpsc::Receiver<Bytes>);

impl Body for OutputReceiver {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// The sending half of [`output_channel`]; given to the guest as stdout.
#[derive(Clone, Debug)]
pub struct OutputSender {
    tx: mpsc::Sender<Bytes>,
}

impl IsTerminal for OutputSender {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputSender {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(ChannelWriter(PollSender::new(self.tx.clone())))
    }
}

#[async_trait::async_trait]
impl Pollable for OutputSender {
    async fn ready(&mut self) {
        // Waits for room in the channel. The permit is released at once: the
        // guest is the only writer, so the room is still there when it writes.
        let _ = self.tx.reserve().await;
    }
}

impl OutputStream for OutputSender {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.tx.try_send(bytes).map_err(|e| match e {
            mpsc::error::TrySendError::Closed(_) => StreamError::Closed,
            mpsc::error::TrySendError::Full(_) => {
                StreamError::trap("stdout written without a permit from check_write")
            }
        })
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        if self.tx.is_closed() {
            Err(StreamError::Closed)
        } else if self.tx.capacity() == 0 {
            Ok(0)
        } else {
            Ok(WRITE_BUDGET)
        }
    }
}

/// [`AsyncWrite`] over the same channel, for WASI implementations that ask
/// for one.
struct ChannelWriter(PollSender<Bytes>);

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let closed = || io::Error::from(io::ErrorKind::BrokenPipe);
        ready!(self.0.poll_reserve(cx)).map_err(|_| closed())?;
        let len = buf.len().min(WRITE_BUDGET);
        self.0
            .send_item(Bytes::copy_from_slice(&buf[..len]))
            .map_err(|_| closed())?;
        Poll::Ready(Ok(len))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.close();
        Poll::Ready(Ok(()))
    }
}

/// Longest stderr line logged as one record; longer lines are split.
const MAX_LINE: usize = 4096;

/// A guest stderr that logs each line through `tracing`, tagged with the
/// module and the request id, and drops everything past a byte cap so a
/// chatty module can't flood the log.
#[derive(Clone)]
pub struct StderrLog {
    state: Arc<Mutex<StderrState>>,
}

struct StderrState {
    module: Arc<str>,
    request_id: Arc<str>,
    /// Bytes still allowed before the rest is dropped.
    remaining: usize,
    truncated: bool,
    line: BytesMut,
}

impl StderrLog {
    /// A stderr for one request that logs at most `cap` bytes.
    pub fn new(module: Arc<str>, request_id: Arc<str>, cap: usize) -> Self {
        let state = StderrState {
            module,
            request_id,
            remaining: cap,
            truncated: false,
            line: BytesMut::new(),
        };
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn append(&self, bytes: &[u8]) {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .append(bytes);
    }
}

impl StderrState {
    fn append(&mut self, mut bytes: &[u8]) {
        if bytes.len() > self.remaining {
            bytes = &bytes[..self.remaining];
            if !self.truncated {
                self.truncated = true;
                tracing::warn!(
                    target: "wasm_cgi::guest",
                    module = %self.module,
                    request_id = %self.request_id,
                    "module stderr over its cap; the rest is dropped"
                );
            }
        }
        self.remaining -= bytes.len();
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            self.line.extend_from_slice(piece);
            if piece.ends_with(b"\n") || self.line.len() >= MAX_LINE {
                self.emit();
            }
        }
    }

    fn emit(&mut self) {
        let line = self.line.split();
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        tracing::info!(
            target: "wasm_cgi::guest",
            module = %self.module,
            request_id = %self.request_id,
            stderr = %text,
        );
    }
}

impl Drop for StderrState {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
    }
}

impl IsTerminal for StderrLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for StderrLog {
    async fn ready(&mut self) {}
}

impl OutputStream for StderrLog {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

impl AsyncWrite for StderrLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
