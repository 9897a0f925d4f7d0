//! The process-wide runtime: one Wasmtime engine tuned for short-lived
//! instances, one WASI linker, and the epoch ticker. Built once at start-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use wasmtime::{Config, Engine, Linker, Module};

use super::epoch::EpochTicker;
use super::host::Host;
use super::program::{COMMAND_ENTRY, Program};

/// Engine-wide settings, fixed for the life of the process.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Compile fuel metering into every module. Only on when some route has a
    /// fuel budget: metered code runs slower.
    pub fuel_metering: bool,
}

/// The engine, the linker and the epoch ticker. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<Host>>,
    options: RuntimeOptions,
    compilations: Arc<AtomicU64>,
    _ticker: Arc<EpochTicker>,
}

impl Runtime {
    /// Builds the engine and the WASI preview 1 linker.
    pub fn new(options: RuntimeOptions) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(options.fuel_metering);
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |host: &mut Host| &mut host.wasi)?;
        let ticker = EpochTicker::start(&engine).context("failed to start the epoch ticker")?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            options,
            compilations: Arc::default(),
            _ticker: Arc::new(ticker),
        })
    }

    /// The underlying Wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// How many modules this runtime has compiled. Compilation only happens
    /// when modules are loaded, never on the request path.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Compiles `wasm` (binary or text format) and links it against WASI.
    ///
    /// Fails with a message fit for a log line when the bytes are not a valid
    /// module, when it imports something WASI preview 1 does not provide, or
    /// when it is not a command (no `_start`).
    pub fn load(&self, name: &str, wasm: &[u8]) -> anyhow::Result<Program> {
        self.compilations.fetch_add(1, Ordering::Relaxed);
        let module = Module::new(&self.engine, wasm).map_err(anyhow::Error::from)?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(anyhow::Error::from)?;
        let program = Program::new(name, self.engine.clone(), pre, self.options.fuel_metering);
        anyhow::ensure!(
            program.has_entrypoint(COMMAND_ENTRY),
            "not a WASI command: it exports no `{COMMAND_ENTRY}` function"
        );
        Ok(program)
    }
}
