//! `wasm-cgi compile MODULE... [-o DIR]`: compile ahead of time, into the
//! cache (so the next `serve` or `run` starts without compiling), or to
//! `.cwasm` files that `serve --allow-precompiled` loads directly; with
//! `--init`, pre-initialize and write the snapshot as a portable `.wasm`.
//! A module that exports an initializer is pre-initialized either way.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::cache::CacheFlags;
use super::init::InitFlags;
use crate::limits::{LimitOverrides, Limits};
use crate::runtime::{InitOptions, Sandbox, SandboxOptions};

/// Precompile modules into the cache, or to `.cwasm` files with `-o`, or
/// pre-initialize them into `.wasm` snapshots with `--init -o`.
#[derive(clap::Args, Debug)]
pub struct CompileCommand {
    /// The modules (.wasm) to compile
    #[arg(required = true)]
    pub modules: Vec<PathBuf>,
    /// Write NAME.cwasm files (with --init: NAME.wasm snapshots) into this
    /// folder instead of filling the cache
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Pre-initialization.
    #[command(flatten)]
    pub init: InitFlags,
    /// Limits for the initializer (as `serve`'s defaults unless given).
    #[command(flatten)]
    pub limits: LimitOverrides,
    /// Compile cache.
    #[command(flatten)]
    pub cache: CacheFlags,
}

impl CompileCommand {
    /// Compiles every module; fails on the first that doesn't compile.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let limits = self.limits.apply(Limits::default());
        let sandbox = Sandbox::new(SandboxOptions {
            fuel_metering: limits.fuel.is_some(),
            max_memory: limits.max_memory.0,
            cache: self.cache.cache(),
            ..SandboxOptions::default()
        })?;
        let init = InitOptions {
            initializer: self.init.initializer(),
            limits: limits.run(),
        };
        if let Some(dir) = &self.output {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        for path in &self.modules {
            self.compile(&sandbox, path, &init)
                .with_context(|| format!("failed to compile {}", path.display()))?;
        }
        Ok(ExitCode::SUCCESS)
    }

    fn compile(&self, sandbox: &Sandbox, path: &Path, init: &InitOptions) -> anyhow::Result<()> {
        let wasm = std::fs::read(path).context("cannot read it")?;
        let file_name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("module.wasm");
        let stem = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or("module");
        if self.init.requested() && init.initializer.resolve(&wasm)?.is_none() {
            anyhow::bail!("--init: it exports neither `wizer.initialize` nor `wizer-initialize`");
        }
        match &self.output {
            Some(dir) if self.init.requested() => {
                let (function, snapshot) = sandbox
                    .snapshot(file_name, &wasm, init)?
                    .expect("an initializer, checked above");
                let target = dir.join(format!("{stem}.wasm"));
                anyhow::ensure!(
                    !same_file(path, &target),
                    "-o {}: the snapshot would overwrite the module itself",
                    dir.display()
                );
                std::fs::write(&target, snapshot)
                    .with_context(|| format!("failed to write {}", target.display()))?;
                println!(
                    "{} -> {} (pre-initialized by `{function}`)",
                    path.display(),
                    target.display()
                );
            }
            Some(dir) => {
                let cwasm = sandbox.precompile(&wasm, init)?;
                let target = dir.join(format!("{stem}.cwasm"));
                std::fs::write(&target, cwasm)
                    .with_context(|| format!("failed to write {}", target.display()))?;
                println!("{} -> {}", path.display(), target.display());
            }
            None => {
                let program = sandbox.load_with(file_name, &wasm, init)?;
                let cache = sandbox
                    .cache()
                    .dir()
                    .context("the compile cache is off; give -o DIR")?;
                let how = program
                    .preinitialized()
                    .map(|p| format!(" (pre-initialized by `{}`)", p.function))
                    .unwrap_or_default();
                println!("{} -> cache {}{how}", path.display(), cache.display());
            }
        }
        Ok(())
    }
}

/// Whether `a` and `b` name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
