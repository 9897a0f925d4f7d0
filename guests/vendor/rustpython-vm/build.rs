use std::{env, io::prelude::*, path::PathBuf, process::Command};

fn main() {
    let frozen_libs = if cfg!(feature = "freeze-stdlib") {
        "Lib/*/*.py"
    } else {
        "Lib/python_builtins/*.py"
    };
    for entry in glob::glob(frozen_libs).expect("Lib/ exists?").flatten() {
        let display = entry.display();
        println!("cargo:rerun-if-changed={display}");
    }
    // Patched for wasm-cgi (guests/vendor/README.md): no watched file
    // outside the crate (a missing one reruns this script on every build),
    // and the published commit instead of `git` (which, vendored, would
    // read the enclosing repository and rebuild the crate on every commit).
    println!("cargo:rustc-env=RUSTPYTHON_GIT_HASH=a6c3352");
    println!("cargo:rustc-env=RUSTPYTHON_GIT_TAG=0.5.0");
    println!("cargo:rustc-env=RUSTC_VERSION={}", rustc_version());

    println!(
        "cargo:rustc-env=RUSTPYTHON_TARGET_TRIPLE={}",
        env::var("TARGET").unwrap()
    );

    let mut env_path = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    env_path.push("env_vars.rs");
    let mut f = std::fs::File::create(env_path).unwrap();
    // Patched for wasm-cgi: upstream writes the whole build environment
    // here (every variable of the shell that ran cargo would be readable
    // from `sysconfig.get_config_vars()` in the module); none of it.
    write!(f, "sysvars! {{}}").unwrap();
}

fn rustc_version() -> String {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    command(rustc, &["-V"])
}

fn command(cmd: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    match Command::new(cmd).args(args).output() {
        Ok(output) => match String::from_utf8(output.stdout) {
            Ok(s) => s,
            Err(err) => format!("(output error: {err})"),
        },
        Err(err) => format!("(command error: {err})"),
    }
}
