//! The per-request store data: the guest's WASI context (preview 1 for core
//! modules, preview 2 and wasi:http for components) and the limiter that
//! bounds its memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::invocation::Invocation;
use super::outbound::OutboundPolicy;

// Resources live in host memory, outside `max_memory`, and open files hold
// the server's own descriptors: each instance gets a bounded share, and an
// exhausted one is an error to the guest, never to the server.

/// Resources (streams, fields, requests, open files...) one component
/// instance may hold at once. Real programs hold a few dozen.
const MAX_RESOURCES: usize = 1024;

/// Bytes one wasi:http `fields` may hold (the largest request head the
/// server reads is the same): with [`MAX_RESOURCES`], at most 64 MiB of
/// header maps per instance, where the default was 4096 x 128 KiB.
const MAX_FIELDS_SIZE: usize = 64 * 1024;

/// Everything one core-module instance owns. A fresh `Host` is built for
/// every request, so nothing a guest does is visible to the next one.
pub struct Host {
    /// WASI preview 1 state: args, env, stdio, preopened directories.
    pub wasi: WasiP1Ctx,
    /// Bounds linear memory and tables; see [`MemoryLimiter`].
    pub limiter: MemoryLimiter,
}

/// Everything one component instance owns, fresh per request like [`Host`].
pub struct ComponentHost {
    /// WASI preview 2 state: args, env, stdio, preopened directories.
    pub wasi: WasiCtx,
    /// The component's resources (streams, requests, fields...).
    pub table: ResourceTable,
    /// wasi:http state.
    pub http: WasiHttpCtx,
    /// Which outbound requests may go out.
    pub outbound: OutboundPolicy,
    /// Bounds linear memory and tables; see [`MemoryLimiter`].
    pub limiter: MemoryLimiter,
}

impl WasiView for ComponentHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentHost {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Store data with a [`MemoryLimiter`]: what every run sets up the same way.
pub trait Limited: Send + 'static {
    /// The instance's limiter.
    fn limiter(&mut self) -> &mut MemoryLimiter;
}

impl Limited for Host {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
}

impl Limited for ComponentHost {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
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

/// Store data for a component: WASI 0.2 from `builder`, wasi:http with
/// bounded resources, and the outbound policy from `invocation`.
pub(crate) fn component_host(
    mut builder: WasiCtxBuilder,
    limiter: MemoryLimiter,
    invocation: &Invocation,
) -> ComponentHost {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    let mut http = WasiHttpCtx::new();
    http.set_field_size_limit(MAX_FIELDS_SIZE);
    ComponentHost {
        wasi: builder.build(),
        table,
        http,
        outbound: OutboundPolicy::new(invocation.allowed_hosts.clone(), invocation.limits.timeout),
        limiter,
    }
}
