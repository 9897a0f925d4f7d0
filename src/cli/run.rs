//! `wasm-cgi run MODULE [-- ARGS...]`: run one module or command component
//! once from the shell, like `wasmtime run`, through the same runtime the
//! server uses.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;

use super::cache::CacheFlags;
use super::init::InitFlags;
use crate::limits::{LimitOverrides, Limits};
use crate::logging::{self, LogFormat};
use crate::modules::load_file;
use crate::runtime::{
    DirGrant, Exit, InitOptions, Input, Invocation, Output, Sandbox, SandboxOptions, Stdio,
};

/// Exit code for a module that trapped (like a native abort: 128 + SIGABRT).
const TRAP_EXIT_CODE: u8 = 134;
/// Exit code for a module stopped at its timeout (as `timeout(1)`).
const TIMEOUT_EXIT_CODE: u8 = 124;

/// Run one module once. stdout and stderr pass through; the exit code is the
/// module's.
#[derive(clap::Args, Debug)]
pub struct RunCommand {
    /// The module (.wasm) to run
    pub module: PathBuf,
    /// Arguments for the module, after `--`; argv[0] is the module's file name
    #[arg(last = true)]
    pub args: Vec<String>,
    /// Grant a host directory: HOST::GUEST, writable unless GUEST ends in
    /// `:ro`; a plain DIR is seen under the same path
    #[arg(long = "dir", value_name = "HOST::GUEST[:ro]")]
    pub dirs: Vec<DirFlag>,
    /// Set an environment variable; a bare NAME passes the host's value
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Read the module's stdin from FILE instead of this shell's stdin
    #[arg(long, value_name = "FILE")]
    pub stdin: Option<PathBuf>,
    /// Limits for this run (no timeout unless given).
    #[command(flatten)]
    pub limits: LimitOverrides,
    /// Pre-initialization.
    #[command(flatten)]
    pub init: InitFlags,
    /// Compile cache and precompiled modules.
    #[command(flatten)]
    pub cache: CacheFlags,
}

/// A `--dir` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirFlag(pub DirGrant);

impl FromStr for DirFlag {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (host, guest) = text.split_once("::").unwrap_or((text, text));
        let (guest, read_only) = match guest.strip_suffix(":ro") {
            Some(guest) => (guest, true),
            None => (guest, false),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(format!("{text:?} is not HOST::GUEST[:ro]"));
        }
        Ok(DirFlag(DirGrant {
            host: PathBuf::from(host),
            guest: guest.to_owned(),
            read_only,
        }))
    }
}

impl RunCommand {
    /// Runs the module; its exit code becomes the process's.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        logging::init(LogFormat::Text, "warn");
        let runtime =
            tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
        runtime.block_on(self.run())
    }

    async fn run(self) -> anyhow::Result<ExitCode> {
        let name = self
            .module
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("module.wasm")
            .to_owned();
        if name.ends_with(".cwasm") && !self.cache.allow_precompiled {
            anyhow::bail!(
                "{} is precompiled native code: pass --allow-precompiled to run it",
                self.module.display()
            );
        }
        let defaults = Limits {
            // From the shell there is no client waiting: no deadline unless asked.
            timeout: Duration::from_secs(u32::MAX.into()),
            ..Limits::default()
        };
        let limits = self.limits.apply(defaults);
        let sandbox = Sandbox::new(SandboxOptions {
            fuel_metering: limits.fuel.is_some(),
            max_memory: limits.max_memory.0,
            cache: self.cache.cache(),
            ..SandboxOptions::default()
        })?;
        let init = InitOptions {
            initializer: self.init.initializer(),
            limits: limits.run(),
        };
        let entry = load_file(&sandbox, &name, &self.module, &init)
            .with_context(|| format!("failed to load {}", self.module.display()))?;
        let program = entry.program;

        let stdin = match &self.stdin {
            Some(file) => Input::Bytes(Bytes::from(
                std::fs::read(file)
                    .with_context(|| format!("failed to read {}", file.display()))?,
            )),
            None => Input::Inherit,
        };
        let invocation = Invocation {
            args: std::iter::once(name).chain(self.args).collect(),
            env: self.env.iter().filter_map(|var| env_var(var)).collect(),
            stdin,
            dirs: self.dirs.into_iter().map(|DirFlag(grant)| grant).collect(),
            entrypoint: None,
            allowed_hosts: Default::default(),
            limits: limits.run(),
        };
        let stdio = Stdio {
            stdout: Output::Inherit,
            stderr: Output::Inherit,
        };
        let outcome = program.run(invocation, stdio).await?;
        Ok(match outcome.exit {
            Exit::Code(code) => ExitCode::from(code as u8),
            Exit::TimedOut => {
                eprintln!("error: the module {}", outcome.exit);
                ExitCode::from(TIMEOUT_EXIT_CODE)
            }
            exit => {
                match &exit {
                    // The operator's own terminal: the backtrace on its lines.
                    Exit::Trap(message) => eprintln!("error: the module trapped: {message}"),
                    exit => eprintln!("error: the module {exit}"),
                }
                ExitCode::from(TRAP_EXIT_CODE)
            }
        })
    }
}

/// `NAME=VALUE`, or `NAME` for the host's value (skipped if unset).
fn env_var(var: &str) -> Option<(String, String)> {
    match var.split_once('=') {
        Some((name, value)) => Some((name.to_owned(), value.to_owned())),
        None => std::env::var(var).ok().map(|value| (var.to_owned(), value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_flags_follow_wasmtime_syntax() {
        let grant = |text: &str| text.parse::<DirFlag>().unwrap().0;
        assert_eq!(
            grant("./data::/data"),
            DirGrant {
                host: "./data".into(),
                guest: "/data".into(),
                read_only: false
            }
        );
        assert_eq!(
            grant("./data::/data:ro"),
            DirGrant {
                host: "./data".into(),
                guest: "/data".into(),
                read_only: true
            }
        );
        assert_eq!(
            grant("/tmp"),
            DirGrant {
                host: "/tmp".into(),
                guest: "/tmp".into(),
                read_only: false
            }
        );
        assert!("::/data".parse::<DirFlag>().is_err());
    }
}
