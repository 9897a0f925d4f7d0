//! Builds `guests/test-programs` for `wasm32-wasip1` and generates one
//! `pub const` path per program, named after the binary in upper case.

#[path = "../../build-support/guests.rs"]
mod guests;

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    let guests_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guests");
    let package = "wasm-cgi-test-programs";
    let wasm_dir = guests::build(&guests_dir, package);

    let mut code = String::new();
    for name in guests::binaries(&guests_dir, package) {
        let path = wasm_dir.join(format!("{name}.wasm"));
        let konst = name.to_uppercase().replace('-', "_");
        writeln!(
            code,
            "/// `{name}.wasm`, built from `guests/test-programs/src/bin/{name}.rs`."
        )
        .unwrap();
        writeln!(
            code,
            "pub const {konst}: &str = {:?};",
            path.display().to_string()
        )
        .unwrap();
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("programs.rs");
    std::fs::write(out, code).unwrap();
}
