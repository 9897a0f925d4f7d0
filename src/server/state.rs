//! The state every request shares, built once before the socket is bound,
//! and the two ends of a client connection.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::drain::Drain;
use super::metrics::Metrics;
use super::rate_limit::RateLimiter;
use super::request_body::BUFFERED_BODIES;
use super::static_files::StaticFiles;
use super::tls::TlsInfo;
use super::watchdog::Watchdog;
use crate::admission::Admission;
use crate::cgi::Mode;
use crate::limits::Limits;
use crate::modules::ModuleRegistry;
use crate::proxies::TrustedProxies;
use crate::routes::RouteTable;
use crate::runtime::Sandbox;
use crate::scripts::Scripts;

/// Everything the handlers share, built once before the socket is bound.
pub struct AppState {
    /// The engine and linkers.
    pub sandbox: Sandbox,
    /// The modules served under `/cgi-bin/wasm-run.cgi/` and by routes.
    pub modules: Arc<ModuleRegistry>,
    /// The configured routes.
    pub routes: RouteTable,
    /// The scripts folder and the interpreters.
    pub scripts: Scripts,
    /// The static files folder, if any.
    pub www: Option<StaticFiles>,
    /// The mode of modules that declare none.
    pub mode: Mode,
    /// The limits every request runs under.
    pub limits: Limits,
    /// Instance slots and the queue in front of them.
    pub admission: Admission,
    /// Bytes of whole request bodies held at once (see
    /// [`BUFFERED_BODIES`](super::request_body::BUFFERED_BODIES)).
    pub body_buffer: Arc<Semaphore>,
    /// Requests in flight, for graceful shutdown.
    pub drain: Arc<Drain>,
    /// The Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Whether `/metrics` is served on the main address (not when it has a
    /// listener of its own).
    pub metrics_on_main: bool,
    /// The peers whose forwarding headers name the client (none unless
    /// configured).
    pub trusted_proxies: TrustedProxies,
    /// The per-client token buckets of every scope with a `rate`.
    pub rate_limiter: RateLimiter,
    /// Variables every guest gets (`serve --env`, `--env-file`).
    pub guest_env: Vec<(String, String)>,
    /// The `Host` a request without one is taken to have
    /// (`--default-host`, WAGI's), if set.
    pub default_host: Option<http::HeaderValue>,
}

impl Connection {
    /// Whether the connection came in over HTTPS.
    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// The subject of the client certificate the handshake verified.
    pub fn client_certificate(&self) -> Option<&str> {
        self.tls.as_ref()?.client_subject.as_deref()
    }
}

impl AppState {
    /// Shared state for a server with these modules and settings.
    pub fn new(
        sandbox: Sandbox,
        modules: ModuleRegistry,
        routes: RouteTable,
        scripts: Scripts,
        www: Option<StaticFiles>,
        mode: Mode,
        limits: Limits,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        for name in modules.names() {
            if let Some(entry) = modules.get(&name) {
                metrics.module_loaded(&name, entry.load_time.as_secs_f64());
            }
        }
        Self {
            sandbox,
            modules: Arc::new(modules),
            routes,
            scripts,
            www,
            mode,
            admission: Admission::new(limits.max_concurrency, limits.queue_timeout),
            body_buffer: Arc::new(Semaphore::new(BUFFERED_BODIES)),
            limits,
            drain: Arc::default(),
            metrics,
            metrics_on_main: true,
            trusted_proxies: TrustedProxies::default(),
            rate_limiter: RateLimiter::default(),
            guest_env: Vec::new(),
            default_host: None,
        }
    }

    /// Gives a request that has no `Host` (an HTTP/1.0 client's) the
    /// default host, if one is set, so its guest sees that name and port.
    pub fn default_host_for(&self, parts: &mut http::request::Parts) {
        if let Some(host) = &self.default_host
            && parts.uri.authority().is_none()
            && !parts.headers.contains_key(http::header::HOST)
        {
            parts.headers.insert(http::header::HOST, host.clone());
        }
    }
}

/// The two ends of one client connection, and its watchdog.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The client's address (`REMOTE_ADDR`).
    pub remote: SocketAddr,
    /// The address the connection came in on (`SERVER_PORT`, and
    /// `SERVER_NAME` when the request has no `Host`).
    pub local: SocketAddr,
    /// Closes the connection when a response runs past its guest's
    /// deadline unpolled.
    pub watchdog: Watchdog,
    /// The TLS session, for a connection that came in over HTTPS.
    pub tls: Option<Arc<TlsInfo>>,
    /// On a plain connection of a server that also serves HTTPS with
    /// `--redirect-http`: the HTTPS port requests are redirected to.
    pub redirect_to_https: Option<u16>,
}
