//! The embedding API: compile a module once, then run it as often as needed,
//! each run in a fresh sandboxed instance with its own args, env, stdio,
//! directories and limits. The HTTP server is built on exactly this.
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
mod engine;
mod epoch;
mod host;
mod invocation;
mod output;
mod program;
mod slices;

pub use cache::{CacheOutcome, ModuleCache};
pub use engine::{Runtime, RuntimeOptions};
pub use invocation::{DirGrant, Exit, Input, Invocation, Outcome, Output, Stdio, Usage};
pub use output::{OutputSender, StderrLog, output_channel};
pub use program::{COMMAND_ENTRY, Captured, Program};
