//! `[[interpreter]]` tables: which module runs CGI scripts of which
//! extension, with what argv, environment, grants and limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{DirEntry, Problems};
use crate::cgi::Mode;
use crate::limits::LimitOverrides;
use crate::modules::is_module_file;
use crate::runtime::{DirGrant, Initializer};

/// The placeholder in an interpreter's `args` for the script's guest path.
pub const SCRIPT_PLACEHOLDER: &str = "{script}";

/// One `[[interpreter]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InterpreterEntry {
    extension: Spanned<String>,
    module: Spanned<String>,
    #[serde(default = "default_args")]
    args: Spanned<Vec<String>>,
    mode: Option<Mode>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    dirs: Vec<Spanned<DirEntry>>,
    #[serde(default)]
    limits: LimitOverrides,
    #[serde(default = "super::query_args_by_default")]
    query_args: bool,
    init: Option<Spanned<super::InitEntry>>,
}

fn default_args() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec![SCRIPT_PLACEHOLDER.to_owned()])
}

/// A checked `[[interpreter]]`.
#[derive(Debug, Clone)]
pub struct InterpreterConfig {
    /// Where the table's `extension` is, for later messages (`FILE:LINE`).
    pub location: String,
    /// `extension`, with its dot: `.py`.
    pub extension: String,
    /// `module`: the interpreter, a file name in the modules folder.
    pub module: String,
    /// `args`: argv after argv[0], `{script}` standing for the script's
    /// guest path.
    pub args: Vec<String>,
    /// `mode`: how its scripts' output is read.
    pub mode: Option<Mode>,
    /// `env`.
    pub env: Vec<(String, String)>,
    /// `dirs`: grants besides the script's own folder.
    pub dirs: Vec<DirGrant>,
    /// `[interpreter.limits]`.
    pub limits: LimitOverrides,
    /// `query_args`: whether a query's search words follow the args.
    pub query_args: bool,
    /// `init`: how the interpreter's module is pre-initialized, if said.
    pub init: Option<Initializer>,
}

impl InterpreterConfig {
    /// The args with `{script}` replaced by `script` (a guest path).
    pub fn args_for(&self, script: &str) -> impl Iterator<Item = String> + '_ {
        let script = script.to_owned();
        self.args
            .iter()
            .map(move |arg| arg.replace(SCRIPT_PLACEHOLDER, &script))
    }
}

/// Checks every `[[interpreter]]` table.
pub(crate) fn check_all(
    entries: Vec<InterpreterEntry>,
    problems: &mut Problems<'_>,
    resolve: &impl Fn(&Path) -> PathBuf,
) -> Vec<InterpreterConfig> {
    let mut checked: Vec<InterpreterConfig> = Vec::new();
    for entry in entries {
        let span = entry.extension.span();
        let extension = entry.extension.get_ref();
        let plain = extension.len() > 1
            && extension.starts_with('.')
            && extension[1..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !plain {
            problems.add(
                &span,
                format!(
                    "extension {extension:?} must be a dot and letters or digits, like \".py\""
                ),
            );
            continue;
        }
        if is_module_file(&format!("x{extension}")) {
            problems.add(&span, format!("{extension} files are modules, not scripts"));
            continue;
        }
        if let Some(first) = checked
            .iter()
            .find(|other| other.extension.eq_ignore_ascii_case(extension))
        {
            problems.add(
                &span,
                format!(
                    "extension {extension} has two interpreters (first at {})",
                    first.location
                ),
            );
            continue;
        }
        let module = entry.module.get_ref();
        if !is_module_file(module) || module.contains(['/', '\\']) {
            problems.add(
                &entry.module.span(),
                format!("module {module:?} must be the file name of a .wasm in the modules folder"),
            );
        }
        for arg in entry.args.get_ref() {
            let unknown = arg.replace(SCRIPT_PLACEHOLDER, "").contains(['{', '}']);
            if unknown {
                problems.add(
                    &entry.args.span(),
                    format!("args: {arg:?} has a placeholder other than {SCRIPT_PLACEHOLDER}"),
                );
            }
        }
        problems.check_env(&span, entry.env.keys());
        let dirs = problems.check_dirs(&entry.dirs, resolve);
        let init = problems.check_init(entry.init);
        checked.push(InterpreterConfig {
            location: problems.location(&span),
            extension: extension.clone(),
            module: entry.module.into_inner(),
            args: entry.args.into_inner(),
            mode: entry.mode,
            env: entry.env.into_iter().collect(),
            dirs,
            limits: entry.limits,
            query_args: entry.query_args,
            init,
        });
    }
    checked
}

/// The interpreter that runs `script` (a file name), by its extension.
pub(crate) fn for_script<'a>(
    interpreters: &'a [InterpreterConfig],
    script: &str,
) -> Result<&'a InterpreterConfig, String> {
    if script.is_empty() || script.starts_with('.') || script.contains(['/', '\\', '\0']) {
        return Err(format!(
            "script {script:?} must be a plain file name in the scripts folder"
        ));
    }
    interpreters
        .iter()
        .find(|interpreter| has_extension(script, &interpreter.extension))
        .ok_or_else(|| format!("script {script:?}: no [[interpreter]] runs its extension"))
}

/// Whether `name` ends in `extension` (case-insensitive) after a non-empty stem.
pub fn has_extension(name: &str, extension: &str) -> bool {
    name.len() > extension.len()
        && name
            .get(name.len() - extension.len()..)
            .is_some_and(|end| end.eq_ignore_ascii_case(extension))
}
