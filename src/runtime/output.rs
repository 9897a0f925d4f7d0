//! Guest output streams: stdout into a channel bounded in bytes (so a slow
//! client pauses the guest instead of growing a buffer), stderr into the
//! log. Both refuse, with a trap, a write larger than `check_write`
//! allowed: the guest never makes the host hold more than it granted.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use tokio::io::AsyncWrite;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::PollSemaphore;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use super::printable::printable;

/// Most bytes one `write` may carry: the most `check_write` ever grants.
/// WASI preview 1 writes in 4 KiB pieces anyway.
const WRITE_BUDGET: usize = 64 * 1024;

/// Creates a guest stdout that sends each write as one chunk into a channel
/// holding at most `capacity` bytes not yet read, and the receiver that
/// reads them.
///
/// The receiver yields `None` once the instance is gone (all senders are
/// dropped with the store). A dropped receiver makes the guest's next write
/// fail with a broken pipe.
pub fn output_channel(capacity: usize) -> (OutputSender, OutputReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(capacity));
    let sender = OutputSender {
        tx,
        room: room.clone(),
    };
    (sender, OutputReceiver { rx, room })
}

/// The receiving half of [`output_channel`]: the guest's output as a body
/// of data frames, ending once the instance is gone. Each chunk read gives
/// its bytes back to the guest's budget.
#[derive(Debug)]
pub struct OutputReceiver {
    rx: mpsc::UnboundedReceiver<Bytes>,
    room: Arc<Semaphore>,
}

impl Body for OutputReceiver {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let chunk = ready!(self.rx.poll_recv(cx));
        Poll::Ready(chunk.map(|chunk| {
            self.room.add_permits(chunk.len());
            Ok(Frame::data(chunk))
        }))
    }
}

impl Drop for OutputReceiver {
    fn drop(&mut self) {
        // A guest waiting for room learns at once that none will come.
        self.room.close();
    }
}

/// The sending half of [`output_channel`]; given to the guest as stdout.
#[derive(Clone, Debug)]
pub struct OutputSender {
    tx: mpsc::UnboundedSender<Bytes>,
    /// Bytes the guest may still queue: one permit a byte.
    room: Arc<Semaphore>,
}

impl OutputSender {
    fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.room.is_closed()
    }
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
        Box::new(ChannelWriter {
            sender: self.clone(),
            room: PollSemaphore::new(self.room.clone()),
        })
    }
}

#[async_trait::async_trait]
impl Pollable for OutputSender {
    async fn ready(&mut self) {
        // Waits for room in the channel. The permit is released at once: the
        // guest is the only writer, so the room is still there when it writes.
        let _ = self.room.acquire().await;
    }
}

impl OutputStream for OutputSender {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.is_closed() {
            return Err(StreamError::Closed);
        }
        let granted = u32::try_from(bytes.len())
            .ok()
            .filter(|&len| len as usize <= WRITE_BUDGET)
            .and_then(|len| self.room.try_acquire_many(len).ok());
        let Some(permit) = granted else {
            return Err(StreamError::trap(
                "stdout written past what check_write allowed",
            ));
        };
        permit.forget();
        let len = bytes.len();
        if self.tx.send(bytes).is_err() {
            self.room.add_permits(len);
            return Err(StreamError::Closed);
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        if self.is_closed() {
            return Err(StreamError::Closed);
        }
        Ok(self.room.available_permits().min(WRITE_BUDGET))
    }
}

/// [`AsyncWrite`] over the same channel, for WASI implementations that ask
/// for one.
struct ChannelWriter {
    sender: OutputSender,
    room: PollSemaphore,
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let closed = || io::Error::from(io::ErrorKind::BrokenPipe);
        // Wait for room, then take as much of it as the write needs.
        drop(ready!(self.room.poll_acquire(cx)).ok_or_else(closed)?);
        let len = match self.sender.check_write() {
            Ok(room) => buf.len().min(room),
            Err(_) => return Poll::Ready(Err(closed())),
        };
        self.sender
            .write(Bytes::copy_from_slice(&buf[..len]))
            .map_err(|_| closed())?;
        Poll::Ready(Ok(len))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
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
        let text = printable(text.trim_end_matches(['\n', '\r']));
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
        if bytes.len() > WRITE_BUDGET {
            return Err(StreamError::trap(
                "stderr written past what check_write allowed",
            ));
        }
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

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn stdout_is_bounded_in_bytes_and_a_write_past_the_grant_traps() {
        let (mut stdout, mut receiver) = output_channel(100 * 1024);
        assert_eq!(stdout.check_write().unwrap(), WRITE_BUDGET);
        // One write larger than any grant, as a component may try.
        let huge = Bytes::from(vec![b'x'; WRITE_BUDGET + 1]);
        assert!(matches!(stdout.write(huge), Err(StreamError::Trap(_))));
        stdout.write(Bytes::from(vec![b'a'; WRITE_BUDGET])).unwrap();
        let left = 100 * 1024 - WRITE_BUDGET;
        assert_eq!(stdout.check_write().unwrap(), left);
        let past_the_room = Bytes::from(vec![b'b'; left + 1]);
        assert!(matches!(
            stdout.write(past_the_room),
            Err(StreamError::Trap(_))
        ));
        stdout.write(Bytes::from(vec![b'b'; left])).unwrap();
        assert_eq!(
            stdout.check_write().unwrap(),
            0,
            "full: the guest must wait"
        );

        let first = receiver
            .frame()
            .await
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(first.len(), WRITE_BUDGET);
        assert_eq!(
            stdout.check_write().unwrap(),
            WRITE_BUDGET,
            "read bytes are room again"
        );
    }

    #[tokio::test]
    async fn a_guest_waiting_for_room_learns_when_the_reader_is_gone() {
        let (mut stdout, receiver) = output_channel(4);
        stdout.write(Bytes::from_static(b"full")).unwrap();
        {
            let mut waiting = pin!(stdout.ready());
            assert!(futures::poll!(waiting.as_mut()).is_pending());
            drop(receiver);
            waiting.await;
        }
        assert!(matches!(stdout.check_write(), Err(StreamError::Closed)));
        assert!(matches!(
            stdout.write(Bytes::from_static(b"x")),
            Err(StreamError::Closed)
        ));
    }

    #[test]
    fn stderr_refuses_a_write_past_its_grant() {
        let mut log = StderrLog::new("m.wasm".into(), "id".into(), 1024);
        let huge = Bytes::from(vec![b'e'; WRITE_BUDGET + 1]);
        assert!(matches!(log.write(huge), Err(StreamError::Trap(_))));
        log.write(Bytes::from_static(b"fine\n")).unwrap();
    }
}
