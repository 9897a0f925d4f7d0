//! Prometheus metrics (`GET /metrics`, text exposition format): requests by
//! module and status class, request durations, instances in flight, queue
//! depth, refusals and timeouts, guest failures by kind, compile times and
//! fuel used, and the per-client rate limits (refusals by route, never by
//! address; the bucket table's size).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::runtime::{Exit, Tier};

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels naming a module (`-` for requests no module answered).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModuleLabel {
    /// The module's file name.
    pub module: String,
}

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The module's file name, or `-`.
    pub module: String,
    /// `2xx`, `4xx`, `5xx`…
    pub status: &'static str,
}

/// Labels of a guest that did not end with exit code 0.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The module's file name.
    pub module: String,
    /// `exit`, `trap`, `memory`, `fuel` or `timeout`.
    pub kind: String,
}

/// Labels of the tier a module's code is of.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabels {
    /// The module's file name.
    pub module: String,
    /// `winch` (baseline) or `cranelift` (optimized).
    pub tier: &'static str,
}

/// Why a connection was closed as soon as it was accepted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabel {
    /// `max_connections` or `max_connections_per_client`.
    pub reason: &'static str,
}

/// Labels of a rate-limit scope: a route's path, or what stands for the
/// modules or scripts folder.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// The scope.
    pub route: String,
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<ModuleLabel, Histogram>,
    instances: Gauge,
    queued: Gauge,
    refused: Counter,
    shutdown_refusals: Counter,
    connections_refused: Family<RefusalLabel, Counter>,
    timeouts: Counter,
    failures: Family<FailureLabels, Counter>,
    compile_seconds: Family<ModuleLabel, Gauge<f64, AtomicU64>>,
    tiers: Family<TierLabels, Gauge>,
    fuel: Family<ModuleLabel, Counter>,
    compilations: Gauge,
    rate_limited: Family<RouteLabel, Counter>,
    rate_entries: Gauge,
    rate_capacity: Gauge,
    rate_evictions: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wasm_cgi");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<ModuleLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 4.0, 10))
        });
        let metrics = Self {
            requests,
            durations,
            instances: Gauge::default(),
            queued: Gauge::default(),
            refused: Counter::default(),
            shutdown_refusals: Counter::default(),
            connections_refused: Family::default(),
            timeouts: Counter::default(),
            failures: Family::default(),
            compile_seconds: Family::default(),
            tiers: Family::default(),
            fuel: Family::default(),
            compilations: Gauge::default(),
            rate_limited: Family::default(),
            rate_entries: Gauge::default(),
            rate_capacity: Gauge::default(),
            rate_evictions: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests answered, by module and status class",
            metrics.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request to the last body byte, by module",
            metrics.durations.clone(),
        );
        registry.register(
            "instances_in_flight",
            "Module instances running now",
            metrics.instances.clone(),
        );
        registry.register(
            "queue_depth",
            "Requests waiting for an instance slot",
            metrics.queued.clone(),
        );
        registry.register(
            "overloaded",
            "Requests refused with 503 because no instance slot came free",
            metrics.refused.clone(),
        );
        registry.register(
            "shutdown_refusals",
            "Requests refused with 503 because the server was shutting down",
            metrics.shutdown_refusals.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at once: too many open, in all or from one client",
            metrics.connections_refused.clone(),
        );
        registry.register(
            "timeouts",
            "Guests stopped at their timeout (504 unless the response had started)",
            metrics.timeouts.clone(),
        );
        registry.register(
            "module_failures",
            "Guests that trapped, exited non-zero, hit a limit or timed out",
            metrics.failures.clone(),
        );
        registry.register(
            "module_compile_seconds",
            "How long each module took to load (compile and link)",
            metrics.compile_seconds.clone(),
        );
        registry.register(
            "module_tier",
            "The compiler whose code each module's new instances run: 1 for the tier serving now (winch until cranelift's code is ready)",
            metrics.tiers.clone(),
        );
        registry.register(
            "fuel_consumed",
            "Fuel used by metered guests",
            metrics.fuel.clone(),
        );
        registry.register(
            "compilations",
            "Modules compiled since start-up (never on the request path)",
            metrics.compilations.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused with 429 because their client was over its rate, by route",
            metrics.rate_limited.clone(),
        );
        registry.register(
            "rate_limit_entries",
            "Per-client rate buckets held (never more than rate_limit_capacity)",
            metrics.rate_entries.clone(),
        );
        registry.register(
            "rate_limit_capacity",
            "Per-client rate buckets the fixed-size table holds at most",
            metrics.rate_capacity.clone(),
        );
        registry.register(
            "rate_limit_evictions",
            "Rate buckets replaced before they were full again (a client then starts afresh)",
            metrics.rate_evictions.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Counts a finished request.
    pub fn request_done(&self, module: &str, status: u16, seconds: f64) {
        let labels = RequestLabels {
            module: module.to_owned(),
            status: status_class(status),
        };
        self.requests.get_or_create(&labels).inc();
        let module = ModuleLabel {
            module: labels.module,
        };
        self.durations.get_or_create(&module).observe(seconds);
    }

    /// Counts a request refused because no instance slot came free.
    pub fn overloaded(&self) {
        self.refused.inc();
    }

    /// Counts a request refused because the server is shutting down.
    pub fn refused_shutting_down(&self) {
        self.shutdown_refusals.inc();
    }

    /// Counts a connection closed as soon as it was accepted.
    pub fn connection_refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&RefusalLabel { reason })
            .inc();
    }

    /// A guest instance started (`+1`) or ended (`-1`).
    pub fn instances_add(&self, delta: i64) {
        self.instances.inc_by(delta);
    }

    /// Records how a guest ended (a timeout counts in `timeouts` too) and
    /// the fuel it used.
    pub fn guest_done(&self, module: &str, exit: &Exit, fuel: Option<u64>) {
        if *exit == Exit::TimedOut {
            self.timeouts.inc();
        }
        let kind = match exit {
            Exit::Code(0) => None,
            Exit::Code(_) => Some("exit"),
            Exit::Trap(_) => Some("trap"),
            Exit::MemoryLimit { .. } => Some("memory"),
            Exit::OutOfFuel => Some("fuel"),
            Exit::TimedOut => Some("timeout"),
        };
        if let Some(kind) = kind {
            let labels = FailureLabels {
                module: module.to_owned(),
                kind: kind.to_owned(),
            };
            self.failures.get_or_create(&labels).inc();
        }
        if let Some(fuel) = fuel {
            let labels = ModuleLabel {
                module: module.to_owned(),
            };
            self.fuel.get_or_create(&labels).inc_by(fuel);
        }
    }

    /// Records how long `module` took to load.
    pub fn module_loaded(&self, module: &str, seconds: f64) {
        let labels = ModuleLabel {
            module: module.to_owned(),
        };
        self.compile_seconds.get_or_create(&labels).set(seconds);
    }

    /// Sets which tier serves `module` now, read at scrape time.
    pub fn module_tier(&self, module: &str, tier: Tier) {
        for each in [Tier::Baseline, Tier::Optimized] {
            let labels = TierLabels {
                module: module.to_owned(),
                tier: each.compiler(),
            };
            self.tiers
                .get_or_create(&labels)
                .set(i64::from(each == tier));
        }
    }

    /// Counts a request refused because its client was over its rate in
    /// the scope `route`.
    pub fn rate_limited(&self, route: &str) {
        let labels = RouteLabel {
            route: route.to_owned(),
        };
        self.rate_limited.get_or_create(&labels).inc();
    }

    /// Sets what the rate-limit table holds, read at scrape time:
    /// `entries` of `capacity` buckets, `evictions` since start.
    pub fn rate_limit_table(&self, entries: usize, capacity: usize, evictions: u64) {
        self.rate_entries.set(entries as i64);
        self.rate_capacity.set(capacity as i64);
        self.rate_evictions
            .inc_by(evictions.saturating_sub(self.rate_evictions.get()));
    }

    /// The text exposition, with the gauges read at scrape time set first.
    pub fn render(&self, queued: usize, compilations: u64) -> String {
        self.queued.set(queued as i64);
        self.compilations.set(compilations as i64);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// A status code's class label, `1xx` to `5xx`.
fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_move_and_render() {
        let metrics = Metrics::new();
        metrics.request_done("hello.wasm", 200, 0.001);
        metrics.request_done("-", 503, 0.0);
        metrics.request_done("slow.wasm", 504, 0.0);
        metrics.overloaded();
        metrics.guest_done("trap.wasm", &Exit::Trap("boom".into()), None);
        metrics.guest_done("slow.wasm", &Exit::TimedOut, None);
        metrics.guest_done("spin.wasm", &Exit::OutOfFuel, Some(1000));
        metrics.rate_limited("/api/...");
        metrics.rate_limit_table(3, 16, 5);
        metrics.rate_limit_table(4, 16, 7);
        metrics.module_tier("big.wasm", Tier::Baseline);
        metrics.module_tier("big.wasm", Tier::Optimized);
        let text = metrics.render(3, 2);
        for expected in [
            "wasm_cgi_requests_total{module=\"hello.wasm\",status=\"2xx\"} 1",
            "wasm_cgi_overloaded_total 1",
            "wasm_cgi_shutdown_refusals_total 0",
            "wasm_cgi_timeouts_total 1",
            "wasm_cgi_module_failures_total{module=\"trap.wasm\",kind=\"trap\"} 1",
            "wasm_cgi_module_tier{module=\"big.wasm\",tier=\"cranelift\"} 1",
            "wasm_cgi_module_tier{module=\"big.wasm\",tier=\"winch\"} 0",
            "wasm_cgi_fuel_consumed_total{module=\"spin.wasm\"} 1000",
            "wasm_cgi_queue_depth 3",
            "wasm_cgi_compilations 2",
            "wasm_cgi_request_duration_seconds_count{module=\"hello.wasm\"} 1",
            "wasm_cgi_rate_limited_total{route=\"/api/...\"} 1",
            "wasm_cgi_rate_limit_entries 4",
            "wasm_cgi_rate_limit_capacity 16",
            "wasm_cgi_rate_limit_evictions_total 7",
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
    }
}
