//! Builds the built-in example modules (`guests/examples`) for
//! `wasm32-wasip1` so that `src/examples.rs` can embed them.

#[path = "build-support/guests.rs"]
mod guests;

use std::path::Path;

fn main() {
    let guests_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests");
    let wasm_dir = guests::build(&guests_dir, "wasm-cgi-examples");
    println!(
        "cargo:rustc-env=WASM_CGI_EXAMPLES_DIR={}",
        wasm_dir.display()
    );
}
