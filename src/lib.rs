//! # wasm-cgi
//!
//! Serves WebAssembly (WASI) programs as CGI/1.1 endpoints over HTTP: each
//! request runs in a fresh sandboxed instance that gets the CGI
//! meta-variables as its environment, the request body on stdin, and whose
//! stdout becomes the response. WASI preview 1 modules and `wasi:cli/command`
//! components run that way; `wasi:http/proxy` components answer as native
//! HTTP handlers. Programs are compiled once; a request only instantiates.
//!
//! ## Layout
//! - [`runtime`]: the embedding API. Compile a module or component once
//!   ([`runtime::Runtime::load`]), run it with args, env, stdin, directories
//!   and limits ([`runtime::Program::run`]), or hand a handler an HTTP request
//!   ([`runtime::Program::handle_http`]). Everything else is built on it.
//! - [`cgi`]: RFC 3875 itself: request → meta-variables and argv
//!   ([`cgi::request`]), module output → response head ([`cgi::response`]).
//! - [`modules`]: which module answers to which name; [`examples`]: the ones
//!   built into the binary.
//! - [`server`]: hyper HTTP/1 server, routing, CGI runs and wasi:http
//!   handlers, streaming responses, limits.
//! - [`config`]: the TOML config file; [`routes`]: configured paths → modules.
//! - [`limits`]: the per-request limits and how they are written.
//! - [`cli`]: the `wasm-cgi` command line (`serve`, `run`, `check`,
//!   `compile`); [`logging`]: log set-up.

pub mod cgi;
pub mod cli;
pub mod config;
pub mod examples;
pub mod limits;
pub mod logging;
pub mod modules;
pub mod routes;
pub mod runtime;
pub mod server;
