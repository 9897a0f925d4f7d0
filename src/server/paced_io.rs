//! A connection's socket with a minimum transfer rate for the client: while
//! the server has bytes to send and the client is not taking them (the
//! socket is full), the client must still read at least [`MIN_RATE`] bytes
//! a second over each [`WINDOW`], or the connection is closed. A client that
//! reads a few bytes now and then can no longer keep a response, and the
//! instance behind it, alive without end. Idle connections and slow guests
//! are not affected: only time spent blocked on the client counts.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Bytes a second a client that holds up a response must at least read.
pub const MIN_RATE: u64 = 1024;

/// The span over which [`MIN_RATE`] is measured.
pub const WINDOW: Duration = Duration::from_secs(30);

/// A socket whose writes fail once the client reads slower than
/// [`MIN_RATE`] while holding them up.
pub struct PacedIo<S> {
    inner: S,
    /// Start of the current window, and the bytes written in it.
    window_start: Instant,
    written: u64,
    /// Fires at the end of the window while a write waits for the client.
    deadline: Pin<Box<Sleep>>,
    /// A write is waiting for the client.
    stalled: bool,
}

impl<S> PacedIo<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        let now = Instant::now();
        Self {
            inner,
            window_start: now,
            written: 0,
            deadline: Box::pin(tokio::time::sleep_until(now + WINDOW)),
            stalled: false,
        }
    }

    /// Starts a new window at `now` if the current one is over.
    fn roll(&mut self, now: Instant) {
        if now >= self.window_start + WINDOW {
            self.window_start = now;
            self.written = 0;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PacedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Poll::Ready(result) = Pin::new(&mut this.inner).poll_write(cx, buf) {
            if let Ok(n) = &result {
                // Written: the window counts it; if this write had waited,
                // the wait is over.
                this.stalled = false;
                this.roll(Instant::now());
                this.written += *n as u64;
            }
            return Poll::Ready(result);
        }
        if !this.stalled {
            this.stalled = true;
            this.roll(Instant::now());
            let end = this.window_start + WINDOW;
            this.deadline.as_mut().reset(end);
        }
        loop {
            ready!(this.deadline.as_mut().poll(cx));
            // The window ended with this write still waiting.
            if this.written < MIN_RATE * WINDOW.as_secs() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client reads slower than the minimum transfer rate",
                )));
            }
            let now = Instant::now();
            this.window_start = now;
            this.written = 0;
            this.deadline.as_mut().reset(now + WINDOW);
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PacedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server end whose client takes `chunk` bytes every `every`.
    async fn client_reading(
        chunk: usize,
        every: Duration,
    ) -> (
        PacedIo<tokio::io::DuplexStream>,
        tokio::task::JoinHandle<()>,
    ) {
        let (server, mut client) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; chunk];
            loop {
                tokio::time::sleep(every).await;
                if client.read_exact(&mut buf).await.is_err() {
                    return;
                }
            }
        });
        (PacedIo::new(server), reader)
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_trickling_a_response_is_cut_at_the_end_of_a_window() {
        // Regression: the write-stall timer restarted on every byte, so a
        // client reading 1.5 KB every 25 s held a response for ever.
        let (mut server, reader) = client_reading(1500, Duration::from_secs(25)).await;
        let started = Instant::now();
        let payload = vec![b'x'; 1 << 20];
        let error = server.write_all(&payload).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() <= WINDOW * 2,
            "cut after {:?}",
            started.elapsed()
        );
        reader.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_reading_at_the_minimum_rate_or_faster_is_served() {
        let (mut server, reader) = client_reading(1024, Duration::from_millis(500)).await;
        let payload = vec![b'x'; 200 * 1024];
        server.write_all(&payload).await.unwrap();
        reader.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_not_cut() {
        let (mut server, mut client) = tokio::io::duplex(1024);
        let mut server_io = PacedIo::new(&mut server);
        tokio::time::sleep(WINDOW * 3).await;
        server_io.write_all(b"late but fine").await.unwrap();
        let mut buf = [0u8; 13];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"late but fine");
    }
}
