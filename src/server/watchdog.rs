//! The per-connection watchdog: a guest's deadline holds on wall-clock time
//! even when nothing polls its response body (hyper stops polling while the
//! client leaves the socket full, and the guest only runs, and so only sees
//! its own deadline, when polled). A response armed with a deadline that is
//! still unfinished when it passes closes its connection, which drops the
//! body and with it the instance and its slot.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

/// One connection's watchdog; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Watchdog(Arc<State>);

#[derive(Debug, Default)]
struct State {
    /// The deadline of the response being sent, if it has one.
    deadline: Mutex<Option<Instant>>,
    changed: Notify,
}

/// Keeps a deadline armed until dropped (the response finished or gone).
#[derive(Debug)]
pub struct Armed(Watchdog);

impl Watchdog {
    /// Arms `deadline` for the response being sent.
    pub fn arm(&self, deadline: Instant) -> Armed {
        self.set(Some(deadline));
        Armed(self.clone())
    }

    fn set(&self, deadline: Option<Instant>) {
        *self
            .0
            .deadline
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = deadline;
        self.0.changed.notify_waiters();
    }

    fn deadline(&self) -> Option<Instant> {
        *self
            .0
            .deadline
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Resolves once an armed deadline passes; never while none is armed.
    pub async fn fired(&self) {
        loop {
            let changed = self.0.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.deadline() {
                Some(deadline) => tokio::select! {
                    () = tokio::time::sleep_until(deadline) => return,
                    () = changed => {}
                },
                None => changed.await,
            }
        }
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        self.0.set(None);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_armed_deadline_fires_and_a_disarmed_one_does_not() {
        let watchdog = Watchdog::default();
        let fired = tokio::spawn({
            let watchdog = watchdog.clone();
            async move { watchdog.fired().await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!fired.is_finished(), "nothing armed");

        let armed = watchdog.arm(Instant::now() + Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(armed);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!fired.is_finished(), "finished in time: disarmed");

        let _armed = watchdog.arm(Instant::now() + Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(fired.is_finished(), "past its deadline");
    }
}
