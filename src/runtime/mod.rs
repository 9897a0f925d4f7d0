//! The embedding API: compile a program once (a WASI preview 1 module, or a
//! preview 2 component: a `wasi:cli/command` or a `wasi:http/proxy`), then
//! run it as often as needed, each run in a fresh sandboxed instance with its
//! own args, env, stdio, directories and limits. The HTTP server is built on
//! exactly this, and nothing here knows of it.
//!
//! - [`Sandbox`]: the engine, linkers, compile cache and epoch ticker, built
//!   once; [`Sandbox::load`] compiles and links a [`Program`], first
//!   pre-initializing it ([`InitOptions`]) when it exports an initializer.
//! - [`Program::run`] runs a command to its end; [`Program::stream`] gives
//!   its stdout as it is written ([`GuestRun`], then a [`GuestBody`]);
//!   [`Program::handle_http`] gives a handler an [`http::Request`] and
//!   returns its [`http::Response`], whose body drives the instance.
//! - [`Invocation`] is what a run sees, [`RunLimits`] what it may use, and
//!   [`Outcome`] how it ended and what it used.
//!
//! ```
//! # #[tokio::main] async fn main() -> anyhow::Result<()> {
//! use wasm_cgi::runtime::{Invocation, Sandbox, SandboxOptions};
//!
//! # let hello_wasm = concat!(env!("WASM_CGI_EXAMPLES_DIR"), "/hello.wasm");
//! let sandbox = Sandbox::new(SandboxOptions::default())?;
//! let program = sandbox.load("hello.wasm", &std::fs::read(hello_wasm)?)?;
//! let invocation = Invocation { args: vec!["hello.wasm".into()], ..Default::default() };
//! let run = program.run_captured(invocation).await?;
//! assert!(run.outcome.exit.is_success());
//! print!("{}", String::from_utf8_lossy(&run.stdout));
//! # Ok(())
//! # }
//! ```
//!
//! The README's "Library" section serves a wasi:http handler the same way.

mod cache;
mod detect;
mod epoch;
#[cfg(test)]
pub(crate) mod fake;
mod guest_body;
mod guest_run;
mod host;
mod http;
mod instance;
mod invocation;
mod limits;
mod outbound;
mod output;
mod preinit;
mod printable;
mod priority;
mod program;
mod sandbox;
mod slices;
mod tiers;
mod wasi_ctx;

pub use cache::{CacheOutcome, Compiled, ModuleCache};
pub use detect::{HTTP_HANDLER, Kind, World, component_interfaces};
pub use guest_body::{BodyError, GuestBody};
pub use guest_run::{Data, Drained, Event, GuestRun};
pub use http::{HandlerFailure, HandlerReply, HttpCall};
pub use instance::Instance;
pub use invocation::{DirGrant, Exit, Input, Invocation, Outcome, Output, Stdio, Usage};
pub use limits::RunLimits;
pub use outbound::AllowedHosts;
pub use output::{OutputReceiver, OutputSender, StderrLog, output_channel};
pub use preinit::{INIT_EXPORTS, InitOptions, Initializer, Preinitialized};
pub use program::{COMMAND_ENTRY, Captured, Program, ProgramKind};
pub use sandbox::{Sandbox, SandboxOptions};
pub use tiers::{Tier, Tiering};
