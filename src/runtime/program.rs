//! A compiled, pre-linked module, and running it once: one fresh store and
//! instance per run, with its limits and deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use wasmtime::{Engine, InstancePre, Store, Trap};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use super::host::{Host, MemoryLimiter};
use super::invocation::{Exit, Input, Invocation, Outcome, Output, Stdio, Usage};
use super::slices::LongLane;

/// The entry point of a WASI command.
pub const COMMAND_ENTRY: &str = "_start";

/// The initializer a WASI reactor exports; called before a named entry point.
const REACTOR_INIT: &str = "_initialize";

/// A module compiled once and linked against WASI once; every run only
/// instantiates it. Cheap to share: runs in flight keep their `Arc`, so a
/// replaced module finishes its requests on the version they started with.
pub struct Program {
    name: Arc<str>,
    engine: Engine,
    pre: InstancePre<Host>,
    fuel_metering: bool,
    lane: LongLane,
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
    pub(crate) fn new(
        name: &str,
        engine: Engine,
        pre: InstancePre<Host>,
        fuel_metering: bool,
        lane: LongLane,
    ) -> Self {
        Self {
            name: name.into(),
            engine,
            pre,
            fuel_metering,
            lane,
        }
    }

    /// The module's file name, e.g. `hello.wasm`.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Whether the module exports a function `name` taking and returning nothing.
    pub fn has_entrypoint(&self, name: &str) -> bool {
        matches!(
            self.pre.module().get_export(name),
            Some(wasmtime::ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() == 0
        )
    }

    /// Runs the module once with `invocation`, its output going to `stdio`.
    ///
    /// An `Err` is a failure of the host to set the run up (a granted
    /// directory that can't be opened); everything the guest does, traps
    /// included, is an [`Outcome`].
    pub async fn run(&self, invocation: Invocation, stdio: Stdio) -> anyhow::Result<Outcome> {
        let limits = &invocation.limits;
        let peak = Arc::new(AtomicU64::new(0));
        let host = Host {
            wasi: self.wasi_ctx(&invocation, stdio)?,
            limiter: MemoryLimiter::new(limits.max_memory.0, peak.clone()),
        };
        let mut store = Store::new(&self.engine, host);
        store.limiter(|host| &mut host.limiter);
        // Yield to tokio at every epoch tick, so a spinning guest never holds
        // a worker thread (the timeout below then stops it), and long-running
        // guests share the long lane (see `slices`).
        store.set_epoch_deadline(1);
        let mut slicer = self.lane.slicer();
        store.epoch_deadline_callback(move |_| Ok(slicer.on_tick()));
        let fuel = limits.fuel.unwrap_or(u64::MAX);
        if self.fuel_metering {
            store.set_fuel(fuel)?;
        }

        let started = Instant::now();
        let entry = invocation.entrypoint.as_deref().unwrap_or(COMMAND_ENTRY);
        let call = self.call(&mut store, entry);
        let result = tokio::time::timeout(limits.timeout, call).await;
        let wall_time = started.elapsed();

        let (exit, fuel_consumed) = match result {
            Err(_elapsed) => (Exit::TimedOut, None),
            Ok(result) => {
                let consumed = self
                    .fuel_metering
                    .then(|| store.get_fuel().ok().map(|left| fuel - left))
                    .flatten();
                let exit = match result {
                    Ok(()) => Exit::Code(0),
                    Err(error) => classify(error, store.data().limiter.refused_grow),
                };
                (exit, consumed)
            }
        };
        drop(store);
        Ok(Outcome {
            exit,
            usage: Usage {
                wall_time,
                fuel_consumed,
                peak_memory: peak.load(Ordering::Relaxed),
            },
        })
    }

    /// Runs the module once and collects its stdout and stderr in memory,
    /// each up to `max-output` bytes (past it the guest traps).
    pub async fn run_captured(&self, invocation: Invocation) -> anyhow::Result<Captured> {
        let cap = usize::try_from(invocation.limits.max_output.0).unwrap_or(usize::MAX);
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

    async fn call(&self, store: &mut Store<Host>, entry: &str) -> wasmtime::Result<()> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        if entry != COMMAND_ENTRY
            && let Some(init) = instance.get_func(&mut *store, REACTOR_INIT)
        {
            init.typed::<(), ()>(&mut *store)?
                .call_async(&mut *store, ())
                .await?;
        }
        let func = instance
            .get_typed_func::<(), ()>(&mut *store, entry)
            .map_err(|_| {
                wasmtime::format_err!(
                    "the module exports no function `{entry}` taking no arguments"
                )
            })?;
        func.call_async(&mut *store, ()).await
    }

    fn wasi_ctx(
        &self,
        invocation: &Invocation,
        stdio: Stdio,
    ) -> anyhow::Result<wasmtime_wasi::p1::WasiP1Ctx> {
        let mut builder = WasiCtxBuilder::new();
        builder.args(&invocation.args).envs(&invocation.env);
        match &invocation.stdin {
            Input::Bytes(bytes) => builder.stdin(MemoryInputPipe::new(bytes.clone())),
            Input::Inherit => builder.inherit_stdin(),
            Input::Empty => builder.stdin(MemoryInputPipe::new(Bytes::new())),
        };
        match stdio.stdout {
            Output::Inherit => builder.inherit_stdout(),
            Output::Channel(sender) => builder.stdout(sender),
            Output::Log(log) => builder.stdout(log),
            Output::Capture(pipe) => builder.stdout(pipe),
        };
        match stdio.stderr {
            Output::Inherit => builder.inherit_stderr(),
            Output::Channel(sender) => builder.stderr(sender),
            Output::Log(log) => builder.stderr(log),
            Output::Capture(pipe) => builder.stderr(pipe),
        };
        for dir in &invocation.dirs {
            let perms = if dir.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            builder
                .preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "failed to open directory {} for {}",
                        dir.host.display(),
                        dir.guest
                    )
                })?;
        }
        Ok(builder.build_p1())
    }
}

/// Turns the error a guest call ended with into an [`Exit`].
fn classify(error: wasmtime::Error, refused_grow: Option<usize>) -> Exit {
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
