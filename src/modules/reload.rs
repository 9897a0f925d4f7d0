//! Hot reload: adding, replacing or deleting a module file takes effect
//! without a restart. Filesystem notifications trigger a rescan at once, and
//! a periodic rescan catches what notifications miss (network filesystems,
//! a watcher that could not start). A changed file is loaded only once it has
//! stopped changing (so a half-written file never is), or at once when it
//! was renamed into the folder (it is whole then), and it replaces the
//! running version only if it loads: a broken replacement is logged and the
//! old version keeps serving.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::Watcher as _;
use tokio::sync::mpsc;

use super::{Fingerprint, LoadOptions, ModuleRegistry, load_file, module_files};
use crate::runtime::{Program, Sandbox};

/// How long a file must keep the same size and modification time before it
/// is loaded, unless it was renamed into the folder (then it is loaded at
/// once: whoever renames a file in has finished writing it, as `mv`, rsync
/// and atomic deployers do; a writer closing a file proves nothing, it may
/// open it again to append).
pub const SETTLE: Duration = Duration::from_millis(200);

/// How often the folder is rescanned without any notification.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Whether a program loaded as a name may serve under it (the routes that
/// name it still fit it); why not, fit for a log line.
pub type FitCheck = Box<dyn Fn(&str, &Program) -> Result<(), String> + Send + Sync>;

/// Keeps `registry` in step with the files in `dir` until the task is
/// dropped. A new or changed file serves only once it loads and `fits`
/// accepts it; `on_load` is told each module's name and load time.
pub async fn watch(
    registry: Arc<ModuleRegistry>,
    sandbox: Sandbox,
    dir: PathBuf,
    options: LoadOptions,
    fits: FitCheck,
    on_load: impl Fn(&str, Duration) + Send + 'static,
) {
    let (nudge, mut nudged) = mpsc::channel::<()>(1);
    let whole = Arc::new(Mutex::new(HashSet::new()));
    let watcher = notify::recommended_watcher({
        let whole = whole.clone();
        move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            let finished = finished_file(&event);
            if let Some(name) = &finished {
                whole
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(name.clone());
            }
            // Only changes: the scan's own reads of the folder are events too.
            if !event.kind.is_access() {
                let _ = nudge.try_send(());
            }
        }
    })
    .and_then(|mut watcher| {
        watcher
            .watch(&dir, notify::RecursiveMode::NonRecursive)
            .map(|()| watcher)
    });
    let _watcher = match watcher {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(
                "no filesystem notifications for {} ({error}); polling every {POLL_INTERVAL:?}",
                dir.display()
            );
            None
        }
    };

    let mut scanner = Scanner {
        registry,
        sandbox,
        fits,
        dir,
        options,
        pending: HashMap::new(),
        failed: HashMap::new(),
        whole,
    };
    loop {
        tokio::select! {
            _ = nudged.recv() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        while let Some(wait) = scanner.scan(&on_load).await {
            // A file renamed in meanwhile needs no more wait.
            tokio::select! {
                _ = nudged.recv() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The reload state between scans.
struct Scanner {
    registry: Arc<ModuleRegistry>,
    sandbox: Sandbox,
    fits: FitCheck,
    dir: PathBuf,
    options: LoadOptions,
    /// Changed files waiting to settle: how they looked, and since when.
    pending: HashMap<String, (Fingerprint, Instant)>,
    /// Files that failed to load as they are now: not retried until they change.
    failed: HashMap<String, Fingerprint>,
    /// Files renamed into the folder since the last scan: they are whole
    /// and need not settle.
    whole: Arc<Mutex<HashSet<String>>>,
}

/// The file name an event says is whole: renamed into the folder.
fn finished_file(event: &notify::Event) -> Option<String> {
    use notify::EventKind;
    use notify::event::{ModifyKind, RenameMode};
    match event.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => {
            event.paths.last()?.file_name()?.to_str().map(str::to_owned)
        }
        _ => None,
    }
}

impl Scanner {
    /// Brings the registry up to date with the folder; `Some(wait)` if a
    /// file is still settling and the folder should be scanned again then.
    async fn scan(&mut self, on_load: &impl Fn(&str, Duration)) -> Option<Duration> {
        let files = match module_files(&self.dir, &self.options) {
            Ok(files) => files,
            Err(error) => {
                tracing::warn!("module reload scan failed: {error:#}");
                return None;
            }
        };
        let mut settling = false;
        let whole = std::mem::take(
            &mut *self
                .whole
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for (name, path) in &files {
            let Ok(now) = Fingerprint::of(path) else {
                continue;
            };
            let current = self.registry.get(name).and_then(|entry| entry.source);
            if current == Some(now) || self.failed.get(name) == Some(&now) {
                self.pending.remove(name);
                continue;
            }
            let is_whole = whole.contains(name);
            match self.pending.get(name) {
                Some((seen, since)) if *seen == now && since.elapsed() >= SETTLE => {
                    self.pending.remove(name);
                    self.load(name, path, current.is_some(), on_load).await;
                }
                _ if is_whole => {
                    self.pending.remove(name);
                    self.load(name, path, current.is_some(), on_load).await;
                }
                Some((seen, _)) if *seen == now => settling = true,
                _ => {
                    self.pending.insert(name.clone(), (now, Instant::now()));
                    settling = true;
                }
            }
        }
        for name in self.registry.names() {
            let from_folder = self
                .registry
                .get(&name)
                .is_some_and(|entry| entry.source.is_some());
            if from_folder && !files.iter().any(|(file, _)| **file == *name) {
                self.registry.remove(&name);
                tracing::info!(module = %name, "module removed");
            }
        }
        self.failed
            .retain(|name, _| files.iter().any(|(file, _)| file == name));
        settling.then_some(SETTLE)
    }

    async fn load(
        &mut self,
        name: &str,
        path: &Path,
        replacing: bool,
        on_load: &impl Fn(&str, Duration),
    ) {
        let sandbox = self.sandbox.clone();
        let (owned_name, owned_path) = (name.to_owned(), path.to_path_buf());
        let init = self.options.init.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            load_file(
                &sandbox,
                &owned_name,
                &owned_path,
                init.for_module(&owned_name),
            )
        })
        .await
        .map(|loaded| {
            let entry = loaded?;
            (self.fits)(name, &entry.program).map_err(anyhow::Error::msg)?;
            anyhow::Ok(entry)
        });
        match loaded {
            Ok(Ok(entry)) => {
                let verb = if replacing {
                    "module reloaded"
                } else {
                    "module added"
                };
                entry.log_loaded(name, verb);
                on_load(name, entry.load_time);
                self.failed.remove(name);
                self.registry.insert(name, entry);
            }
            Ok(Err(error)) => {
                let kept = if replacing {
                    "; the previous version keeps serving"
                } else {
                    ""
                };
                tracing::error!(module = %name, "module skipped: {error:#}{kept}");
                if let Ok(now) = Fingerprint::of(path) {
                    self.failed.insert(name.to_owned(), now);
                }
            }
            Err(error) => tracing::error!(module = %name, "module load task failed: {error}"),
        }
    }
}
