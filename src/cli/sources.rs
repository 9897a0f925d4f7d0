//! Where the programs come from, for every command that serves or checks
//! them: the config file, the modules folder (or the built-in examples),
//! and the compile cache. `serve` and `check` flatten the same flags and
//! resolve them the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cache::CacheFlags;
use crate::config::{Config, ConfigErrors, RouteConfig};
use crate::limits::Limits;
use crate::modules::{LoadFailure, LoadOptions, ModuleRegistry};
use crate::routes::{self, Protected};
use crate::runtime::{ModuleCache, Sandbox};

/// The config file, the modules folder and the compile cache.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SourceFlags {
    /// TOML config file: listen, modules, www, mode, [limits] and [[route]]
    /// tables; or a WAGI modules.toml, or a Spin manifest [default: none]
    #[arg(long, env = "WASM_CGI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder of .wasm modules [default: $INSTALL_DIR/www/cgi-bin/modules,
    /// else ./modules if it exists, else the built-in examples]
    #[arg(long, env = "WASM_DIR", value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// Folder of CGI scripts, run by the [[interpreter]] of their extension
    /// at /cgi-bin/NAME.EXT [default: $INSTALL_DIR/www/cgi-bin if it exists]
    #[arg(long, env = "SCRIPTS_DIR", value_name = "DIR")]
    pub scripts: Option<PathBuf>,
    /// Compile cache and precompiled modules.
    #[command(flatten)]
    pub cache: CacheFlags,
}

/// Where the modules come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleSource {
    /// Every `.wasm` in this folder.
    Folder(PathBuf),
    /// The examples built into the binary.
    Examples,
}

impl std::fmt::Display for ModuleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModuleSource::Folder(dir) => write!(f, "{}", dir.display()),
            ModuleSource::Examples => f.write_str("built-in examples"),
        }
    }
}

impl SourceFlags {
    /// The config file, checked; an empty config without `--config`.
    pub fn config(&self) -> Result<Config, ConfigErrors> {
        match &self.config {
            Some(file) => Config::load(file),
            None => Ok(Config::default()),
        }
    }

    /// The config file as far as it makes sense, and its problems.
    pub fn config_checked(&self) -> (Option<Config>, Vec<String>) {
        match &self.config {
            Some(file) => Config::load_checked(file),
            None => (Some(Config::default()), Vec::new()),
        }
    }

    /// Where the modules come from: the flag (or `WASM_DIR`), else
    /// `$INSTALL_DIR/www/cgi-bin/modules`, else the config file's
    /// `modules`, else `./modules` if it exists, else the built-in examples.
    /// `env` reads `INSTALL_DIR`; `cwd` is where `./modules` is looked for.
    pub fn module_source(
        &self,
        config: &Config,
        env: &impl Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> anyhow::Result<ModuleSource> {
        let folder = self
            .modules
            .clone()
            .or_else(|| install_dir(env).map(|dir| dir.join("www/cgi-bin/modules")))
            .or_else(|| config.modules.clone())
            .or_else(|| Some(cwd.join("modules")).filter(|dir| dir.is_dir()));
        match folder {
            Some(dir) => {
                anyhow::ensure!(
                    dir.is_dir(),
                    "the modules folder {} does not exist",
                    dir.display()
                );
                Ok(ModuleSource::Folder(dir))
            }
            None => Ok(ModuleSource::Examples),
        }
    }

    /// The scripts folder: the flag (or `SCRIPTS_DIR`), else
    /// `$INSTALL_DIR/www/cgi-bin` if it exists, else the config file's
    /// `scripts`, else none.
    pub fn scripts_dir(
        &self,
        config: &Config,
        env: &impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<PathBuf>> {
        if let Some(dir) = &self.scripts {
            anyhow::ensure!(
                dir.is_dir(),
                "the scripts folder {} does not exist",
                dir.display()
            );
            return Ok(Some(dir.clone()));
        }
        let installed = install_dir(env)
            .map(|dir| dir.join("www/cgi-bin"))
            .filter(|dir| dir.is_dir());
        Ok(installed.or_else(|| config.scripts.clone()))
    }

    /// Which files are modules, as these flags say, and how each is
    /// pre-initialized, as `config` says.
    pub fn load_options(&self, config: &Config, limits: &Limits) -> LoadOptions {
        LoadOptions {
            allow_precompiled: self.cache.allow_precompiled,
            init: Arc::new(routes::init_plan(
                &config.routes,
                &config.interpreters,
                limits,
            )),
        }
    }
}

/// The paths no route may grant a guest: the modules folder, `www`, the
/// scripts folder, the compile cache and its key.
pub fn protected_paths(
    source: &ModuleSource,
    www: Option<&Path>,
    scripts: Option<&Path>,
    cache: &ModuleCache,
) -> Vec<Protected> {
    let mut protected = Vec::new();
    if let Some(scripts) = scripts {
        protected.push(Protected {
            what: "the scripts folder",
            path: scripts.to_path_buf(),
        });
    }
    if let ModuleSource::Folder(dir) = source {
        protected.push(Protected {
            what: "the modules folder",
            path: dir.clone(),
        });
    }
    if let Some(www) = www {
        protected.push(Protected {
            what: "the static files folder",
            path: www.to_path_buf(),
        });
    }
    if let Some(dir) = cache.dir() {
        protected.push(Protected {
            what: "the compile cache",
            path: dir.to_path_buf(),
        });
    }
    if let Some(key) = cache.key_file() {
        protected.push(Protected {
            what: "the compile cache's key",
            path: key.to_path_buf(),
        });
    }
    protected
}

/// Loads the modules of `source`; the files that failed, with why.
pub async fn load_modules(
    sandbox: &Sandbox,
    source: &ModuleSource,
    options: LoadOptions,
) -> anyhow::Result<(ModuleRegistry, Vec<LoadFailure>)> {
    match source {
        ModuleSource::Folder(dir) => ModuleRegistry::load_folder(sandbox, dir, options).await,
        ModuleSource::Examples => Ok((ModuleRegistry::examples(sandbox)?, Vec::new())),
    }
}

/// `INSTALL_DIR`, when set and not empty.
pub fn install_dir(env: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("INSTALL_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// Whether any limit asks for fuel, so the engine must meter it.
pub fn needs_fuel(limits: &Limits, routes: &[RouteConfig]) -> bool {
    limits.fuel.is_some() || routes.iter().any(|route| route.limits.fuel.is_some())
}
