//! The compile cache: native code from Cranelift (and from Winch, for the
//! baseline tier), kept on disk by the program's content hash and the
//! engine's compatibility hash (which differs between the two compilers), so
//! a restart or a reload of an unchanged module or component compiles
//! nothing.
//!
//! The cache holds native code, which is run as it is: whoever can write an
//! entry the server loads escapes the sandbox. So the folder must belong to
//! the server's user and be writable by nobody else (else the cache is off,
//! with a warning); entries are opened without following symlinks and must
//! belong to that user too; and every entry is authenticated with an
//! HMAC-SHA256 under a key kept beside the folder, not in it
//! (`FOLDER.key`, mode 0600), which also names the entries, so a file this
//! server did not write is never loaded. Corrupt, stale, forged or foreign
//! entries are ignored and rebuilt.

use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use hmac::{Hmac, Mac};
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
}

/// Where compiled programs are kept.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    disk: Option<Arc<DiskCache>>,
}

/// A cache folder that passed its checks, and its key.
struct DiskCache {
    dir: PathBuf,
    key_file: PathBuf,
    key: [u8; KEY_LEN],
    /// The server's user: every entry must belong to it.
    uid: u32,
}

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache")
            .field("dir", &self.dir)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// Bytes of the cache key.
const KEY_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

impl ModuleCache {
    /// A cache in `dir`, created if needed; in memory only if `dir` is
    /// `None`, or can't be created or written, or is not safe to load
    /// native code from (logged as a warning).
    pub fn open(dir: Option<PathBuf>) -> Self {
        let disk = dir.and_then(|dir| match DiskCache::open(&dir) {
            Ok(disk) => Some(Arc::new(disk)),
            Err(error) => {
                tracing::warn!("compile cache off, compiling in memory only: {error:#}");
                None
            }
        });
        Self { disk }
    }

    /// A cache that never touches the disk.
    pub fn in_memory() -> Self {
        Self { disk: None }
    }

    /// The cache folder in use, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.disk.as_ref().map(|disk| disk.dir.as_path())
    }

    /// The file holding the cache's key, if the cache is on disk: like the
    /// folder itself, no guest may ever be granted it.
    pub fn key_file(&self) -> Option<&Path> {
        self.disk.as_ref().map(|disk| disk.key_file.as_path())
    }

    /// The compiled module or component for `wasm`: from the cache if a
    /// valid entry is there, else compiled and stored.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> anyhow::Result<(Compiled, CacheOutcome)> {
        self.load_or_build(engine, wasm, "", || Ok(wasm.to_vec()))
    }

    /// `engine`'s compiled program for `wasm` and `recipe` if the cache
    /// holds a valid entry for it; compiles nothing.
    pub(crate) fn lookup(&self, engine: &Engine, wasm: &[u8], recipe: &str) -> Option<Compiled> {
        let disk = self.disk.as_ref()?;
        let name = disk.entry_name(engine, wasm, recipe);
        match disk.read_verified(&name) {
            Ok(Some(cwasm)) => {
                // SAFETY: the bytes were written by `load_or_build`, from the
                // output of `Compiled::precompile` for an engine with the same
                // compatibility hash and from the same wasm (both are in the
                // keyed name), as their tag under our key proves; and these
                // are the very bytes that were checked.
                match unsafe { Compiled::deserialize(engine, &cwasm) } {
                    Ok(compiled) => return Some(compiled),
                    Err(error) => {
                        tracing::warn!("ignoring unusable cache entry {name}: {error}");
                    }
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!("ignoring cache entry {name}: {error:#}"),
        }
        None
    }

    /// The compiled program that `build` makes from `wasm` following
    /// `recipe` (for example a pre-initialized snapshot): from the cache if
    /// an entry for this `wasm` and `recipe` is there, so `build` does not
    /// run; else built, compiled and stored. An empty recipe is `wasm`
    /// itself.
    pub(crate) fn load_or_build(
        &self,
        engine: &Engine,
        wasm: &[u8],
        recipe: &str,
        build: impl FnOnce() -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<(Compiled, CacheOutcome)> {
        let Some(disk) = &self.disk else {
            return Ok((Compiled::new(engine, &build()?)?, CacheOutcome::Compiled));
        };
        if let Some(compiled) = self.lookup(engine, wasm, recipe) {
            return Ok((compiled, CacheOutcome::Hit));
        }
        let name = disk.entry_name(engine, wasm, recipe);
        let cwasm = Compiled::precompile(engine, &build()?)?;
        if let Err(error) = disk.store(&name, &cwasm) {
            tracing::warn!("cannot write cache entry {name}: {error:#}");
        }
        // SAFETY: `cwasm` was just produced by this engine.
        let compiled = unsafe { Compiled::deserialize(engine, &cwasm) }?;
        Ok((compiled, CacheOutcome::Compiled))
    }
}

impl DiskCache {
    /// Creates or checks `dir` and its key.
    fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // Our own user, as the kernel sees it: the owner of a file we make.
        let probe = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        let uid = probe.as_file().metadata()?.uid();
        drop(probe);
        let meta = std::fs::symlink_metadata(dir)?;
        anyhow::ensure!(
            meta.is_dir(),
            "{} is a symlink, not a folder",
            dir.display()
        );
        private(&meta, uid).with_context(|| format!("the cache folder {}", dir.display()))?;
        let name = dir
            .file_name()
            .with_context(|| format!("{} has no folder name", dir.display()))?;
        let mut key_name = name.to_os_string();
        key_name.push(".key");
        let key_file = dir.with_file_name(key_name);
        let key = load_or_create_key(&key_file, uid)
            .with_context(|| format!("the cache key {}", key_file.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            key_file,
            key,
            uid,
        })
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length")
    }

    /// The entry's file stem: a keyed hash of the program's content hash,
    /// the engine's compatibility hash (Wasmtime version, target,
    /// settings) and the recipe that made the compiled program from it, so
    /// nobody without the key can tell which file would be loaded for which
    /// program.
    fn entry_name(&self, engine: &Engine, wasm: &[u8], recipe: &str) -> String {
        let mut compat = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut compat);
        let mut mac = self.mac();
        mac.update(b"entry name\0");
        mac.update(&Sha256::digest(wasm));
        mac.update(&compat.finish().to_le_bytes());
        // Fixed-length fields first: the plain entry's input is a strict
        // prefix of every recipe's, never equal to one.
        mac.update(recipe.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// The MAC over an entry's bytes under its name: its tag.
    fn entry_mac(&self, name: &str, cwasm: &[u8]) -> HmacSha256 {
        let mut mac = self.mac();
        mac.update(b"entry\0");
        mac.update(name.as_bytes());
        mac.update(b"\0");
        mac.update(cwasm);
        mac
    }

    /// The entry `name`'s bytes if it exists and its tag checks; `Ok(None)`
    /// when there is no such entry.
    fn read_verified(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(cwasm) = read_private(&self.dir.join(format!("{name}.cwasm")), self.uid)? else {
            return Ok(None);
        };
        let tag = read_private(&self.dir.join(format!("{name}.mac")), self.uid)?
            .context("it has no tag")?;
        self.entry_mac(name, &cwasm)
            .verify_slice(&tag)
            .map_err(|_| anyhow::anyhow!("its tag does not match: not written by this server"))?;
        Ok(Some(cwasm))
    }

    /// Writes the entry `name` and then its tag, each atomically: a reader
    /// never sees half an entry, and an entry without its tag is ignored.
    fn store(&self, name: &str, cwasm: &[u8]) -> anyhow::Result<()> {
        write_atomically(&self.dir.join(format!("{name}.cwasm")), cwasm)?;
        let tag = self.entry_mac(name, cwasm).finalize().into_bytes();
        write_atomically(&self.dir.join(format!("{name}.mac")), &tag)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Fails unless `meta` belongs to `uid` and nobody else may write it.
fn private(meta: &std::fs::Metadata, uid: u32) -> anyhow::Result<()> {
    anyhow::ensure!(
        meta.uid() == uid,
        "belongs to uid {}, not to the server's user ({uid})",
        meta.uid()
    );
    anyhow::ensure!(
        meta.mode() & 0o022 == 0,
        "is writable by group or others (mode {:o}); make it writable by the server's user only",
        meta.mode() & 0o7777
    );
    Ok(())
}

/// Opens `path` without following a symlink.
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// The whole file at `path`, which must be a regular file (not a symlink)
/// private to `uid`; `Ok(None)` if there is none.
fn read_private(path: &Path, uid: u32) -> anyhow::Result<Option<Vec<u8>>> {
    let mut file = match open_no_follow(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot open {}", path.display()));
        }
    };
    let meta = file.metadata()?;
    anyhow::ensure!(meta.is_file(), "{} is not a regular file", path.display());
    private(&meta, uid).with_context(|| path.display().to_string())?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// The cache key in `path`, made (32 random bytes, mode 0600) if there is
/// none yet.
fn load_or_create_key(path: &Path, uid: u32) -> anyhow::Result<[u8; KEY_LEN]> {
    if let Some(bytes) = read_private(path, uid)? {
        anyhow::ensure!(bytes.len() == KEY_LEN, "is not a key of {KEY_LEN} bytes");
        let meta = std::fs::symlink_metadata(path)?;
        anyhow::ensure!(
            meta.mode() & 0o077 == 0,
            "is readable by group or others (mode {:o})",
            meta.mode() & 0o7777
        );
        return Ok(bytes.try_into().expect("checked length"));
    }
    let mut key = [0u8; KEY_LEN];
    // Two version-4 UUIDs: 244 bits from the operating system's generator.
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(&key)?;
    file.sync_all()?;
    Ok(key)
}

/// Writes `bytes` to `path` atomically (mode 0600).
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("cache entry without a folder")?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.persist(path)?;
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
        let cache = cache_in(dir.path());
        let engine = engine();
        let wasm = wat::parse_str(WAT).unwrap();
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
        let dir = cache.dir().unwrap().to_path_buf();

        let entry = entries(&dir)
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .unwrap();
        std::fs::write(&entry, b"not a compiled module").unwrap();
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
    }

    #[test]
    fn a_built_program_has_an_entry_of_its_own_and_is_built_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache_in(dir.path());
        let engine = engine();
        let wasm = wat::parse_str(WAT).unwrap();
        let built = wat::parse_str(r#"(module (func (export "_start") nop))"#).unwrap();
        let builds = std::cell::Cell::new(0);
        let build = |recipe| {
            cache
                .load_or_build(&engine, &wasm, recipe, || {
                    builds.set(builds.get() + 1);
                    Ok(built.clone())
                })
                .unwrap()
                .1
        };
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        assert_eq!(
            build("snapshot"),
            CacheOutcome::Compiled,
            "not the plain entry"
        );
        assert_eq!(build("snapshot"), CacheOutcome::Hit);
        assert_eq!(build("other snapshot"), CacheOutcome::Compiled);
        assert_eq!(builds.get(), 2, "a hit runs nothing");
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Hit);
    }

    #[test]
    fn components_are_cached_as_components() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache_in(dir.path());
        let engine = engine();
        let wasm = wat::parse_str("(component)").unwrap();
        let (compiled, outcome) = cache.load_or_compile(&engine, &wasm).unwrap();
        assert_eq!(outcome, CacheOutcome::Compiled);
        assert!(matches!(compiled, Compiled::Component(_)));
        let (compiled, outcome) = cache.load_or_compile(&engine, &wasm).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
        assert!(matches!(compiled, Compiled::Component(_)));
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect()
    }

    fn cache_in(dir: &Path) -> ModuleCache {
        ModuleCache::open(Some(dir.join("cache")))
    }

    #[test]
    fn a_planted_entry_is_never_loaded() {
        // Regression: whatever native code sat under the expected name was
        // loaded, so whoever could write the folder escaped the sandbox.
        let dir = tempfile::tempdir().unwrap();
        let cache = cache_in(dir.path());
        let engine = engine();
        let wasm = wat::parse_str(WAT).unwrap();
        let evil = wat::parse_str(r#"(module (func (export "_start") unreachable))"#).unwrap();
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        let entry = entries(cache.dir().unwrap())
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .unwrap();
        // Valid native code for this very engine, but not what was compiled
        // from `wasm` and not written by the cache.
        std::fs::write(&entry, Compiled::precompile(&engine, &evil).unwrap()).unwrap();
        assert_eq!(
            outcome(&cache, &engine, &wasm),
            CacheOutcome::Compiled,
            "forged entry used"
        );
        assert_eq!(
            outcome(&cache, &engine, &wasm),
            CacheOutcome::Hit,
            "rebuilt"
        );

        // A symlink in its place is not followed.
        let elsewhere = dir.path().join("elsewhere.cwasm");
        std::fs::rename(&entry, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
        assert_eq!(
            outcome(&cache, &engine, &wasm),
            CacheOutcome::Compiled,
            "symlink followed"
        );
    }

    #[test]
    fn a_cache_folder_others_may_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("cache");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(ModuleCache::open(Some(shared.clone())).dir().is_none());
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o700)).unwrap();
        let cache = ModuleCache::open(Some(shared.clone()));
        assert_eq!(cache.dir(), Some(shared.as_path()));
        let key = cache.key_file().unwrap();
        assert_eq!(
            key,
            dir.path().join("cache.key"),
            "the key lies beside the folder"
        );
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        // An entry others may write is not loaded.
        let engine = engine();
        let wasm = wat::parse_str(WAT).unwrap();
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
        for entry in entries(&shared) {
            std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
        assert_eq!(outcome(&cache, &engine, &wasm), CacheOutcome::Compiled);
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
    fn entries_differ_by_content_and_by_key() {
        let engine = engine();
        let dir = tempfile::tempdir().unwrap();
        let first = DiskCache::open(&dir.path().join("a")).unwrap();
        let second = DiskCache::open(&dir.path().join("b")).unwrap();
        let wasm = wat::parse_str(WAT).unwrap();
        let other = wat::parse_str(r#"(module (func (export "_start") nop))"#).unwrap();
        assert_ne!(
            first.entry_name(&engine, &wasm, ""),
            first.entry_name(&engine, &other, "")
        );
        assert_ne!(
            first.entry_name(&engine, &wasm, ""),
            second.entry_name(&engine, &wasm, ""),
            "names can't be predicted without the key"
        );
    }
}
