//! The HTTP server: accepts connections, serves each with hyper's HTTP/1
//! implementation, and hands every request to [`handler::handle`].
//!
//! Like mini-redis, the server takes its listener and its shutdown signal as
//! arguments, so tests bind port 0 and drive it without globals.

mod admission;
mod cgi_bin;
mod error;
mod execute;
mod guest_run;
mod handler;
mod request_id;
mod respond;
mod static_files;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use admission::Admission;
pub use cgi_bin::CGI_PREFIX;

use crate::cgi::Mode;
use crate::limits::Limits;
use crate::modules::ModuleRegistry;
use crate::routes::RouteTable;
use crate::runtime::Runtime;

/// Errors inside bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request body: from the client, or empty for an internal redirect.
pub type RequestBody = UnsyncBoxBody<Bytes, hyper::Error>;
/// A response body: complete, a file, or streamed from a guest.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// How long a client may take to send the request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line plus headers) read from a client;
/// larger heads get 431.
const MAX_HEAD_SIZE: usize = 64 * 1024;

/// Everything the handlers share, built once before the socket is bound.
pub struct AppState {
    /// The engine and linker.
    pub runtime: Runtime,
    /// The modules served under `/cgi-bin/wasm-run.cgi/` and by routes.
    pub modules: ModuleRegistry,
    /// The configured routes.
    pub routes: RouteTable,
    /// The static files folder, if any.
    pub www: Option<PathBuf>,
    /// The mode of modules that declare none.
    pub mode: Mode,
    /// The limits every request runs under.
    pub limits: Limits,
    /// Instance slots and the queue in front of them.
    pub admission: Admission,
    /// Whether `/readyz` answers 200: modules loaded and not shutting down.
    pub ready: AtomicBool,
}

impl AppState {
    /// Shared state for a server with these modules and settings.
    pub fn new(
        runtime: Runtime,
        modules: ModuleRegistry,
        routes: RouteTable,
        www: Option<PathBuf>,
        mode: Mode,
        limits: Limits,
    ) -> Self {
        Self {
            runtime,
            modules,
            routes,
            www,
            mode,
            admission: Admission::new(limits.max_concurrency, limits.queue_timeout),
            limits,
            ready: AtomicBool::new(true),
        }
    }
}

/// The two ends of one client connection.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    /// The client's address (`REMOTE_ADDR`).
    pub remote: SocketAddr,
    /// The address the connection came in on (`SERVER_PORT`, and
    /// `SERVER_NAME` when the request has no `Host`).
    pub local: SocketAddr,
}

/// Serves HTTP on `listener` until `shutdown` resolves, then stops accepting,
/// turns `/readyz` to 503, and lets requests in flight finish for at most
/// `grace`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> anyhow::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEAD_SIZE);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            remote,
            local: stream
                .local_addr()
                .unwrap_or_else(|_| listener.local_addr().expect("bound listener")),
        };
        let state = state.clone();
        let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let request = request.map(|body| body.boxed_unsync());
            let response = handler::handle(state.clone(), request, connection);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("connection from {remote} ended with an error: {error}");
            }
        });
    }

    state.ready.store(false, Ordering::Release);
    drop(listener);
    tracing::info!("shutting down: waiting up to {grace:?} for requests in flight");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; stopping the requests still in flight");
    }
    Ok(())
}
