//! Builds the built-in example guests so that `src/examples.rs` can embed
//! them: the CGI modules of `guests/examples` for `wasm32-wasip1`
//! (`WASM_CGI_EXAMPLES_DIR`, the folder of `.wasm` files) and the
//! `wasi:http/proxy` component of `guests/hello-http` for `wasm32-wasip2`
//! (`WASM_CGI_HELLO_HTTP`, the path of the `.wasm` file).

#[path = "build-support/guests.rs"]
mod guests;

use std::path::Path;

fn main() {
    let guests_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests");

    let examples_dir = guests::build(&guests_dir, "wasm-cgi-examples", guests::WASIP1);
    println!(
        "cargo:rustc-env=WASM_CGI_EXAMPLES_DIR={}",
        examples_dir.display()
    );

    let hello_http = "wasm-cgi-hello-http";
    let hello_http_dir = guests::build(&guests_dir, hello_http, guests::WASIP2);
    println!(
        "cargo:rustc-env=WASM_CGI_HELLO_HTTP={}",
        hello_http_dir
            .join(guests::cdylib_file_name(hello_http))
            .display()
    );
}
