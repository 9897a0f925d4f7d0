//! The module registry: which module answers to which file name. Filled from
//! the modules folder (compiled in parallel at start-up, kept current by
//! [`reload`]) or from the built-in examples. Requests take an `Arc` to the
//! entry they run, so a module replaced meanwhile finishes them unchanged.

mod files;
mod init_plan;
pub mod reload;

pub use init_plan::InitPlan;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;

use crate::cgi::Mode;
use crate::examples::EXAMPLES;
use crate::runtime::{InitOptions, Preinitialized, Program, Sandbox};

/// A loaded module and how to read its output.
pub struct ModuleEntry {
    /// The compiled, pre-linked module.
    pub program: Arc<Program>,
    /// The mode the module declares for itself (built-in examples do);
    /// `None` means the server's `--mode`.
    pub mode: Option<Mode>,
    /// How long it took to read, compile (or load from the cache) and link.
    pub load_time: Duration,
    /// The file it was loaded from, as it was then; `None` for built-ins.
    pub source: Option<Fingerprint>,
}

/// A module file's identity and state: its size, modification and change
/// times, and inode. When any changes, the file is reloaded: a same-size
/// replacement whose modification time was preserved (`cp -p`, `touch -r`)
/// still has a new change time, and one renamed into place a new inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    changed: (i64, i64),
    inode: (u64, u64),
}

impl Fingerprint {
    /// The fingerprint of the file at `path` now.
    pub fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let metadata = std::fs::metadata(path)?;
        Ok(Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
            inode: (metadata.dev(), metadata.ino()),
        })
    }
}

/// A module file that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    /// Its file name.
    pub module: String,
    /// Why, fit for a log line.
    pub reason: String,
}

/// What files in the modules folder are modules, and how they are loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Also `.cwasm` files precompiled by `wasm-cgi compile`.
    pub allow_precompiled: bool,
    /// How each module is pre-initialized.
    pub init: Arc<InitPlan>,
}

/// The modules the server answers for, by file name.
#[derive(Default)]
pub struct ModuleRegistry {
    entries: RwLock<HashMap<Arc<str>, Arc<ModuleEntry>>>,
}

/// Whether `name` can name a module: a visible `*.wasm` or `*.cwasm` file.
pub fn is_module_file(name: &str) -> bool {
    !name.starts_with('.') && (has_extension(name, ".wasm") || has_extension(name, ".cwasm"))
}

fn has_extension(name: &str, extension: &str) -> bool {
    name.len() > extension.len() && name.ends_with(extension)
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
        self.write().insert(name.into(), Arc::new(entry));
    }

    /// Stops serving `name`.
    pub fn remove(&self, name: &str) {
        self.write().remove(name);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Arc<ModuleEntry>>> {
        self.entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Arc<str>, Arc<ModuleEntry>>> {
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The built-in example modules.
    pub fn examples(sandbox: &Sandbox) -> anyhow::Result<Self> {
        let registry = Self::default();
        for example in EXAMPLES {
            let started = Instant::now();
            let program = sandbox
                .load(example.name, example.wasm)
                .with_context(|| format!("built-in example {} failed to load", example.name))?;
            let entry = ModuleEntry {
                program: Arc::new(program),
                mode: Some(example.mode),
                load_time: started.elapsed(),
                source: None,
            };
            registry.insert(example.name, entry);
        }
        Ok(registry)
    }

    /// Compiles every module in `dir` in parallel. Files that fail to load
    /// are left out and returned with why; only an unreadable folder is an
    /// error.
    pub async fn load_folder(
        sandbox: &Sandbox,
        dir: &Path,
        options: LoadOptions,
    ) -> anyhow::Result<(Self, Vec<LoadFailure>)> {
        let files = module_files(dir, &options)?;
        let tasks: Vec<_> = files
            .into_iter()
            .map(|(name, path)| {
                let sandbox = sandbox.clone();
                let init = options.init.clone();
                tokio::task::spawn_blocking(move || {
                    let loaded = load_file(&sandbox, &name, &path, init.for_module(&name));
                    (name, loaded)
                })
            })
            .collect();

        let registry = Self::default();
        let mut failures = Vec::new();
        for task in tasks {
            let (name, loaded) = task.await.context("a module compilation task panicked")?;
            match loaded {
                Ok(entry) => {
                    entry.log_loaded(&name, "module loaded");
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

impl ModuleEntry {
    /// The load log line: `what` (`module loaded`, `module reloaded`...),
    /// the load time, the tier serving it (`winch` until Cranelift's code
    /// replaces it, logged then as `module optimized`), and how the module
    /// was pre-initialized, if it was.
    pub fn log_loaded(&self, name: &str, what: &str) {
        let load_ms = self.load_time.as_millis() as u64;
        let tier = self.program.tier();
        match self.program.preinitialized() {
            None => tracing::info!(module = %name, load_ms, %tier, "{what}"),
            Some(Preinitialized {
                function,
                init_time: Some(took),
            }) => tracing::info!(
                module = %name,
                load_ms,
                %tier,
                init = %function,
                init_ms = took.as_millis() as u64,
                "{what}, pre-initialized"
            ),
            Some(Preinitialized {
                function,
                init_time: None,
            }) => tracing::info!(
                module = %name,
                load_ms,
                %tier,
                init = %function,
                "{what}, pre-initialized snapshot from the cache"
            ),
        }
    }
}

/// Reads, compiles (or takes from the cache) and links the module file at
/// `path`, pre-initializing it as `init` says. Blocking: call it off the
/// async workers.
pub fn load_file(
    sandbox: &Sandbox,
    name: &str,
    path: &Path,
    init: &InitOptions,
) -> anyhow::Result<ModuleEntry> {
    let started = Instant::now();
    let source = Fingerprint::of(path).context("failed to read the file")?;
    let bytes = std::fs::read(path).context("failed to read the file")?;
    let program = if has_extension(name, ".cwasm") {
        // SAFETY: `.cwasm` files are only listed with `--allow-precompiled`,
        // the operator's statement that they come from a trusted source.
        unsafe { sandbox.load_precompiled(name, &bytes) }?
    } else {
        sandbox.load_with(name, &bytes, init)?
    };
    Ok(ModuleEntry {
        program: Arc::new(program),
        mode: None,
        load_time: started.elapsed(),
        source: Some(source),
    })
}

/// The module files in `dir`, by name.
pub fn module_files(dir: &Path, options: &LoadOptions) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read the modules folder {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry
            .with_context(|| format!("failed to read the modules folder {}", dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let wanted =
            is_module_file(&name) && (has_extension(&name, ".wasm") || options.allow_precompiled);
        if wanted && entry.path().is_file() {
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
    fn only_visible_wasm_and_cwasm_files_are_modules() {
        assert!(is_module_file("hello.wasm"));
        assert!(is_module_file("hello.cwasm"));
        assert!(!is_module_file(".hidden.wasm"));
        assert!(!is_module_file(".wasm"));
        assert!(!is_module_file("notes.txt"));
        assert!(!is_module_file("hello.wasm.bak"));
    }

    #[test]
    fn precompiled_files_are_listed_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.wasm", "b.cwasm", ".c.wasm", "d.txt"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let names = |options| -> Vec<String> {
            module_files(dir.path(), &options)
                .unwrap()
                .into_iter()
                .map(|(name, _)| name)
                .collect()
        };
        assert_eq!(names(LoadOptions::default()), ["a.wasm"]);
        assert_eq!(
            names(LoadOptions {
                allow_precompiled: true,
                ..LoadOptions::default()
            }),
            ["a.wasm", "b.cwasm"]
        );
    }
}
