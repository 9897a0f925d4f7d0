//! `--init[=NAME]` and `--no-init`, for `run` and `compile`: which
//! initializer pre-initializes a module (by default `wizer.initialize` or
//! `wizer-initialize`, when the module exports one).

use crate::runtime::Initializer;

/// Pre-initialization flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct InitFlags {
    /// Pre-initialize the module: with the exported function NAME, or
    /// without one with `wizer.initialize` (`wizer-initialize`), which then
    /// must exist. Modules that export those are pre-initialized anyway;
    /// `compile --init` writes the snapshot as a .wasm
    #[arg(
        long = "init",
        value_name = "NAME",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "",
        conflicts_with = "no_init"
    )]
    pub function: Option<String>,
    /// Use the module as it is, even if it exports `wizer.initialize`
    #[arg(long)]
    pub no_init: bool,
}

impl InitFlags {
    /// Whether `--init` was given.
    pub fn requested(&self) -> bool {
        self.function.is_some()
    }

    /// The initializer these flags choose.
    pub fn initializer(&self) -> Initializer {
        match (self.function.as_deref(), self.no_init) {
            (_, true) => Initializer::Off,
            (Some("") | None, false) => Initializer::Auto,
            (Some(name), false) => Initializer::Function(name.to_owned()),
        }
    }
}
