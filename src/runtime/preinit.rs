//! Pre-initialization, Wizer's way: a program that exports an initializer
//! (`wizer.initialize`, or `wizer-initialize`, the default of `wasmtime
//! wizer`) is instantiated once when it is loaded, the initializer runs, and
//! the instance's memories and globals are snapshotted into a new program
//! (plain wasm, with the initialized state as data). That snapshot is what
//! is compiled, cached and instantiated per request, so every request still
//! gets a fresh instance, which starts where the initializer left off.
//!
//! The initializer runs with no arguments, no environment, no files and no
//! sockets, stdout discarded and stderr to the log, under limits of its own
//! (time, memory, fuel). What a snapshot cannot keep is refused: asking for
//! the environment, the arguments or the preopened directories would freeze
//! the empty answers of the initializer's context into every request
//! (wasi-libc caches them), so those calls trap instead. Random numbers and
//! clocks stay available: what the initializer draws from them is the same
//! in every instance of the snapshot.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{Component, Linker as ComponentLinker, WasmList};
use wasmtime::{Engine, FuncType, Linker, Module, Store, Val, ValType};
use wasmtime_wizer::{ComponentInstanceState, InstanceState, SnapshotVal, Wizer};

use super::detect::Kind;
use super::host::{ComponentHost, Host, Limited, MemoryLimiter, component_host};
use super::invocation::{Exit, Invocation, Output, Stdio};
use super::limits::RunLimits;
use super::output::StderrLog;
use super::program::classify;
use super::wasi_ctx::wasi_builder;

/// The initializer names looked for when none is configured, in order:
/// Wizer's convention (Javy, componentize-py and interpreter builds use it),
/// then the default of Wasmtime's own `wasmtime wizer`.
pub const INIT_EXPORTS: [&str; 2] = ["wizer.initialize", "wizer-initialize"];

/// The initializer a WASI reactor exports; run before the pre-initializer,
/// as `wasmtime wizer` does.
const REACTOR_INIT: &str = "_initialize";

/// What shapes a snapshot besides the program and the initializer's name:
/// the crate that takes it and what the initializer may call. Part of the
/// cache key, so a change here never reuses an old snapshot.
pub(crate) const SNAPSHOT_RECIPE: &str =
    "wasmtime-wizer 48.0.8; no args, env, preopens; random and clocks allowed";

/// Bytes of an initializer's stderr that reach the log.
const INIT_STDERR_CAP: usize = 16 * 1024;

/// Which function, if any, pre-initializes a program when it is loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Initializer {
    /// The conventional export ([`INIT_EXPORTS`]) if the program has one;
    /// otherwise the program runs as it is.
    #[default]
    Auto,
    /// This exported function; a program without it is refused.
    Function(String),
    /// None: the program runs as it is, even if it exports an initializer.
    Off,
}

/// How a program is pre-initialized when it is loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitOptions {
    /// Which initializer runs.
    pub initializer: Initializer,
    /// What the initializer may use. Only its timeout, memory and fuel
    /// apply (it writes no output anyone reads).
    pub limits: RunLimits,
}

/// A program's pre-initialization, as `check` and the load log report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preinitialized {
    /// The initializer that ran.
    pub function: String,
    /// How long pre-initializing took (the initializer, the snapshot and
    /// compiling the instrumented program); `None` when the snapshot came
    /// from the compile cache and nothing ran.
    pub init_time: Option<Duration>,
}

impl Initializer {
    /// The initializer to run on `wasm`, if any: fails when a named one is
    /// not an exported function.
    pub fn resolve(&self, wasm: &[u8]) -> anyhow::Result<Option<String>> {
        let exports = || exported_functions(wasm).context("cannot read the program's exports");
        match self {
            Initializer::Off => Ok(None),
            Initializer::Auto => {
                let exports = exports()?;
                Ok(INIT_EXPORTS
                    .iter()
                    .find(|name| exports.iter().any(|export| export == *name))
                    .map(|name| (*name).to_owned()))
            }
            Initializer::Function(name) => {
                anyhow::ensure!(
                    exports()?.iter().any(|export| export == name),
                    "the initializer `{name}` is not an exported function"
                );
                Ok(Some(name.clone()))
            }
        }
    }
}

/// The names of the functions `wasm` exports at its top level (a
/// component's own exports, not those of the modules inside it).
fn exported_functions(wasm: &[u8]) -> anyhow::Result<Vec<String>> {
    use wasmparser::{ComponentExternalKind, ExternalKind, Parser, Payload};
    let mut names = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ExportSection(exports) if depth == 1 => {
                for export in exports {
                    let export = export?;
                    if export.kind == ExternalKind::Func {
                        names.push(export.name.to_owned());
                    }
                }
            }
            Payload::ComponentExportSection(exports) if depth == 1 => {
                for export in exports {
                    let export = export?;
                    if export.kind == ComponentExternalKind::Func {
                        names.push(export.name.name.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// WASI preview 1 calls an initializer may not make (`i`: i32, `I`: i64).
const REFUSED_P1: &[(&str, &str)] = &[
    ("environ_get", "ii"),
    ("environ_sizes_get", "ii"),
    ("args_get", "ii"),
    ("args_sizes_get", "ii"),
    ("fd_prestat_get", "ii"),
    ("fd_prestat_dir_name", "iii"),
    ("path_open", "iiiiiIIii"),
];

/// WASI 0.2 functions an initializer may not call, by interface.
const REFUSED_P2: &[(&str, &[&str])] = &[
    (
        "wasi:cli/environment@0.2.12",
        &["get-environment", "get-arguments", "initial-cwd"],
    ),
    ("wasi:filesystem/preopens@0.2.12", &["get-directories"]),
];

fn refusal(name: &str) -> wasmtime::Error {
    wasmtime::format_err!(
        "the initializer called WASI `{name}`, whose answer a snapshot cannot keep \
         (requests would all see the initializer's empty one)"
    )
}

/// Runs initializers and takes their snapshots: the engine, and linkers
/// whose environment, argument and preopen calls trap. Built once.
#[derive(Clone)]
pub(crate) struct Preinitializer {
    engine: Engine,
    linker: Arc<Linker<Host>>,
    component_linker: Arc<ComponentLinker<ComponentHost>>,
    fuel_metering: bool,
    /// Another engine's, for a program this engine's compiler refuses
    /// (Winch's first, Cranelift's as the fallback).
    fallback: Option<Arc<Preinitializer>>,
}

/// The marker of a program the engine's compiler refused: another
/// compiler may take it.
#[derive(Debug)]
struct NotCompiled(&'static str);

impl std::fmt::Display for NotCompiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Preinitializer {
    /// The initializer's linkers: the request linkers, with the refused
    /// calls shadowed by traps.
    pub(crate) fn new(
        engine: &Engine,
        mut linker: Linker<Host>,
        mut component_linker: ComponentLinker<ComponentHost>,
        fuel_metering: bool,
    ) -> anyhow::Result<Self> {
        linker.allow_shadowing(true);
        for &(name, params) in REFUSED_P1 {
            let params = params.chars().map(|c| match c {
                'I' => ValType::I64,
                _ => ValType::I32,
            });
            let ty = FuncType::new(engine, params, [ValType::I32]);
            linker.func_new("wasi_snapshot_preview1", name, ty, move |_, _, _| {
                Err(refusal(name))
            })?;
        }
        component_linker.allow_shadowing(true);
        for &(interface, functions) in REFUSED_P2 {
            let mut instance = component_linker.instance(interface)?;
            for &name in functions {
                instance.func_new(name, move |_, _, _, _| Err(refusal(name)))?;
            }
        }
        Ok(Self {
            engine: engine.clone(),
            linker: Arc::new(linker),
            component_linker: Arc::new(component_linker),
            fuel_metering,
            fallback: None,
        })
    }

    /// This preinitializer, handing the programs its compiler refuses to
    /// `fallback`.
    pub(crate) fn with_fallback(mut self, fallback: Preinitializer) -> Self {
        self.fallback = Some(Arc::new(fallback));
        self
    }

    /// Runs `function` of `wasm` (a core module or a component) once and
    /// returns the snapshot. Blocking: the initializer runs on a thread of
    /// its own, so this may be called from anywhere.
    pub(crate) fn snapshot(
        &self,
        name: &str,
        wasm: &[u8],
        function: &str,
        limits: &RunLimits,
    ) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(
            limits.fuel.is_none() || self.fuel_metering,
            "a fuel budget needs a runtime built with fuel metering (SandboxOptions::fuel_metering)"
        );
        let snapshot = std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("preinit".into())
                .spawn_scoped(scope, || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .context("cannot start the initializer's runtime")?;
                    runtime.block_on(self.run(name, wasm, function, limits))
                })
                .context("cannot start the initializer's thread")?;
            thread
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the initializer's thread panicked")))
        });
        match (snapshot, &self.fallback) {
            (Err(error), Some(fallback)) if error.downcast_ref::<NotCompiled>().is_some() => {
                tracing::info!(
                    module = %name,
                    "Winch cannot compile it for pre-initialization ({}): using Cranelift",
                    error.root_cause()
                );
                fallback.snapshot(name, wasm, function, limits)
            }
            (snapshot, _) => snapshot,
        }
    }

    async fn run(
        &self,
        name: &str,
        wasm: &[u8],
        function: &str,
        limits: &RunLimits,
    ) -> anyhow::Result<Vec<u8>> {
        let mut wizer = Wizer::new();
        wizer.init_func(function);
        let peak = Arc::new(AtomicU64::new(0));
        let limiter = MemoryLimiter::new(limits.max_memory, peak);
        let invocation = Invocation::default();
        let stdio = Stdio {
            stdout: Output::Discard,
            stderr: Output::Log(StderrLog::new(
                name.into(),
                "pre-initialization".into(),
                INIT_STDERR_CAP,
            )),
        };
        let mut builder = wasi_builder(&invocation, stdio)?;
        let snapshot = match Kind::of_wasm(wasm) {
            Kind::Module => {
                let host = Host {
                    wasi: builder.build_p1(),
                    limiter,
                };
                let store = self.store(host, limits)?;
                let run = self.run_module(&wizer, store, wasm, function);
                tokio::time::timeout(limits.timeout, run).await
            }
            Kind::Component => {
                let host = component_host(builder, limiter, &invocation);
                let store = self.store(host, limits)?;
                let run = self.run_component(&wizer, store, wasm, function);
                tokio::time::timeout(limits.timeout, run).await
            }
        };
        let failed = |exit: Exit| anyhow::anyhow!("the initializer `{function}` {exit}");
        match snapshot {
            Err(_elapsed) => Err(failed(Exit::TimedOut)),
            Ok(Err(Failure::Load(error))) => Err(error),
            Ok(Err(Failure::Run(error, refused_grow))) => {
                // The cause, without the wasm backtrace: a load error is
                // one log line.
                let cause = error.root_cause().to_string();
                let exit = match classify(error, refused_grow) {
                    Exit::Trap(_) => Exit::Trap(cause),
                    exit => exit,
                };
                Err(failed(exit))
            }
            Ok(Ok(snapshot)) => Ok(snapshot),
        }
    }

    /// A store for the initializer: its memory limiter, a yield at every
    /// epoch tick (so its timeout can stop it), and its fuel.
    fn store<T: Limited>(&self, host: T, limits: &RunLimits) -> anyhow::Result<Store<T>> {
        let mut store = Store::new(&self.engine, host);
        store.limiter(|host| host.limiter());
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        if self.fuel_metering {
            store.set_fuel(limits.fuel.unwrap_or(u64::MAX))?;
        }
        Ok(store)
    }

    async fn run_module(
        &self,
        wizer: &Wizer,
        mut store: Store<Host>,
        wasm: &[u8],
        function: &str,
    ) -> Result<Vec<u8>, Failure> {
        let (cx, instrumented) = wizer
            .instrument(wasm)
            .map_err(|error| Failure::load(error, "cannot pre-initialize this module"))?;
        let module = Module::new(&self.engine, &instrumented).map_err(|error| {
            Failure::not_compiled(error, "cannot compile the instrumented module")
        })?;
        let instance = self
            .linker
            .instantiate_async(&mut store, &module)
            .await
            .map_err(|error| Failure::load(error, "cannot instantiate the module"))?;
        let init = instance
            .get_typed_func::<(), ()>(&mut store, function)
            .map_err(|_| Failure::not_an_initializer(function))?;
        let reactor = instance
            .get_typed_func::<(), ()>(&mut store, REACTOR_INIT)
            .ok();
        let called = async {
            if let Some(reactor) = reactor {
                reactor.call_async(&mut store, ()).await?;
            }
            init.call_async(&mut store, ()).await
        }
        .await;
        if let Err(error) = called {
            return Err(Failure::Run(error, store.data_mut().limiter().refused_grow));
        }
        let mut state = ModuleState {
            store: &mut store,
            instance,
        };
        wizer
            .snapshot(&cx, &mut state)
            .await
            .map_err(|error| Failure::load(error, "cannot take the snapshot"))
    }

    async fn run_component(
        &self,
        wizer: &Wizer,
        mut store: Store<ComponentHost>,
        wasm: &[u8],
        function: &str,
    ) -> Result<Vec<u8>, Failure> {
        let (cx, instrumented) = wizer
            .instrument_component(wasm)
            .map_err(|error| Failure::load(error, "cannot pre-initialize this component"))?;
        let component = Component::new(&self.engine, &instrumented).map_err(|error| {
            Failure::not_compiled(error, "cannot compile the instrumented component")
        })?;
        let instance = self
            .component_linker
            .instantiate_async(&mut store, &component)
            .await
            .map_err(|error| Failure::load(error, "cannot instantiate the component"))?;
        let init = instance
            .get_typed_func::<(), ()>(&mut store, function)
            .map_err(|_| Failure::not_an_initializer(function))?;
        if let Err(error) = init.call_async(&mut store, ()).await {
            return Err(Failure::Run(error, store.data_mut().limiter().refused_grow));
        }
        let mut state = ComponentState {
            store: &mut store,
            instance,
        };
        wizer
            .snapshot_component(&cx, &mut state)
            .await
            .map_err(|error| Failure::load(error, "cannot take the snapshot"))
    }
}

/// Why pre-initialization failed: the program could not be prepared, or
/// the initializer itself failed (with the refused `memory.grow`, if any).
enum Failure {
    Load(anyhow::Error),
    Run(wasmtime::Error, Option<usize>),
}

impl Failure {
    fn load(error: wasmtime::Error, context: &'static str) -> Self {
        Failure::Load(anyhow::Error::from(error).context(context))
    }

    fn not_compiled(error: wasmtime::Error, context: &'static str) -> Self {
        Failure::Load(anyhow::Error::from(error).context(NotCompiled(context)))
    }

    fn not_an_initializer(function: &str) -> Self {
        Failure::Load(anyhow::anyhow!(
            "the initializer `{function}` is not a function taking and returning nothing"
        ))
    }
}

/// A module instance's state, as Wizer reads it for the snapshot.
struct ModuleState<'a> {
    store: &'a mut Store<Host>,
    instance: wasmtime::Instance,
}

impl InstanceState for ModuleState<'_> {
    async fn global_get(&mut self, name: &str, _type_hint: wasmtime_wizer::ValType) -> SnapshotVal {
        // Wizer only asks for the globals it exported while instrumenting,
        // of the number types it supports (it refuses the others).
        let global = self
            .instance
            .get_global(&mut *self.store, name)
            .expect("the instrumented module exports its globals");
        match global.get(&mut *self.store) {
            Val::I32(x) => SnapshotVal::I32(x),
            Val::I64(x) => SnapshotVal::I64(x),
            Val::F32(x) => SnapshotVal::F32(x),
            Val::F64(x) => SnapshotVal::F64(x),
            Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            other => unreachable!("wizer refuses globals of type {:?}", other.ty(&*self.store)),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        let memory = self
            .instance
            .get_memory(&mut *self.store, name)
            .expect("the instrumented module exports its memories");
        contents(memory.data(&*self.store));
    }
}

/// A component instance's state: Wizer reads it through accessor functions
/// it added to the component while instrumenting it.
struct ComponentState<'a> {
    store: &'a mut Store<ComponentHost>,
    instance: wasmtime::component::Instance,
}

impl ComponentState<'_> {
    async fn call<R>(&mut self, instance: &str, func: &str) -> R
    where
        R: wasmtime::component::Lift + Send + Sync + 'static,
    {
        let accessors = self
            .instance
            .get_export_index(&mut *self.store, None, instance)
            .expect("the instrumented component exports its accessors");
        let index = self
            .instance
            .get_export_index(&mut *self.store, Some(&accessors), func)
            .expect("the instrumented component exports its accessors");
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, index)
            .expect("accessors have the types wizer gave them");
        // The accessors only read memory or a global: they cannot fail.
        func.call_async(&mut *self.store, ())
            .await
            .expect("a snapshot accessor failed")
            .0
    }
}

impl ComponentInstanceState for ComponentState<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        let list: WasmList<u8> = self.call(instance, func).await;
        contents(list.as_le_slice(&*self.store));
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func).await.to_bits()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func).await.to_bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(exports: &str) -> Vec<u8> {
        wat::parse_str(format!("(module {exports} (func (export \"_start\")))")).unwrap()
    }

    #[test]
    fn the_conventional_initializer_is_found_and_a_named_one_must_exist() {
        let wizer = module(r#"(func (export "wizer.initialize")) (func (export "other"))"#);
        let plain = module("");
        assert_eq!(
            Initializer::Auto.resolve(&wizer).unwrap().as_deref(),
            Some("wizer.initialize")
        );
        assert_eq!(Initializer::Auto.resolve(&plain).unwrap(), None);
        assert_eq!(Initializer::Off.resolve(&wizer).unwrap(), None);
        let other = Initializer::Function("other".into());
        assert_eq!(other.resolve(&wizer).unwrap().as_deref(), Some("other"));
        let error = other.resolve(&plain).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`other` is not an exported function"),
            "{error:#}"
        );
        let dashed = module(r#"(func (export "wizer-initialize"))"#);
        assert_eq!(
            Initializer::Auto.resolve(&dashed).unwrap().as_deref(),
            Some("wizer-initialize")
        );
    }

    #[test]
    fn only_a_components_own_exports_count() {
        // The inner module exports `wizer.initialize`; the component doesn't.
        let component =
            wat::parse_str(r#"(component (core module (func (export "wizer.initialize"))))"#)
                .unwrap();
        assert_eq!(Initializer::Auto.resolve(&component).unwrap(), None);
    }
}
