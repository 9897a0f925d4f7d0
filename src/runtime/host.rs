//! The per-request store data: the guest's WASI context and the limiter that
//! bounds its memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime_wasi::p1::WasiP1Ctx;

/// Everything one instance owns. A fresh `Host` is built for every request,
/// so nothing a guest does is visible to the next one.
pub struct Host {
    /// WASI preview 1 state: args, env, stdio, preopened directories.
    pub wasi: WasiP1Ctx,
    /// Bounds linear memory and tables; see [`MemoryLimiter`].
    pub limiter: MemoryLimiter,
}

/// Table elements one instance may grow to. Tables hold function references;
/// no real program needs more, and a hostile one could use them to grow
/// host memory outside the linear-memory limit.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// A [`wasmtime::ResourceLimiter`] that bounds linear memory and records the
/// peak, so callers can report the memory a request used and tell a trap
/// caused by a refused `memory.grow` from any other trap.
pub struct MemoryLimiter {
    max_memory: usize,
    /// Peak linear memory, shared with the caller so it survives the store
    /// (a store dropped on timeout can't be asked any more).
    peak: Arc<AtomicU64>,
    /// The size of the last `memory.grow` that was refused, if any.
    pub refused_grow: Option<usize>,
}

impl MemoryLimiter {
    /// A limiter that refuses to grow linear memory past `max_memory` bytes.
    pub fn new(max_memory: u64, peak: Arc<AtomicU64>) -> Self {
        Self {
            max_memory: usize::try_from(max_memory).unwrap_or(usize::MAX),
            peak,
            refused_grow: None,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.refused_grow = Some(desired);
            return Ok(false);
        }
        self.peak.fetch_max(desired as u64, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
