//! `wasm-cgi check`: validate the config file and every module or component
//! (compiles, imports only what the host provides, is a command or a
//! wasi:http handler, fits its routes) without serving. Prints what each
//! file is; one line per problem; exit code 1 if there is any.

use std::process::ExitCode;

use anyhow::Context as _;

use super::module_files;
use super::sources::{SourceFlags, load_modules, needs_fuel, protected_paths};
use crate::config::{Format, RouteConfig};
use crate::limits::Limits;
use crate::routes;
use crate::runtime::{Preinitialized, Sandbox, SandboxOptions};
use crate::scripts::{self, Scripts};

/// Check the config file and the modules; serve nothing.
#[derive(clap::Args, Debug)]
pub struct CheckCommand {
    /// The config file, the modules and the compile cache, as for `serve`
    /// (without `--config`, the modules folder `serve` would use).
    #[command(flatten)]
    pub sources: SourceFlags,
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
        // Every problem in one run: the config's, then its modules' and
        // routes', as far as the config makes sense.
        let (config, mut problems) = self.sources.config_checked();
        let Some(config) = config else {
            return Ok(problems);
        };
        let cwd = std::env::current_dir().context("failed to read the current directory")?;
        let env = |name: &str| std::env::var(name).ok();
        let source = match self.sources.module_source(&config, &env, &cwd) {
            Ok(source) => source,
            Err(error) => {
                problems.push(format!("{error:#}"));
                return Ok(problems);
            }
        };
        let limits = config.limits.apply(Limits::default());
        let sandbox = Sandbox::new(SandboxOptions {
            fuel_metering: needs_fuel(&limits, &config.routes),
            cache: self.sources.cache.cache(),
            ..SandboxOptions::default()
        })?;
        let options = self.sources.load_options(&config, &limits);
        let tokio = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
        let (modules, failures) =
            tokio.block_on(load_modules(&sandbox, &source, options.clone()))?;
        problems.extend(
            failures
                .iter()
                .map(|failure| format!("{source}/{}: {}", failure.module, failure.reason)),
        );
        let (route_configs, file_failures) = tokio.block_on(module_files::load(
            &sandbox,
            &modules,
            &config.module_files,
            &config.routes,
            &options,
            &limits,
        ));
        problems.extend(
            file_failures
                .iter()
                .map(|failure| format!("{}: {}", failure.module, failure.reason)),
        );
        for warning in &config.warnings {
            eprintln!("warning: {warning}");
        }
        let scripts_dir = match self.sources.scripts_dir(&config, &env) {
            Ok(dir) => dir,
            Err(error) => {
                problems.push(format!("{error:#}"));
                None
            }
        };
        let protected = protected_paths(
            &source,
            config.www.as_deref(),
            scripts_dir.as_deref(),
            sandbox.cache(),
        );
        problems.extend(scripts::check(
            &config.interpreters,
            &config.routes,
            scripts_dir.as_deref(),
            &modules,
            &protected,
        ));
        if let Err(route_problems) =
            routes::from_config(&route_configs, &modules, &limits, &protected)
        {
            problems.extend(route_problems);
        }
        if problems.is_empty() {
            for name in modules.names() {
                if let Some(entry) = modules.get(&name) {
                    let snapshot = match entry.program.preinitialized() {
                        None => String::new(),
                        Some(Preinitialized {
                            function,
                            init_time: Some(took),
                        }) => format!(
                            ", pre-initialized by `{function}` ({} ms)",
                            took.as_millis()
                        ),
                        Some(Preinitialized {
                            function,
                            init_time: None,
                        }) => {
                            format!(", pre-initialized by `{function}` (snapshot from the cache)")
                        }
                    };
                    println!("{name}: {}{snapshot}", entry.program.kind());
                }
            }
            let scripts = Scripts::new(scripts_dir.as_deref(), &config.interpreters, &limits)
                .context("cannot read the scripts folder")?;
            let listing = scripts.listing();
            for (script, module) in &listing {
                println!("{script}: script, run by {module}");
            }
            let in_scripts = scripts
                .dir()
                .map(|dir| format!(", {} scripts in {}", listing.len(), dir.display()))
                .unwrap_or_default();
            if config.format != Format::Native || !route_configs.is_empty() {
                println!("format: {}", config.format);
            }
            for route in &route_configs {
                println!("{}", route_line(route));
            }
            println!(
                "ok: {} modules in {source}{in_scripts}, {} routes",
                modules.names().len(),
                route_configs.len()
            );
        }
        Ok(problems)
    }
}

/// One derived route, for `check`'s listing: `route /hello/... -> app.wasm
/// (entrypoint hello)`.
fn route_line(route: &RouteConfig) -> String {
    let mut line = format!("route {} -> {}", route.path, route.module);
    if let Some(script) = &route.script {
        line.push_str(&format!(" (script {script})"));
    }
    if let Some(entrypoint) = &route.entrypoint {
        line.push_str(&format!(" (entrypoint {entrypoint})"));
    }
    if route
        .compat
        .as_ref()
        .is_some_and(|c| c.group.is_some_and(|g| g.rank > 0))
    {
        line.push_str(" (from _routes)");
    }
    line
}
