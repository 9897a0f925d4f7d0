//! The HTTP server: accepts connections (plain, or HTTPS through rustls),
//! serves each with hyper (HTTP/1.1, and HTTP/2 through ALPN or, when
//! enabled, by prior knowledge in clear text), and hands every request to
//! [`dispatch::handle`].
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
mod bucket_table;
mod cgi_bin;
mod cgi_response;
mod cgi_run;
mod client_address;
mod client_key;
mod compat_vars;
mod connection_limits;
mod dispatch;
mod drain;
mod endpoint;
mod error;
mod forwarded;
mod guest;
mod handler_run;
mod metrics;
mod paced_io;
mod rate_limit;
mod request_body;
mod request_id;
mod state;
mod static_files;
mod stdin;
mod tls;
mod watchdog;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

pub use connection_limits::{ConnectionLimits, default_max_connections};
pub use rate_limit::{DEFAULT_TABLE_SIZE as DEFAULT_RATE_TABLE_SIZE, RateLimiter};
pub use state::{AppState, Connection};
pub use static_files::StaticFiles;
pub use tls::{TlsAcceptor, TlsFiles};

use paced_io::PacedIo;
use watchdog::Watchdog;

use dispatch::Surface;

/// How long a client may take to send the request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line plus headers) read from a client;
/// larger heads get 431.
const MAX_HEAD_SIZE: usize = 64 * 1024;

/// HTTP/2 streams one connection may have open at once, at most: its
/// requests past the admission slots would only queue.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// Streams a client may reset before the server has answered them, and
/// stream errors it may cause, before its connection is closed: bounds a
/// reset flood ("rapid reset", CVE-2023-44487).
const MAX_PENDING_RESETS: usize = 20;
const MAX_LOCAL_RESETS: usize = 256;

/// The sockets the server answers on.
pub struct Listeners {
    /// Plain HTTP (`--listen`), if served.
    pub plain: Option<TcpListener>,
    /// HTTPS (`--tls-listen`, or `--listen` given a certificate).
    pub tls: Option<(TcpListener, TlsAcceptor)>,
    /// A separate address for `/metrics`, if any.
    pub metrics: Option<TcpListener>,
}

/// How connections are served.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Accept HTTP/2 by prior knowledge (h2c) on the plain listener.
    pub h2c: bool,
    /// Answer plain requests with 308 to HTTPS on this port.
    pub redirect_to_https: Option<u16>,
    /// Open connections, in all and per client.
    pub limits: ConnectionLimits,
    /// HTTP/2 streams per connection (the admission slots, at most
    /// [`MAX_STREAMS_PER_CONNECTION`]).
    pub max_streams: u32,
}

impl ConnectionSettings {
    /// Settings for a server with `slots` instance slots.
    pub fn new(limits: ConnectionLimits, slots: usize) -> Self {
        Self {
            h2c: false,
            redirect_to_https: None,
            limits,
            max_streams: u32::try_from(slots)
                .unwrap_or(u32::MAX)
                .clamp(1, MAX_STREAMS_PER_CONNECTION),
        }
    }
}

/// Which listener a connection came in on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Door {
    Plain,
    Tls,
    Metrics,
}

/// Serves HTTP on `listeners` until `shutdown` resolves; then drains:
/// `/readyz` turns 503, new requests get 503 (`Connection: close`), and the
/// requests in flight get at most `grace` to finish before the rest are
/// stopped. Both listeners go through the same accept path (header
/// timeout, write-stall timeout, logging, shutdown).
pub async fn serve(
    listeners: Listeners,
    settings: ConnectionSettings,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> anyhow::Result<()> {
    let connections = GracefulShutdown::new();
    if let Some((_, acceptor)) = &listeners.tls {
        tokio::spawn(acceptor.clone().watch());
    }
    let http = Arc::new(Builders::new(settings.max_streams));
    let server = Server {
        listeners,
        settings,
        state: state.clone(),
        http,
    };
    server.accept_until(&connections, shutdown).await;

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
    server.accept_until(&connections, drained).await;
    drop(server);
    // Idle keep-alive connections close now; the rest are dropped with the runtime.
    let _ = tokio::time::timeout(Duration::from_millis(100), connections.shutdown()).await;
    tracing::info!("shut down");
    Ok(())
}

/// How a connection's bytes are read: HTTP/1.1, HTTP/2 (ALPN said so), or
/// either, told apart by the HTTP/2 preface (h2c by prior knowledge).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Http1,
    Http2,
    Sniff,
}

/// hyper's connection settings, for each [`Wire`].
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    sniff: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(max_streams: u32) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_header_size(MAX_HEAD_SIZE);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        configure_http2(&mut http2, max_streams);
        // hyper-util's HTTP/1 side has no head-size setting: its read
        // buffer bounds the head instead.
        let mut sniff = auto::Builder::new(TokioExecutor::new());
        sniff
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEAD_SIZE);
        let mut sniff_http2 = sniff.http2();
        sniff_http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(max_streams)
            .max_header_list_size(MAX_HEAD_SIZE as u32)
            .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
            .max_local_error_reset_streams(MAX_LOCAL_RESETS)
            .keep_alive_interval(Some(HTTP2_PING))
            .keep_alive_timeout(HTTP2_PING);
        Self {
            http1,
            http2,
            sniff,
        }
    }
}

/// How often an HTTP/2 connection is pinged, and how long the peer has to
/// answer before the connection is closed.
const HTTP2_PING: Duration = Duration::from_secs(20);

/// The HTTP/2 limits: streams per connection, header list size, resets.
fn configure_http2(http2: &mut http2::Builder<TokioExecutor>, max_streams: u32) {
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(max_streams)
        .max_header_list_size(MAX_HEAD_SIZE as u32)
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_local_error_reset_streams(MAX_LOCAL_RESETS)
        .keep_alive_interval(Some(HTTP2_PING))
        .keep_alive_timeout(HTTP2_PING);
}

/// The listeners and what serving a connection takes.
struct Server {
    listeners: Listeners,
    settings: ConnectionSettings,
    state: Arc<AppState>,
    http: Arc<Builders>,
}

impl Server {
    /// The next connection on any listener.
    async fn accept(&self) -> (std::io::Result<(TcpStream, SocketAddr)>, Door) {
        let doors = [
            (self.listeners.plain.as_ref(), Door::Plain),
            (
                self.listeners.tls.as_ref().map(|(listener, _)| listener),
                Door::Tls,
            ),
            (self.listeners.metrics.as_ref(), Door::Metrics),
        ];
        std::future::poll_fn(|cx| {
            for (listener, door) in doors {
                if let Some(listener) = listener
                    && let Poll::Ready(accepted) = listener.poll_accept(cx)
                {
                    return Poll::Ready((accepted, door));
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Accepts connections on every listener and serves them until `until`
    /// resolves.
    async fn accept_until(&self, connections: &GracefulShutdown, until: impl Future<Output = ()>) {
        tokio::pin!(until);
        loop {
            let (accepted, door) = tokio::select! {
                accepted = self.accept() => accepted,
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
            let permit = match self.settings.limits.admit(remote.ip()) {
                Ok(permit) => permit,
                Err(refusal) => {
                    self.state.metrics.connection_refused(refusal.label());
                    tracing::debug!("connection from {remote} refused: {}", refusal.label());
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
                tls: None,
                redirect_to_https: self
                    .settings
                    .redirect_to_https
                    .filter(|_| door == Door::Plain),
            };
            let surface = if door == Door::Metrics {
                Surface::Metrics
            } else {
                Surface::Public
            };
            let tls = match door {
                Door::Tls => self
                    .listeners
                    .tls
                    .as_ref()
                    .map(|(_, acceptor)| acceptor.clone()),
                _ => None,
            };
            let h2c = self.settings.h2c && door == Door::Plain;
            let serving = Serving {
                state: self.state.clone(),
                http: self.http.clone(),
                connections: connections.watcher(),
                watchdog,
                surface,
            };
            tokio::spawn(async move {
                let _permit = permit;
                match tls {
                    None => {
                        let wire = if h2c { Wire::Sniff } else { Wire::Http1 };
                        serving.serve(PacedIo::new(stream), connection, wire).await;
                    }
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(
                            HEADER_READ_TIMEOUT,
                            acceptor.accept(PacedIo::new(stream)),
                        );
                        match handshake.await {
                            Ok(Ok((stream, info, h2))) => {
                                let connection = Connection {
                                    tls: Some(Arc::new(info)),
                                    ..connection
                                };
                                let wire = if h2 { Wire::Http2 } else { Wire::Http1 };
                                serving.serve(stream, connection, wire).await;
                            }
                            Ok(Err(error)) => {
                                tracing::debug!("TLS handshake with {remote} failed: {error}");
                            }
                            Err(_) => tracing::debug!(
                                "TLS handshake with {remote} not done within {HEADER_READ_TIMEOUT:?}"
                            ),
                        }
                    }
                }
            });
        }
    }
}

/// What one connection is served with.
struct Serving {
    state: Arc<AppState>,
    http: Arc<Builders>,
    connections: hyper_util::server::graceful::Watcher,
    watchdog: Watchdog,
    surface: Surface,
}

impl Serving {
    /// Serves HTTP on `io` until the connection ends, its watchdog fires or
    /// the server shuts down, speaking `wire`.
    async fn serve<IO>(self, io: IO, connection: Connection, wire: Wire)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let remote = connection.remote;
        let Serving {
            state,
            http,
            connections,
            watchdog,
            surface,
        } = self;
        let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let request = request.map(|body| body.boxed_unsync());
            let response = dispatch::handle(state.clone(), request, connection.clone(), surface);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let io = TokioIo::new(io);
        let result = match wire {
            Wire::Http1 => {
                let connection = connections.watch(http.http1.serve_connection(io, service));
                Self::run(connection, &watchdog).await
            }
            Wire::Http2 => {
                let connection = connections.watch(http.http2.serve_connection(io, service));
                Self::run(connection, &watchdog).await
            }
            Wire::Sniff => {
                let connection =
                    connections.watch(http.sniff.serve_connection(io, service).into_owned());
                Self::run(connection, &watchdog).await
            }
        };
        match result {
            Some(Err(error)) => {
                tracing::debug!("connection from {remote} ended with an error: {error}");
            }
            None => tracing::warn!(
                "connection from {remote} closed: its response ran past the guest's deadline"
            ),
            Some(Ok(())) => {}
        }
    }

    /// Drives `connection` until it ends (`Some`) or the watchdog fires
    /// (`None`: dropping the connection drops the response and its guest).
    async fn run<E: std::fmt::Display>(
        connection: impl Future<Output = Result<(), E>>,
        watchdog: &Watchdog,
    ) -> Option<Result<(), String>> {
        tokio::select! {
            result = connection => Some(result.map_err(|error| error.to_string())),
            () = watchdog.fired() => None,
        }
    }
}
