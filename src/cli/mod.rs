//! The `wasm-cgi` command line: one file per subcommand, each a clap struct
//! with an `execute` method; shared limit flags are [`crate::limits::LimitOverrides`].

pub mod cache;
pub mod check;
pub mod compile;
pub mod front_door;
pub mod guest_env;
pub mod init;
pub mod module_files;
pub mod probe;
pub mod run;
pub mod serve;
pub mod sources;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Serve WebAssembly (WASI) programs as CGI endpoints over HTTP.
#[derive(Parser, Debug)]
#[command(name = "wasm-cgi", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server.
    Serve(Box<serve::ServeCommand>),
    /// Run one module once from the shell, like `wasmtime run`.
    Run(run::RunCommand),
    /// Validate the config file and every module without serving.
    Check(check::CheckCommand),
    /// Precompile modules into the cache, or to .cwasm files.
    Compile(compile::CompileCommand),
    /// GET a URL once and exit 0 on a 2xx answer: the image's health check.
    Probe(probe::ProbeCommand),
}

impl Command {
    /// Runs the subcommand; the exit code the process should end with.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Serve(command) => command.execute(),
            Command::Run(command) => command.execute(),
            Command::Check(command) => command.execute(),
            Command::Compile(command) => command.execute(),
            Command::Probe(command) => command.execute(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
