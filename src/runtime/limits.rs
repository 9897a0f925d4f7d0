//! The limits one run of a program executes under. They bound the instance
//! itself (time, memory, instructions, output); how many runs may happen at
//! once, and how large a request may be, are the embedder's business.

use std::time::Duration;

/// The bounds of one run. Every run gets its own: nothing is shared between
/// instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Wall-clock time from instantiation to exit; past it the instance is
    /// stopped ([`Exit::TimedOut`](super::Exit::TimedOut)), even inside a
    /// blocking host call.
    pub timeout: Duration,
    /// Bytes of linear memory one instance may grow to; a `memory.grow`
    /// past it fails (and the guest usually traps,
    /// [`Exit::MemoryLimit`](super::Exit::MemoryLimit)).
    pub max_memory: u64,
    /// Instruction budget in Wasmtime fuel units; `None` is unmetered. A
    /// budget needs a runtime built with
    /// [`SandboxOptions::fuel_metering`](super::SandboxOptions::fuel_metering):
    /// asking one of any other runtime is an error, not ignored.
    pub fuel: Option<u64>,
    /// Bytes of output a run may produce: a streamed stdout or a handler's
    /// response body is cut past it (and the instance stopped); captured
    /// stdout and stderr trap past it.
    pub max_output: u64,
}

impl Default for RunLimits {
    /// 30 s, 128 MiB of memory, no fuel budget, 64 MiB of output.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_memory: 128 << 20,
            fuel: None,
            max_output: 64 << 20,
        }
    }
}
