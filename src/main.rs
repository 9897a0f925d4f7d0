//! The `wasm-cgi` binary: parse the command line, run the subcommand, and
//! print any error once, with its causes.

use std::process::ExitCode;

use clap::Parser;
use wasm_cgi::Cli;

/// Every request allocates and frees a few dozen small objects across worker
/// threads (WASI context, store, CGI environment); mimalloc's per-thread
/// free lists do that far cheaper than the system allocator (see
/// docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // A developer's RUST_BACKTRACE=1 would make every error value
        // (each WASI errno a guest gets, each trap) capture a native
        // backtrace on the request path; panics still print theirs.
        // SAFETY: the first thing the process does: no other thread exists
        // yet to read the environment.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let cli = Cli::parse();
    match cli.command.execute() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
