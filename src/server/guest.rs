//! The one supervisor of every guest the server runs, CGI command or
//! wasi:http handler alike: while an instance lives it holds its admission
//! slot, counts in the `instances_in_flight` gauge and keeps graceful
//! shutdown waiting; the moment it ends (or is stopped) all three are
//! released; how it ended is logged with the request id and counted.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::drain::InFlight;
use super::error::HttpError;
use super::metrics::Metrics;
use super::state::AppState;
use crate::runtime::{Exit, Outcome, StderrLog};

/// Bytes of module stderr logged per request; the rest is dropped.
const STDERR_CAP: usize = 64 * 1024;

/// A stderr for one request's guest, logged with the request id.
pub fn stderr_log(module: &Arc<str>, request_id: &Arc<str>) -> StderrLog {
    StderrLog::new(module.clone(), request_id.clone(), STDERR_CAP)
}

/// Everything held for one guest while it lives.
pub struct Supervisor {
    module: Arc<str>,
    request_id: Arc<str>,
    metrics: Arc<Metrics>,
    _running: RunningInstance,
    _permit: OwnedSemaphorePermit,
    _in_flight: InFlight,
}

impl Supervisor {
    /// Supervises the guest of `module` for `request_id`, holding its slot
    /// `permit`; counted from now on.
    pub fn new(
        state: &AppState,
        module: &Arc<str>,
        request_id: &Arc<str>,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            module: module.clone(),
            request_id: request_id.clone(),
            metrics: state.metrics.clone(),
            _running: RunningInstance::new(state.metrics.clone()),
            _permit: permit,
            _in_flight: state.drain.enter(),
        }
    }

    /// The hook for [`Instance::on_end`](crate::runtime::Instance::on_end):
    /// records how the guest ended, then releases what it held. Dropped
    /// uncalled when the guest is stopped, which releases them too.
    pub fn on_end(self) -> impl FnOnce(&Outcome) + Send + 'static {
        move |outcome| self.ended(outcome)
    }

    fn ended(self, outcome: &Outcome) {
        let usage = &outcome.usage;
        if !outcome.exit.is_success() {
            tracing::warn!(
                module = %self.module,
                request_id = %self.request_id,
                wall_ms = usage.wall_time.as_millis() as u64,
                fuel = usage.fuel_consumed,
                peak_memory = usage.peak_memory,
                "module {}", outcome.exit
            );
        }
        self.metrics
            .guest_done(&self.module, &outcome.exit, usage.fuel_consumed);
    }

    /// The answer to a guest the host failed to start (a directory that
    /// can't be opened and the like): logged, and a 500 for the client.
    pub fn start_failed(module: &str, request_id: &str, error: &anyhow::Error) -> HttpError {
        tracing::error!(module, request_id, "failed to start the module: {error:#}");
        HttpError::ModuleFailed
    }
}

/// The error status for a guest that ended like `exit` before its response
/// was sent; `None` when it succeeded. The one place an outcome becomes a
/// status.
pub fn failure_status(exit: &Exit) -> Option<HttpError> {
    match exit {
        exit if exit.is_success() => None,
        Exit::TimedOut => Some(HttpError::GatewayTimeout),
        _ => Some(HttpError::ModuleFailed),
    }
}

/// Counts an instance in the `instances_in_flight` gauge while it lives.
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::admission::Admission;
    use crate::cgi::Mode;
    use crate::limits::Limits;
    use crate::runtime::fake::outcome;
    use crate::runtime::{Sandbox, SandboxOptions};

    fn state() -> AppState {
        let sandbox = Sandbox::new(SandboxOptions::default()).unwrap();
        AppState::new(
            sandbox,
            Default::default(),
            Default::default(),
            Default::default(),
            None,
            Mode::Simple,
            Limits::default(),
        )
    }

    fn rendered(state: &AppState) -> String {
        state.metrics.render(0, 0)
    }

    #[tokio::test]
    async fn the_slot_is_held_until_the_guest_ends_and_its_end_is_counted() {
        let state = state();
        let admission = Admission::new(1, Duration::from_millis(1));
        let permit = admission.acquire().await.unwrap();
        let supervisor = Supervisor::new(&state, &"slow.wasm".into(), &"id-1".into(), permit);
        assert!(rendered(&state).contains("wasm_cgi_instances_in_flight 1"));
        let on_end = supervisor.on_end();
        assert!(admission.acquire().await.is_err(), "the slot is held");
        let drained = tokio::time::timeout(Duration::from_millis(1), state.drain.idle());
        assert!(drained.await.is_err(), "shutdown waits for the guest");

        on_end(&outcome(Exit::TimedOut));
        assert!(admission.acquire().await.is_ok(), "the slot is free again");
        state.drain.idle().await;
        let text = rendered(&state);
        for expected in [
            "wasm_cgi_instances_in_flight 0",
            "wasm_cgi_timeouts_total 1",
            "wasm_cgi_module_failures_total{module=\"slow.wasm\",kind=\"timeout\"} 1",
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
    }

    #[tokio::test]
    async fn a_stopped_guest_releases_everything_and_counts_no_end() {
        let state = state();
        let admission = Admission::new(1, Duration::from_millis(1));
        let permit = admission.acquire().await.unwrap();
        let on_end = Supervisor::new(&state, &"cut.wasm".into(), &"id-2".into(), permit).on_end();
        drop(on_end);
        assert!(admission.acquire().await.is_ok());
        state.drain.idle().await;
        let text = rendered(&state);
        assert!(text.contains("wasm_cgi_instances_in_flight 0"), "{text}");
        assert!(!text.contains("cut.wasm"), "{text}");
    }

    #[test]
    fn only_a_timeout_and_other_failures_have_error_statuses() {
        assert_eq!(failure_status(&Exit::Code(0)), None);
        assert_eq!(
            failure_status(&Exit::TimedOut),
            Some(HttpError::GatewayTimeout)
        );
        for exit in [
            Exit::Code(1),
            Exit::Trap("x".into()),
            Exit::OutOfFuel,
            Exit::MemoryLimit { requested: 1 },
        ] {
            assert_eq!(failure_status(&exit), Some(HttpError::ModuleFailed));
        }
    }
}
