//! `wasm-cgi serve`: resolve flags, environment and config file into
//! settings, load the modules, check the routes, bind, and serve until
//! SIGTERM or SIGINT.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ipnet::IpNet;
use tokio::net::TcpListener;

use super::cache::CacheFlags;
use super::front_door::{FrontDoor, FrontDoorFlags};
use super::guest_env::GuestEnvFlags;
use super::module_files;
use super::sources::{
    ModuleSource, SourceFlags, install_dir, load_modules, needs_fuel, protected_paths,
};
use crate::cgi::Mode;
use crate::config::{InterpreterConfig, ModuleFile, RouteConfig};
use crate::limits::{LimitOverrides, Limits, parse_duration};
use crate::logging::{self, LogFormat};
use crate::modules::reload;
use crate::proxies::TrustedProxies;
use crate::routes;
use crate::runtime::{Sandbox, SandboxOptions, Tiering};
use crate::scripts::{self, Scripts};
use crate::server::{
    self, AppState, ConnectionLimits, ConnectionSettings, Listeners, StaticFiles, TlsAcceptor,
};

/// The address served when neither `--listen`, `LISTEN`, `PORT` nor the
/// config file says otherwise.
const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// Run the HTTP server. Flags override environment variables, which
/// override the config file, which overrides the defaults.
#[derive(clap::Args, Debug)]
pub struct ServeCommand {
    /// The config file, the modules and the compile cache.
    #[command(flatten)]
    pub sources: SourceFlags,
    /// Address to listen on, IP:PORT; port 0 picks a free port. Without it,
    /// PORT=N means 0.0.0.0:N [default: 0.0.0.0:8080]
    #[arg(long, env = "LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Folder of static files [default: $INSTALL_DIR/www if INSTALL_DIR is set]
    #[arg(long, value_name = "DIR")]
    pub www: Option<PathBuf>,
    /// How module output becomes the response [default: simple]
    #[arg(long, env = "MODE", value_enum)]
    pub mode: Option<Mode>,
    /// Limits for every request.
    #[command(flatten)]
    pub limits: LimitOverrides,
    /// How long requests in flight may finish after SIGTERM
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub shutdown_grace: Duration,
    /// Serve GET /metrics on this address instead of the main one
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// HTTPS, HTTP/2 and connection limits.
    #[command(flatten)]
    pub front_door: FrontDoorFlags,
    /// Log line format (logs go to stderr)
    #[arg(long, value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// A peer whose Forwarded / X-Forwarded-For / X-Forwarded-Proto headers
    /// name the client: a network (10.0.0.0/8) or an address; repeat for
    /// more. Replaces the config file's trusted_proxies [default: none]
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = TrustedProxies::parse_entry)]
    pub trusted_proxies: Vec<IpNet>,
    /// Per-client rate buckets kept (a fixed-size table). For tests.
    #[arg(long, value_name = "N", hide = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_table_size: Option<u32>,
    /// Tiered compilation: `on` serves a new or changed module as soon as
    /// Wasmtime's baseline compiler (Winch) has compiled it, and switches
    /// to Cranelift's optimized code once that is compiled in the
    /// background; `off` serves Cranelift's code only (a module is served
    /// once optimized); `baseline` serves Winch's code only (for testing)
    #[arg(long, env = "TIERING", value_enum, default_value_t)]
    pub tiering: TieringFlag,
    /// Variables for every guest and the default host (WAGI's flags).
    #[command(flatten)]
    pub guest: GuestEnvFlags,
}

/// `serve`'s settings, resolved and checked before anything starts.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// The address to bind.
    pub listen: SocketAddr,
    /// The modules to serve.
    pub modules: ModuleSource,
    /// The static files folder, if any.
    pub www: Option<PathBuf>,
    /// The scripts folder, if any.
    pub scripts: Option<PathBuf>,
    /// The configured interpreters.
    pub interpreters: Vec<InterpreterConfig>,
    /// The default response mode.
    pub mode: Mode,
    /// The default limits.
    pub limits: Limits,
    /// The configured routes.
    pub routes: Vec<RouteConfig>,
    /// How long requests in flight may finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// A separate address for `/metrics`, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// Compile cache and precompiled modules.
    pub cache: CacheFlags,
    /// HTTPS, HTTP/2 and connection limits.
    pub front_door: FrontDoor,
    /// The peers whose forwarding headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// How many per-client rate buckets are kept.
    pub rate_table_size: usize,
    /// Module files the config names by path (WAGI, Spin).
    pub module_files: Vec<ModuleFile>,
    /// What the config file asks to be said once at start-up.
    pub warnings: Vec<String>,
    /// Variables every guest gets.
    pub guest_env: Vec<(String, String)>,
    /// The `Host` of requests that send none.
    pub default_host: Option<http::HeaderValue>,
    /// Which compilers modules are compiled with.
    pub tiering: Tiering,
}

/// `--tiering`'s values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TieringFlag {
    /// Cranelift only.
    Off,
    /// Winch first, then Cranelift in the background.
    #[default]
    On,
    /// Winch only.
    Baseline,
}

impl From<TieringFlag> for Tiering {
    fn from(flag: TieringFlag) -> Self {
        match flag {
            TieringFlag::Off => Tiering::Off,
            TieringFlag::On => Tiering::On,
            TieringFlag::Baseline => Tiering::Baseline,
        }
    }
}

impl ServeCommand {
    /// Resolves the settings: `env` reads the variables that clap does not
    /// (`PORT`, `INSTALL_DIR`), `cwd` is where `./modules` is looked for.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> anyhow::Result<ServeSettings> {
        let config = self.sources.config()?;
        let install_dir = install_dir(&env);
        let listen = match (self.listen, env("PORT").filter(|port| !port.is_empty())) {
            (Some(listen), _) => listen,
            (None, Some(port)) => {
                let port: u16 = port
                    .parse()
                    .with_context(|| format!("PORT={port:?} is not a port number"))?;
                SocketAddr::from(([0, 0, 0, 0], port))
            }
            (None, None) => config
                .listen
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address")),
        };
        let modules = self.sources.module_source(&config, &env, cwd)?;
        let www = self
            .www
            .clone()
            .or_else(|| install_dir.map(|dir| dir.join("www")))
            .or(config.www.clone());
        if let Some(dir) = &www {
            anyhow::ensure!(
                dir.is_dir(),
                "the static files folder {} does not exist",
                dir.display()
            );
        }
        let scripts = self.sources.scripts_dir(&config, &env)?;
        let front_door = self.front_door.resolve(&config)?;
        let trusted_proxies = if self.trusted_proxies.is_empty() {
            config.trusted_proxies.clone()
        } else {
            TrustedProxies::from_networks(self.trusted_proxies.clone())
                .map_err(|message| anyhow::anyhow!("--trusted-proxy: {message}"))?
        };
        Ok(ServeSettings {
            listen,
            modules,
            www,
            scripts,
            interpreters: config.interpreters,
            mode: self.mode.or(config.mode).unwrap_or_default(),
            limits: self.limits.apply(config.limits.apply(Limits::default())),
            routes: config.routes,
            shutdown_grace: self.shutdown_grace,
            metrics_listen: self.metrics_listen,
            cache: self.sources.cache.clone(),
            front_door,
            trusted_proxies,
            rate_table_size: self
                .rate_table_size
                .map_or(server::DEFAULT_RATE_TABLE_SIZE, |n| n as usize),
            module_files: config.module_files,
            warnings: config.warnings,
            guest_env: self.guest.env()?,
            default_host: self.guest.default_host()?,
            tiering: self.tiering.into(),
        })
    }

    /// Runs the server until SIGTERM or SIGINT.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let _log = logging::init_background(self.log_format, "info");
        let cwd = std::env::current_dir().context("failed to read the current directory")?;
        let settings = self.resolve(|name| std::env::var(name).ok(), &cwd)?;
        let runtime =
            tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
        runtime.block_on(serve(settings))?;
        Ok(ExitCode::SUCCESS)
    }
}

async fn serve(settings: ServeSettings) -> anyhow::Result<()> {
    let sandbox = Sandbox::new(SandboxOptions {
        fuel_metering: needs_fuel(&settings.limits, &settings.routes),
        max_instances: Some(pool_size(&settings.limits, &settings.routes)),
        max_memory: max_memory(&settings.limits, &settings.routes),
        cache: settings.cache.cache(),
        tiering: settings.tiering,
    })?;
    let options = crate::modules::LoadOptions {
        allow_precompiled: settings.cache.allow_precompiled,
        init: Arc::new(routes::init_plan(
            &settings.routes,
            &settings.interpreters,
            &settings.limits,
        )),
    };
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let (modules, mut failures) =
        load_modules(&sandbox, &settings.modules, options.clone()).await?;
    let (route_configs, file_failures) = module_files::load(
        &sandbox,
        &modules,
        &settings.module_files,
        &settings.routes,
        &options,
        &settings.limits,
    )
    .await;
    failures.extend(file_failures);
    for failure in &failures {
        tracing::error!(module = %failure.module, "module skipped: {}", failure.reason);
    }
    let protected = protected_paths(
        &settings.modules,
        settings.www.as_deref(),
        settings.scripts.as_deref(),
        sandbox.cache(),
    );
    let mut problems = scripts::check(
        &settings.interpreters,
        &settings.routes,
        settings.scripts.as_deref(),
        &modules,
        &protected,
    );
    let routes = routes::from_config(&route_configs, &modules, &settings.limits, &protected)
        .map_err(|route_problems| problems.extend(route_problems));
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
    let routes = routes.expect("no problems, so a route table");
    let scripts = Scripts::new(
        settings.scripts.as_deref(),
        &settings.interpreters,
        &settings.limits,
    )
    .context("cannot read the scripts folder")?;
    tracing::info!(
        modules = modules.names().len(),
        routes = routes.routes().len(),
        source = ?settings.modules,
        mode = ?settings.mode,
        limits = ?settings.limits,
        "modules loaded"
    );
    // What lies inside www but is never public: the program binaries and
    // the compiled native code.
    let mut private: Vec<PathBuf> = sandbox
        .cache()
        .dir()
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    if let ModuleSource::Folder(dir) = &settings.modules {
        private.push(dir.clone());
    }
    let www = settings
        .www
        .as_deref()
        .map(|dir| {
            StaticFiles::new(dir, &private)
                .with_context(|| format!("cannot read the static files folder {}", dir.display()))
        })
        .transpose()?;
    let mut state = AppState::new(
        sandbox,
        modules,
        routes,
        scripts,
        www,
        settings.mode,
        settings.limits,
    );
    state.trusted_proxies = settings.trusted_proxies.clone();
    state.rate_limiter = server::RateLimiter::new(settings.rate_table_size);
    state.guest_env = settings.guest_env.clone();
    state.default_host = settings.default_host.clone();
    let metrics_listener = match settings.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("failed to listen on {addr} for metrics"))?;
            tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
            state.metrics_on_main = false;
            Some(listener)
        }
        None => None,
    };
    let state = Arc::new(state);
    if let ModuleSource::Folder(dir) = settings.modules {
        let metrics = state.metrics.clone();
        let on_load =
            move |name: &str, took: Duration| metrics.module_loaded(name, took.as_secs_f64());
        let watch = reload::watch(
            state.modules.clone(),
            state.sandbox.clone(),
            dir,
            options,
            routes::reload_check(settings.routes.clone(), &settings.interpreters),
            on_load,
        );
        tokio::spawn(watch);
    }

    let door = &settings.front_door;
    // A bad certificate or key is refused before anything is bound.
    let acceptor = door
        .tls
        .clone()
        .map(TlsAcceptor::load)
        .transpose()
        .context("cannot serve HTTPS")?;
    let (plain, tls) = match (acceptor, door.tls_listen) {
        (None, _) => (Some(bind(settings.listen).await?), None),
        (Some(acceptor), None) => (None, Some((bind(settings.listen).await?, acceptor))),
        (Some(acceptor), Some(tls_listen)) => (
            Some(bind(settings.listen).await?),
            Some((bind(tls_listen).await?, acceptor)),
        ),
    };
    // The lines on stdout: scripts and tests read the bound ports from them.
    for (listener, scheme) in [
        (plain.as_ref(), "http"),
        (tls.as_ref().map(|(l, _)| l), "https"),
    ] {
        if let Some(listener) = listener {
            println!("listening on {scheme}://{}", listener.local_addr()?);
        }
    }
    std::io::stdout().flush()?;
    let limits = ConnectionLimits::new(door.max_connections, door.max_connections_per_client);
    let mut connections = ConnectionSettings::new(limits, state.limits.max_concurrency);
    connections.h2c = door.h2c;
    if door.redirect_http
        && let Some((listener, _)) = &tls
    {
        connections.redirect_to_https = Some(listener.local_addr()?.port());
    }
    let listeners = Listeners {
        plain,
        tls,
        metrics: metrics_listener,
    };
    server::serve(
        listeners,
        connections,
        state,
        shutdown_signal(),
        settings.shutdown_grace,
    )
    .await
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))
}

/// Instance slots for the pooling allocator: every admission slot (the
/// server's and each route's own), twice over, so an instance still being
/// torn down never makes a new one wait.
fn pool_size(limits: &Limits, routes: &[RouteConfig]) -> u32 {
    let route_slots: u32 = routes
        .iter()
        .filter_map(|route| route.limits.max_concurrency)
        .sum();
    let slots = u32::try_from(limits.max_concurrency).unwrap_or(u32::MAX);
    slots.saturating_add(route_slots).saturating_mul(2)
}

/// The largest `max-memory` of the server and its routes.
fn max_memory(limits: &Limits, routes: &[RouteConfig]) -> u64 {
    let route_max = routes
        .iter()
        .filter_map(|route| route.limits.max_memory)
        .map(|size| size.0);
    route_max.fold(limits.max_memory.0, u64::max)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!("cannot listen for SIGTERM: {error}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve_command(args: &[&str]) -> ServeCommand {
        let mut argv = vec!["wasm-cgi", "serve"];
        argv.extend(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(command) => *command,
            other => panic!("parsed as {other:?}"),
        }
    }

    fn env_from(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn no_flags_and_no_folders_serve_the_examples_on_8080() {
        let empty = tempfile::tempdir().unwrap();
        let settings = serve_command(&[])
            .resolve(env_from(&[]), empty.path())
            .unwrap();
        assert_eq!(settings.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(settings.modules, ModuleSource::Examples);
        assert_eq!(settings.www, None);
        assert_eq!(settings.mode, Mode::Simple);
    }

    #[test]
    fn port_and_install_dir_set_address_and_folders() {
        let install = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(install.path().join("www/cgi-bin/modules")).unwrap();
        let install_dir = install.path().to_str().unwrap();
        let settings = serve_command(&[])
            .resolve(
                env_from(&[("PORT", "9090"), ("INSTALL_DIR", install_dir)]),
                install.path(),
            )
            .unwrap();
        assert_eq!(settings.listen, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(
            settings.modules,
            ModuleSource::Folder(install.path().join("www/cgi-bin/modules"))
        );
        assert_eq!(settings.www, Some(install.path().join("www")));
    }

    #[test]
    fn flags_win_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("www")).unwrap();
        let modules = dir.path().to_str().unwrap();
        let settings = serve_command(&[
            "--listen",
            "127.0.0.1:0",
            "--modules",
            modules,
            "--mode",
            "cgi",
        ])
        .resolve(
            env_from(&[("PORT", "9090"), ("INSTALL_DIR", modules)]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(settings.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(
            settings.modules,
            ModuleSource::Folder(dir.path().to_path_buf())
        );
        assert_eq!(settings.mode, Mode::Cgi);
    }

    #[test]
    fn a_modules_folder_in_the_working_directory_is_used() {
        let cwd = tempfile::tempdir().unwrap();
        std::fs::create_dir(cwd.path().join("modules")).unwrap();
        let settings = serve_command(&[])
            .resolve(env_from(&[]), cwd.path())
            .unwrap();
        assert_eq!(
            settings.modules,
            ModuleSource::Folder(cwd.path().join("modules"))
        );
    }

    #[test]
    fn bad_settings_are_refused_with_what_to_fix() {
        let cwd = tempfile::tempdir().unwrap();
        let error = serve_command(&["--modules", "/nonexistent/modules"])
            .resolve(env_from(&[]), cwd.path())
            .unwrap_err();
        assert!(error.to_string().contains("does not exist"), "{error}");
        let error = serve_command(&[])
            .resolve(env_from(&[("PORT", "http")]), cwd.path())
            .unwrap_err();
        assert!(error.to_string().contains("PORT"), "{error}");
    }

    #[test]
    fn limit_flags_override_the_defaults() {
        let cwd = tempfile::tempdir().unwrap();
        let settings = serve_command(&[
            "--timeout",
            "2s",
            "--max-memory",
            "64MiB",
            "--max-body",
            "1MiB",
        ])
        .resolve(env_from(&[]), cwd.path())
        .unwrap();
        assert_eq!(settings.limits.timeout, Duration::from_secs(2));
        assert_eq!(settings.limits.max_memory.0, 64 << 20);
        assert_eq!(settings.limits.max_body.0, 1 << 20);
    }

    #[test]
    fn rate_flags_and_trusted_proxies_replace_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wasm-cgi.toml");
        std::fs::write(
            &file,
            "trusted_proxies = [\"10.0.0.0/8\"]\n[limits]\nrate = \"50/s\"\nburst = 100\n",
        )
        .unwrap();
        let config = file.to_str().unwrap();
        let from_file = serve_command(&["--config", config])
            .resolve(env_from(&[]), dir.path())
            .unwrap();
        assert!(
            from_file
                .trusted_proxies
                .contains("10.1.1.1".parse().unwrap())
        );
        let (rate, burst) = from_file.limits.rate_limit().unwrap();
        assert_eq!((rate.to_string(), burst), ("50/s".to_owned(), 100));

        let flags = serve_command(&[
            "--config",
            config,
            "--trusted-proxy",
            "127.0.0.1",
            "--trusted-proxy",
            "::1",
            "--rate",
            "10/m",
        ])
        .resolve(env_from(&[]), dir.path())
        .unwrap();
        assert!(flags.trusted_proxies.contains("::1".parse().unwrap()));
        assert!(!flags.trusted_proxies.contains("10.1.1.1".parse().unwrap()));
        let (rate, burst) = flags.limits.rate_limit().unwrap();
        assert_eq!((rate.to_string(), burst), ("10/m".to_owned(), 100));

        for wrong in [
            &["--trusted-proxy", "10.0.0.0/99"][..],
            &["--rate", "50"],
            &["--burst", "0"],
        ] {
            let mut argv = vec!["wasm-cgi", "serve"];
            argv.extend(wrong);
            assert!(Cli::try_parse_from(argv).is_err(), "{wrong:?}");
        }
    }
}
