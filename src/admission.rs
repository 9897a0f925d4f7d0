//! Admission control: at most `max-concurrency` instances run at once, as
//! many requests again may wait a short while for a slot, and the rest are
//! refused at once (503) instead of piling up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The instance slots and the queue in front of them.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    /// Requests waiting for a slot; tokio's semaphore doesn't count them.
    waiting: AtomicUsize,
    max_waiting: usize,
    queue_timeout: Duration,
}

/// No slot could be had: the queue was full or the wait timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded;

impl Admission {
    /// `max_concurrency` slots and a queue of the same size whose requests
    /// wait at most `queue_timeout`.
    pub fn new(max_concurrency: usize, queue_timeout: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrency)),
            waiting: AtomicUsize::new(0),
            max_waiting: max_concurrency,
            queue_timeout,
        }
    }

    /// A slot, held until the permit is dropped.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, Overloaded> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let queued = Queued::join(&self.waiting);
        if queued.ahead >= self.max_waiting {
            return Err(Overloaded);
        }
        // The place in the queue is given back however the wait ends,
        // also when the waiting request is dropped (its client gone).
        let waited =
            tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned()).await;
        drop(queued);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Overloaded),
        }
    }

    /// Requests waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// A place in the queue, given back when dropped.
struct Queued<'a> {
    waiting: &'a AtomicUsize,
    /// How many were waiting before this one joined.
    ahead: usize,
}

impl<'a> Queued<'a> {
    fn join(waiting: &'a AtomicUsize) -> Self {
        let ahead = waiting.fetch_add(1, Ordering::AcqRel);
        Self { waiting, ahead }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_queue_holds_as_many_as_the_slots_then_refuses() {
        let admission = Arc::new(Admission::new(1, Duration::from_millis(200)));
        let held = admission.acquire().await.unwrap();
        let waiter = tokio::spawn({
            let admission = admission.clone();
            async move { admission.acquire().await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(admission.queued(), 1);
        assert_eq!(admission.acquire().await.unwrap_err(), Overloaded);
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_waits_give_their_place_in_the_queue_back() {
        // Regression: a request dropped while queued (client gone) kept its
        // place for good; after `max-concurrency` of them nobody could queue.
        let admission = Arc::new(Admission::new(2, Duration::from_secs(60)));
        let held = (admission.acquire().await, admission.acquire().await);
        for _ in 0..10 {
            let waiter = tokio::spawn({
                let admission = admission.clone();
                async move { admission.acquire().await.map(drop) }
            });
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert_eq!(admission.queued(), 1);
            waiter.abort();
            let _ = waiter.await;
            assert_eq!(admission.queued(), 0, "the abandoned wait left the queue");
        }
        let waiter = tokio::spawn({
            let admission = admission.clone();
            async move { admission.acquire().await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(admission.queued(), 1);
        drop(held);
        assert_eq!(
            waiter.await.unwrap(),
            Ok(()),
            "a request that must queue still gets a slot"
        );
    }

    #[tokio::test]
    async fn a_wait_past_the_queue_timeout_is_refused() {
        let admission = Admission::new(1, Duration::from_millis(30));
        let _held = admission.acquire().await.unwrap();
        assert_eq!(admission.acquire().await.unwrap_err(), Overloaded);
        assert_eq!(admission.queued(), 0);
    }
}
