//! The request body under the server's limits, for both executors: at most
//! `max-body` bytes (a declared length over it is refused before anything
//! runs; a count past it fails the read), and a client that goes silent
//! for [`BODY_READ_TIMEOUT`] is given up on. Guests read it as it streams
//! in (a CGI module through its stdin); a CGI body of undeclared length is
//! read whole first, under a server-wide memory budget.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use super::bodies::RequestBody;
use super::error::HttpError;

/// How long a client may take to send the whole body (CGI), or leave a
/// handler waiting for the next piece of it.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The request's `Content-Length`, if it has a valid one.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Whether the request has a body (a `Content-Length`, even 0, or a
/// `Transfer-Encoding`), after refusing one declared larger than
/// `max_body` (413).
pub fn has_body(headers: &HeaderMap, max_body: u64) -> Result<bool, HttpError> {
    let declared = declared_length(headers);
    if declared.is_some_and(|len| len > max_body) {
        return Err(HttpError::PayloadTooLarge);
    }
    Ok(declared.is_some() || headers.contains_key(TRANSFER_ENCODING))
}

/// Bytes of request bodies the server holds in memory at once, for CGI
/// requests whose length is not declared (chunked): their length must be
/// known before the module starts (`CONTENT_LENGTH`), so they are read
/// whole. Past it such requests get 503. Bodies of declared length are
/// streamed to the module and cost nothing here.
pub const BUFFERED_BODIES: usize = 256 << 20;

/// A whole request body held in memory, and its share of
/// [`BUFFERED_BODIES`], given back when dropped.
pub struct Buffered {
    /// The body.
    pub bytes: Bytes,
    /// Its bytes of the budget.
    pub charge: Option<OwnedSemaphorePermit>,
}

/// The whole request body, read under `max_body` (413 past it) within
/// [`BODY_READ_TIMEOUT`] (408), each frame charged to `budget` as it comes
/// (503 when the server holds too many bodies already).
pub async fn read_whole(
    mut body: RequestBody,
    max_body: u64,
    budget: &Arc<Semaphore>,
) -> Result<Buffered, HttpError> {
    let read = async {
        let mut bytes = BytesMut::new();
        let mut charge: Option<OwnedSemaphorePermit> = None;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|_| HttpError::BadRequest("the request body could not be read"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if (bytes.len() + data.len()) as u64 > max_body {
                return Err(HttpError::PayloadTooLarge);
            }
            let more = u32::try_from(data.len())
                .ok()
                .and_then(|len| budget.clone().try_acquire_many_owned(len).ok())
                .ok_or(HttpError::Overloaded)?;
            match &mut charge {
                Some(charge) => charge.merge(more),
                None => charge = Some(more),
            }
            bytes.extend_from_slice(&data);
        }
        Ok(Buffered {
            bytes: bytes.freeze(),
            charge,
        })
    };
    tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .map_err(|_| HttpError::RequestTimeout)?
}

/// What went wrong with a streamed body while the guest read it, so the
/// client gets 413 or 408 rather than the guest's reaction to it.
#[derive(Debug, Default)]
pub struct BodyFault {
    too_large: AtomicBool,
    timed_out: AtomicBool,
}

impl BodyFault {
    /// The error the client should get, if the body went wrong.
    pub fn error(&self) -> Option<HttpError> {
        if self.too_large.load(Ordering::Relaxed) {
            Some(HttpError::PayloadTooLarge)
        } else if self.timed_out.load(Ordering::Relaxed) {
            Some(HttpError::RequestTimeout)
        } else {
            None
        }
    }
}

/// The request body as a guest reads it while it streams in: cut with an
/// error past `max_body`, or when the client sends nothing for
/// [`BODY_READ_TIMEOUT`] while the guest waits for it (the guest may take
/// its time between reads; the client may not).
pub struct StreamedBody {
    /// The client's body; `None` when the request has none, or once it has
    /// ended or failed.
    inner: Option<ClientBody>,
    /// Bytes still allowed by `max_body`.
    remaining: u64,
    fault: Arc<BodyFault>,
}

impl StreamedBody {
    /// `body` (when the request has one) under `max_body`, with what goes
    /// wrong reported to `fault`.
    pub fn new(body: Option<RequestBody>, max_body: u64, fault: Arc<BodyFault>) -> Self {
        Self {
            inner: body.map(ClientBody::new),
            remaining: max_body,
            fault,
        }
    }
}

/// A body being read, and how long the reader may wait for it.
struct ClientBody {
    body: RequestBody,
    /// When the client must have sent the next frame.
    deadline: Pin<Box<Sleep>>,
    /// Whether the reader is waiting for a frame (the deadline runs).
    waiting: bool,
}

/// One frame of the client's body, or why it could not be read.
type ClientFrame = Result<Frame<Bytes>, hyper::Error>;

impl ClientBody {
    fn new(body: RequestBody) -> Self {
        Self {
            body,
            deadline: Box::pin(tokio::time::sleep(BODY_READ_TIMEOUT)),
            waiting: false,
        }
    }

    /// The next frame, or `Err(())` once the client has sent nothing for
    /// [`BODY_READ_TIMEOUT`] while the reader waited.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<ClientFrame>, ()>> {
        if !self.waiting {
            self.waiting = true;
            let deadline = tokio::time::Instant::now() + BODY_READ_TIMEOUT;
            self.deadline.as_mut().reset(deadline);
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            self.waiting = false;
            return Poll::Ready(Ok(frame));
        }
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(Err(()))
    }
}

impl Body for StreamedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some(inner) = &mut this.inner else {
            return Poll::Ready(None);
        };
        let frame = match ready!(inner.poll_next(cx)) {
            Ok(frame) => frame,
            Err(()) => {
                this.inner = None;
                this.fault.timed_out.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionReadTimeout)));
            }
        };
        match frame {
            Some(Ok(frame)) => {
                let len = frame.data_ref().map_or(0, |data| data.len() as u64);
                if len > this.remaining {
                    this.inner = None;
                    this.fault.too_large.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpRequestBodySize(
                        None,
                    ))));
                }
                this.remaining -= len;
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                this.inner = None;
                Poll::Ready(Some(Err(error.into())))
            }
            None => {
                this.inner = None;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| inner.body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or(SizeHint::with_exact(0), |inner| inner.body.size_hint())
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    fn body(bytes: &'static [u8]) -> RequestBody {
        Full::new(Bytes::from_static(bytes))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    #[tokio::test]
    async fn whole_bodies_are_charged_to_the_budget_until_dropped() {
        let budget = Arc::new(Semaphore::new(10));
        let first = read_whole(body(b"123456"), 100, &budget)
            .await
            .ok()
            .unwrap();
        assert_eq!(first.bytes, "123456");
        assert_eq!(budget.available_permits(), 4);
        let refused = read_whole(body(b"abcdef"), 100, &budget).await.err();
        assert_eq!(refused, Some(HttpError::Overloaded), "over the budget");
        assert_eq!(
            budget.available_permits(),
            4,
            "a refused body keeps nothing"
        );
        drop(first);
        assert_eq!(budget.available_permits(), 10);
        let too_large = read_whole(body(b"abcdef"), 5, &budget).await.err();
        assert_eq!(too_large, Some(HttpError::PayloadTooLarge));
    }
}
