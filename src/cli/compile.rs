//! `wasm-cgi compile MODULE... [-o DIR]`: compile ahead of time, into the
//! cache (so the next `serve` or `run` starts without compiling), or to
//! `.cwasm` files that `serve --allow-precompiled` loads directly.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::cache::CacheFlags;
use crate::runtime::{Sandbox, SandboxOptions};

/// Precompile modules into the cache, or to `.cwasm` files with `-o`.
#[derive(clap::Args, Debug)]
pub struct CompileCommand {
    /// The modules (.wasm) to compile
    #[arg(required = true)]
    pub modules: Vec<PathBuf>,
    /// Write NAME.cwasm files into this folder instead of filling the cache
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Compile cache.
    #[command(flatten)]
    pub cache: CacheFlags,
}

impl CompileCommand {
    /// Compiles every module; fails on the first that doesn't compile.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let sandbox = Sandbox::new(SandboxOptions {
            cache: self.cache.cache(),
            ..SandboxOptions::default()
        })?;
        if let Some(dir) = &self.output {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        for path in &self.modules {
            let wasm = std::fs::read(path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            let name = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or("module");
            match &self.output {
                Some(dir) => {
                    let cwasm = sandbox
                        .precompile(&wasm)
                        .with_context(|| format!("failed to compile {}", path.display()))?;
                    let target = dir.join(format!("{name}.cwasm"));
                    std::fs::write(&target, cwasm)
                        .with_context(|| format!("failed to write {}", target.display()))?;
                    println!("{} -> {}", path.display(), target.display());
                }
                None => {
                    sandbox
                        .load(name, &wasm)
                        .with_context(|| format!("failed to compile {}", path.display()))?;
                    let cache = sandbox
                        .cache()
                        .dir()
                        .context("the compile cache is off; give -o DIR")?;
                    println!("{} -> cache {}", path.display(), cache.display());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
