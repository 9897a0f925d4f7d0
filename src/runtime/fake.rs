//! Fakes for the poll state machines' unit tests: a guest that is an
//! ordinary future, outputs fed by hand, and flags that tell whether a
//! guest was stopped or saw its end.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;

use super::instance::Instance;
use super::invocation::{Exit, Outcome, Usage};

/// How a fake guest ended.
pub fn outcome(exit: Exit) -> Outcome {
    Outcome {
        exit,
        usage: Usage::default(),
    }
}

/// A fake guest: runs `body`, then ends with `exit`. `alive` is set while
/// it exists and cleared when it is dropped (stopped or done).
pub fn guest(
    alive: &Flag,
    body: impl Future<Output = ()> + Send + 'static,
    exit: Exit,
) -> Instance {
    let alive = alive.raise();
    Instance::new(async move {
        body.await;
        drop(alive);
        outcome(exit)
    })
}

/// A flag shared with a fake: [`Flag::raise`] gives a guard that keeps it up.
#[derive(Clone, Default)]
pub struct Flag(Arc<AtomicBool>);

/// Keeps its [`Flag`] up until dropped.
pub struct Raised(Arc<AtomicBool>);

impl Flag {
    /// Raises the flag until the guard is dropped.
    pub fn raise(&self) -> Raised {
        self.0.store(true, Ordering::SeqCst);
        Raised(self.0.clone())
    }

    /// Whether it is up.
    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// A frame a fake output gives, or the error it fails with.
pub type FakeFrame = Result<Frame<Bytes>, String>;

/// An output whose frames are sent by hand; it ends when the sender is
/// dropped.
pub struct FakeOutput(mpsc::UnboundedReceiver<FakeFrame>);

/// A fake output and the sender that feeds it.
pub fn output() -> (mpsc::UnboundedSender<FakeFrame>, FakeOutput) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, FakeOutput(rx))
}

impl Body for FakeOutput {
    type Data = Bytes;
    type Error = String;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, String>>> {
        self.0.poll_recv(cx)
    }
}

/// A waker that counts its wake-ups.
#[derive(Default)]
pub struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    /// A waker counting into a fresh counter, and the counter.
    pub fn new() -> (Waker, Arc<CountingWaker>) {
        let counter = Arc::new(CountingWaker::default());
        (Waker::from(counter.clone()), counter)
    }

    /// Wake-ups so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
