//! Time slices for running guests. Every guest yields to tokio at each epoch
//! tick, so none holds a worker thread. A guest that keeps running past its
//! first slices moves to the long lane: only half the cores' worth of such
//! guests run at a time, taking turns slice by slice, so however many
//! requests spin, short requests always have the other half of the machine.
//! A guest gives its lane slot back as soon as it blocks in a host call
//! (a sleep, a read): only computing holds the lane.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::UpdateDeadline;

/// Slices (epoch ticks) a guest runs in the fast lane before it counts as
/// long-running.
pub const FAST_SLICES: u32 = 10;

/// The long lane: slots for long-running guests, half the cores (at least one).
#[derive(Debug, Clone)]
pub struct LongLane {
    slots: Arc<Semaphore>,
}

impl LongLane {
    /// A lane for a machine of `cores` cores.
    pub fn new(cores: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new((cores / 2).max(1))),
        }
    }

    /// The slice keeper for one guest, and the handle its run is driven
    /// through ([`LaneHandle::drive`]).
    pub fn slicer(&self) -> (Slicer, LaneHandle) {
        let handle = LaneHandle(Arc::default());
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
}

impl LaneHandle {
    /// Drives `run` (a guest's call): whenever it waits and not in its own
    /// tick's yield, it is blocked in a host call, and its lane slot goes
    /// back. It queues for one again at its next tick.
    pub async fn drive<F: Future>(&self, run: F) -> F::Output {
        let mut run = pin!(run);
        poll_fn(|cx| {
            let poll = run.as_mut().poll(cx);
            if poll.is_pending() && !self.0.yielding.load(Ordering::Acquire) {
                self.give_back();
            }
            poll
        })
        .await
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
