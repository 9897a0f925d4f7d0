//! Tiered compilation. A new program is first compiled by Winch, Wasmtime's
//! baseline compiler (tens of times faster to compile than Cranelift, its
//! code a few times slower), and served at once; Cranelift then compiles it
//! again in the background and new instances switch to the optimized code,
//! while instances already running finish on the code they started with.
//!
//! The background compiles run on the [`Optimizer`]: a small pool of
//! threads at the lowest CPU priority, so they use the cores requests leave
//! idle and never take them from requests. Cranelift's own parallelism
//! stays inside that pool.

use std::sync::Arc;

use super::priority::lower_priority;

/// The optimizer threads' nice value: the lowest priority there is.
const OPTIMIZER_NICE: i32 = 19;

/// Which compiler made the code a program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Winch: compiled fast, runs slower. Served until the optimized code
    /// is ready.
    Baseline,
    /// Cranelift: compiled slower, runs fast.
    Optimized,
}

impl Tier {
    /// The compiler's name, as the logs and metrics give it: `winch` or
    /// `cranelift`.
    pub fn compiler(self) -> &'static str {
        match self {
            Tier::Baseline => "winch",
            Tier::Optimized => "cranelift",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.compiler())
    }
}

/// Which tiers a sandbox compiles programs with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tiering {
    /// Cranelift only: a program is served once optimized (what
    /// `wasmtime run` does).
    #[default]
    Off,
    /// Winch first, served at once; Cranelift in the background. A program
    /// whose optimized code is in the cache is loaded from it directly; one
    /// Winch cannot compile (a proposal it lacks) goes straight to
    /// Cranelift.
    On,
    /// Winch only (a program Winch cannot compile still gets Cranelift):
    /// for tests and for comparing the tiers.
    Baseline,
}

/// The pool the optimized tier is compiled on in the background.
#[derive(Clone)]
pub(crate) struct Optimizer {
    pool: Arc<rayon::ThreadPool>,
}

impl Optimizer {
    /// A pool of `threads` threads at the lowest CPU priority.
    pub(crate) fn new(threads: usize) -> anyhow::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("optimizer-{i}"))
            .start_handler(|_| lower_priority(OPTIMIZER_NICE))
            .build()?;
        Ok(Self {
            pool: Arc::new(pool),
        })
    }

    /// The pool for a machine of `cores` cores: a quarter of them, at least
    /// one.
    pub(crate) fn for_cores(cores: usize) -> anyhow::Result<Self> {
        Self::new(cores / 4)
    }

    /// Runs `job` on the pool, after the jobs before it. Wasmtime's parallel
    /// compilation inside `job` stays on the pool's threads.
    pub(crate) fn submit(&self, job: impl FnOnce() + Send + 'static) {
        self.pool.spawn(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimizer_threads_run_at_the_lowest_priority() {
        let optimizer = Optimizer::new(1).unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        optimizer.submit(move || sender.send(super::super::priority::nice()).unwrap());
        assert_eq!(receiver.recv().unwrap(), 19);
    }

    #[test]
    fn tiers_are_named_by_their_compiler() {
        assert_eq!(Tier::Baseline.to_string(), "winch");
        assert_eq!(Tier::Optimized.to_string(), "cranelift");
    }
}
