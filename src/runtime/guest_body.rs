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

impl<O> fmt::Debug for GuestBody<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestBody")
            .field("run", &self.run)
            .field("remaining", &self.remaining)
            .field(
                "failing",
                &self.failing.as_ref().map(|failing| &failing.why),
            )
            .finish_non_exhaustive()
    }
}

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

    /// Never exact, even when the guest's output says how long it is: the
    /// body may be cut short (max-output, a failing guest). A length the
    /// guest declares in a header still goes out as that header.
    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use http::HeaderMap;
    use http_body_util::BodyExt;
    use wasmtime_wasi::p2::{OutputStream as _, Pollable as _};

    use super::*;
    use crate::runtime::fake::{self, CountingWaker, Flag};
    use crate::runtime::invocation::{Exit, Outcome};
    use crate::runtime::output::output_channel;

    /// Polls `body` once with a waker that counts wake-ups.
    fn poll<O>(body: &mut GuestBody<O>, waker: &std::task::Waker) -> PollFrame
    where
        O: Body<Data = Bytes> + Unpin,
        O::Error: fmt::Display,
    {
        Pin::new(body).poll_frame(&mut Context::from_waker(waker))
    }

    fn data(poll: PollFrame) -> Bytes {
        match poll {
            Poll::Ready(Some(Ok(frame))) => frame.into_data().expect("a data frame"),
            other => panic!("expected data, got {other:?}"),
        }
    }

    /// Records the outcomes `on_end` is called with.
    fn ends() -> (
        Arc<Mutex<Vec<Exit>>>,
        impl FnOnce(&Outcome) + Send + 'static,
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        (seen, move |outcome: &Outcome| {
            record.lock().unwrap().push(outcome.exit.clone())
        })
    }

    /// A body over a fake output fed by hand and a guest that ends with
    /// `exit` once `release` fires (or never, if it is dropped).
    fn handler_like(
        alive: &Flag,
        exit: Exit,
        max_output: u64,
    ) -> (
        tokio::sync::mpsc::UnboundedSender<fake::FakeFrame>,
        tokio::sync::oneshot::Sender<()>,
        GuestRun<fake::FakeOutput>,
    ) {
        let (frames, output) = fake::output();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let instance = fake::guest(
            alive,
            async move {
                let _ = released.await;
            },
            exit,
        );
        (frames, release, GuestRun::new(instance, output, max_output))
    }

    #[tokio::test]
    async fn output_streams_and_the_body_ends_when_the_guest_succeeds() {
        let alive = Flag::default();
        let (frames, release, run) = handler_like(&alive, Exit::Code(0), 1 << 20);
        let (seen, on_end) = ends();
        let mut body = run.on_end(on_end).into_body(Bytes::from_static(b"head:"));
        frames
            .send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .unwrap();
        frames
            .send(Ok(Frame::data(Bytes::from_static(b"b"))))
            .unwrap();
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "2".parse().unwrap());
        frames.send(Ok(Frame::trailers(trailers))).unwrap();
        release.send(()).unwrap();
        drop(frames);
        let collected = (&mut body).collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["x-sum"], "2");
        assert_eq!(collected.to_bytes(), "head:ab");
        assert!(body.is_end_stream());
        assert_eq!(*seen.lock().unwrap(), [Exit::Code(0)]);
        assert!(!alive.is_up());
    }

    #[test]
    fn output_past_max_output_is_cut_then_fails_and_the_guest_is_stopped() {
        let alive = Flag::default();
        let (frames, _release, run) = handler_like(&alive, Exit::Code(0), 5);
        let (seen, on_end) = ends();
        let mut body = run.on_end(on_end).into_body(Bytes::from_static(b"abc"));
        frames
            .send(Ok(Frame::data(Bytes::from_static(b"defg"))))
            .unwrap();
        let (waker, wakes) = CountingWaker::new();
        assert_eq!(data(poll(&mut body, &waker)), "abc");
        assert_eq!(data(poll(&mut body, &waker)), "de", "the part that fits");
        assert!(!alive.is_up(), "the guest is stopped at the cut");
        assert!(poll(&mut body, &waker).is_pending(), "one turn to flush");
        assert_eq!(wakes.count(), 1, "and woken at once");
        match poll(&mut body, &waker) {
            Poll::Ready(Some(Err(error))) => assert!(error.0.contains("max-output"), "{error}"),
            other => panic!("expected the error, got {other:?}"),
        }
        assert!(matches!(poll(&mut body, &waker), Poll::Ready(None)));
        assert!(
            seen.lock().unwrap().is_empty(),
            "a stopped guest has no end"
        );
    }

    #[test]
    fn output_exactly_at_max_output_is_not_cut() {
        let alive = Flag::default();
        let (frames, release, run) = handler_like(&alive, Exit::Code(0), 4);
        let mut body = run.into_body(Bytes::new());
        frames
            .send(Ok(Frame::data(Bytes::from_static(b"abcd"))))
            .unwrap();
        release.send(()).unwrap();
        drop(frames);
        let (waker, _) = CountingWaker::new();
        assert_eq!(data(poll(&mut body, &waker)), "abcd");
        assert!(matches!(poll(&mut body, &waker), Poll::Ready(None)));
    }

    #[test]
    fn a_trap_after_the_head_fails_the_body_after_one_flush_turn() {
        let alive = Flag::default();
        let (frames, release, run) = handler_like(&alive, Exit::Trap("boom".into()), 1 << 20);
        let (seen, on_end) = ends();
        let mut body = run.on_end(on_end).into_body(Bytes::new());
        let (waker, wakes) = CountingWaker::new();
        assert!(poll(&mut body, &waker).is_pending(), "nothing written yet");
        frames
            .send(Ok(Frame::data(Bytes::from_static(b"hi"))))
            .unwrap();
        assert_eq!(data(poll(&mut body, &waker)), "hi");
        release.send(()).unwrap();
        drop(frames);
        let before = wakes.count();
        assert!(
            poll(&mut body, &waker).is_pending(),
            "hyper gets a turn first"
        );
        assert_eq!(wakes.count(), before + 1);
        assert!(matches!(poll(&mut body, &waker), Poll::Ready(Some(Err(_)))));
        assert!(matches!(poll(&mut body, &waker), Poll::Ready(None)));
        assert_eq!(*seen.lock().unwrap(), [Exit::Trap("boom".into())]);
    }

    #[test]
    fn a_failing_output_fails_the_body() {
        let alive = Flag::default();
        let (frames, _release, run) = handler_like(&alive, Exit::Code(0), 1 << 20);
        let mut body = run.into_body(Bytes::new());
        frames.send(Err("connection-terminated".into())).unwrap();
        let (waker, _) = CountingWaker::new();
        assert!(poll(&mut body, &waker).is_pending());
        match poll(&mut body, &waker) {
            Poll::Ready(Some(Err(error))) => {
                assert!(error.0.contains("connection-terminated"), "{error}")
            }
            other => panic!("expected the error, got {other:?}"),
        }
        assert!(!alive.is_up(), "the guest is stopped");
    }

    #[test]
    fn a_client_gone_stops_the_guest_and_releases_what_its_end_held() {
        let alive = Flag::default();
        let (_frames, _release, run) = handler_like(&alive, Exit::Code(0), 1 << 20);
        let held = Flag::default();
        let guard = held.raise();
        let mut body = run
            .on_end(move |_| drop(guard))
            .into_body(Bytes::from_static(b"x"));
        let (waker, _) = CountingWaker::new();
        assert_eq!(data(poll(&mut body, &waker)), "x");
        assert!(poll(&mut body, &waker).is_pending());
        assert!(alive.is_up() && held.is_up());
        drop(body);
        assert!(!alive.is_up(), "the guest is stopped");
        assert!(!held.is_up(), "its slot and gauges are released");
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_still_running_after_its_body_finishes_in_a_task_of_its_own() {
        let alive = Flag::default();
        let (frames, release, run) = handler_like(&alive, Exit::Code(0), 1 << 20);
        let (seen, on_end) = ends();
        let mut body = run.on_end(on_end).into_body(Bytes::new());
        frames
            .send(Ok(Frame::data(Bytes::from_static(b"done"))))
            .unwrap();
        drop(frames);
        let collected = (&mut body).collect().await.unwrap().to_bytes();
        assert_eq!(collected, "done");
        assert!(alive.is_up(), "the work after the response goes on");
        drop(body);
        assert!(alive.is_up(), "also once the body is gone");
        release.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!alive.is_up());
        assert_eq!(*seen.lock().unwrap(), [Exit::Code(0)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_pauses_the_guest_instead_of_buffering() {
        const CHUNKS: usize = 12;
        const ROOM: usize = 8;
        let (mut stdout, receiver) = output_channel(ROOM);
        let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let alive = Flag::default();
        let counter = written.clone();
        let instance = fake::guest(
            &alive,
            async move {
                for i in 0..CHUNKS {
                    // As WASI writes: wait until writable, then write what
                    // check_write allows.
                    let mut rest = Bytes::from(format!("{i},"));
                    while !rest.is_empty() {
                        stdout.ready().await;
                        let allowed = stdout.check_write().unwrap().min(rest.len());
                        stdout.write(rest.split_to(allowed)).unwrap();
                        counter.fetch_add(allowed, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            },
            Exit::Code(0),
        );
        let mut body = GuestRun::new(instance, receiver, 1 << 20).into_body(Bytes::new());
        let mut read = Vec::new();
        while let Some(frame) = body.frame().await {
            read.extend_from_slice(&frame.unwrap().into_data().unwrap());
            let buffered = written.load(std::sync::atomic::Ordering::SeqCst) - read.len();
            assert!(
                buffered <= ROOM,
                "{buffered} bytes buffered for a slow reader"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let expected: String = (0..CHUNKS).map(|i| format!("{i},")).collect();
        assert_eq!(String::from_utf8(read).unwrap(), expected);
        assert!(!alive.is_up());
    }
}
