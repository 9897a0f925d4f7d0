//! Integration tests: the real `wasm-cgi` binary on `127.0.0.1:0`, spoken to
//! over HTTP, serving guest programs built from `guests/test-programs`.

mod abuse;
mod argv;
mod bodies;
mod capabilities;
mod cgi_mode;
mod client_limits;
mod components_http;
mod concurrency;
mod config;
mod errors;
mod examples;
mod fast_path;
mod front_door;
mod limits;
mod meta_variables;
mod operations;
mod preinit;
mod probe;
mod route_params;
mod run_command;
mod scripts;
mod streaming;
mod support;
mod tiering;
mod wagi;
