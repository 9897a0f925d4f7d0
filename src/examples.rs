//! The example programs built into the binary (modules from
//! `guests/examples`, a wasi:http handler from `guests/hello-http`), served
//! when no modules folder is configured so a fresh install answers at once.

use crate::cgi::Mode;

/// One built-in example module.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// File name it is served under.
    pub name: &'static str,
    /// How its output is read: each example declares the mode it is written
    /// for (a wasi:http handler answers in HTTP itself; its mode is unused).
    pub mode: Mode,
    /// The compiled module.
    pub wasm: &'static [u8],
}

macro_rules! example {
    ($name:literal, $mode:expr) => {
        Example {
            name: concat!($name, ".wasm"),
            mode: $mode,
            wasm: include_bytes!(concat!(env!("WASM_CGI_EXAMPLES_DIR"), "/", $name, ".wasm")),
        }
    };
}

/// Every built-in example.
pub const EXAMPLES: &[Example] = &[
    // Prints Hello Pinky!, as the classic image's sample.
    example!("hello", Mode::Simple),
    // The WASI tutorial's log analyzer: a JSON report of the JSON-lines logs under /data.
    example!("log-analyzer", Mode::Cgi),
    // An HTML form that posts to itself and shows the CGI variables.
    example!("form", Mode::Cgi),
    // Hello Pinky! as a wasi:http handler component (wasm32-wasip2).
    Example {
        name: "hello-http.wasm",
        mode: Mode::Simple,
        wasm: include_bytes!(env!("WASM_CGI_HELLO_HTTP")),
    },
];
