//! # wasm-cgi
//!
//! Serves WebAssembly (WASI) programs as CGI/1.1 endpoints over HTTP: each
//! request runs in a fresh sandboxed instance that gets the CGI
//! meta-variables as its environment, the request body on stdin, and whose
//! stdout becomes the response. WASI preview 1 modules and `wasi:cli/command`
//! components run that way; `wasi:http/proxy` components answer as native
//! HTTP handlers. Programs are compiled once; a request only instantiates.
//!
//! ## The embedding API
//! Two modules are public, and everything else is built on them:
//! - [`runtime`]: compile a module or component once
//!   ([`runtime::Sandbox::load`]), run it with args, env, stdin, directories
//!   and limits ([`runtime::Program::run`], or [`runtime::Program::stream`]
//!   for its output as it is written), or hand a handler an HTTP request
//!   ([`runtime::Program::handle_http`]) and read its response, whose body
//!   drives the instance. It knows nothing of the server.
//! - [`cgi`]: RFC 3875 itself: request → meta-variables and argv
//!   ([`cgi::request`]), program output → response head
//!   ([`cgi::response`]).
//!
//! ## The server, floor by floor
//! From the bottom up; each floor only uses those below it.
//! - `rate`: request rates as written (`50/s`); `proxies`: the trusted
//!   proxies whose forwarding headers name the client.
//! - `limits`: the per-request limits, how they are written, and the
//!   runtime's [`runtime::RunLimits`] they contain.
//! - `admission`: instance slots and the queue in front of them.
//! - `config`: the TOML config file (or a WAGI `modules.toml`, or a Spin
//!   manifest) and its route paths; `routes`: the route table built from
//!   it; `subroutes`: the routes WAGI modules declare (`_routes`);
//!   `scripts`: CGI scripts and the interpreter modules that run them.
//! - `modules`: which program answers to which file name, loaded from the
//!   modules folder (and kept current by hot reload) or from `examples`,
//!   the ones built into the binary.
//! - `server`: the hyper server: accept loop, dispatcher, the CGI and
//!   wasi:http executors, one guest supervisor, access log, metrics,
//!   graceful shutdown.
//! - `cli`: the `wasm-cgi` command line (`serve`, `run`, `check`,
//!   `compile`); `logging`: log set-up.

pub mod cgi;
pub mod runtime;

mod admission;
mod cli;
mod config;
mod examples;
mod limits;
mod logging;
mod modules;
mod proxies;
mod rate;
mod routes;
mod scripts;
mod server;
mod subroutes;

/// The command line, for the `wasm-cgi` binary; not part of the library.
#[doc(hidden)]
pub use cli::Cli;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
