//! Log set-up: `tracing` to stderr (stdout is reserved for the `listening on`
//! line and for modules run from the shell), levels from `RUST_LOG`. The
//! server hands its lines to a writer thread ([`init_background`]), so a
//! request never waits on stderr's lock or a `write(2)`; lines that pile up
//! meanwhile go out in one write.

use std::io::IsTerminal as _;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Bytes of log lines gathered into one write by the writer thread.
const WRITE_BUFFER: usize = 64 * 1024;

/// Keeps the writer thread of [`init_background`]; dropping it writes out
/// every line logged before.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _worker: WorkerGuard,
}

/// Installs the global subscriber, writing each line to stderr as it is
/// logged (for one-shot commands, whose lines must stay in order with the
/// guest's own stderr); `default_level` applies when `RUST_LOG` is unset.
pub fn init(format: LogFormat, default_level: &str) {
    install(format, default_level, std::io::stderr);
}

/// Installs the global subscriber, handing lines to a writer thread that
/// writes them to stderr in batches. A logging thread waits only when
/// 128,000 lines are queued (lines are never dropped). Hold the guard until
/// exit.
pub fn init_background(format: LogFormat, default_level: &str) -> LogGuard {
    let stderr = std::io::BufWriter::with_capacity(WRITE_BUFFER, std::io::stderr());
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(stderr);
    install(format, default_level, writer);
    LogGuard { _worker: guard }
}

/// Wasmtime's WASI layer opens an `info` span for every host call; it is
/// kept quiet unless `RUST_LOG` asks for it.
fn install<W>(format: LogFormat, default_level: &str, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{default_level},wasmtime_wasi=warn,wiggle=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
