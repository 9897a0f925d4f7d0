//! The sandbox: one Wasmtime engine tuned for many short-lived
//! instances, the linkers (WASI preview 1 for modules; preview 2 and
//! wasi:http for components), the compile cache and the epoch ticker. Built
//! once at start-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use wasmtime::component::{Component, Linker as ComponentLinker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig,
};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::cache::{CacheOutcome, Compiled, ModuleCache};
use super::detect::{CLI_RUN, HTTP_HANDLER, World};
use super::epoch::EpochTicker;
use super::host::{ComponentHost, Host};
use super::preinit::{InitOptions, Preinitialized, Preinitializer, SNAPSHOT_RECIPE};
use super::program::{COMMAND_ENTRY, Linked, Program};
use super::slices::LongLane;

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
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            fuel_metering: false,
            max_instances: None,
            max_memory: super::limits::RunLimits::default().max_memory,
            cache: ModuleCache::in_memory(),
        }
    }
}

/// The engine, the linkers, the cache and the epoch ticker. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    engine: Engine,
    linker: Arc<Linker<Host>>,
    component_linker: Arc<ComponentLinker<ComponentHost>>,
    options: Arc<SandboxOptions>,
    compilations: Arc<AtomicU64>,
    preinitializer: Preinitializer,
    lane: LongLane,
    _ticker: Arc<EpochTicker>,
}

impl Sandbox {
    /// Builds the engine and the linkers.
    pub fn new(options: SandboxOptions) -> anyhow::Result<Self> {
        let engine = build_engine(&options)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |host: &mut Host| &mut host.wasi)?;
        // All of WASI preview 2 for both worlds, as `wasmtime serve` does:
        // Rust's std imports wasi:cli/environment and exit even in handlers.
        let mut component_linker = ComponentLinker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component_linker)?;
        let preinitializer = Preinitializer::new(
            &engine,
            linker.clone(),
            component_linker.clone(),
            options.fuel_metering,
        )?;
        let ticker = EpochTicker::start(&engine).context("failed to start the epoch ticker")?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            component_linker: Arc::new(component_linker),
            options: Arc::new(options),
            compilations: Arc::default(),
            preinitializer,
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

    /// How many programs this runtime has compiled with Cranelift (cache hits
    /// don't count). Compilation only happens when programs are loaded,
    /// never on the request path.
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
    pub fn load_with(
        &self,
        name: &str,
        wasm: &[u8],
        init: &InitOptions,
    ) -> anyhow::Result<Program> {
        let started = Instant::now();
        let function = init.initializer.resolve(wasm)?;
        let (compiled, outcome) = match &function {
            None => self.options.cache.load_or_compile(&self.engine, wasm)?,
            Some(function) => self.options.cache.load_or_build(
                &self.engine,
                wasm,
                &snapshot_recipe(function),
                || {
                    self.preinitializer
                        .snapshot(name, wasm, function, &init.limits)
                },
            )?,
        };
        if outcome == CacheOutcome::Compiled {
            self.compilations.fetch_add(1, Ordering::Relaxed);
        }
        let preinitialized = function.map(|function| Preinitialized {
            function,
            init_time: (outcome == CacheOutcome::Compiled).then(|| started.elapsed()),
        });
        Ok(self
            .link(name, &compiled)?
            .with_preinitialized(preinitialized))
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
    /// `.cwasm`).
    ///
    /// # Safety
    /// The bytes are native code run as they are: they must come from a
    /// trusted source (the caller's `--allow-precompiled` decision).
    pub unsafe fn load_precompiled(&self, name: &str, cwasm: &[u8]) -> anyhow::Result<Program> {
        // SAFETY: the caller vouches for the bytes; Wasmtime still refuses
        // artifacts from another version or configuration.
        let compiled = unsafe { Compiled::deserialize(&self.engine, cwasm) }?;
        self.link(name, &compiled)
    }

    /// Compiles `wasm` (a module or a component) to a `.cwasm` artifact this
    /// runtime's engine accepts: of its pre-initialized snapshot when `init`
    /// names an initializer or `wasm` exports one.
    pub fn precompile(&self, wasm: &[u8], init: &InitOptions) -> anyhow::Result<Vec<u8>> {
        let snapshot = self.snapshot("precompiled", wasm, init)?;
        let wasm = snapshot.as_ref().map_or(wasm, |(_, snapshot)| snapshot);
        self.compilations.fetch_add(1, Ordering::Relaxed);
        Compiled::precompile(&self.engine, wasm)
    }

    fn link(&self, name: &str, compiled: &Compiled) -> anyhow::Result<Program> {
        let linked = match compiled {
            Compiled::Module(module) => self.link_module(module)?,
            Compiled::Component(component) => self.link_component(component)?,
        };
        Ok(Program::new(
            name,
            self.engine.clone(),
            linked,
            self.options.fuel_metering,
            self.lane.clone(),
        ))
    }

    fn link_module(&self, module: &Module) -> anyhow::Result<Linked> {
        let is_command = matches!(
            module.get_export(COMMAND_ENTRY),
            Some(wasmtime::ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() == 0
        );
        anyhow::ensure!(
            is_command,
            "not a WASI command: it exports no `{COMMAND_ENTRY}` function"
        );
        let pre = self.linker.instantiate_pre(module)?;
        Ok(Linked::Module(pre))
    }

    fn link_component(&self, component: &Component) -> anyhow::Result<Linked> {
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
        let world = World::of(&self.engine, component).with_context(|| {
            format!(
                "a component that is neither a command nor a wasi:http handler: it exports no `{CLI_RUN}x` or `{HTTP_HANDLER}x` instance"
            )
        })?;
        let pre = self.component_linker.instantiate_pre(component)?;
        Ok(match world {
            World::Command => Linked::Command(CommandPre::new(pre)?),
            World::Proxy => Linked::Proxy(ProxyPre::new(pre)?),
        })
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
fn build_engine(options: &SandboxOptions) -> anyhow::Result<Engine> {
    let mut config = Config::new();
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
