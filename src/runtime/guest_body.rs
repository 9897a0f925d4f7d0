//! The one response body for a running guest, a command's stdout or a
//! wasi:http handler's body alike: reading it drives the instance; it is
//! cut at `max_output` (the instance stopped); and a guest that fails after
//! the response has started ends it in an error, so the client sees an
//! incomplete response instead of a complete-looking one.

use std::borrow::Cow;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::guest_run::{Event, GuestRun};

/// Why a guest's response body ended in an error. Meant for the log: the
/// client only sees the response cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError(Cow<'static, str>);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BodyError {}

/// A guest's response body: `prefix` (output read before the head was
/// sent), then the rest of the output as it is written. When the output is
/// complete and a handler still runs (work after its response), the rest
/// of its run moves to a task of its own, keeping its deadline. Dropping
/// the body stops the guest.
pub struct GuestBody<O> {
    /// The guest and its output; `None` once the body has ended or been cut.
    run: Option<GuestRun<O>>,
    prefix: Option<Bytes>,
    /// Bytes still allowed by `max_output`.
    remaining: u64,
    /// Set when the body is to end in this error.
    failing: Option<Failing>,
}

/// A body about to end in an error, once hyper has had a turn to send what
/// came before it (see [`GuestBody::poll_failing`]).
struct Failing {
    why: BodyError,
    yielded: bool,
}

type PollFrame = Poll<Option<Result<Frame<Bytes>, BodyError>>>;

impl<O> GuestBody<O>
where
    O: Body<Data = Bytes> + Unpin,
    O::Error: fmt::Display,
{
    pub(crate) fn new(run: GuestRun<O>, prefix: Bytes, max_output: u64) -> Self {
        Self {
            run: Some(run),
            prefix: (!prefix.is_empty()).then_some(prefix),
            remaining: max_output,
            failing: None,
        }
    }

    /// Passes `data` on, cut to what `max_output` still allows; past it the
    /// guest is stopped and the body fails after the part that fits.
    fn send(&mut self, mut data: Bytes, cx: &mut Context<'_>) -> PollFrame {
        if data.len() as u64 <= self.remaining {
            self.remaining -= data.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        data.truncate(self.remaining as usize);
        self.remaining = 0;
        self.prefix = None;
        self.fail("the output is over max-output: response cut and instance stopped");
        if data.is_empty() {
            self.poll_failing(cx)
        } else {
            Poll::Ready(Some(Ok(Frame::data(data))))
        }
    }

    /// Stops the guest; the body is to end in the error `why`.
    fn fail(&mut self, why: impl Into<Cow<'static, str>>) {
        self.run = None;
        self.failing = Some(Failing {
            why: BodyError(why.into()),
            yielded: false,
        });
    }

    /// Ends a failing body: first one `Pending` turn (the task woken at
    /// once), then the error. A body error makes hyper drop the connection
    /// at once, with whatever it had buffered and not written yet; when the
    /// error came in the same turn as the head, the client would get no
    /// response at all instead of a cut one.
    fn poll_failing(&mut self, cx: &mut Context<'_>) -> PollFrame {
        let Some(failing) = &mut self.failing else {
            return Poll::Ready(None);
        };
        if !failing.yielded {
            failing.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let why = failing.why.clone();
        self.failing = None;
        Poll::Ready(Some(Err(why)))
    }
}

impl<O> Body for GuestBody<O>
where
    O: Body<Data = Bytes> + Unpin,
    O::Error: fmt::Display,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> PollFrame {
        let this = &mut *self;
        if let Some(prefix) = this.prefix.take() {
            return this.send(prefix, cx);
        }
        if this.failing.is_some() {
            return this.poll_failing(cx);
        }
        let Some(run) = &mut this.run else {
            return Poll::Ready(None);
        };
        match ready!(run.poll_next(cx)) {
            Event::Data(data) => this.send(data, cx),
            Event::Trailers(trailers) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Event::OutputFailed(why) => {
                this.fail(format!("the guest's response body failed: {why}"));
                this.poll_failing(cx)
            }
            Event::Ended(exit) if exit.is_success() => {
                this.run = None;
                Poll::Ready(None)
            }
            Event::Ended(_) => {
                this.fail("the guest failed after the response had started");
                this.poll_failing(cx)
            }
            Event::OutputDone => {
                if let Some(instance) = this.run.take().and_then(GuestRun::into_instance) {
                    tokio::spawn(instance);
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.run.is_none() && self.prefix.is_none() && self.failing.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.run, &self.prefix) {
            (Some(run), None) => run.output_size_hint(),
            _ => SizeHint::default(),
        }
    }
}
