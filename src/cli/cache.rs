//! The flags shared by every command that loads modules: where compiled
//! modules are cached, and whether precompiled `.cwasm` files are accepted.

use std::path::PathBuf;

use crate::runtime::ModuleCache;

/// Compile cache and precompiled-module flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CacheFlags {
    /// Compiled-module cache folder; a folder that can't be written only
    /// turns the cache off [default: the platform cache dir, e.g.
    /// ~/.cache/wasm-cgi]
    #[arg(long, env = "WASMTIME_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Accept precompiled .cwasm files (native code: only from trusted sources)
    #[arg(long)]
    pub allow_precompiled: bool,
}

impl CacheFlags {
    /// The cache these flags ask for.
    pub fn cache(&self) -> ModuleCache {
        let dir = self
            .cache_dir
            .clone()
            .or_else(|| dirs::cache_dir().map(|dir| dir.join("wasm-cgi")));
        ModuleCache::open(dir)
    }
}
