//! Time slices for running guests. Every guest yields to tokio at each epoch
//! tick, so none holds a worker thread. A guest that keeps running past its
//! first slices moves to the long lane: only half the cores' worth of such
//! guests run at a time, taking turns slice by slice, so however many
//! requests spin, short requests always have the other half of the machine.

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

    /// The slice keeper for one guest.
    pub fn slicer(&self) -> Slicer {
        Slicer {
            slots: self.slots.clone(),
            slices: 0,
            held: Arc::default(),
        }
    }
}

/// Decides, at each epoch tick of one guest, how it yields.
pub struct Slicer {
    slots: Arc<Semaphore>,
    slices: u32,
    /// The long-lane slot the guest runs its current slice in, if any.
    held: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
}

impl Slicer {
    /// Called at every epoch deadline: yield, and once long-running, give
    /// the lane slot back and queue for the next one.
    pub fn on_tick(&mut self) -> UpdateDeadline {
        self.slices = self.slices.saturating_add(1);
        if self.slices < FAST_SLICES {
            return UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()));
        }
        let held = self.held.clone();
        drop(lock(&held).take());
        let slots = self.slots.clone();
        UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                tokio::task::yield_now().await;
                let slot = slots
                    .acquire_owned()
                    .await
                    .expect("the lane is never closed");
                *lock(&held) = Some(slot);
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
        let mut first = lane.slicer();
        let mut second = lane.slicer();
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
}
