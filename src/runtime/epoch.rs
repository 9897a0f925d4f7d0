//! The epoch ticker: a thread that advances the engines' epochs at a fixed
//! interval, so running guests reach their yield points and deadlines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances: how long a spinning guest may run before it
/// yields its tokio worker to other tasks.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Advances the epochs until dropped. Holds only weak references to the
/// engines, so it never keeps one alive.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engines` every [`EPOCH_TICK`].
    pub fn start(engines: &[&Engine]) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak: Vec<_> = engines.iter().map(|engine| engine.weak()).collect();
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        let mut alive = false;
                        for engine in weak.iter().filter_map(|weak| weak.upgrade()) {
                            engine.increment_epoch();
                            alive = true;
                        }
                        if !alive {
                            break;
                        }
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
