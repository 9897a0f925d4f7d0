//! Builds a package of `guests/` for `wasm32-wasip1` from a build script.
//!
//! Shared by the main crate's `build.rs` (built-in examples) and the
//! `test-artifacts` crate (test programs) through `#[path]`. The nested cargo
//! gets its own target directory under `OUT_DIR`, so it never waits on the
//! outer build's lock, and none of the outer build's compiler wrappers or
//! flags (clippy, coverage) leak into the guest build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every guest is built for.
pub const TARGET: &str = "wasm32-wasip1";

/// Builds every binary of `package` in the guest workspace at `guests_dir` and
/// returns the folder holding the resulting `.wasm` files.
pub fn build(guests_dir: &Path, package: &str) -> PathBuf {
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
            TARGET,
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
        "building the guest package {package} for {TARGET} failed; is the target installed? \
         (rustup target add {TARGET})"
    );
    target_dir.join(TARGET).join("release")
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
