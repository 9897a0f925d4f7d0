//! One running instance: a future that drives the guest and resolves to how
//! it ended. Nothing runs until it is polled, and dropping it stops the
//! guest at once (its store, memory and pool slot are freed).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::invocation::Outcome;

/// A guest started by [`Program::start`](super::Program::start) or
/// [`Program::handle_http`](super::Program::handle_http). Poll it (or hand it
/// to a [`GuestRun`](super::GuestRun) or a body that polls it) to make the
/// guest progress; it resolves to the run's [`Outcome`]. Dropping it stops
/// the guest.
#[must_use = "an instance does nothing unless polled"]
pub struct Instance {
    run: Pin<Box<dyn Future<Output = Outcome> + Send>>,
}

impl Instance {
    /// An instance that is driven by polling `run`.
    pub(crate) fn new(run: impl Future<Output = Outcome> + Send + 'static) -> Self {
        Self { run: Box::pin(run) }
    }

    /// Calls `ended` with the outcome once the guest has ended, before the
    /// outcome is handed on. If the instance is dropped first (stopped),
    /// `ended` is dropped uncalled: whatever it holds (an admission slot, a
    /// gauge guard) is released either way, the moment the guest is gone.
    pub fn on_end(self, ended: impl FnOnce(&Outcome) + Send + 'static) -> Self {
        let run = self.run;
        Self::new(async move {
            let outcome = run.await;
            ended(&outcome);
            outcome
        })
    }
}

impl Future for Instance {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        self.run.as_mut().poll(cx)
    }
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance").finish_non_exhaustive()
    }
}
