//! The sandbox: Wasmtime engines tuned for many short-lived instances
//! (Cranelift's, and Winch's when compilation is tiered, see `tiers`), the
//! linkers (WASI preview 1 for modules; preview 2 and wasi:http for
//! components), the compile cache, the optimizer and the epoch ticker.
//! Built once at start-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use wasmtime::component::{Component, Linker as ComponentLinker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig,
    Strategy,
};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::cache::{CacheOutcome, Compiled, ModuleCache};
use super::detect::{CLI_RUN, HTTP_HANDLER, World};
use super::epoch::EpochTicker;
use super::host::{ComponentHost, Host};
use super::limits::RunLimits;
use super::preinit::{InitOptions, Preinitialized, Preinitializer, SNAPSHOT_RECIPE};
use super::program::{COMMAND_ENTRY, Code, Linked, LinkedModule, Program};
use super::slices::LongLane;
use super::tiers::{Optimizer, Tier, Tiering};

/// Engine-wide settings, fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
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
    /// Which compilers programs are compiled with (see [`Tiering`]).
    pub tiering: Tiering,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            fuel_metering: false,
            max_instances: None,
            max_memory: RunLimits::default().max_memory,
            cache: ModuleCache::in_memory(),
            tiering: Tiering::Off,
        }
    }
}

/// One compiler's engine and the linkers made for it (a program compiled by
/// an engine is linked and instantiated by that engine only).
#[derive(Clone)]
struct Compiler {
    engine: Engine,
    linker: Arc<Linker<Host>>,
    component_linker: Arc<ComponentLinker<ComponentHost>>,
    tier: Tier,
}

impl Compiler {
    /// The engine of `tier` with `options`, and WASI's linkers for it.
    fn new(options: &SandboxOptions, tier: Tier) -> anyhow::Result<Self> {
        let engine = build_engine(options, tier)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |host: &mut Host| &mut host.wasi)?;
        // All of WASI preview 2 for both worlds, as `wasmtime serve` does:
        // Rust's std imports wasi:cli/environment and exit even in handlers.
        let mut component_linker = ComponentLinker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component_linker)?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            component_linker: Arc::new(component_linker),
            tier,
        })
    }
}

/// The engines, the linkers, the cache, the optimizer and the epoch ticker.
/// Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    optimized: Compiler,
    /// Winch's engine, when tiering is on (or baseline only).
    baseline: Option<Compiler>,
    options: Arc<SandboxOptions>,
    compilations: Arc<AtomicU64>,
    preinitializer: Preinitializer,
    /// Compiles the optimized tier in the background (tiering on).
    optimizer: Option<Optimizer>,
    lane: LongLane,
    _ticker: Arc<EpochTicker>,
}

impl Sandbox {
    /// Builds the engines and the linkers.
    pub fn new(options: SandboxOptions) -> anyhow::Result<Self> {
        let optimized = Compiler::new(&options, Tier::Optimized)?;
        let baseline = match options.tiering {
            Tiering::Off => None,
            Tiering::On | Tiering::Baseline => Some(Compiler::new(&options, Tier::Baseline)?),
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let optimizer = match options.tiering {
            Tiering::On => Some(Optimizer::for_cores(cores)?),
            Tiering::Off | Tiering::Baseline => None,
        };
        // Initializers run on Winch's code when there is a baseline tier:
        // the program is compiled once more only to run them.
        let optimized_init = preinitializer_of(&optimized, options.fuel_metering)?;
        let preinitializer = match &baseline {
            Some(baseline) => {
                preinitializer_of(baseline, options.fuel_metering)?.with_fallback(optimized_init)
            }
            None => optimized_init,
        };
        let engines: Vec<&Engine> = std::iter::once(&optimized.engine)
            .chain(baseline.as_ref().map(|baseline| &baseline.engine))
            .collect();
        let ticker = EpochTicker::start(&engines).context("failed to start the epoch ticker")?;
        Ok(Self {
            optimized,
            baseline,
            options: Arc::new(options),
            compilations: Arc::default(),
            preinitializer,
            optimizer,
            lane: LongLane::low_priority(cores),
            _ticker: Arc::new(ticker),
        })
    }

    /// The Wasmtime engine of the optimized tier (Cranelift's): the one
    /// `.cwasm` artifacts are made for.
    pub fn engine(&self) -> &Engine {
        &self.optimized.engine
    }

    /// The compile cache.
    pub fn cache(&self) -> &ModuleCache {
        &self.options.cache
    }

    /// Which compilers programs are compiled with.
    pub fn tiering(&self) -> Tiering {
        self.options.tiering
    }

    /// How many programs this runtime has compiled, of either tier (cache
    /// hits don't count). Compilation only happens when programs are
    /// loaded (and in the background, for the optimized tier), never on the
    /// request path.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Compiles `wasm` (or takes it from the cache), a core module or a
    /// component as its header says, and links it against WASI. A program
    /// that exports an initializer ([`INIT_EXPORTS`](super::INIT_EXPORTS))
    /// is pre-initialized first, under the default limits; see
    /// [`Sandbox::load_with`].
    ///
    /// Fails with a message fit for a log line when the bytes are not valid,
    /// when it imports something the host does not provide, or when it is
    /// neither a command (`_start`, `wasi:cli/run`) nor a wasi:http handler.
    pub fn load(&self, name: &str, wasm: &[u8]) -> anyhow::Result<Program> {
        self.load_with(name, wasm, &InitOptions::default())
    }

    /// [`Sandbox::load`], pre-initializing as `init` says: the initializer
    /// runs once, and the snapshot it leaves is compiled, cached (keyed by
    /// `wasm`, the initializer and the engine, so a restart runs nothing)
    /// and instantiated per request. An initializer that fails (traps,
    /// runs past its limits, calls what a snapshot cannot keep) fails the
    /// load: the program is never served half-initialized.
    ///
    /// With [`Tiering::On`], the program returned runs Winch's code (unless
    /// Cranelift's is in the cache, or Winch cannot compile it), and the
    /// optimized code replaces it in the background ([`Program::tier`]).
    pub fn load_with(
        &self,
        name: &str,
        wasm: &[u8],
        init: &InitOptions,
    ) -> anyhow::Result<Program> {
        let started = Instant::now();
        let mut source = Source {
            name: name.into(),
            wasm: wasm.into(),
            function: init.initializer.resolve(wasm)?,
            limits: init.limits,
            snapshot: None,
        };
        let recipe = source.recipe();
        // With tiering on, a warm cache gives the optimized code at once.
        let warm = match (&self.baseline, self.options.tiering) {
            (Some(_), Tiering::On) => {
                self.options
                    .cache
                    .lookup(&self.optimized.engine, wasm, &recipe)
            }
            _ => None,
        };
        let (compiled, outcome, tier) = if let Some(compiled) = warm {
            (compiled, CacheOutcome::Hit, Tier::Optimized)
        } else if let Some(baseline) = &self.baseline {
            match self.compile(baseline, &mut source, &recipe) {
                Ok((compiled, outcome)) => (compiled, outcome, Tier::Baseline),
                Err(Refusal::Build(error)) => return Err(error),
                Err(Refusal::Compile(error)) => {
                    tracing::info!(
                        module = %name,
                        "Winch cannot compile it ({}): compiling with Cranelift",
                        first_line(&error)
                    );
                    let (compiled, outcome) = self
                        .compile(&self.optimized, &mut source, &recipe)
                        .map_err(Refusal::into_error)?;
                    (compiled, outcome, Tier::Optimized)
                }
            }
        } else {
            let (compiled, outcome) = self
                .compile(&self.optimized, &mut source, &recipe)
                .map_err(Refusal::into_error)?;
            (compiled, outcome, Tier::Optimized)
        };
        let compiler = match tier {
            Tier::Optimized => &self.optimized,
            Tier::Baseline => self.baseline.as_ref().expect("a baseline tier compiled it"),
        };
        let preinitialized = source.function.clone().map(|function| Preinitialized {
            function,
            init_time: (outcome == CacheOutcome::Compiled).then(|| started.elapsed()),
        });
        let program = Program::new(
            name,
            self.link(compiler, &compiled)?,
            self.options.fuel_metering,
            self.lane.clone(),
        )
        .with_preinitialized(preinitialized);
        if tier == Tier::Baseline
            && let Some(optimizer) = &self.optimizer
        {
            self.optimize_later(optimizer, &program, source, recipe);
        }
        Ok(program)
    }

    /// Compiles `source` (or takes it from the cache) with `compiler`.
    fn compile(
        &self,
        compiler: &Compiler,
        source: &mut Source,
        recipe: &str,
    ) -> Result<(Compiled, CacheOutcome), Refusal> {
        let mut build_error = None;
        let wasm = source.wasm.clone();
        let compiled = self
            .options
            .cache
            .load_or_build(&compiler.engine, &wasm, recipe, || {
                source.bytes(&self.preinitializer).map_err(|error| {
                    build_error = Some(format!("{error:#}"));
                    error
                })
            });
        match compiled {
            Ok((compiled, outcome)) => {
                if outcome == CacheOutcome::Compiled {
                    self.compilations.fetch_add(1, Ordering::Relaxed);
                }
                Ok((compiled, outcome))
            }
            Err(error) if build_error.is_some() => Err(Refusal::Build(error)),
            Err(error) => Err(Refusal::Compile(error)),
        }
    }

    /// Queues the optimized compile of `program` on the optimizer: when it
    /// is done, new runs of the program take Cranelift's code. Skipped if
    /// the program is gone (replaced or removed) by then.
    fn optimize_later(
        &self,
        optimizer: &Optimizer,
        program: &Program,
        mut source: Source,
        recipe: String,
    ) {
        let sandbox = self.clone();
        let slot = program.code_slot();
        optimizer.submit(move || {
            if !slot.is_alive() {
                return;
            }
            let started = Instant::now();
            let optimized = sandbox
                .compile(&sandbox.optimized, &mut source, &recipe)
                .map_err(Refusal::into_error)
                .and_then(|(compiled, _)| sandbox.link(&sandbox.optimized, &compiled));
            match optimized {
                Ok(code) => {
                    if slot.replace(code) {
                        tracing::info!(
                            module = %source.name,
                            tier = %Tier::Optimized,
                            compile_ms = started.elapsed().as_millis() as u64,
                            "module optimized"
                        );
                    }
                }
                Err(error) => tracing::warn!(
                    module = %source.name,
                    "cannot compile the optimized tier, serving Winch's code: {error:#}"
                ),
            }
        });
    }

    /// The pre-initialized snapshot of `wasm` as `init` says (a portable
    /// `.wasm`, not native code), with the initializer that made it;
    /// `None` when `init` names no initializer and `wasm` exports none.
    pub fn snapshot(
        &self,
        name: &str,
        wasm: &[u8],
        init: &InitOptions,
    ) -> anyhow::Result<Option<(String, Vec<u8>)>> {
        let Some(function) = init.initializer.resolve(wasm)? else {
            return Ok(None);
        };
        let snapshot = self
            .preinitializer
            .snapshot(name, wasm, &function, &init.limits)?;
        Ok(Some((function, snapshot)))
    }

    /// Loads a module or component precompiled by `wasm-cgi compile` (a
    /// `.cwasm`, Cranelift's code).
    ///
    /// # Safety
    /// The bytes are native code run as they are: they must come from a
    /// trusted source (the caller's `--allow-precompiled` decision).
    pub unsafe fn load_precompiled(&self, name: &str, cwasm: &[u8]) -> anyhow::Result<Program> {
        // SAFETY: the caller vouches for the bytes; Wasmtime still refuses
        // artifacts from another version or configuration.
        let compiled = unsafe { Compiled::deserialize(&self.optimized.engine, cwasm) }?;
        Ok(Program::new(
            name,
            self.link(&self.optimized, &compiled)?,
            self.options.fuel_metering,
            self.lane.clone(),
        ))
    }

    /// Compiles `wasm` (a module or a component) to a `.cwasm` artifact this
    /// runtime's engine accepts: of its pre-initialized snapshot when `init`
    /// names an initializer or `wasm` exports one.
    pub fn precompile(&self, wasm: &[u8], init: &InitOptions) -> anyhow::Result<Vec<u8>> {
        let snapshot = self.snapshot("precompiled", wasm, init)?;
        let wasm = snapshot.as_ref().map_or(wasm, |(_, snapshot)| snapshot);
        self.compilations.fetch_add(1, Ordering::Relaxed);
        Compiled::precompile(&self.optimized.engine, wasm)
    }

    fn link(&self, compiler: &Compiler, compiled: &Compiled) -> anyhow::Result<Code> {
        let linked = match compiled {
            Compiled::Module(module) => link_module(compiler, module)?,
            Compiled::Component(component) => link_component(compiler, component)?,
        };
        Ok(Code {
            engine: compiler.engine.clone(),
            linked,
            tier: compiler.tier,
        })
    }
}

fn link_module(compiler: &Compiler, module: &Module) -> anyhow::Result<Linked> {
    let is_command = matches!(
        module.get_export(COMMAND_ENTRY),
        Some(wasmtime::ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() == 0
    );
    anyhow::ensure!(
        is_command,
        "not a WASI command: it exports no `{COMMAND_ENTRY}` function"
    );
    let start = module
        .get_export_index(COMMAND_ENTRY)
        .context("the command's entry point has no index")?;
    let pre = compiler.linker.instantiate_pre(module)?;
    Ok(Linked::Module(LinkedModule { pre, start }))
}

fn link_component(compiler: &Compiler, component: &Component) -> anyhow::Result<Linked> {
    // What would fail every instantiation from the pool fails the load.
    if let Some(needs) = component.resources_required() {
        anyhow::ensure!(
            needs.num_memories <= MEMORIES_PER_SLOT,
            "the component has {} linear memories; at most {MEMORIES_PER_SLOT} are allowed",
            needs.num_memories
        );
        anyhow::ensure!(
            needs.num_tables <= TABLES_PER_SLOT,
            "the component has {} tables; at most {TABLES_PER_SLOT} are allowed",
            needs.num_tables
        );
    }
    let world = World::of(&compiler.engine, component).with_context(|| {
        format!(
            "a component that is neither a command nor a wasi:http handler: it exports no `{CLI_RUN}x` or `{HTTP_HANDLER}x` instance"
        )
    })?;
    let pre = compiler.component_linker.instantiate_pre(component)?;
    Ok(match world {
        World::Command => Linked::Command(CommandPre::new(pre)?),
        World::Proxy => Linked::Proxy(ProxyPre::new(pre)?),
    })
}

/// The preinitializer of `compiler`'s engine.
fn preinitializer_of(compiler: &Compiler, fuel_metering: bool) -> anyhow::Result<Preinitializer> {
    Preinitializer::new(
        &compiler.engine,
        (*compiler.linker).clone(),
        (*compiler.component_linker).clone(),
        fuel_metering,
    )
}

/// Why a compile failed: making the bytes to compile (the initializer) or
/// compiling them.
enum Refusal {
    Build(anyhow::Error),
    Compile(anyhow::Error),
}

impl Refusal {
    fn into_error(self) -> anyhow::Error {
        match self {
            Refusal::Build(error) | Refusal::Compile(error) => error,
        }
    }
}

/// The first line of an error's message, for a one-line log.
fn first_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    text.lines().next().unwrap_or_default().to_owned()
}

/// What a program is compiled from: its bytes, and the snapshot of its
/// initializer once taken (at most once per load, whichever tier needs it
/// first; the optimizer keeps it until its turn).
struct Source {
    name: Arc<str>,
    wasm: Arc<[u8]>,
    function: Option<String>,
    limits: RunLimits,
    snapshot: Option<Arc<[u8]>>,
}

impl Source {
    /// The cache recipe of what is compiled: `wasm` itself, or its snapshot.
    fn recipe(&self) -> String {
        self.function
            .as_deref()
            .map_or_else(String::new, snapshot_recipe)
    }

    /// The bytes to compile: `wasm`, or its snapshot, taken now if not yet.
    fn bytes(&mut self, preinitializer: &Preinitializer) -> anyhow::Result<Vec<u8>> {
        let Some(function) = &self.function else {
            return Ok(self.wasm.to_vec());
        };
        if let Some(snapshot) = &self.snapshot {
            return Ok(snapshot.to_vec());
        }
        let snapshot: Arc<[u8]> = preinitializer
            .snapshot(&self.name, &self.wasm, function, &self.limits)?
            .into();
        self.snapshot = Some(snapshot.clone());
        Ok(snapshot.to_vec())
    }
}

/// The cache recipe of a snapshot taken by `function`.
fn snapshot_recipe(function: &str) -> String {
    format!("pre-initialized\0{SNAPSHOT_RECIPE}\0{function}")
}

/// Dirtied linear memory a freed pool slot keeps resident for the next
/// instance (past it, pages are returned to the kernel). A Rust hello touches
/// a few dozen pages around its 1 MiB stack.
const KEEP_RESIDENT: usize = 2 << 20;

// What one instance slot reserves is also the most one program may use
// (more is refused at load): every request takes one slot, so however large
// the programs in flight, the pool never runs out before admission does,
// and no request to one program makes another's instantiation fail.

/// Core instances per slot (a Rust wasip2 component uses 3; toolchains that
/// add more adapters and shims, up to a dozen). Only counted, not reserved.
const CORE_INSTANCES_PER_SLOT: u32 = 16;
/// Linear memories per slot (they reserve address space, so the least
/// headroom: a component made with the preview 1 adapter has two).
const MEMORIES_PER_SLOT: u32 = 2;
/// Tables per slot (a Rust wasip2 component uses 2).
const TABLES_PER_SLOT: u32 = 8;

/// The engine: epoch interruption for deadlines and yields, fuel only when
/// asked, and the pooling allocator (slots reserved up front, copy-on-write
/// memory images) when the address space allows, else on-demand allocation.
///
/// The two tiers' engines are alike but for the compiler, each with a pool
/// of its own (a request takes a slot in the pool of the code it runs).
fn build_engine(options: &SandboxOptions, tier: Tier) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    match tier {
        Tier::Baseline => {
            config.strategy(Strategy::Winch);
            // The baseline serves for seconds: its traps name functions
            // without wasm offsets, and native unwinders (profilers) can't
            // walk its frames, for a fifth less compile and load time.
            config.generate_address_map(false);
            config.native_unwind_info(false);
        }
        Tier::Optimized => {
            config.strategy(Strategy::Cranelift);
        }
    }
    config.epoch_interruption(true);
    config.consume_fuel(options.fuel_metering);
    let Some(instances) = options.max_instances else {
        return Engine::new(&config).map_err(anyhow::Error::from);
    };
    let mut pool = PoolingAllocationConfig::new();
    // A core module takes one core instance, memory, table and stack. A
    // component made by Rust's wasm32-wasip2 target takes three core
    // instances (its module and two shims), two tables, one memory and one
    // stack; one made with the preview 1 adapter, two memories. Memories
    // reserve address space, so they get the least headroom.
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_SLOT))
        .total_memories(instances.saturating_mul(MEMORIES_PER_SLOT))
        .total_tables(instances.saturating_mul(TABLES_PER_SLOT))
        .total_stacks(instances)
        .max_core_instances_per_component(CORE_INSTANCES_PER_SLOT)
        .max_memories_per_component(MEMORIES_PER_SLOT)
        .max_tables_per_component(TABLES_PER_SLOT)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A component of `modules` core modules, each with one memory.
    fn component_with_memories(modules: usize) -> Vec<u8> {
        let module = "(core module (memory 1))";
        let parts: String = (0..modules)
            .map(|i| format!("{module} (core instance $i{i} (instantiate {i}))"))
            .collect();
        wat::parse_str(format!("(component {parts})")).unwrap()
    }

    fn hello_command() -> Vec<u8> {
        wat::parse_str(
            r#"(module
                 (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
                 (memory (export "memory") 1)
                 (data (i32.const 16) "hi\n")
                 (func (export "_start")
                   (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 3))
                   (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        )
        .unwrap()
    }

    async fn wait_for_tier(program: &Program, tier: Tier) {
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        while program.tier() != tier {
            assert!(Instant::now() < deadline, "never reached {tier}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_tiered_program_starts_on_winch_then_runs_cranelifts_code() {
        let cache = tempfile::tempdir().unwrap();
        let options = || SandboxOptions {
            tiering: Tiering::On,
            cache: ModuleCache::open(Some(cache.path().join("c"))),
            ..SandboxOptions::default()
        };
        let sandbox = Sandbox::new(options()).unwrap();
        let program = sandbox.load("hi.wasm", &hello_command()).unwrap();
        assert_eq!(program.tier(), Tier::Baseline);
        let run = program.run_captured(Default::default()).await.unwrap();
        assert_eq!(&run.stdout[..], b"hi\n");
        wait_for_tier(&program, Tier::Optimized).await;
        let run = program.run_captured(Default::default()).await.unwrap();
        assert_eq!(&run.stdout[..], b"hi\n");
        assert_eq!(sandbox.compilations(), 2, "one compile per tier");

        // A restart finds Cranelift's code in the cache: nothing compiles.
        let restarted = Sandbox::new(options()).unwrap();
        let program = restarted.load("hi.wasm", &hello_command()).unwrap();
        assert_eq!(program.tier(), Tier::Optimized);
        assert_eq!(restarted.compilations(), 0);
    }

    #[test]
    fn a_module_winch_refuses_is_pre_initialized_and_served_by_cranelift() {
        // A tail call: Cranelift compiles it, Winch does not.
        let wasm = wat::parse_str(
            r#"(module
                 (global $state (mut i32) (i32.const 0))
                 (func $set (global.set $state (i32.const 7)))
                 (func (export "wizer.initialize") return_call $set)
                 (func (export "_start")))"#,
        )
        .unwrap();
        let sandbox = Sandbox::new(SandboxOptions {
            tiering: Tiering::On,
            ..SandboxOptions::default()
        })
        .unwrap();
        let program = sandbox.load("tail.wasm", &wasm).unwrap();
        assert_eq!(program.tier(), Tier::Optimized);
        let preinitialized = program.preinitialized().expect("pre-initialized");
        assert_eq!(preinitialized.function, "wizer.initialize");
    }

    #[tokio::test]
    async fn a_run_in_flight_keeps_the_code_it_started_with() {
        let sandbox = Sandbox::new(SandboxOptions {
            tiering: Tiering::On,
            ..SandboxOptions::default()
        })
        .unwrap();
        let program = sandbox.load("hi.wasm", &hello_command()).unwrap();
        let stdout = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(1024);
        let started = program
            .start(
                Default::default(),
                super::super::Stdio {
                    stdout: super::super::Output::Capture(stdout.clone()),
                    stderr: super::super::Output::Discard,
                },
            )
            .unwrap();
        wait_for_tier(&program, Tier::Optimized).await;
        assert!(
            started.await.exit.is_success(),
            "Winch's code ran to its end"
        );
        assert_eq!(&stdout.contents()[..], b"hi\n");
    }

    #[tokio::test]
    async fn a_fuel_budget_without_fuel_metering_is_an_error_not_ignored() {
        let command = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        let limits = |fuel| super::super::RunLimits {
            fuel,
            ..Default::default()
        };
        let invocation = |fuel| super::super::Invocation {
            limits: limits(fuel),
            ..Default::default()
        };
        let unmetered = Sandbox::new(SandboxOptions::default()).unwrap();
        let program = unmetered.load("spin.wasm", &command).unwrap();
        let error = program
            .run_captured(invocation(Some(1000)))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("fuel metering"), "{error:#}");
        assert!(program.run_captured(invocation(None)).await.is_ok());

        let metered = Sandbox::new(SandboxOptions {
            fuel_metering: true,
            ..SandboxOptions::default()
        })
        .unwrap();
        let program = metered.load("spin.wasm", &command).unwrap();
        let run = program.run_captured(invocation(Some(1000))).await.unwrap();
        assert!(run.outcome.exit.is_success());
        assert!(run.outcome.usage.fuel_consumed.is_some());
    }

    #[test]
    fn a_pool_holds_one_largest_component_per_slot() {
        // Regression: a slot reserved 4 core instances while a component
        // could use 16, so a few requests to one such component made every
        // other instantiation fail.
        let instances = CORE_INSTANCES_PER_SLOT as usize;
        let sandbox = Sandbox::new(SandboxOptions {
            max_instances: Some(2),
            ..SandboxOptions::default()
        })
        .unwrap();
        let engine = sandbox.engine();
        let parts: String = (0..instances)
            .map(|i| format!("(core instance $i{i} (instantiate $m))"))
            .collect();
        let wide = wat::parse_str(format!("(component (core module $m) {parts})")).unwrap();
        let component = wasmtime::component::Component::new(engine, &wide).unwrap();
        let linker = wasmtime::component::Linker::<()>::new(engine);
        let mut stores: Vec<_> = (0..2).map(|_| wasmtime::Store::new(engine, ())).collect();
        for store in &mut stores {
            linker
                .instantiate(&mut *store, &component)
                .expect("each slot holds the largest component");
        }
        let more = wat::parse_str(format!(
            "(component (core module $m) {parts} (core instance $one_more (instantiate $m)))"
        ))
        .unwrap();
        assert!(
            wasmtime::component::Component::new(engine, &more).is_err(),
            "a component larger than a slot is refused when it is compiled"
        );
    }

    #[test]
    fn components_that_cannot_fit_a_slot_are_refused_at_load() {
        let runtime = Sandbox::new(SandboxOptions::default()).unwrap();
        let error = runtime
            .load("wide.wasm", &component_with_memories(3))
            .err()
            .unwrap();
        assert!(error.to_string().contains("3 linear memories"), "{error:#}");
        let error = runtime
            .load("plain.wasm", &component_with_memories(1))
            .err()
            .unwrap();
        assert!(
            error
                .to_string()
                .contains("neither a command nor a wasi:http handler"),
            "{error:#}"
        );
    }

    #[test]
    fn components_are_pre_initialized_too() {
        let component = wat::parse_str(
            r#"(component
                 (core module $m
                   (global $state (mut i32) (i32.const 0))
                   (func (export "init") (global.set $state (i32.const 42)))
                   (func (export "get") (result i32) (global.get $state)))
                 (core instance $i (instantiate $m))
                 (func (export "wizer-initialize") (canon lift (core func $i "init")))
                 (func (export "get") (result s32) (canon lift (core func $i "get"))))"#,
        )
        .unwrap();
        let sandbox = Sandbox::new(SandboxOptions::default()).unwrap();
        let (function, snapshot) = sandbox
            .snapshot("state.wasm", &component, &InitOptions::default())
            .unwrap()
            .expect("the conventional initializer is found");
        assert_eq!(function, "wizer-initialize");
        let get = |wasm: &[u8]| {
            let engine = sandbox.engine();
            let component = Component::new(engine, wasm).unwrap();
            let mut store = wasmtime::Store::new(engine, ());
            store.set_epoch_deadline(1 << 30);
            let instance = ComponentLinker::<()>::new(engine)
                .instantiate(&mut store, &component)
                .unwrap();
            let exported = instance.get_export_index(&mut store, None, "wizer-initialize");
            let get = instance
                .get_typed_func::<(), (i32,)>(&mut store, "get")
                .unwrap();
            (get.call(&mut store, ()).unwrap().0, exported.is_some())
        };
        assert_eq!(get(&component), (0, true));
        assert_eq!(get(&snapshot), (42, false), "state kept, initializer gone");
    }

    #[test]
    fn a_component_initializer_may_not_read_the_environment() {
        let component = wat::parse_str(
            r#"(component
                 (import "wasi:cli/environment@0.2.0" (instance $env
                   (export "get-environment" (func (result (list (tuple string string)))))))
                 (core module $libc
                   (memory (export "memory") 1)
                   (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 1024))
                 (core instance $libc (instantiate $libc))
                 (alias core export $libc "memory" (core memory $memory))
                 (alias core export $libc "realloc" (core func $realloc))
                 (core func $get (canon lower (func $env "get-environment")
                   (memory $memory) (realloc $realloc)))
                 (core module $m
                   (import "env" "get" (func $get (param i32)))
                   (func (export "init") i32.const 0 call $get))
                 (core instance $i (instantiate $m
                   (with "env" (instance (export "get" (func $get))))))
                 (func (export "wizer-initialize") (canon lift (core func $i "init"))))"#,
        )
        .unwrap();
        let sandbox = Sandbox::new(SandboxOptions::default()).unwrap();
        let error = sandbox
            .snapshot("env.wasm", &component, &InitOptions::default())
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("called WASI `get-environment`"),
            "{error:#}"
        );
    }
}
