//! One module run on behalf of a request: the instance (driven inside the
//! request's task), its stdout as a stream of chunks, and the response body
//! that streams them to the client. Dropping either stops the instance
//! (client gone, error sent).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::BoxError;
use super::metrics::Metrics;
use crate::runtime::{
    Exit, Input, Invocation, Outcome, Output, Program, StderrLog, Stdio, output_channel,
};

/// Chunks of stdout buffered between the guest and the client: past this the
/// guest waits (backpressure) instead of the server buffering.
const STDOUT_CHUNKS: usize = 16;

/// Bytes of module stderr logged per request; the rest is dropped.
const STDERR_CAP: usize = 64 * 1024;

/// What a run produces next.
#[derive(Debug)]
pub enum Event {
    /// A piece of stdout.
    Chunk(Bytes),
    /// The guest is gone: how it ended.
    Done(Ending),
}

/// How a guest ended, or `None` if the host failed to run it (logged).
pub type Ending = Option<Exit>;

/// A guest running for one request, as [`supervise`] returns it.
pub type Guest = Pin<Box<dyn Future<Output = Ending> + Send>>;

/// Wraps `run`, one guest's run for a request: counted in the
/// `instances_in_flight` gauge while it lives (also if dropped half-way),
/// its instance slot `permit` released the moment it ends, a failure logged
/// with the request id, and its end counted in the metrics. Nothing runs
/// until the result is polled.
pub fn supervise(
    module: Arc<str>,
    run: impl Future<Output = anyhow::Result<Outcome>> + Send + 'static,
    permit: OwnedSemaphorePermit,
    request_id: Arc<str>,
    metrics: Arc<Metrics>,
) -> Guest {
    Box::pin(async move {
        let running = RunningInstance::new(metrics.clone());
        let result = run.await;
        drop(running);
        drop(permit);
        match result {
            Ok(outcome) => {
                let usage = &outcome.usage;
                if !outcome.exit.is_success() {
                    tracing::warn!(
                        module = %module,
                        %request_id,
                        wall_ms = usage.wall_time.as_millis() as u64,
                        fuel = usage.fuel_consumed,
                        peak_memory = usage.peak_memory,
                        "module {}", outcome.exit
                    );
                }
                metrics.guest_done(&module, &outcome.exit, usage.fuel_consumed);
                Some(outcome.exit)
            }
            Err(error) => {
                tracing::error!(module = %module, %request_id, "failed to run the module: {error:#}");
                None
            }
        }
    })
}

/// A stderr for one request's guest, logged with the request id.
pub fn stderr_log(module: &Arc<str>, request_id: &Arc<str>) -> StderrLog {
    StderrLog::new(module.clone(), request_id.clone(), STDERR_CAP)
}

/// A module instance running for one request. It runs inside the request's
/// own task, driven by whoever reads its output (the response code, then the
/// response body), so no task is spawned and no thread woken per request;
/// epoch yields keep a busy guest from holding the worker.
pub struct GuestRun {
    /// The running guest; `None` once it has ended.
    guest: Option<Guest>,
    stdout: mpsc::Receiver<Bytes>,
    /// How the guest ended, once it has; reported after the last output.
    ending: Option<Ending>,
}

impl GuestRun {
    /// Starts `program` with `invocation`; the instance slot `permit` is
    /// released as soon as the guest ends. Dropping the run stops the guest.
    pub fn start(
        program: Arc<Program>,
        mut invocation: Invocation,
        stdin: Bytes,
        permit: OwnedSemaphorePermit,
        request_id: Arc<str>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (sender, stdout) = output_channel(STDOUT_CHUNKS);
        invocation.stdin = Input::Bytes(stdin);
        let stdio = Stdio {
            stdout: Output::Channel(sender),
            stderr: Output::Log(stderr_log(program.name(), &request_id)),
        };
        let module = program.name().clone();
        let run = async move { program.run(invocation, stdio).await };
        Self {
            guest: Some(supervise(module, run, permit, request_id, metrics)),
            stdout,
            ending: None,
        }
    }

    /// The next piece of output, or how the run ended once all output is read.
    pub async fn next(&mut self) -> Event {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if let Poll::Ready(Some(chunk)) = self.stdout.poll_recv(cx) {
            return Poll::Ready(Event::Chunk(chunk));
        }
        if let Some(guest) = &mut self.guest
            && let Poll::Ready(ending) = guest.as_mut().poll(cx)
        {
            self.guest = None;
            self.ending = Some(ending);
        }
        match self.stdout.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => Poll::Ready(Event::Chunk(chunk)),
            // stdout closes when the guest's store is dropped, as it ends.
            Poll::Ready(None) => Poll::Ready(Event::Done(self.ending.clone().unwrap_or(None))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Stops the guest now.
    fn stop(&mut self) {
        self.guest = None;
    }
}

/// Counts an instance in the `instances_in_flight` gauge while it lives,
/// including when its run is dropped half-way.
struct RunningInstance(Arc<Metrics>);

impl RunningInstance {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.instances_add(1);
        Self(metrics)
    }
}

impl Drop for RunningInstance {
    fn drop(&mut self) {
        self.0.instances_add(-1);
    }
}

/// A streamed response body: what was buffered before the head was sent,
/// then the rest of the guest's stdout, cut at `max-output`. If the guest
/// fails or overruns, the body ends in an error so the client sees an
/// incomplete response (no final chunk).
pub struct GuestBody {
    run: GuestRun,
    prefix: Option<Bytes>,
    budget: OutputBudget,
    state: BodyState,
    request_id: Arc<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Streaming,
    /// The body ends in this error, once hyper has had its turn to send
    /// what came before it (see [`flush_then_fail`]).
    Failing(FailingBody),
    Ended,
}

/// Response body bytes still allowed by `max-output`.
#[derive(Debug, Clone, Copy)]
pub struct OutputBudget(u64);

impl OutputBudget {
    /// A budget of `max_output` bytes.
    pub fn new(max_output: u64) -> Self {
        Self(max_output)
    }

    /// `chunk` if it fits in what is left; else `Err` with the part that
    /// still fits (maybe empty), and nothing left after it.
    pub fn spend(&mut self, mut chunk: Bytes) -> Result<Bytes, Bytes> {
        if chunk.len() as u64 <= self.0 {
            self.0 -= chunk.len() as u64;
            return Ok(chunk);
        }
        chunk.truncate(self.0 as usize);
        self.0 = 0;
        Err(chunk)
    }
}

/// A body that is to end in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailingBody {
    why: &'static str,
    yielded: bool,
}

impl FailingBody {
    /// A body about to end in the error `why`.
    pub fn new(why: &'static str) -> Self {
        Self {
            why,
            yielded: false,
        }
    }
}

/// Ends a failing body: first one `Pending` turn (the task woken at once),
/// then the error. A body error makes hyper drop the connection at once,
/// with whatever it had buffered and not written yet; when the error comes
/// in the same turn as the head, the client would get no response at all
/// instead of a cut one. Returns `None` once the error has been given.
pub fn flush_then_fail(
    failing: &mut FailingBody,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    if failing.yielded {
        return Poll::Ready(Some(Err(failing.why.into())));
    }
    failing.yielded = true;
    cx.waker().wake_by_ref();
    Poll::Pending
}

impl GuestBody {
    /// A body sending `prefix` and then the rest of `run`'s stdout.
    pub fn new(run: GuestRun, prefix: Bytes, max_output: u64, request_id: Arc<str>) -> Self {
        Self {
            run,
            prefix: (!prefix.is_empty()).then_some(prefix),
            budget: OutputBudget::new(max_output),
            state: BodyState::Streaming,
            request_id,
        }
    }

    /// Passes `chunk` on, cut to what `max-output` still allows.
    fn take(
        &mut self,
        chunk: Bytes,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let chunk = match self.budget.spend(chunk) {
            Ok(chunk) => return Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Err(allowed) => allowed,
        };
        self.prefix = None;
        self.run.stop();
        tracing::warn!(request_id = %self.request_id, "module output over max-output; response cut and instance stopped");
        self.state = BodyState::Failing(FailingBody::new("module output over max-output"));
        if chunk.is_empty() {
            self.poll_failing(cx)
        } else {
            Poll::Ready(Some(Ok(Frame::data(chunk))))
        }
    }

    fn fail(
        &mut self,
        why: &'static str,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = BodyState::Failing(FailingBody::new(why));
        self.poll_failing(cx)
    }

    fn poll_failing(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let BodyState::Failing(failing) = &mut self.state else {
            return Poll::Ready(None);
        };
        let poll = flush_then_fail(failing, cx);
        if poll.is_ready() {
            self.state = BodyState::Ended;
        }
        poll
    }
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(prefix) = this.prefix.take() {
            return this.take(prefix, cx);
        }
        match this.state {
            BodyState::Ended => return Poll::Ready(None),
            BodyState::Failing(_) => return this.poll_failing(cx),
            BodyState::Streaming => {}
        }
        match ready!(this.run.poll_next(cx)) {
            Event::Chunk(chunk) => this.take(chunk, cx),
            Event::Done(Some(exit)) if exit.is_success() => {
                this.state = BodyState::Ended;
                Poll::Ready(None)
            }
            Event::Done(_) => this.fail("the module failed after the response had started", cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == BodyState::Ended && self.prefix.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
