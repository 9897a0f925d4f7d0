//! A running guest beside its output: a command's stdout, or a wasi:http
//! handler's response body. Reading the output drives the instance, inside
//! the reader's own task: no task is spawned and no thread woken per run,
//! and epoch yields keep a busy guest from holding the worker.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;

use super::guest_body::GuestBody;
use super::instance::Instance;
use super::invocation::{Exit, Outcome};

/// What a run produces next.
#[derive(Debug)]
pub enum Event {
    /// Bytes of output.
    Data(Bytes),
    /// Trailers (a wasi:http handler's body may end with them).
    Trailers(HeaderMap),
    /// The output stream failed (a handler's body ended in an error code);
    /// the guest may still run.
    OutputFailed(String),
    /// The output is complete and the guest has ended, like this.
    Ended(Exit),
    /// The output is complete and the guest still runs: a handler's work
    /// after its response. A command's stdout ends only with its instance,
    /// so a command never gives this.
    OutputDone,
}

/// What [`GuestRun::next_data`] gives: output bytes, or how the guest ended.
#[derive(Debug)]
pub enum Data {
    /// Bytes of output.
    Bytes(Bytes),
    /// The output is complete and the guest has ended, like this.
    Ended(Exit),
}

/// What [`GuestRun::drain`] found.
#[derive(Debug)]
pub enum Drained {
    /// The guest ended like `exit`, after `len` bytes of output in all.
    Ended {
        /// Bytes of output, those read before included.
        len: u64,
        /// How it ended.
        exit: Exit,
    },
    /// Its output went past `max_output`; it still runs.
    PastMaxOutput,
}

/// Where the instance is in its life.
enum Lifecycle {
    Running(Instance),
    Ended(Outcome),
}

/// A guest and its output. Dropping it stops the guest.
pub struct GuestRun<O> {
    instance: Lifecycle,
    output: O,
    /// The output has ended (or failed): it is not polled again.
    output_done: bool,
    /// Bytes of output the response body may carry (`max_output`).
    max_output: u64,
}

impl<O> GuestRun<O> {
    /// How the guest ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.instance {
            Lifecycle::Running(_) => None,
            Lifecycle::Ended(outcome) => Some(outcome),
        }
    }
}

impl<O> std::fmt::Debug for GuestRun<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestRun")
            .field("outcome", &self.outcome())
            .field("output_done", &self.output_done)
            .field("max_output", &self.max_output)
            .finish_non_exhaustive()
    }
}

impl<O> GuestRun<O>
where
    O: Body<Data = Bytes> + Unpin,
    O::Error: std::fmt::Display,
{
    /// `instance` beside `output`, which its body cuts at `max_output` bytes.
    pub(crate) fn new(instance: Instance, output: O, max_output: u64) -> Self {
        Self {
            instance: Lifecycle::Running(instance),
            output,
            output_done: false,
            max_output,
        }
    }

    /// The same run, with an instance that may have ended already.
    pub(crate) fn with_outcome(outcome: Outcome, output: O, max_output: u64) -> Self {
        Self {
            instance: Lifecycle::Ended(outcome),
            output,
            output_done: false,
            max_output,
        }
    }

    /// Calls `ended` with the outcome when the guest ends; see
    /// [`Instance::on_end`]. An instance that has already ended calls it now.
    pub fn on_end(mut self, ended: impl FnOnce(&Outcome) + Send + 'static) -> Self {
        self.instance = match self.instance {
            Lifecycle::Running(instance) => Lifecycle::Running(instance.on_end(ended)),
            Lifecycle::Ended(outcome) => {
                ended(&outcome);
                Lifecycle::Ended(outcome)
            }
        };
        self
    }

    /// The body that streams the rest of the output after `prefix` (bytes
    /// read already), cut at `max_output`.
    pub fn into_body(self, prefix: Bytes) -> GuestBody<O> {
        let max_output = self.max_output;
        GuestBody::new(self, prefix, max_output)
    }

    /// Bytes of output its body may carry.
    pub fn max_output(&self) -> u64 {
        self.max_output
    }

    /// The instance, if it still runs.
    pub(crate) fn into_instance(self) -> Option<Instance> {
        match self.instance {
            Lifecycle::Running(instance) => Some(instance),
            Lifecycle::Ended(_) => None,
        }
    }

    /// The next thing the run produces.
    pub async fn next(&mut self) -> Event {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The next thing the run produces. Output already written is handed
    /// out before the guest is polled again (a poll switches to its stack).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if let Poll::Ready(Some(event)) = self.poll_output(cx) {
            return Poll::Ready(event);
        }
        if let Lifecycle::Running(instance) = &mut self.instance
            && let Poll::Ready(outcome) = Pin::new(instance).poll(cx)
        {
            self.instance = Lifecycle::Ended(outcome);
        }
        match self.poll_output(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(event),
            Poll::Ready(None) => Poll::Ready(match &self.instance {
                Lifecycle::Ended(outcome) => Event::Ended(outcome.exit.clone()),
                Lifecycle::Running(_) => Event::OutputDone,
            }),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The output's next event; `Ready(None)` once it has ended.
    fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if self.output_done {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut self.output).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(frame) => frame,
        };
        Poll::Ready(match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => Some(Event::Data(data)),
                Err(frame) => frame.into_trailers().ok().map(Event::Trailers),
            },
            Some(Err(error)) => {
                self.output_done = true;
                Some(Event::OutputFailed(error.to_string()))
            }
            None => {
                self.output_done = true;
                None
            }
        })
    }

    /// The next bytes of output, or how the guest ended once the output is
    /// complete (waiting for a guest that runs on past it). Trailers are
    /// skipped, and an output that fails counts as complete.
    pub async fn next_data(&mut self) -> Data {
        loop {
            match self.next().await {
                Event::Data(data) => return Data::Bytes(data),
                Event::Ended(exit) => return Data::Ended(exit),
                Event::Trailers(_) | Event::OutputFailed(_) => continue,
                Event::OutputDone => {
                    let Lifecycle::Running(instance) = &mut self.instance else {
                        continue;
                    };
                    let outcome = instance.await;
                    let exit = outcome.exit.clone();
                    self.instance = Lifecycle::Ended(outcome);
                    return Data::Ended(exit);
                }
            }
        }
    }

    /// Runs the guest to its end, reading and discarding its output, as
    /// long as its output stays within `max_output` counting `already`
    /// bytes read before. The caller stops a guest that went past it.
    pub async fn drain(&mut self, already: u64) -> Drained {
        let mut len = already;
        loop {
            match self.next_data().await {
                Data::Bytes(data) => {
                    len += data.len() as u64;
                    if len > self.max_output {
                        return Drained::PastMaxOutput;
                    }
                }
                Data::Ended(exit) => return Drained::Ended { len, exit },
            }
        }
    }
}
