//! Time slices for running guests. Every guest yields to tokio at each epoch
//! tick, so none holds a worker thread. A guest that keeps running past its
//! first slices moves to the long lane: only half the cores' worth of such
//! guests run at a time, taking turns slice by slice, so however many
//! requests spin, short requests always have the other half of the machine.
//! A guest gives its lane slot back as soon as it blocks in a host call
//! (a sleep, a read): only computing holds the lane.
//!
//! The server's lane also runs its guests on threads of their own at a
//! lower CPU priority ([`LongLane::low_priority`]): when a guest turns
//! long-running, the rest of its run moves to that runtime, so the kernel
//! runs the request workers first and short requests never queue behind a
//! spinning guest's slice on their worker.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::Poll;

use tokio::runtime::Runtime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use wasmtime::UpdateDeadline;

use super::priority::lower_priority;

/// Slices (epoch ticks) a guest runs in the fast lane before it counts as
/// long-running.
pub const FAST_SLICES: u32 = 10;

/// The nice value of the long lane's threads: the kernel gives them about a
/// tenth of a core against a busy request worker, all of an idle one.
const LONG_LANE_NICE: i32 = 19;

/// The long lane: slots for long-running guests, half the cores (at least one).
#[derive(Debug, Clone)]
pub struct LongLane {
    slots: Arc<Semaphore>,
    /// Where long-running guests run on, if not where they started.
    runtime: Option<&'static Runtime>,
}

impl LongLane {
    /// A lane for a machine of `cores` cores; long-running guests go on
    /// running where they started.
    pub fn new(cores: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new((cores / 2).max(1))),
            runtime: None,
        }
    }

    /// [`LongLane::new`], whose long-running guests move to a runtime of
    /// their own (half the cores' worth of threads, at nice 10), shared by
    /// the process.
    pub fn low_priority(cores: usize) -> Self {
        static RUNTIME: LazyLock<Option<Runtime>> = LazyLock::new(|| {
            let threads = (std::thread::available_parallelism().map_or(1, usize::from) / 2).max(1);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("long-lane")
                .on_thread_start(|| lower_priority(LONG_LANE_NICE))
                .enable_all()
                .build()
                .inspect_err(|error| {
                    tracing::warn!(
                        "no low-priority lane ({error}): long guests stay on the workers"
                    );
                })
                .ok()
        });
        Self {
            runtime: RUNTIME.as_ref(),
            ..Self::new(cores)
        }
    }

    /// The slice keeper for one guest, and the handle its run is driven
    /// through ([`LaneHandle::drive`]).
    pub fn slicer(&self) -> (Slicer, LaneHandle) {
        let handle = LaneHandle(Arc::new(LaneState {
            runtime: self.runtime,
            ..LaneState::default()
        }));
        let slicer = Slicer {
            slots: self.slots.clone(),
            slices: 0,
            lane: handle.clone(),
        };
        (slicer, handle)
    }
}

/// Decides, at each epoch tick of one guest, how it yields.
pub struct Slicer {
    slots: Arc<Semaphore>,
    slices: u32,
    lane: LaneHandle,
}

/// One guest's place in the long lane, shared by its slicer and the future
/// that drives it.
#[derive(Clone, Default)]
pub struct LaneHandle(Arc<LaneState>);

#[derive(Default)]
struct LaneState {
    /// The long-lane slot the guest runs its current slice in, if any.
    held: Mutex<Option<OwnedSemaphorePermit>>,
    /// The guest is waiting in its own tick's yield (for the lane), not in
    /// a host call.
    yielding: AtomicBool,
    /// The guest has turned long-running.
    long: AtomicBool,
    /// Where it then goes on running, if not where it started.
    runtime: Option<&'static Runtime>,
}

impl LaneHandle {
    /// Drives `run` (a guest's call): whenever it waits and not in its own
    /// tick's yield, it is blocked in a host call, and its lane slot goes
    /// back. It queues for one again at its next tick. Once the guest is
    /// long-running, the rest of its run goes to the lane's runtime, if it
    /// has one (dropping the returned future stops it there too).
    pub async fn drive<F>(&self, run: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut run: Pin<Box<F>> = Box::pin(run);
        let moves = self.0.runtime.is_some();
        let here = poll_fn(|cx| {
            if moves && self.0.long.load(Ordering::Acquire) {
                return Poll::Ready(None);
            }
            self.poll_slot(run.as_mut().poll(cx)).map(Some)
        })
        .await;
        if let Some(output) = here {
            return output;
        }
        let runtime = self
            .0
            .runtime
            .expect("only a lane with a runtime moves guests");
        let lane = self.clone();
        let task = Abort(
            runtime.spawn(async move { poll_fn(|cx| lane.poll_slot(run.as_mut().poll(cx))).await }),
        );
        let mut task = task;
        match (&mut task.0).await {
            Ok(output) => output,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    /// Gives the slot back when the guest waits in a host call.
    fn poll_slot<T>(&self, poll: Poll<T>) -> Poll<T> {
        if poll.is_pending() && !self.0.yielding.load(Ordering::Acquire) {
            self.give_back();
        }
        poll
    }

    fn give_back(&self) {
        drop(lock(&self.0.held).take());
    }
}

impl Slicer {
    /// Called at every epoch deadline: yield, and once long-running, give
    /// the lane slot back and queue for the next one.
    pub fn on_tick(&mut self) -> UpdateDeadline {
        self.slices = self.slices.saturating_add(1);
        if self.slices < FAST_SLICES {
            return UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()));
        }
        let lane = self.lane.clone();
        lane.give_back();
        lane.0.yielding.store(true, Ordering::Release);
        lane.0.long.store(true, Ordering::Release);
        let slots = self.slots.clone();
        UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                tokio::task::yield_now().await;
                let slot = slots
                    .acquire_owned()
                    .await
                    .expect("the lane is never closed");
                *lock(&lane.0.held) = Some(slot);
                lane.0.yielding.store(false, Ordering::Release);
            }),
        )
    }
}

/// A task aborted when its handle is dropped (the guest's timeout dropped
/// the run).
struct Abort<T>(JoinHandle<T>);

impl<T> Drop for Abort<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock(
    held: &Mutex<Option<OwnedSemaphorePermit>>,
) -> std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
    held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn tick(slicer: &mut Slicer) {
        match slicer.on_tick() {
            UpdateDeadline::YieldCustom(1, future) => future.await,
            _ => panic!("every tick yields"),
        }
    }

    #[tokio::test]
    async fn long_running_guests_take_turns_in_the_lane() {
        let lane = LongLane::new(2);
        let (mut first, _) = lane.slicer();
        let (mut second, _) = lane.slicer();
        for _ in 0..FAST_SLICES {
            tick(&mut first).await;
        }
        assert_eq!(
            lane.slots.available_permits(),
            0,
            "the first holds the only slot"
        );
        for _ in 0..FAST_SLICES - 1 {
            tick(&mut second).await;
        }
        let waiting = tokio::spawn(async move { tick(&mut second).await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the second waits for the slot");
        tick(&mut first).await;
        waiting.await.unwrap();
    }

    #[tokio::test]
    async fn a_long_running_guest_moves_to_the_low_priority_runtime() {
        let lane = LongLane::low_priority(2);
        let (mut slicer, handle) = lane.slicer();
        let run = async move {
            let started = std::thread::current().name().map(str::to_owned);
            for _ in 0..FAST_SLICES {
                tick(&mut slicer).await;
            }
            let ended = std::thread::current().name().map(str::to_owned);
            (started, ended, super::super::priority::nice())
        };
        let (started, ended, nice) = handle.drive(run).await;
        assert_ne!(started.as_deref(), Some("long-lane"));
        assert_eq!(ended.as_deref(), Some("long-lane"));
        assert_eq!(nice, LONG_LANE_NICE);
    }

    #[tokio::test]
    async fn a_moved_guest_stops_when_its_run_is_dropped() {
        struct Dropped(Option<tokio::sync::oneshot::Sender<()>>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                let _ = self.0.take().map(|sender| sender.send(()));
            }
        }
        let lane = LongLane::low_priority(2);
        let (mut slicer, handle) = lane.slicer();
        let (sender, dropped) = tokio::sync::oneshot::channel();
        let run = async move {
            let _guard = Dropped(Some(sender));
            loop {
                tick(&mut slicer).await;
            }
        };
        let driving = tokio::spawn(async move { handle.drive(run).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        driving.abort();
        tokio::time::timeout(std::time::Duration::from_secs(10), dropped)
            .await
            .expect("the guest was dropped on its runtime")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_guest_blocked_in_a_host_call_gives_its_lane_slot_back() {
        // Regression: a guest that computed, then slept, kept the lane for
        // its whole sleep, stalling every other long-running guest.
        let lane = LongLane::new(2);
        let (mut sleeper, handle) = lane.slicer();
        let run = async move {
            for _ in 0..FAST_SLICES {
                tick(&mut sleeper).await;
            }
            // Now in the lane; then a host call that blocks.
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        };
        let sleeping = tokio::spawn(async move { handle.drive(run).await });
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert!(!sleeping.is_finished());
        assert_eq!(
            lane.slots.available_permits(),
            1,
            "the sleeping guest holds no slot"
        );
        let (mut computing, _) = lane.slicer();
        for _ in 0..FAST_SLICES {
            tick(&mut computing).await;
        }
        assert_eq!(lane.slots.available_permits(), 0, "the other got it");
        sleeping.abort();
    }
}
