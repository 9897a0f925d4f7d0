//! The embedding API: compile a program once (a WASI preview 1 module, or a
//! preview 2 component: a `wasi:cli/command` or a `wasi:http/proxy`), then
//! run it as often as needed, each run in a fresh sandboxed instance with its
//! own args, env, stdio, directories and limits. The HTTP server is built on
//! exactly this.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use wasm_cgi::runtime::{Invocation, Runtime, RuntimeOptions};
//!
//! let runtime = Runtime::new(RuntimeOptions::default())?;
//! let program = runtime.load("hello.wasm", &std::fs::read("hello.wasm")?)?;
//! let invocation = Invocation { args: vec!["hello.wasm".into()], ..Default::default() };
//! let run = program.run_captured(invocation).await?;
//! assert!(run.outcome.exit.is_success());
//! print!("{}", String::from_utf8_lossy(&run.stdout));
//! # Ok(())
//! # }
//! ```

mod cache;
mod detect;
mod engine;
mod epoch;
mod host;
mod invocation;
mod outbound;
mod output;
mod program;
mod slices;

pub use cache::{CacheOutcome, Compiled, ModuleCache};
pub use detect::{Kind, World};
pub use engine::{Runtime, RuntimeOptions};
pub use invocation::{DirGrant, Exit, Input, Invocation, Outcome, Output, Stdio, Usage};
pub use outbound::AllowedHosts;
pub use output::{OutputSender, StderrLog, output_channel};
pub use program::{COMMAND_ENTRY, Captured, HandlerResponse, HttpCall, Program, ProgramKind};
