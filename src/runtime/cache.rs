//! The compile cache: native code from Cranelift, kept on disk by the
//! program's content hash and the engine's compatibility hash, and loaded
//! back by memory-mapping, so a restart or a reload of an unchanged module
//! or component compiles nothing. Corrupt or stale entries are ignored and rebuilt. A
//! folder that can't be used is a warning: compilation then stays in memory.
//!
//! The cache holds native code that is run without verification: keep it
//! writable only by the user running the server.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use super::detect::Kind;

/// Whether a module came from the cache or was compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a cache file: nothing compiled.
    Hit,
    /// Compiled (and stored, if the cache is on disk).
    Compiled,
}

/// A compiled program: a core module or a component.
#[derive(Clone)]
pub enum Compiled {
    /// A core module.
    Module(Module),
    /// A component.
    Component(Component),
}

impl Compiled {
    /// Compiles `wasm`, a module or a component as its header says.
    pub fn new(engine: &Engine, wasm: &[u8]) -> anyhow::Result<Self> {
        Ok(match Kind::of_wasm(wasm) {
            Kind::Module => Compiled::Module(Module::new(engine, wasm)?),
            Kind::Component => Compiled::Component(Component::new(engine, wasm)?),
        })
    }

    /// `engine`'s native code for `wasm`, as a `.cwasm` artifact.
    pub fn precompile(engine: &Engine, wasm: &[u8]) -> anyhow::Result<Vec<u8>> {
        Ok(match Kind::of_wasm(wasm) {
            Kind::Module => engine.precompile_module(wasm)?,
            Kind::Component => engine.precompile_component(wasm)?,
        })
    }

    /// Loads a `.cwasm` artifact from memory.
    ///
    /// # Safety
    /// The bytes are native code run as they are: they must come from
    /// [`Compiled::precompile`] or a trusted `wasm-cgi compile`.
    pub unsafe fn deserialize(engine: &Engine, cwasm: &[u8]) -> anyhow::Result<Self> {
        // SAFETY: forwarded to the caller.
        Ok(match Kind::of_precompiled(cwasm) {
            Some(Kind::Component) => {
                Compiled::Component(unsafe { Component::deserialize(engine, cwasm) }?)
            }
            _ => Compiled::Module(unsafe { Module::deserialize(engine, cwasm) }?),
        })
    }

    /// Loads a `.cwasm` artifact of `kind` by memory-mapping `path`.
    ///
    /// # Safety
    /// As for [`Compiled::deserialize`].
    unsafe fn deserialize_file(engine: &Engine, path: &Path, kind: Kind) -> anyhow::Result<Self> {
        // SAFETY: forwarded to the caller.
        Ok(match kind {
            Kind::Component => {
                Compiled::Component(unsafe { Component::deserialize_file(engine, path) }?)
            }
            Kind::Module => Compiled::Module(unsafe { Module::deserialize_file(engine, path) }?),
        })
    }
}

/// Where compiled programs are kept.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: Option<PathBuf>,
}

impl ModuleCache {
    /// A cache in `dir`, created if needed; in memory only if `dir` is
    /// `None` or can't be created or written (logged as a warning).
    pub fn open(dir: Option<PathBuf>) -> Self {
        let dir = dir.and_then(|dir| match usable(&dir) {
            Ok(()) => Some(dir),
            Err(error) => {
                tracing::warn!("compile cache off, compiling in memory only: {error:#}");
                None
            }
        });
        Self { dir }
    }

    /// A cache that never touches the disk.
    pub fn in_memory() -> Self {
        Self { dir: None }
    }

    /// The cache folder in use, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The compiled module or component for `wasm`: from the cache if a
    /// valid entry is there, else compiled and stored.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> anyhow::Result<(Compiled, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Compiled::new(engine, wasm)?, CacheOutcome::Compiled));
        };
        let path = dir.join(entry_name(engine, wasm));
        if path.is_file() {
            // SAFETY: the entry was written by `Compiled::precompile` for an
            // engine with the same compatibility hash (it is in the name),
            // from the same bytes (so of the same kind), and the cache folder
            // is trusted like the binary itself.
            match unsafe { Compiled::deserialize_file(engine, &path, Kind::of_wasm(wasm)) } {
                Ok(module) => return Ok((module, CacheOutcome::Hit)),
                Err(error) => {
                    tracing::warn!("ignoring unusable cache entry {}: {error}", path.display());
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let cwasm = Compiled::precompile(engine, wasm)?;
        if let Err(error) = store(&path, &cwasm) {
            tracing::warn!("cannot write cache entry {}: {error:#}", path.display());
        }
        // SAFETY: `cwasm` was just produced by this engine.
        let compiled = unsafe { Compiled::deserialize(engine, &cwasm) }?;
        Ok((compiled, CacheOutcome::Compiled))
    }
}

/// `SHA256-COMPAT.cwasm`: the program's content hash and the engine's
/// compatibility hash (Wasmtime version, target, settings).
fn entry_name(engine: &Engine, wasm: &[u8]) -> String {
    let content = Sha256::digest(wasm);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let hex: String = content.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{hex}-{:016x}.cwasm", hasher.finish())
}

/// Writes `bytes` to `path` atomically: a reader never sees half an entry.
fn store(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("cache entry without a folder")?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.persist(path)?;
    Ok(())
}

/// Creates `dir` if needed and checks that a file can be written in it.
fn usable(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAT: &str = r#"(module (func (export "_start")))"#;

    fn engine() -> Engine {
        Engine::default()
    }

    /// Whether loading `wasm` through `cache` hit or compiled.
    fn outcome(cache: &ModuleCache, engine: &Engine, wasm: &[u8]) -> CacheOutcome {
        cache.load_or_compile(engine, wasm).unwrap().1
    }

    #[test]
    fn a_second_load_is_a_hit_and_a_corrupt_entry_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::open(Some(dir.path().to_path_buf()));
        let engine = engine();
        let wasm = wat::parse_str(WAT).unwrap();
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);

        let entry = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(&entry, b"not a compiled module").unwrap();
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
    }

    #[test]
    fn components_are_cached_as_components() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::open(Some(dir.path().to_path_buf()));
        let engine = engine();
        let wasm = wat::parse_str("(component)").unwrap();
        let (compiled, outcome) = cache.load_or_compile(&engine, &wasm).unwrap();
        assert_eq!(outcome, CacheOutcome::Compiled);
        assert!(matches!(compiled, Compiled::Component(_)));
        let (compiled, outcome) = cache.load_or_compile(&engine, &wasm).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
        assert!(matches!(compiled, Compiled::Component(_)));
    }

    #[test]
    fn an_unusable_folder_means_memory_only() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let cache = ModuleCache::open(Some(file.path().join("sub")));
        assert!(cache.dir().is_none());
        let wasm = wat::parse_str(WAT).unwrap();
        assert_eq!(outcome(&cache, &engine(), &wasm), CacheOutcome::Compiled);
    }

    #[test]
    fn entries_differ_by_content() {
        let engine = engine();
        let other = wat::parse_str(r#"(module (func (export "_start") nop))"#).unwrap();
        assert_ne!(
            entry_name(&engine, &wat::parse_str(WAT).unwrap()),
            entry_name(&engine, &other)
        );
    }
}
