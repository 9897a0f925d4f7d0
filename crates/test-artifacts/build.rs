//! Builds the guest test programs and generates one `pub const` path per
//! `.wasm` file:
//!
//! - `guests/test-programs` for `wasm32-wasip1` (core modules), named after
//!   the binary in upper case (`env-dump` gives `ENV_DUMP`);
//! - the same programs for `wasm32-wasip2` (`wasi:cli/command` components),
//!   with a `P2_` prefix (`P2_ENV_DUMP`), except those in [`P1_ONLY`];
//! - `guests/test-interpreter` for `wasm32-wasip1`, a Rhai script
//!   interpreter, as `RHAI_CGI`;
//! - `guests/js-interpreter` for `wasm32-wasip1`, a JavaScript interpreter
//!   (Boa) that pre-initializes, as `JS_CGI`;
//! - `guests/http-handlers` for `wasm32-wasip2`, a `wasi:http/proxy`
//!   component, as `HTTP_HANDLER`.

#[path = "../../build-support/guests.rs"]
mod guests;

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Test programs that make no sense as a component: `entrypoints` exists to
/// test calling a named core export other than `_start`, `preinit` to
/// export core initializers, and the `wagi-*` modules to export WAGI's
/// `_routes` and entry points, while a command component only exports
/// `wasi:cli/run`.
const P1_ONLY: &[&str] = &["entrypoints", "preinit", "wagi-app", "wagi-bad-routes"];

fn main() {
    let guests_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guests");
    let mut code = String::new();

    let programs = "wasm-cgi-test-programs";
    let names = guests::binaries(&guests_dir, programs);
    let p1_dir = guests::build(&guests_dir, programs, guests::WASIP1);
    for name in &names {
        write_const(
            &mut code,
            &const_name("", name),
            &format!(
                "`{name}.wasm`, a core module built for wasm32-wasip1 from \
                 `guests/test-programs/src/bin/{name}.rs`."
            ),
            &p1_dir.join(format!("{name}.wasm")),
        );
    }

    let p2_dir = guests::build(&guests_dir, programs, guests::WASIP2);
    for name in names
        .iter()
        .filter(|name| !P1_ONLY.contains(&name.as_str()))
    {
        write_const(
            &mut code,
            &const_name("P2_", name),
            &format!(
                "`{name}.wasm`, a `wasi:cli/command` component built for wasm32-wasip2 \
                 from `guests/test-programs/src/bin/{name}.rs`."
            ),
            &p2_dir.join(format!("{name}.wasm")),
        );
    }

    let interpreter = "wasm-cgi-test-interpreter";
    let interpreter_dir = guests::build(&guests_dir, interpreter, guests::WASIP1);
    write_const(
        &mut code,
        "RHAI_CGI",
        "`rhai-cgi.wasm`, a small script interpreter (Rhai) built for wasm32-wasip1 \
         from `guests/test-interpreter`: runs `.rhai` CGI scripts in the tests.",
        &interpreter_dir.join("rhai-cgi.wasm"),
    );

    let js = "wasm-cgi-js-interpreter";
    let js_dir = guests::build(&guests_dir, js, guests::WASIP1);
    write_const(
        &mut code,
        "JS_CGI",
        "`js-cgi.wasm`, a JavaScript CGI interpreter (Boa) built for wasm32-wasip1 \
         from `guests/js-interpreter`; its `wizer.initialize` builds the engine.",
        &js_dir.join("js-cgi.wasm"),
    );

    let handlers = "wasm-cgi-http-handlers";
    let handlers_dir = guests::build(&guests_dir, handlers, guests::WASIP2);
    write_const(
        &mut code,
        "HTTP_HANDLER",
        "The `wasi:http/proxy` test handler component, built for wasm32-wasip2 \
         from `guests/http-handlers`; it picks its behaviour from the request path.",
        &handlers_dir.join(guests::cdylib_file_name(handlers)),
    );

    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("programs.rs");
    std::fs::write(out, code).unwrap();
}

/// The constant's name for binary `name`: `prefix` then the name in upper
/// case with underscores for hyphens.
fn const_name(prefix: &str, name: &str) -> String {
    format!("{prefix}{}", name.to_uppercase().replace('-', "_"))
}

/// Appends `pub const NAME: &str = "path";` with a doc comment to `code`,
/// after checking that the build produced the file.
fn write_const(code: &mut String, name: &str, doc: &str, path: &Path) {
    assert!(
        path.is_file(),
        "the guest build did not produce {}",
        path.display()
    );
    writeln!(code, "/// {doc}").unwrap();
    writeln!(
        code,
        "pub const {name}: &str = {:?};",
        path.display().to_string()
    )
    .unwrap();
}
