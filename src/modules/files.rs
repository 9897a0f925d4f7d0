//! Module files named by path (a WAGI `modules.toml`, a Spin manifest),
//! loaded into the registry beside the modules folder's, under their real
//! path. They are not watched: like WAGI and Spin, a restart picks up a
//! new version.

use super::{LoadFailure, LoadOptions, ModuleRegistry, has_extension, load_file};
use crate::config::ModuleFile;
use crate::runtime::Sandbox;

impl ModuleRegistry {
    /// Compiles `files` in parallel into the registry; those that fail are
    /// left out and returned with why.
    pub async fn load_files(
        &self,
        sandbox: &Sandbox,
        files: &[ModuleFile],
        options: &LoadOptions,
    ) -> Vec<LoadFailure> {
        let tasks: Vec<_> = files
            .iter()
            .cloned()
            .map(|file| {
                let sandbox = sandbox.clone();
                let init = options.init.clone();
                let allow_precompiled = options.allow_precompiled;
                tokio::task::spawn_blocking(move || {
                    let loaded = if has_extension(&file.name, ".cwasm") && !allow_precompiled {
                        Err(anyhow::anyhow!(
                            "a .cwasm file is native code: it is loaded only with --allow-precompiled"
                        ))
                    } else if is_text(&file.path) {
                        Err(anyhow::anyhow!(
                            "a WebAssembly text (.wat) file: compile it first, e.g. \
                             `wasm-tools parse {0} -o {0}.wasm`, and name the .wasm",
                            file.path.display()
                        ))
                    } else {
                        load_file(&sandbox, &file.name, &file.path, init.for_module(&file.name))
                    };
                    (file.name, loaded)
                })
            })
            .collect();
        let mut failures = Vec::new();
        for task in tasks {
            match task.await {
                Ok((name, Ok(entry))) => {
                    entry.log_loaded(&name, "module loaded");
                    self.insert(&name, entry);
                }
                Ok((name, Err(error))) => failures.push(LoadFailure {
                    module: name,
                    reason: format!("{error:#}"),
                }),
                Err(error) => failures.push(LoadFailure {
                    module: "(a module file)".to_owned(),
                    reason: format!("its load task failed: {error}"),
                }),
            }
        }
        failures
    }
}

/// Whether the file at `path` starts like WebAssembly text.
fn is_text(path: &std::path::Path) -> bool {
    let mut start = [0u8; 64];
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let read = std::io::Read::read(&mut file, &mut start).unwrap_or(0);
    let text = String::from_utf8_lossy(&start[..read]);
    let text = text.trim_start();
    text.starts_with("(module") || text.starts_with("(component") || text.starts_with(";;")
}
