//! Builds a package of `guests/` for a WASI target from a build script.
//!
//! Shared by the main crate's `build.rs` (built-in examples) and the
//! `test-artifacts` crate (test programs and handlers) through `#[path]`. The
//! nested cargo gets its own target directory under `OUT_DIR`, so it never
//! waits on the outer build's lock, and none of the outer build's compiler
//! wrappers or flags (clippy, coverage) leak into the guest build.
//!
//! For [`WASIP1`] a binary is a core module; for [`WASIP2`] a binary is a
//! `wasi:cli/command` component and a `cdylib` is whatever component its
//! bindings export (for example `wasi:http/proxy`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// WASI preview 1: binaries are core wasm modules.
#[allow(dead_code)] // not every build script builds for both targets
pub const WASIP1: &str = "wasm32-wasip1";

/// WASI preview 2: binaries and cdylibs are components.
#[allow(dead_code)] // not every build script builds for both targets
pub const WASIP2: &str = "wasm32-wasip2";

/// Builds every binary and library of `package` in the guest workspace at
/// `guests_dir` for `target` (such as [`WASIP1`] or [`WASIP2`]) and returns
/// the folder holding the resulting `.wasm` files: a binary's file is named
/// after the binary, a `cdylib`'s after the package (see [`cdylib_file_name`]).
pub fn build(guests_dir: &Path, package: &str, target: &str) -> PathBuf {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let target_dir = out_dir.join("guest-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    println!(
        "cargo:rerun-if-changed={}",
        guests_dir.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        guests_dir.join("Cargo.lock").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        guests_dir.join(package_dir(package)).display()
    );

    let status = Command::new(cargo)
        .current_dir(guests_dir)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            target,
            "--package",
            package,
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .status()
        .expect("failed to run cargo for the guest programs");
    assert!(
        status.success(),
        "building the guest package {package} for {target} failed; is the target installed? \
         (rustup target add {target})"
    );
    target_dir.join(target).join("release")
}

/// The file name cargo gives the `cdylib` of `package`: the package name with
/// underscores for hyphens (`wasm-cgi-http-handlers` gives
/// `wasm_cgi_http_handlers.wasm`). Binaries keep their hyphens.
#[allow(dead_code)] // not every build script builds a cdylib
pub fn cdylib_file_name(package: &str) -> String {
    format!("{}.wasm", package.replace('-', "_"))
}

/// The guest package's folder name inside `guests/`.
fn package_dir(package: &str) -> &str {
    package.strip_prefix("wasm-cgi-").unwrap_or(package)
}

/// The binary names of `package`: one per file in its `src/bin`.
#[allow(dead_code)] // only the test-artifacts build script lists binaries
pub fn binaries(guests_dir: &Path, package: &str) -> Vec<String> {
    let bin_dir = guests_dir
        .join(package_dir(package))
        .join("src")
        .join("bin");
    let mut names: Vec<String> = std::fs::read_dir(&bin_dir)
        .unwrap_or_else(|e| panic!("failed to list {}: {e}", bin_dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    names
}
