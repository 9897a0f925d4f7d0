//! CGI scripts: files in the scripts folder run by the interpreter module
//! their extension names (`[[interpreter]]`). A script is looked up when it
//! is requested, so adding or editing one takes effect at once; its folder
//! is granted to the interpreter read-only at [`GUEST_DIR`], and nothing
//! else unless the interpreter's `dirs` say so.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::admission::Admission;
use crate::config::{InterpreterConfig, RouteConfig};
use crate::limits::Limits;
use crate::modules::ModuleRegistry;
use crate::routes::{Protected, overlapping_grants};
use crate::runtime::DirGrant;
use crate::runtime::{Program, ProgramKind};

/// Where the interpreter sees the scripts folder (`DOCUMENT_ROOT`).
pub const GUEST_DIR: &str = "/srv/cgi-bin";

/// One interpreter, with its limits resolved.
#[derive(Debug)]
pub struct Interpreter {
    /// As configured.
    pub config: InterpreterConfig,
    /// The server's limits, overridden by the interpreter's.
    pub limits: Limits,
    /// Its own instance slots, when its limits set `max_concurrency`.
    pub admission: Option<Arc<Admission>>,
}

/// The scripts folder and the interpreters.
#[derive(Debug, Default)]
pub struct Scripts {
    /// The folder, as its real path; `None` without one (route scripts
    /// then can't be found either).
    dir: Option<PathBuf>,
    interpreters: Vec<Interpreter>,
}

/// A script found for a request.
#[derive(Debug, Clone)]
pub struct Script<'a> {
    /// Its file name, e.g. `hello.py`.
    pub name: String,
    /// The scripts folder (real path).
    folder: &'a Path,
    /// What runs it.
    pub interpreter: &'a Interpreter,
}

impl Script<'_> {
    /// Its path as the interpreter sees it (`SCRIPT_FILENAME`).
    pub fn guest_path(&self) -> String {
        format!("{GUEST_DIR}/{}", self.name)
    }

    /// Its folder, granted read-only at [`GUEST_DIR`].
    pub fn folder_grant(&self) -> DirGrant {
        DirGrant {
            host: self.folder.to_path_buf(),
            guest: GUEST_DIR.to_owned(),
            read_only: true,
        }
    }
}

impl Scripts {
    /// The scripts in `dir` (if any), run by `interpreters`, whose limits
    /// are resolved over `defaults`.
    pub fn new(
        dir: Option<&Path>,
        interpreters: &[InterpreterConfig],
        defaults: &Limits,
    ) -> std::io::Result<Self> {
        let dir = dir.map(Path::canonicalize).transpose()?;
        let interpreters = interpreters
            .iter()
            .map(|config| {
                let limits = config.limits.apply(defaults.clone());
                let admission = config.limits.max_concurrency.map(|_| {
                    Arc::new(Admission::new(limits.max_concurrency, limits.queue_timeout))
                });
                Interpreter {
                    config: config.clone(),
                    limits,
                    admission,
                }
            })
            .collect();
        Ok(Self { dir, interpreters })
    }

    /// The scripts folder, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The interpreter for a file named `name`, by its extension.
    pub fn interpreter_for(&self, name: &str) -> Option<&Interpreter> {
        self.interpreters
            .iter()
            .find(|interpreter| crate::config::has_extension(name, &interpreter.config.extension))
    }

    /// The script `name` (a plain file name, already checked) if the
    /// folder holds it as a regular file that is not hidden, whose real
    /// path stays in the folder, and an interpreter runs its extension.
    pub fn find(&self, name: &str) -> Option<Script<'_>> {
        let dir = self.dir.as_ref()?;
        if name.starts_with('.') {
            return None;
        }
        let interpreter = self.interpreter_for(name)?;
        let real = dir.join(name).canonicalize().ok()?;
        (real.parent() == Some(dir.as_path()) && real.is_file()).then(|| Script {
            name: name.to_owned(),
            folder: dir,
            interpreter,
        })
    }

    /// Every script the folder holds now, sorted, with its interpreter's
    /// module.
    pub fn listing(&self) -> Vec<(String, String)> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let mut found: Vec<(String, String)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter_map(|name| {
                let module = self.find(&name)?.interpreter.config.module.clone();
                Some((name, module))
            })
            .collect();
        found.sort();
        found
    }
}

/// Whether `program` can run scripts: a command (a module or a
/// `wasi:cli/command` component), not a wasi:http handler.
pub fn can_interpret(program: &Program) -> Result<(), String> {
    match program.kind() {
        ProgramKind::Module | ProgramKind::Command => Ok(()),
        kind => Err(format!(
            "is a {kind}: an interpreter must be a command that runs the script it is given"
        )),
    }
}

/// One `FILE:LINE: message` per interpreter whose module is not loaded or
/// can't run scripts, per interpreter grant that overlaps a `protected`
/// folder, and per route script with no scripts folder to find it in.
pub fn check(
    interpreters: &[InterpreterConfig],
    routes: &[RouteConfig],
    dir: Option<&Path>,
    modules: &ModuleRegistry,
    protected: &[Protected],
) -> Vec<String> {
    let mut problems = Vec::new();
    for interpreter in interpreters {
        let owner = format!(
            "{}: interpreter for {}",
            interpreter.location, interpreter.extension
        );
        problems.extend(overlapping_grants(&owner, &interpreter.dirs, protected));
        let fit = match modules.get(&interpreter.module) {
            None => Err("is not in the modules folder (or failed to load)".to_owned()),
            Some(entry) => can_interpret(&entry.program),
        };
        if let Err(problem) = fit {
            problems.push(format!(
                "{}: interpreter for {}: module {} {problem}",
                interpreter.location, interpreter.extension, interpreter.module
            ));
        }
    }
    for route in routes {
        if let (Some(script), None) = (&route.script, dir) {
            problems.push(format!(
                "{}: route {}: script {script} needs a scripts folder (--scripts or `scripts`)",
                route.location, route.path
            ));
        }
    }
    problems
}
