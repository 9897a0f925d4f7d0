//! The module registry: which module answers to which file name. Filled from
//! the modules folder (compiled in parallel at start-up; invalid files are
//! logged and skipped) or from the built-in examples.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::cgi::Mode;
use crate::examples::EXAMPLES;
use crate::runtime::{Program, Runtime};

/// A loaded module and how to read its output.
pub struct ModuleEntry {
    /// The compiled, pre-linked module.
    pub program: Arc<Program>,
    /// The mode the module declares for itself (built-in examples do);
    /// `None` means the server's `--mode`.
    pub mode: Option<Mode>,
    /// How long it took to read, compile and link.
    pub load_time: Duration,
}

/// A module file that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    /// Its file name.
    pub module: String,
    /// Why, fit for a log line.
    pub reason: String,
}

/// The modules the server answers for, by file name.
#[derive(Default)]
pub struct ModuleRegistry {
    entries: RwLock<HashMap<Arc<str>, Arc<ModuleEntry>>>,
}

/// Whether `name` is a file the registry loads: `*.wasm`, not hidden.
pub fn is_module_file(name: &str) -> bool {
    !name.starts_with('.') && name.len() > ".wasm".len() && name.ends_with(".wasm")
}

impl ModuleRegistry {
    /// The module serving `name`, if any.
    pub fn get(&self, name: &str) -> Option<Arc<ModuleEntry>> {
        self.read().get(name).cloned()
    }

    /// Every module name, sorted.
    pub fn names(&self) -> Vec<Arc<str>> {
        let mut names: Vec<_> = self.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Adds or replaces the module served as `name`.
    pub fn insert(&self, name: &str, entry: ModuleEntry) {
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.into(), Arc::new(entry));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Arc<ModuleEntry>>> {
        self.entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The built-in example modules.
    pub fn examples(runtime: &Runtime) -> anyhow::Result<Self> {
        let registry = Self::default();
        for example in EXAMPLES {
            let started = Instant::now();
            let program = runtime
                .load(example.name, example.wasm)
                .with_context(|| format!("built-in example {} failed to load", example.name))?;
            let entry = ModuleEntry {
                program: Arc::new(program),
                mode: Some(example.mode),
                load_time: started.elapsed(),
            };
            registry.insert(example.name, entry);
        }
        Ok(registry)
    }

    /// Compiles every module in `dir` in parallel. Files that fail to load
    /// are left out and returned with why; only an unreadable folder is an
    /// error.
    pub async fn load_folder(
        runtime: &Runtime,
        dir: &Path,
    ) -> anyhow::Result<(Self, Vec<LoadFailure>)> {
        let files = module_files(dir)?;
        let tasks: Vec<_> = files
            .into_iter()
            .map(|(name, path)| {
                let runtime = runtime.clone();
                tokio::task::spawn_blocking(move || {
                    let started = Instant::now();
                    let loaded = std::fs::read(&path)
                        .context("failed to read the file")
                        .and_then(|wasm| runtime.load(&name, &wasm));
                    (name, loaded, started.elapsed())
                })
            })
            .collect();

        let registry = Self::default();
        let mut failures = Vec::new();
        for task in tasks {
            let (name, loaded, elapsed) =
                task.await.context("a module compilation task panicked")?;
            match loaded {
                Ok(program) => {
                    tracing::info!(module = %name, compile_ms = elapsed.as_millis() as u64, "module loaded");
                    let entry = ModuleEntry {
                        program: Arc::new(program),
                        mode: None,
                        load_time: elapsed,
                    };
                    registry.insert(&name, entry);
                }
                Err(error) => failures.push(LoadFailure {
                    module: name,
                    reason: format!("{error:#}"),
                }),
            }
        }
        Ok((registry, failures))
    }
}

/// The module files in `dir`, by name.
fn module_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read the modules folder {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry
            .with_context(|| format!("failed to read the modules folder {}", dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if is_module_file(&name) && entry.path().is_file() {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_wasm_files_are_modules() {
        assert!(is_module_file("hello.wasm"));
        assert!(!is_module_file(".hidden.wasm"));
        assert!(!is_module_file(".wasm"));
        assert!(!is_module_file("notes.txt"));
        assert!(!is_module_file("hello.wasm.bak"));
    }
}
