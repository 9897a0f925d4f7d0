//! A request body as a CGI program's stdin, read from the client as the
//! program reads it: nothing is buffered beyond the frame being read, so a
//! large upload costs the host no memory, and `max-body` and the body read
//! timeout hold as for wasi:http handlers (see [`StreamedBody`]).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::Body;
use tokio::io::{AsyncRead, ReadBuf};
use wasmtime_wasi::cli::{IsTerminal, StdinStream};
use wasmtime_wasi::p2::{InputStream, Pollable, StreamError, StreamResult};

use super::request_body::StreamedBody;

/// The guest's stdin over a streamed request body. Clones share one read
/// position, as WASI requires of every handle to stdin.
#[derive(Clone)]
pub struct RequestStdin(Arc<Mutex<State>>);

struct State {
    body: StreamedBody,
    /// What the last frame held that the guest has not read yet.
    pending: Bytes,
    ended: bool,
    failed: bool,
}

impl RequestStdin {
    /// Stdin reading `body`.
    pub fn new(body: StreamedBody) -> Self {
        Self(Arc::new(Mutex::new(State {
            body,
            pending: Bytes::new(),
            ended: false,
            failed: false,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Ready once there are bytes to read or the body has ended.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.pending.is_empty() && !self.ended {
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending = data;
                    }
                }
                Some(Err(_)) => {
                    self.ended = true;
                    self.failed = true;
                }
                None => self.ended = true,
            }
        }
        Poll::Ready(())
    }

    fn take(&mut self, size: usize) -> Bytes {
        let len = size.min(self.pending.len());
        self.pending.split_to(len)
    }
}

impl IsTerminal for RequestStdin {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for RequestStdin {
    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncRead + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for RequestStdin {
    async fn ready(&mut self) {
        poll_fn(|cx| self.lock().poll_fill(cx)).await;
    }
}

impl InputStream for RequestStdin {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let mut state = self.lock();
        if !state.pending.is_empty() {
            return Ok(state.take(size));
        }
        match (state.ended, state.failed) {
            (true, true) => Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                "the request body could not be read"
            ))),
            (true, false) => Err(StreamError::Closed),
            (false, _) => Ok(Bytes::new()),
        }
    }
}

impl AsyncRead for RequestStdin {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = self.lock();
        ready!(state.poll_fill(cx));
        if state.pending.is_empty() && state.failed {
            return Poll::Ready(Err(io::Error::other("the request body could not be read")));
        }
        let bytes = state.take(buf.remaining());
        buf.put_slice(&bytes);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::server::request_body::{BODY_READ_TIMEOUT, BodyFault};

    /// Stdin over a body whose frames are sent by hand.
    fn stdin(
        max_body: u64,
    ) -> (
        tokio::sync::mpsc::Sender<Bytes>,
        RequestStdin,
        Arc<BodyFault>,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let frames = futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
                .map(|chunk| chunk.map(|chunk| Ok::<_, hyper::Error>(Frame::data(chunk))))
        });
        let body = StreamBody::new(frames).boxed_unsync();
        let fault = Arc::new(BodyFault::default());
        let streamed = StreamedBody::new(Some(body), max_body, fault.clone());
        (tx, RequestStdin::new(streamed), fault)
    }

    #[tokio::test(start_paused = true)]
    async fn the_guest_reads_the_body_as_it_arrives_in_pieces_it_asks_for() {
        let (tx, stdin, _) = stdin(1 << 20);
        let mut guest = stdin.p2_stream();
        assert_eq!(guest.read(10).unwrap(), "", "nothing yet");
        tx.send(Bytes::from_static(b"hello world")).await.unwrap();
        guest.ready().await;
        assert_eq!(guest.read(5).unwrap(), "hello");
        // Another handle shares the position.
        let mut other = stdin.p2_stream();
        assert_eq!(other.read(100).unwrap(), " world");
        drop(tx);
        guest.ready().await;
        assert!(matches!(guest.read(1), Err(StreamError::Closed)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_silent_past_the_read_timeout_fails_the_read_and_says_408() {
        let (_tx, stdin, fault) = stdin(1 << 20);
        let mut reader = Pin::from(stdin.async_stream());
        let mut buf = Vec::new();
        let started = tokio::time::Instant::now();
        assert!(reader.read_to_end(&mut buf).await.is_err());
        assert!(started.elapsed() >= BODY_READ_TIMEOUT);
        assert!(started.elapsed() < BODY_READ_TIMEOUT + Duration::from_secs(1));
        assert_eq!(
            fault.error(),
            Some(super::super::error::HttpError::RequestTimeout)
        );
    }

    #[tokio::test]
    async fn a_body_past_max_body_fails_the_read_and_says_413() {
        let (tx, stdin, fault) = stdin(4);
        tx.send(Bytes::from_static(b"12345")).await.unwrap();
        let mut guest = stdin.p2_stream();
        guest.ready().await;
        assert!(matches!(
            guest.read(10),
            Err(StreamError::LastOperationFailed(_))
        ));
        assert_eq!(
            fault.error(),
            Some(super::super::error::HttpError::PayloadTooLarge)
        );
    }
}
