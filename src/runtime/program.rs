//! A compiled, pre-linked program, and running it once: one fresh store and
//! instance per run, with its limits and deadline. A program is a core
//! module (WASI preview 1), a `wasi:cli/command` component, or a
//! `wasi:http/proxy` component; the first two run as commands, the last
//! answers HTTP requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Instant;

use bytes::Bytes;
use http_body::Body;
use tokio::sync::oneshot;
use tokio::time::error::Elapsed;
use wasmtime::{Engine, Extern, InstancePre, ModuleExport, Store, Trap, TypedFunc};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{I32Exit, WasiView as _};
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use super::detect::World;
use super::guest_run::GuestRun;
use super::host::{ComponentHost, Host, Limited, MemoryLimiter, component_host};
use super::http::HttpCall;
use super::instance::Instance;
use super::invocation::{Exit, Invocation, Outcome, Output, Stdio, Usage};
use super::limits::RunLimits;
use super::output::{OutputReceiver, output_channel};
use super::preinit::Preinitialized;
use super::slices::{LaneHandle, LongLane};
use super::tiers::Tier;
use super::wasi_ctx::wasi_builder;

/// The entry point of a WASI command.
pub const COMMAND_ENTRY: &str = "_start";

/// The initializer a WASI reactor exports; called before a named entry point.
const REACTOR_INIT: &str = "_initialize";

/// Bytes of stdout buffered between a streamed guest and its reader: past
/// this the guest waits (backpressure) instead of the host buffering.
const STDOUT_BUFFER: usize = 256 * 1024;

/// Files and directories one core module may hold open at once: each is a
/// descriptor of the server's own.
const MAX_OPEN_FILES: usize = 128;

/// What a program is, and so how it is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramKind {
    /// A WASI preview 1 core module, run as a command (`_start`).
    Module,
    /// A `wasi:cli/command` component, run as a command (`wasi:cli/run`).
    Command,
    /// A `wasi:http/proxy` component: an HTTP handler.
    Proxy,
}

impl std::fmt::Display for ProgramKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProgramKind::Module => f.write_str("WASI preview 1 module"),
            ProgramKind::Command => World::Command.fmt(f),
            ProgramKind::Proxy => World::Proxy.fmt(f),
        }
    }
}

/// A core module linked against WASI preview 1, its `_start` found once.
#[derive(Clone)]
pub(crate) struct LinkedModule {
    /// The module, linked.
    pub(crate) pre: InstancePre<Host>,
    /// Where its `_start` is (checked at link time to take and return
    /// nothing): no lookup by name and no type check per run.
    pub(crate) start: ModuleExport,
}

/// The program, linked once and ready to instantiate.
pub(crate) enum Linked {
    /// A core module against WASI preview 1.
    Module(LinkedModule),
    /// A command component against WASI preview 2.
    Command(CommandPre<ComponentHost>),
    /// A handler component against WASI preview 2 and wasi:http.
    Proxy(ProxyPre<ComponentHost>),
}

/// A program's code of one tier: the engine that compiled it, linked.
pub(crate) struct Code {
    /// The engine of the tier's compiler: stores are made from it.
    pub(crate) engine: Engine,
    /// The program, linked.
    pub(crate) linked: Linked,
    /// Which compiler made it.
    pub(crate) tier: Tier,
}

/// Where a program's current code is kept: the optimizer replaces it when
/// the optimized tier is ready (see [`CodeSlot`]).
type CodeCell = RwLock<Arc<Code>>;

/// A program compiled once and linked once; every run only instantiates it.
/// Cheap to share: runs in flight keep their `Arc`, so a replaced program
/// finishes its requests on the version they started with. Each run takes
/// the code current when it starts: when the optimized tier replaces the
/// baseline, runs in flight finish on the code they started with.
pub struct Program {
    name: Arc<str>,
    code: Arc<CodeCell>,
    fuel_metering: bool,
    lane: LongLane,
    preinitialized: Option<Preinitialized>,
}

/// What [`Program::run_captured`] gives back.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Everything the guest wrote to stdout.
    pub stdout: Bytes,
    /// Everything the guest wrote to stderr.
    pub stderr: Bytes,
    /// How the run ended and what it used.
    pub outcome: Outcome,
}

impl Program {
    pub(crate) fn new(name: &str, code: Code, fuel_metering: bool, lane: LongLane) -> Self {
        Self {
            name: name.into(),
            code: Arc::new(RwLock::new(Arc::new(code))),
            fuel_metering,
            lane,
            preinitialized: None,
        }
    }

    /// Marks the program as instantiated from a pre-initialized snapshot.
    pub(crate) fn with_preinitialized(mut self, preinitialized: Option<Preinitialized>) -> Self {
        self.preinitialized = preinitialized;
        self
    }

    /// The code runs take now.
    fn code(&self) -> Arc<Code> {
        self.code
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Which tier's code new runs take: [`Tier::Baseline`] until the
    /// optimized code replaces it.
    pub fn tier(&self) -> Tier {
        self.code().tier
    }

    /// The handle the optimizer replaces the code through, which does not
    /// keep the program alive.
    pub(crate) fn code_slot(&self) -> CodeSlot {
        CodeSlot(Arc::downgrade(&self.code))
    }

    /// Whether (and how) the program was pre-initialized at load: its
    /// instances start from the snapshot its initializer left.
    pub fn preinitialized(&self) -> Option<&Preinitialized> {
        self.preinitialized.as_ref()
    }

    /// The program's file name, e.g. `hello.wasm`.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// What the program is: a module, a command component or a handler.
    pub fn kind(&self) -> ProgramKind {
        match self.code().linked {
            Linked::Module(_) => ProgramKind::Module,
            Linked::Command(_) => ProgramKind::Command,
            Linked::Proxy(_) => ProgramKind::Proxy,
        }
    }

    /// Whether the program is a core module exporting a function `name`
    /// taking and returning nothing. Components have no such entry points.
    pub fn has_entrypoint(&self, name: &str) -> bool {
        let code = self.code();
        let Linked::Module(module) = &code.linked else {
            return false;
        };
        matches!(
            module.pre.module().get_export(name),
            Some(wasmtime::ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() == 0
        )
    }

    /// Starts the program as a command with `invocation`, its output going
    /// to `stdio`. Nothing runs until the [`Instance`] is polled.
    ///
    /// An `Err` is a failure to set the run up, before any guest code: a
    /// granted directory that can't be opened, a fuel budget the runtime
    /// does not meter, an entry point on a component, a handler run as a
    /// command. Everything the guest does, traps included, is an
    /// [`Outcome`].
    pub fn start(&self, invocation: Invocation, stdio: Stdio) -> anyhow::Result<Instance> {
        let limits = invocation.limits;
        self.check_limits(&limits)?;
        let (meter, limiter) = self.meter(&limits);
        let mut builder = wasi_builder(&invocation, stdio)?;
        let code = self.code();
        match &code.linked {
            Linked::Module(module) => {
                let mut wasi = builder.build_p1();
                wasi.ctx().table.set_max_capacity(MAX_OPEN_FILES);
                let host = Host { wasi, limiter };
                let (mut store, lane) = self.store(&code.engine, host, &limits)?;
                let module = module.clone();
                let entry = invocation.entrypoint;
                Ok(Instance::new(meter.measure(limits, lane, async move {
                    let result = call_module(&module, &mut store, entry.as_deref()).await;
                    (store, result)
                })))
            }
            Linked::Command(pre) => {
                if let Some(entry) = &invocation.entrypoint {
                    anyhow::bail!(
                        "a component has no entry point `{entry}`: it runs through wasi:cli/run"
                    );
                }
                let host = component_host(builder, limiter, &invocation);
                let (mut store, lane) = self.store(&code.engine, host, &limits)?;
                let pre = pre.clone();
                Ok(Instance::new(meter.measure(limits, lane, async move {
                    let result = call_command(&pre, &mut store).await;
                    (store, result)
                })))
            }
            Linked::Proxy(_) => anyhow::bail!(
                "{} is a wasi:http handler: it answers HTTP requests (serve it with `wasm-cgi serve`), it is not run as a command",
                self.name
            ),
        }
    }

    /// Runs the program once as a command with `invocation`, its output
    /// going to `stdio`, and waits for it to end. An `Err` is a failure to
    /// set the run up (see [`Program::start`]).
    pub async fn run(&self, invocation: Invocation, stdio: Stdio) -> anyhow::Result<Outcome> {
        Ok(self.start(invocation, stdio)?.await)
    }

    /// Starts the program as a command whose stdout is streamed: read it
    /// from the returned [`GuestRun`], which drives the guest as it is read
    /// (a guest whose output is not read waits). Its stderr goes to
    /// `stderr`; `invocation`'s `max_output` bounds the body made from it.
    pub fn stream(
        &self,
        invocation: Invocation,
        stderr: Output,
    ) -> anyhow::Result<GuestRun<OutputReceiver>> {
        let max_output = invocation.limits.max_output;
        let (sender, stdout) = output_channel(STDOUT_BUFFER);
        let stdio = Stdio {
            stdout: Output::Channel(sender),
            stderr,
        };
        let instance = self.start(invocation, stdio)?;
        Ok(GuestRun::new(instance, stdout, max_output))
    }

    /// Runs the program once and collects its stdout and stderr in memory,
    /// each up to `max_output` bytes (past it the guest traps).
    pub async fn run_captured(&self, invocation: Invocation) -> anyhow::Result<Captured> {
        let cap = usize::try_from(invocation.limits.max_output).unwrap_or(usize::MAX);
        let stdout = MemoryOutputPipe::new(cap);
        let stderr = MemoryOutputPipe::new(cap);
        let stdio = Stdio {
            stdout: Output::Capture(stdout.clone()),
            stderr: Output::Capture(stderr.clone()),
        };
        let outcome = self.run(invocation, stdio).await?;
        Ok(Captured {
            stdout: stdout.contents(),
            stderr: stderr.contents(),
            outcome,
        })
    }

    /// Starts a wasi:http handler on `request`, in a fresh instance with
    /// `invocation`'s environment, directories, limits and allowed hosts
    /// (its args, stdin and entry point don't apply). The handler's stdout
    /// and stderr go to `stdio`. Nothing runs until
    /// [`HttpCall::response`] is awaited.
    ///
    /// The request needs an authority (an absolute URI or a `Host` header).
    /// An `Err` is a failure to set the run up, before any guest code.
    pub fn handle_http<B>(
        &self,
        request: http::Request<B>,
        invocation: Invocation,
        stdio: Stdio,
    ) -> anyhow::Result<HttpCall>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let code = self.code();
        let Linked::Proxy(pre) = &code.linked else {
            anyhow::bail!("{} is not a wasi:http handler", self.name);
        };
        let scheme = match request.uri().scheme_str() {
            Some("https") => Scheme::Https,
            _ => Scheme::Http,
        };
        let limits = invocation.limits;
        self.check_limits(&limits)?;
        let (meter, limiter) = self.meter(&limits);
        let builder = wasi_builder(&invocation, stdio)?;
        let host = component_host(builder, limiter, &invocation);
        let (mut store, lane) = self.store(&code.engine, host, &limits)?;
        let (sender, response) = oneshot::channel();
        let (request, outparam) = {
            let mut http = store.data_mut().http();
            let request = http
                .new_incoming_request(scheme, request)
                .map_err(anyhow::Error::from)?;
            let outparam = http
                .new_response_outparam(sender)
                .map_err(anyhow::Error::from)?;
            (request, outparam)
        };
        let pre = pre.clone();
        let instance = Instance::new(meter.measure(limits, lane, async move {
            let call = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, outparam)
                    .await
            };
            let result = call.await;
            (store, result)
        }));
        Ok(HttpCall::new(response, instance, limits.max_output))
    }

    /// Refuses limits this program's runtime cannot enforce.
    fn check_limits(&self, limits: &RunLimits) -> anyhow::Result<()> {
        anyhow::ensure!(
            limits.fuel.is_none() || self.fuel_metering,
            "a fuel budget needs a runtime built with fuel metering (SandboxOptions::fuel_metering)"
        );
        Ok(())
    }

    /// A store for one run: the memory limiter, a yield at every epoch tick
    /// (so a spinning guest never holds a worker thread and the timeout can
    /// stop it; long-running guests share the long lane, see `slices`), and
    /// the fuel budget when fuel is metered.
    fn store<T: Limited>(
        &self,
        engine: &Engine,
        data: T,
        limits: &RunLimits,
    ) -> anyhow::Result<(Store<T>, LaneHandle)> {
        let mut store = Store::new(engine, data);
        store.limiter(|data| data.limiter());
        store.set_epoch_deadline(1);
        let (mut slicer, lane) = self.lane.slicer();
        store.epoch_deadline_callback(move |_| Ok(slicer.on_tick()));
        if self.fuel_metering {
            store.set_fuel(limits.fuel.unwrap_or(u64::MAX))?;
        }
        Ok((store, lane))
    }

    /// A meter for one run starting now, and the limiter that feeds it.
    fn meter(&self, limits: &RunLimits) -> (Meter, MemoryLimiter) {
        let peak = Arc::new(AtomicU64::new(0));
        let limiter = MemoryLimiter::new(limits.max_memory, peak.clone());
        let meter = Meter {
            fuel_metering: self.fuel_metering,
            started: Instant::now(),
            peak,
        };
        (meter, limiter)
    }
}

/// Replaces a program's code with another tier's, if the program is still
/// alive.
pub(crate) struct CodeSlot(Weak<CodeCell>);

impl CodeSlot {
    /// Whether the program is still loaded (someone holds it).
    pub(crate) fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }

    /// Makes `code` the program's code for the runs that start from now on;
    /// `false` if the program is gone.
    pub(crate) fn replace(&self, code: Code) -> bool {
        let Some(cell) = self.0.upgrade() else {
            return false;
        };
        *cell
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(code);
        true
    }
}

/// What one run used, measured while it runs: its wall time, its peak
/// memory (kept outside the store, which a timeout drops), and its fuel.
struct Meter {
    fuel_metering: bool,
    started: Instant,
    peak: Arc<AtomicU64>,
}

impl Meter {
    /// Runs `call` (which gives its store back with its result) under
    /// `limits.timeout`, timed from its first poll; then how it ended.
    async fn measure<T: Limited + Send + 'static>(
        mut self,
        limits: RunLimits,
        lane: LaneHandle,
        call: impl Future<Output = (Store<T>, wasmtime::Result<()>)> + Send + 'static,
    ) -> Outcome {
        self.started = Instant::now();
        match tokio::time::timeout(limits.timeout, lane.drive(call)).await {
            Ok((store, result)) => self.outcome(Some(store), Ok(result), &limits),
            Err(elapsed) => self.outcome::<T>(None, Err(elapsed), &limits),
        }
    }

    /// How the run ended and what it used, from the result of its call
    /// (`Err`: past its timeout, its store dropped with the call). Drops the
    /// store: the instance slot goes back to the pool, and the guest's
    /// output streams close.
    fn outcome<T: Limited>(
        self,
        store: Option<Store<T>>,
        result: Result<wasmtime::Result<()>, Elapsed>,
        limits: &RunLimits,
    ) -> Outcome {
        let wall_time = self.started.elapsed();
        let (exit, fuel_consumed) = match (result, store) {
            (Ok(result), Some(mut store)) => {
                let fuel = limits.fuel.unwrap_or(u64::MAX);
                let consumed = self
                    .fuel_metering
                    .then(|| store.get_fuel().ok().map(|left| fuel - left))
                    .flatten();
                let exit = match result {
                    Ok(()) => Exit::Code(0),
                    Err(error) => classify(error, store.data_mut().limiter().refused_grow),
                };
                (exit, consumed)
            }
            _ => (Exit::TimedOut, None),
        };
        Outcome {
            exit,
            usage: Usage {
                wall_time,
                fuel_consumed,
                peak_memory: self.peak.load(Ordering::Relaxed),
            },
        }
    }
}

/// Runs a module's `entry` (`None`: `_start`). A named entry point of a
/// reactor runs after its `_initialize`.
async fn call_module(
    module: &LinkedModule,
    store: &mut Store<Host>,
    entry: Option<&str>,
) -> wasmtime::Result<()> {
    let instance = module.pre.instantiate_async(&mut *store).await?;
    let Some(entry) = entry.filter(|&entry| entry != COMMAND_ENTRY) else {
        let start = instance
            .get_module_export(&mut *store, &module.start)
            .and_then(Extern::into_func)
            .ok_or_else(|| wasmtime::format_err!("the module's `{COMMAND_ENTRY}` is gone"))?;
        // SAFETY: `start` was found in this instance's module, which was
        // checked at link time to export it as a function taking and
        // returning nothing.
        let start = unsafe { TypedFunc::<(), ()>::new_unchecked(&*store, start) };
        return start.call_async(&mut *store, ()).await;
    };
    if let Some(init) = instance.get_func(&mut *store, REACTOR_INIT) {
        init.typed::<(), ()>(&mut *store)?
            .call_async(&mut *store, ())
            .await?;
    }
    let func = instance
        .get_typed_func::<(), ()>(&mut *store, entry)
        .map_err(|_| {
            wasmtime::format_err!("the module exports no function `{entry}` taking no arguments")
        })?;
    func.call_async(&mut *store, ()).await
}

/// Runs a command component's `wasi:cli/run`. `run` returning `err` means
/// "failed" with no code: exit code 1, like a `proc_exit(1)`.
async fn call_command(
    pre: &CommandPre<ComponentHost>,
    store: &mut Store<ComponentHost>,
) -> wasmtime::Result<()> {
    let command = pre.instantiate_async(&mut *store).await?;
    match command.wasi_cli_run().call_run(&mut *store).await? {
        Ok(()) => Ok(()),
        Err(()) => Err(I32Exit(1).into()),
    }
}

/// Turns the error a guest call ended with into an [`Exit`].
pub(crate) fn classify(error: wasmtime::Error, refused_grow: Option<usize>) -> Exit {
    if let Some(I32Exit(code)) = error.downcast_ref::<I32Exit>() {
        return Exit::Code(*code);
    }
    if let Some(Trap::OutOfFuel) = error.downcast_ref::<Trap>() {
        return Exit::OutOfFuel;
    }
    if let Some(requested) = refused_grow {
        return Exit::MemoryLimit {
            requested: requested as u64,
        };
    }
    Exit::Trap(format!("{:#}", anyhow::Error::from(error)))
}
