//! The process-wide runtime: one Wasmtime engine tuned for many short-lived
//! instances, one WASI linker, the compile cache and the epoch ticker. Built
//! once at start-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig,
};

use super::cache::{CacheOutcome, ModuleCache};
use super::epoch::EpochTicker;
use super::host::Host;
use super::program::{COMMAND_ENTRY, Program};
use super::slices::LongLane;

/// Engine-wide settings, fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Compile fuel metering into every module. Only on when some route has a
    /// fuel budget: metered code runs slower.
    pub fuel_metering: bool,
    /// Instances that may run at once: the pooling allocator reserves this
    /// many slots up front. `None`: allocate on demand (the `run` command).
    pub max_instances: Option<u32>,
    /// The largest linear memory any instance may grow to, in bytes.
    pub max_memory: u64,
    /// Where compiled modules are kept.
    pub cache: ModuleCache,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            fuel_metering: false,
            max_instances: None,
            max_memory: crate::limits::Limits::default().max_memory.0,
            cache: ModuleCache::in_memory(),
        }
    }
}

/// The engine, the linker, the cache and the epoch ticker. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<Host>>,
    options: Arc<RuntimeOptions>,
    compilations: Arc<AtomicU64>,
    lane: LongLane,
    _ticker: Arc<EpochTicker>,
}

impl Runtime {
    /// Builds the engine and the WASI preview 1 linker.
    pub fn new(options: RuntimeOptions) -> anyhow::Result<Self> {
        let engine = build_engine(&options)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |host: &mut Host| &mut host.wasi)?;
        let ticker = EpochTicker::start(&engine).context("failed to start the epoch ticker")?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            options: Arc::new(options),
            compilations: Arc::default(),
            lane: LongLane::new(std::thread::available_parallelism().map_or(1, usize::from)),
            _ticker: Arc::new(ticker),
        })
    }

    /// The underlying Wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The compile cache.
    pub fn cache(&self) -> &ModuleCache {
        &self.options.cache
    }

    /// How many modules this runtime has compiled with Cranelift (cache hits
    /// don't count). Compilation only happens when modules are loaded, never
    /// on the request path.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Compiles `wasm` (binary or text format; or takes it from the cache)
    /// and links it against WASI.
    ///
    /// Fails with a message fit for a log line when the bytes are not a valid
    /// module, when it imports something WASI preview 1 does not provide, or
    /// when it is not a command (no `_start`).
    pub fn load(&self, name: &str, wasm: &[u8]) -> anyhow::Result<Program> {
        let (module, outcome) = self.options.cache.load_or_compile(&self.engine, wasm)?;
        if outcome == CacheOutcome::Compiled {
            self.compilations.fetch_add(1, Ordering::Relaxed);
        }
        self.link(name, &module)
    }

    /// Loads a module precompiled by `wasm-cgi compile` (a `.cwasm`).
    ///
    /// # Safety
    /// The bytes are native code run as they are: they must come from a
    /// trusted source (the caller's `--allow-precompiled` decision).
    pub unsafe fn load_precompiled(&self, name: &str, cwasm: &[u8]) -> anyhow::Result<Program> {
        // SAFETY: the caller vouches for the bytes; Wasmtime still refuses
        // artifacts from another version or configuration.
        let module =
            unsafe { Module::deserialize(&self.engine, cwasm) }.map_err(anyhow::Error::from)?;
        self.link(name, &module)
    }

    /// Compiles `wasm` to a `.cwasm` artifact this runtime's engine accepts.
    pub fn precompile(&self, wasm: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.compilations.fetch_add(1, Ordering::Relaxed);
        self.engine
            .precompile_module(wasm)
            .map_err(anyhow::Error::from)
    }

    fn link(&self, name: &str, module: &Module) -> anyhow::Result<Program> {
        let pre = self
            .linker
            .instantiate_pre(module)
            .map_err(anyhow::Error::from)?;
        let program = Program::new(
            name,
            self.engine.clone(),
            pre,
            self.options.fuel_metering,
            self.lane.clone(),
        );
        anyhow::ensure!(
            program.has_entrypoint(COMMAND_ENTRY),
            "not a WASI command: it exports no `{COMMAND_ENTRY}` function"
        );
        Ok(program)
    }
}

/// Dirtied linear memory a freed pool slot keeps resident for the next
/// instance (past it, pages are returned to the kernel). A Rust hello touches
/// a few dozen pages around its 1 MiB stack.
const KEEP_RESIDENT: usize = 2 << 20;

/// The engine: epoch interruption for deadlines and yields, fuel only when
/// asked, and the pooling allocator (slots reserved up front, copy-on-write
/// memory images) when the address space allows, else on-demand allocation.
fn build_engine(options: &RuntimeOptions) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.consume_fuel(options.fuel_metering);
    let Some(instances) = options.max_instances else {
        return Engine::new(&config).map_err(anyhow::Error::from);
    };
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(instances)
        .total_memories(instances)
        .total_tables(instances)
        .total_stacks(instances)
        .max_memory_size(usize::try_from(options.max_memory).unwrap_or(usize::MAX))
        // Reset a freed slot by rewriting only the pages the guest dirtied
        // (found with the PAGEMAP_SCAN ioctl, Linux 6.7+), up to this much,
        // instead of unmapping them: no TLB shootdowns across cores, and the
        // next instance finds its pages resident, with no page faults.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => Ok(engine),
        Err(error) => {
            tracing::warn!(
                "pooling allocator unavailable for {instances} instances ({error}); allocating on demand"
            );
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&config).map_err(anyhow::Error::from)
        }
    }
}
