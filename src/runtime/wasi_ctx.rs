//! The guest's WASI context for one run, either preview: args, env, stdin,
//! stdout and stderr, and granted directories from the invocation; sockets
//! stay closed.

use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdinStream};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, SinkOutputStream};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::invocation::{Input, Invocation, Output, Stdio};

/// The guest's WASI context, for either preview: args, env, stdio and
/// directories from `invocation`; sockets stay closed.
pub(crate) fn wasi_builder(
    invocation: &Invocation,
    stdio: Stdio,
) -> anyhow::Result<WasiCtxBuilder> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .args(&invocation.args)
        .envs(&invocation.env)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    match &invocation.stdin {
        Input::Bytes(bytes) => builder.stdin(MemoryInputPipe::new(bytes.clone())),
        Input::Stream(stream) => builder.stdin(SharedStdin(stream.clone())),
        Input::Inherit => builder.inherit_stdin(),
        Input::Empty => builder.stdin(MemoryInputPipe::new(Bytes::new())),
    };
    match stdio.stdout {
        Output::Inherit => builder.inherit_stdout(),
        Output::Channel(sender) => builder.stdout(sender),
        Output::Log(log) => builder.stdout(log),
        Output::Capture(pipe) => builder.stdout(pipe),
        Output::Discard => builder.stdout(SinkOutputStream),
    };
    match stdio.stderr {
        Output::Inherit => builder.inherit_stderr(),
        Output::Channel(sender) => builder.stderr(sender),
        Output::Log(log) => builder.stderr(log),
        Output::Capture(pipe) => builder.stderr(pipe),
        Output::Discard => builder.stderr(SinkOutputStream),
    };
    for dir in &invocation.dirs {
        let perms = if dir.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        builder
            .preopened_dir(&dir.host, &dir.guest, perms)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "failed to open directory {} for {}",
                    dir.host.display(),
                    dir.guest
                )
            })?;
    }
    Ok(builder)
}

/// An [`Input::Stream`] as the builder takes it.
struct SharedStdin(Arc<dyn StdinStream + Sync>);

impl IsTerminal for SharedStdin {
    fn is_terminal(&self) -> bool {
        self.0.is_terminal()
    }
}

impl StdinStream for SharedStdin {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::InputStream> {
        self.0.p2_stream()
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncRead + Send + Sync> {
        self.0.async_stream()
    }
}
