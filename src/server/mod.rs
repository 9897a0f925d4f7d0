//! The HTTP server: accepts connections, serves each with hyper's HTTP/1
//! implementation, and hands every request to [`dispatch::handle`].
//!
//! Like mini-redis, the server takes its listeners and its shutdown signal
//! as arguments, so tests bind port 0 and drive it without globals.
//!
//! A request flows: [`dispatch`] (routing, redirects, access log) →
//! [`endpoint`] (limits, invocation, slot) → [`cgi_run`] and
//! [`cgi_response`] for commands, or [`handler_run`] for wasi:http
//! handlers → the runtime's `GuestBody`, under one [`guest`] supervisor.

mod access_log;
mod bodies;
mod cgi_bin;
mod cgi_response;
mod cgi_run;
mod compat_vars;
mod dispatch;
mod drain;
mod endpoint;
mod error;
mod guest;
mod handler_run;
mod metrics;
mod paced_io;
mod request_body;
mod request_id;
mod state;
mod static_files;
mod stdin;
mod watchdog;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

pub use state::{AppState, Connection};
pub use static_files::StaticFiles;

use paced_io::PacedIo;
use watchdog::Watchdog;

use dispatch::Surface;

/// How long a client may take to send the request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line plus headers) read from a client;
/// larger heads get 431.
const MAX_HEAD_SIZE: usize = 64 * 1024;

/// The sockets the server answers on.
pub struct Listeners {
    /// The public address.
    pub public: TcpListener,
    /// A separate address for `/metrics`, if any.
    pub metrics: Option<TcpListener>,
}

/// Serves HTTP on `listeners` until `shutdown` resolves; then drains:
/// `/readyz` turns 503, new requests get 503 (`Connection: close`), and the
/// requests in flight get at most `grace` to finish before the rest are
/// stopped. Both listeners go through the same accept path (header
/// timeout, write-stall timeout, logging, shutdown).
pub async fn serve(
    listeners: Listeners,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> anyhow::Result<()> {
    let connections = GracefulShutdown::new();
    accept_until(&listeners, &state, &connections, shutdown).await;

    state.drain.start();
    tracing::info!("shutting down: draining requests in flight for up to {grace:?}");
    let drained = async {
        if tokio::time::timeout(grace, state.drain.idle())
            .await
            .is_err()
        {
            tracing::warn!("grace period over; stopping the requests still in flight");
        }
    };
    // Keep answering (503 and /readyz) while the requests in flight finish.
    accept_until(&listeners, &state, &connections, drained).await;
    drop(listeners);
    // Idle keep-alive connections close now; the rest are dropped with the runtime.
    let _ = tokio::time::timeout(Duration::from_millis(100), connections.shutdown()).await;
    tracing::info!("shut down");
    Ok(())
}

/// The next connection on `listener`, or never if there is none.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Accepts connections on every listener and serves them until `until`
/// resolves.
async fn accept_until(
    listeners: &Listeners,
    state: &Arc<AppState>,
    connections: &GracefulShutdown,
    until: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEAD_SIZE);
    tokio::pin!(until);
    loop {
        let (accepted, surface) = tokio::select! {
            accepted = listeners.public.accept() => (accepted, Surface::Public),
            accepted = accept(listeners.metrics.as_ref()) => (accepted, Surface::Metrics),
            () = &mut until => return,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off, don't spin.
                tracing::warn!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let watchdog = Watchdog::default();
        let connection = Connection {
            remote,
            local,
            watchdog: watchdog.clone(),
        };
        let state = state.clone();
        let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let request = request.map(|body| body.boxed_unsync());
            let response = dispatch::handle(state.clone(), request, connection.clone(), surface);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let io = TokioIo::new(PacedIo::new(stream));
        let connection = connections.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            tokio::select! {
                result = connection => if let Err(error) = result {
                    tracing::debug!("connection from {remote} ended with an error: {error}");
                },
                // Dropping the connection drops the response and its guest.
                () = watchdog.fired() => {
                    tracing::warn!("connection from {remote} closed: its response ran past the guest's deadline");
                }
            }
        });
    }
}
