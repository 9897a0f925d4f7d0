//! The `wasm-cgi` binary: parse the command line, run the subcommand, and
//! print any error once, with its causes.

use std::process::ExitCode;

use clap::Parser;
use wasm_cgi::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.execute() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
