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
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    match cli.command.execute() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks for
/// them (`MADV_HUGEPAGE`), and on a host whose memory is fragmented a fault
/// on such a region stalls in compaction and zeroes 2 MiB: compiling a 2 MB
/// module took 1.0-1.3 s instead of 0.6 s after other programs had churned
/// memory (see docs/PERFORMANCE.md). Linear memories don't use them either
/// way.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: a plain prctl on this process; it only changes how later page
    // faults are served.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
