//! Draining for graceful shutdown: counts the requests in flight (a request
//! stays in flight until its response body is fully sent or dropped) and
//! lets shutdown wait until none is left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Requests in flight, and whether the server is draining.
#[derive(Debug, Default)]
pub struct Drain {
    in_flight: AtomicUsize,
    draining: AtomicBool,
    idle: Notify,
}

/// Keeps a request counted as in flight until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Drain>);

impl Drain {
    /// Counts one more request in flight.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Starts draining: new work is refused from now on.
    pub fn start(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the server is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Resolves once no request is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn idle_waits_for_the_last_request() {
        let drain = Arc::new(Drain::default());
        let first = drain.enter();
        let second = drain.enter();
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move { drain.idle().await }
        });
        drop(first);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(second);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
