//! What one run of a program is given (args, env, stdio, directories, limits)
//! and what it gives back (how it ended, what it used).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wasmtime_wasi::cli::StdinStream;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::limits::RunLimits;
use super::outbound::AllowedHosts;
use super::output::{OutputSender, StderrLog};
use super::printable::printable;

/// One run of a module: everything the guest sees. Nothing else of the host
/// (environment, files, sockets) is reachable from inside.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// `argv`, starting with `argv[0]` (the module's file name).
    pub args: Vec<String>,
    /// The guest's whole environment.
    pub env: Vec<(String, String)>,
    /// The guest's standard input.
    pub stdin: Input,
    /// Host directories the guest may open, and under which guest path.
    pub dirs: Vec<DirGrant>,
    /// The exported function of a core module to call; `None` is the
    /// command entry (`_start`, or `wasi:cli/run` for a component).
    pub entrypoint: Option<String>,
    /// Hosts a component may send HTTP requests to (wasi:http); none by
    /// default.
    pub allowed_hosts: Arc<AllowedHosts>,
    /// What the run may use.
    pub limits: RunLimits,
}

/// A guest's standard input.
#[derive(Clone, Default)]
pub enum Input {
    /// These bytes, then end of file.
    Bytes(Bytes),
    /// Read from this stream as the guest reads (a request body as it
    /// arrives, say); every run given it shares its read position.
    Stream(Arc<dyn StdinStream + Sync>),
    /// The host process's own stdin (the `run` command).
    Inherit,
    /// Immediately at end of file.
    #[default]
    Empty,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Bytes(bytes) => f.debug_tuple("Bytes").field(&bytes.len()).finish(),
            Input::Stream(_) => f.write_str("Stream"),
            Input::Inherit => f.write_str("Inherit"),
            Input::Empty => f.write_str("Empty"),
        }
    }
}

/// Where a guest's stdout or stderr goes.
pub enum Output {
    /// The host process's own stream (the `run` command).
    Inherit,
    /// Into a bounded channel, as the server's response body.
    Channel(OutputSender),
    /// Into the log, line by line.
    Log(StderrLog),
    /// Into memory, up to the pipe's capacity (past it the guest traps).
    Capture(MemoryOutputPipe),
    /// Nowhere: written and dropped.
    Discard,
}

/// The guest's stdout and stderr.
pub struct Stdio {
    /// Standard output.
    pub stdout: Output,
    /// Standard error.
    pub stderr: Output,
}

/// A host directory made visible to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it, e.g. `/data`.
    pub guest: String,
    /// Whether the guest may only read (the default for routes).
    pub read_only: bool,
}

/// How a run ended and what it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// How the guest stopped.
    pub exit: Exit,
    /// Resources the run used.
    pub usage: Usage,
}

/// How a guest stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Returned from its entry point (code 0) or called `proc_exit(code)`.
    Code(i32),
    /// Trapped; the message says where and why.
    Trap(String),
    /// Trapped after a `memory.grow` past `max-memory` was refused.
    MemoryLimit {
        /// The linear memory size the guest asked for, in bytes.
        requested: u64,
    },
    /// Ran out of its fuel budget.
    OutOfFuel,
    /// Ran past its `timeout` and was stopped.
    TimedOut,
}

impl Exit {
    /// Whether the guest ended normally with exit code 0.
    pub fn is_success(&self) -> bool {
        *self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with code {code}"),
            Exit::Trap(message) => write!(f, "trapped: {}", printable(message)),
            Exit::MemoryLimit { requested } => {
                write!(
                    f,
                    "trapped after memory.grow to {requested} bytes was refused (max-memory)"
                )
            }
            Exit::OutOfFuel => write!(f, "ran out of fuel"),
            Exit::TimedOut => write!(f, "ran past its timeout and was stopped"),
        }
    }
}

/// Resources one run used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// From the start of instantiation to the guest's exit.
    pub wall_time: Duration,
    /// Fuel consumed, when fuel is metered and the run ended by itself.
    pub fuel_consumed: Option<u64>,
    /// Largest linear memory size the guest grew to, in bytes.
    pub peak_memory: u64,
}
