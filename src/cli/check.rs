//! `wasm-cgi check`: validate the config file and every module or component
//! (compiles, imports only what the host provides, is a command or a
//! wasi:http handler, fits its routes) without serving. Prints what each
//! file is; one line per problem; exit code 1 if there is any.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::cache::CacheFlags;
use super::serve::{ModuleSource, install_dir, load_modules, module_source, needs_fuel};
use crate::config::Config;
use crate::limits::Limits;
use crate::modules::LoadOptions;
use crate::routes;
use crate::runtime::{Runtime, RuntimeOptions};

/// Check the config file and the modules; serve nothing.
#[derive(clap::Args, Debug)]
pub struct CheckCommand {
    /// TOML config file to check [default: none; the modules folder that
    /// `serve` would use is checked]
    #[arg(long, env = "WASM_CGI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder of .wasm modules, as for `serve`
    #[arg(long, env = "WASM_DIR", value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// Compile cache and precompiled modules.
    #[command(flatten)]
    pub cache: CacheFlags,
}

impl CheckCommand {
    /// Prints every problem, or a one-line summary when there is none.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let problems = self.problems()?;
        if problems.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        for problem in &problems {
            eprintln!("{problem}");
        }
        Ok(ExitCode::FAILURE)
    }

    fn problems(&self) -> anyhow::Result<Vec<String>> {
        let config = match &self.config {
            Some(file) => match Config::load(file) {
                Ok(config) => config,
                Err(errors) => return Ok(errors.0),
            },
            None => Config::default(),
        };
        let cwd = std::env::current_dir().context("failed to read the current directory")?;
        let env = |name: &str| std::env::var(name).ok();
        let source = match module_source(
            self.modules.as_deref(),
            install_dir(&env).as_deref(),
            config.modules.as_deref(),
            &cwd,
        ) {
            Ok(source) => source,
            Err(error) => return Ok(vec![format!("{error:#}")]),
        };
        let limits = config.limits.apply(Limits::default());
        let runtime = Runtime::new(RuntimeOptions {
            fuel_metering: needs_fuel(&limits, &config.routes),
            cache: self.cache.cache(),
            ..RuntimeOptions::default()
        })?;
        let options = LoadOptions {
            allow_precompiled: self.cache.allow_precompiled,
        };
        let tokio = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
        let (modules, failures) = tokio.block_on(load_modules(&runtime, &source, options))?;

        let folder = match &source {
            ModuleSource::Folder(dir) => dir.display().to_string(),
            ModuleSource::Examples => "built-in examples".to_owned(),
        };
        let mut problems: Vec<String> = failures
            .iter()
            .map(|failure| format!("{folder}/{}: {}", failure.module, failure.reason))
            .collect();
        if let Err(route_problems) = routes::from_config(&config.routes, &modules, &limits) {
            problems.extend(route_problems);
        }
        if problems.is_empty() {
            for name in modules.names() {
                if let Some(entry) = modules.get(&name) {
                    println!("{name}: {}", entry.program.kind());
                }
            }
            println!(
                "ok: {} modules in {folder}, {} routes",
                modules.names().len(),
                config.routes.len()
            );
        }
        Ok(problems)
    }
}
