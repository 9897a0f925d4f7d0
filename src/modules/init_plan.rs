//! Which initializer pre-initializes each module file, and under what
//! limits: a module is loaded once, for every route and interpreter that
//! names it, so its pre-initialization is settled per file name.

use std::collections::HashMap;

use crate::runtime::{InitOptions, RunLimits};

/// How each module file is pre-initialized; files no route or interpreter
/// names get the default (the conventional initializer, the server's
/// limits).
#[derive(Debug, Clone, Default)]
pub struct InitPlan {
    default: InitOptions,
    modules: HashMap<String, InitOptions>,
}

impl InitPlan {
    /// A plan where every module gets the conventional initializer, if it
    /// exports one, under `limits`.
    pub fn new(limits: RunLimits) -> Self {
        Self {
            default: InitOptions {
                limits,
                ..InitOptions::default()
            },
            modules: HashMap::new(),
        }
    }

    /// Sets how the module file `name` is pre-initialized.
    pub fn set(&mut self, name: &str, options: InitOptions) {
        self.modules.insert(name.to_owned(), options);
    }

    /// How the module file `name` is pre-initialized.
    pub fn for_module(&self, name: &str) -> &InitOptions {
        self.modules.get(name).unwrap_or(&self.default)
    }
}
