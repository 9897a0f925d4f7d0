//! The TOML config file (SPEC section 5): its schema, read with serde
//! (`deny_unknown_fields`), and checked into values the server can use.
//! Every problem is reported as one `FILE:LINE: what to fix` line, and all
//! of them are reported at once. A WAGI `modules.toml` or a Spin manifest
//! given instead is read into the same [`Config`] ([`Format`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::cgi::Mode;
use crate::limits::LimitOverrides;
use crate::modules::is_module_file;
use crate::proxies::TrustedProxies;
use crate::runtime::{AllowedHosts, DirGrant, Initializer};

pub mod compat;
mod format;
mod interpreter;
mod module_ref;
mod outbound_url;
mod route_path;
mod spin;
mod wagi;

pub use compat::RouteCompat;
pub use format::Format;
pub use interpreter::{InterpreterConfig, has_extension};
pub use route_path::{PathMatch, RoutePath};

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<Spanned<String>>,
    tls_listen: Option<Spanned<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    modules: Option<Spanned<PathBuf>>,
    www: Option<Spanned<PathBuf>>,
    scripts: Option<Spanned<PathBuf>>,
    mode: Option<Mode>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    #[serde(default)]
    limits: LimitOverrides,
    #[serde(default)]
    interpreter: Vec<interpreter::InterpreterEntry>,
    #[serde(default)]
    route: Vec<RouteEntry>,
}

/// One `[[route]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteEntry {
    path: Spanned<String>,
    module: Option<Spanned<String>>,
    script: Option<Spanned<String>>,
    mode: Option<Mode>,
    entrypoint: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    dirs: Vec<Spanned<DirEntry>>,
    #[serde(default)]
    limits: LimitOverrides,
    #[serde(default)]
    pass_authorization: bool,
    #[serde(default)]
    unverified_remote_user: bool,
    #[serde(default = "query_args_by_default")]
    query_args: bool,
    allowed_hosts: Option<Spanned<Vec<String>>>,
    init: Option<Spanned<InitEntry>>,
}

/// `init` as written: `false`, `true`, or the initializer's name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum InitEntry {
    Switch(bool),
    Function(String),
}

impl Problems<'_> {
    /// Checks an `init` value: `None` when it was not given.
    pub(crate) fn check_init(&mut self, entry: Option<Spanned<InitEntry>>) -> Option<Initializer> {
        let entry = entry?;
        Some(match entry.get_ref() {
            InitEntry::Switch(true) => Initializer::Auto,
            InitEntry::Switch(false) => Initializer::Off,
            InitEntry::Function(name) if name.is_empty() => {
                self.add(
                    &entry.span(),
                    "init must name an exported function, or be true or false",
                );
                Initializer::Auto
            }
            InitEntry::Function(name) => Initializer::Function(name.clone()),
        })
    }
}

pub(crate) fn query_args_by_default() -> bool {
    true
}

/// One entry of a route's or an interpreter's `dirs` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirEntry {
    host: PathBuf,
    guest: String,
    #[serde(default = "read_only_by_default")]
    read_only: bool,
}

fn read_only_by_default() -> bool {
    true
}

/// A checked config file. Paths are absolute or relative to the working
/// directory (the file's own relative paths are resolved against its folder).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file it came from.
    pub file: PathBuf,
    /// `listen`.
    pub listen: Option<SocketAddr>,
    /// `tls_listen`: where HTTPS is served beside plain HTTP on `listen`.
    pub tls_listen: Option<SocketAddr>,
    /// `tls_cert`: the PEM certificate chain HTTPS is served with.
    pub tls_cert: Option<PathBuf>,
    /// `tls_key`: its private key.
    pub tls_key: Option<PathBuf>,
    /// `tls_client_ca`: CA certificates client certificates must chain to.
    pub tls_client_ca: Option<PathBuf>,
    /// `modules`.
    pub modules: Option<PathBuf>,
    /// `www`.
    pub www: Option<PathBuf>,
    /// `scripts`: the folder of CGI scripts.
    pub scripts: Option<PathBuf>,
    /// `[[interpreter]]`: which module runs scripts of which extension.
    pub interpreters: Vec<InterpreterConfig>,
    /// `mode`.
    pub mode: Option<Mode>,
    /// `trusted_proxies`: the peers whose `Forwarded` / `X-Forwarded-*`
    /// headers name the client.
    pub trusted_proxies: TrustedProxies,
    /// `[limits]`: the defaults for every route.
    pub limits: LimitOverrides,
    /// `[[route]]`, in order.
    pub routes: Vec<RouteConfig>,
    /// Which format the file was in.
    pub format: Format,
    /// Module files named by path (WAGI, Spin), loaded besides the modules
    /// folder's.
    pub module_files: Vec<ModuleFile>,
    /// What the server should say once at start-up (settings it takes as
    /// written but that deserve a look).
    pub warnings: Vec<String>,
}

/// A module file a WAGI or Spin file names by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// The name routes know it by: its real path (a `/` in it keeps it
    /// apart from the modules folder's names, and out of
    /// `/cgi-bin/wasm-run.cgi/`).
    pub name: String,
    /// The file.
    pub path: PathBuf,
}

/// A checked `[[route]]`.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Where the table's `path` is, for later messages (`FILE:LINE`).
    pub location: String,
    /// `path`.
    pub path: RoutePath,
    /// `module`: a file name in the modules folder; for a `script` route,
    /// its interpreter's module.
    pub module: String,
    /// `script`: a file name in the scripts folder, run by the interpreter
    /// of its extension.
    pub script: Option<String>,
    /// `mode`.
    pub mode: Option<Mode>,
    /// `entrypoint`.
    pub entrypoint: Option<String>,
    /// `args`.
    pub args: Vec<String>,
    /// `env`.
    pub env: Vec<(String, String)>,
    /// `dirs`, host paths resolved.
    pub dirs: Vec<DirGrant>,
    /// `[route.limits]`: overrides of the server's limits.
    pub limits: LimitOverrides,
    /// `pass_authorization`.
    pub pass_authorization: bool,
    /// `unverified_remote_user`: `REMOTE_USER` from Basic credentials the
    /// server does not check (off by default).
    pub unverified_remote_user: bool,
    /// `query_args`: whether a query without `=` becomes argv search words
    /// after the route's `args` (on by default, as RFC 3875 4.4 says).
    pub query_args: bool,
    /// `allowed_hosts`: where the route's component may send HTTP requests.
    pub allowed_hosts: Arc<AllowedHosts>,
    /// `init`: how the route's module is pre-initialized, if the route says.
    pub init: Option<Initializer>,
    /// For a route from a WAGI or Spin file: its argv template, variables
    /// and sub-routes.
    pub compat: Option<RouteCompat>,
}

/// Every problem found in a config file, one `FILE:LINE: message` each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects problems with their line numbers.
pub(crate) struct Problems<'a> {
    file: &'a Path,
    text: &'a str,
    found: Vec<String>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        Self {
            file,
            text,
            found: Vec::new(),
        }
    }
}

/// The folder relative paths in `file` are relative to.
fn folder_of(file: &Path) -> PathBuf {
    file.parent().map_or_else(PathBuf::new, Path::to_path_buf)
}

impl Problems<'_> {
    pub(crate) fn location(&self, span: &Range<usize>) -> String {
        let line = self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        format!("{}:{line}", self.file.display())
    }

    pub(crate) fn add(&mut self, span: &Range<usize>, message: impl fmt::Display) {
        let location = self.location(span);
        self.found.push(format!("{location}: {message}"));
    }

    /// Checks a table's `entrypoint`: it must name something.
    pub(crate) fn check_entrypoint(&mut self, entrypoint: Option<&Spanned<String>>) {
        if let Some(entrypoint) = entrypoint
            && entrypoint.get_ref().is_empty()
        {
            self.add(
                &entrypoint.span(),
                "entrypoint must name an exported function",
            );
        }
    }

    /// Checks a table's `env` names.
    pub(crate) fn check_env<'k>(
        &mut self,
        span: &Range<usize>,
        names: impl Iterator<Item = &'k String>,
    ) {
        for name in names {
            if name.is_empty() || name.contains(['=', '\0']) {
                self.add(
                    span,
                    format!("env name {name:?} is not a valid variable name"),
                );
            }
        }
    }

    /// Checks a table's `dirs`, with host paths resolved by `resolve`.
    pub(crate) fn check_dirs(
        &mut self,
        entries: &[Spanned<DirEntry>],
        resolve: &impl Fn(&Path) -> PathBuf,
    ) -> Vec<DirGrant> {
        let mut dirs = Vec::new();
        for dir in entries {
            let host = resolve(&dir.get_ref().host);
            if !host.is_dir() {
                self.add(
                    &dir.span(),
                    format!("dirs: host folder {} does not exist", host.display()),
                );
            }
            if !dir.get_ref().guest.starts_with('/') {
                self.add(
                    &dir.span(),
                    format!(
                        "dirs: guest path {:?} must start with /",
                        dir.get_ref().guest
                    ),
                );
            }
            dirs.push(DirGrant {
                host,
                guest: dir.get_ref().guest.clone(),
                read_only: dir.get_ref().read_only,
            });
        }
        dirs
    }
}

impl Config {
    /// Reads and checks `file`.
    pub fn load(file: &Path) -> Result<Config, ConfigErrors> {
        match Self::load_checked(file) {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(ConfigErrors(problems)),
        }
    }

    /// Reads and checks `file`, and makes what it can of it however many
    /// problems it has (`None` only when it can't be read or parsed at
    /// all), so `check` can go on to report the modules' and routes'
    /// problems in the same run.
    pub fn load_checked(file: &Path) -> (Option<Config>, Vec<String>) {
        match std::fs::read_to_string(file) {
            Ok(text) => Self::check(file, &text),
            Err(e) => (
                None,
                vec![format!(
                    "{}: cannot read the config file: {e}",
                    file.display()
                )],
            ),
        }
    }

    /// Checks `text` as the contents of `file`.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
        match Self::check(file, text) {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(ConfigErrors(problems)),
        }
    }

    /// Checks `text` as the contents of `file`: the config as far as it
    /// makes sense (routes with a bad path left out), and every problem.
    fn check(file: &Path, text: &str) -> (Option<Config>, Vec<String>) {
        match Format::of(text) {
            Format::Native => {}
            Format::Wagi => return wagi::check(file, text),
            Format::Spin(version) => return spin::check(file, text, version),
        }
        let mut problems = Problems::new(file, text);
        let raw: ConfigFile = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(error) => {
                let span = error.span().unwrap_or(0..0);
                problems.add(&span, error.message().trim_end());
                return (None, problems.found);
            }
        };
        let base = folder_of(file);
        let resolve = |path: &Path| {
            if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            }
        };

        let mut address = |entry: &Option<Spanned<String>>, key: &str| {
            let entry = entry.as_ref()?;
            match entry.get_ref().parse() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    problems.add(
                        &entry.span(),
                        format!("{key} = {:?} is not an IP:PORT address", entry.get_ref()),
                    );
                    None
                }
            }
        };
        let listen = address(&raw.listen, "listen");
        let tls_listen = address(&raw.tls_listen, "tls_listen");
        let trusted_proxies = check_trusted_proxies(&raw.trusted_proxies, &mut problems);
        let mut folder = |entry: &Option<Spanned<PathBuf>>, key: &str| {
            let entry = entry.as_ref()?;
            let path = resolve(entry.get_ref());
            if !path.is_dir() {
                problems.add(
                    &entry.span(),
                    format!("{key} folder {} does not exist", path.display()),
                );
            }
            Some(path)
        };
        let modules = folder(&raw.modules, "modules");
        let www = folder(&raw.www, "www");
        let scripts = folder(&raw.scripts, "scripts");
        let interpreters = interpreter::check_all(raw.interpreter, &mut problems, &resolve);

        let mut routes: Vec<RouteConfig> = Vec::new();
        for entry in raw.route {
            let span = entry.path.span();
            let path = match RoutePath::parse(entry.path.get_ref()) {
                Ok(path) => path,
                Err(message) => {
                    problems.add(&span, message);
                    continue;
                }
            };
            if let Some(first) = routes.iter().find(|r| r.path.same_shape(&path)) {
                let message = format!(
                    "route {path} is defined twice (first at {})",
                    first.location
                );
                problems.add(&span, message);
                continue;
            }
            let (module, script) = match (entry.module, entry.script) {
                (Some(module), None) => {
                    if !is_module_file(module.get_ref()) || module.get_ref().contains(['/', '\\']) {
                        let message = format!(
                            "module {:?} must be the file name of a .wasm in the modules folder",
                            module.get_ref()
                        );
                        problems.add(&module.span(), message);
                    }
                    (module.into_inner(), None)
                }
                (None, Some(script)) => {
                    let interpreter = interpreter::for_script(&interpreters, script.get_ref());
                    match interpreter {
                        Ok(interpreter) => (interpreter.module.clone(), Some(script.into_inner())),
                        Err(message) => {
                            problems.add(&script.span(), message);
                            continue;
                        }
                    }
                }
                _ => {
                    problems.add(
                        &span,
                        "a route names either a `module` or a `script`, not both or neither",
                    );
                    continue;
                }
            };
            problems.check_entrypoint(entry.entrypoint.as_ref());
            problems.check_env(&span, entry.env.keys());
            let dirs = problems.check_dirs(&entry.dirs, &resolve);
            let allowed_hosts = match &entry.allowed_hosts {
                None => AllowedHosts::default(),
                Some(hosts) => AllowedHosts::parse(hosts.get_ref()).unwrap_or_else(|message| {
                    problems.add(&hosts.span(), message);
                    AllowedHosts::default()
                }),
            };
            let init = problems.check_init(entry.init);
            routes.push(RouteConfig {
                location: problems.location(&span),
                path,
                module,
                script,
                mode: entry.mode,
                entrypoint: entry.entrypoint.map(Spanned::into_inner),
                args: entry.args,
                env: entry.env.into_iter().collect(),
                dirs,
                limits: entry.limits,
                pass_authorization: entry.pass_authorization,
                unverified_remote_user: entry.unverified_remote_user,
                query_args: entry.query_args,
                allowed_hosts: Arc::new(allowed_hosts),
                init,
                compat: None,
            });
        }
        problems
            .found
            .extend(init_disagreements(&interpreters, &routes));

        let config = Config {
            file: file.to_path_buf(),
            listen,
            tls_listen,
            tls_cert: raw.tls_cert.as_deref().map(&resolve),
            tls_key: raw.tls_key.as_deref().map(&resolve),
            tls_client_ca: raw.tls_client_ca.as_deref().map(&resolve),
            // A folder that doesn't exist is a problem already said.
            modules: modules.filter(|dir| dir.is_dir()),
            www: www.filter(|dir| dir.is_dir()),
            scripts: scripts.filter(|dir| dir.is_dir()),
            interpreters,
            mode: raw.mode,
            trusted_proxies,
            limits: raw.limits,
            routes,
            ..Config::default()
        };
        (Some(config), problems.found)
    }
}

/// Checks `trusted_proxies`: one problem per entry that is not an address
/// or network.
fn check_trusted_proxies(entries: &[Spanned<String>], problems: &mut Problems) -> TrustedProxies {
    let mut networks = Vec::new();
    for entry in entries {
        match TrustedProxies::parse_entry(entry.get_ref()) {
            Ok(net) => networks.push(net),
            Err(message) => problems.add(&entry.span(), message),
        }
    }
    TrustedProxies::from_networks(networks).unwrap_or_else(|message| {
        let span = entries.first().map_or(0..0, Spanned::span);
        problems.add(&span, message);
        TrustedProxies::default()
    })
}

/// One problem per route or interpreter whose `init` differs from that of
/// an earlier one naming the same module: a module is loaded (and
/// pre-initialized) once, whichever routes serve it.
fn init_disagreements(interpreters: &[InterpreterConfig], routes: &[RouteConfig]) -> Vec<String> {
    let said = interpreters
        .iter()
        .map(|i| (&i.location, &i.module, &i.init))
        .chain(routes.iter().map(|r| (&r.location, &r.module, &r.init)));
    let mut first: BTreeMap<&str, (&str, &Initializer)> = BTreeMap::new();
    let mut problems = Vec::new();
    for (location, module, init) in said {
        let Some(init) = init else { continue };
        match first.get(module.as_str()) {
            Some((at, earlier)) if *earlier != init => problems.push(format!(
                "{location}: init = {} for {module}, but {at} says init = {}: \
                 a module is pre-initialized once for all its routes",
                init_text(init),
                init_text(earlier)
            )),
            Some(_) => {}
            None => {
                first.insert(module, (location, init));
            }
        }
    }
    problems
}

fn init_text(init: &Initializer) -> String {
    match init {
        Initializer::Auto => "true".to_owned(),
        Initializer::Off => "false".to_owned(),
        Initializer::Function(name) => format!("{name:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(Path::new("/etc/wasm-cgi.toml"), text)
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text).unwrap_err().0
    }

    #[test]
    fn a_full_config_is_read() {
        let config = parse(
            r#"
listen = "127.0.0.1:9000"
mode = "cgi"
[limits]
timeout = "10s"
[[route]]
path = "/api/..."
module = "api.wasm"
entrypoint = "handle"
args = ["--fast"]
env = { LOG_LEVEL = "info" }
pass_authorization = true
unverified_remote_user = true
query_args = false
allowed_hosts = ["api.example.com", "127.0.0.1:8081"]
[route.limits]
max_memory = "16MiB"
"#,
        )
        .unwrap();
        assert_eq!(config.listen, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(config.mode, Some(Mode::Cgi));
        assert_eq!(
            config.limits.timeout,
            Some(std::time::Duration::from_secs(10))
        );
        let route = &config.routes[0];
        assert_eq!(route.path, RoutePath::parse("/api/...").unwrap());
        assert_eq!(route.entrypoint.as_deref(), Some("handle"));
        assert_eq!(route.env, [("LOG_LEVEL".to_owned(), "info".to_owned())]);
        assert!(route.pass_authorization);
        assert!(route.unverified_remote_user);
        assert!(!route.query_args);
        assert!(
            route
                .allowed_hosts
                .allows(&"http://127.0.0.1:8081/x".parse().unwrap())
        );
        assert_eq!(route.limits.max_memory.map(|s| s.0), Some(16 << 20));
    }

    #[test]
    fn unknown_keys_name_the_line() {
        let found = errors("mode = \"simple\"\n\n[limits]\ntimeuot = \"1s\"\n");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("/etc/wasm-cgi.toml:4: unknown field `timeuot`"),
            "{found:?}"
        );
    }

    #[test]
    fn bad_sizes_and_durations_name_the_line() {
        let found = errors("[limits]\nmax_memory = \"lots\"\n");
        assert!(
            found[0].starts_with("/etc/wasm-cgi.toml:2: invalid size"),
            "{found:?}"
        );
        let found = errors("[limits]\n\ntimeout = \"soon\"\n");
        assert!(
            found[0].starts_with("/etc/wasm-cgi.toml:3: invalid duration"),
            "{found:?}"
        );
    }

    #[test]
    fn every_route_problem_is_reported_with_its_line() {
        let found = errors(
            r#"listen = "nowhere"
[[route]]
path = "/a"
module = "a.wasm"
[[route]]
path = "/a"
module = "b.wasm"
[[route]]
path = "no-slash"
module = "c.wasm"
[[route]]
path = "/d"
module = "../d.wasm"
dirs = [{ host = "/nonexistent/dir", guest = "data" }]
[[route]]
path = "/e"
module = "e.wasm"
allowed_hosts = ["https://api.example.com"]
"#,
        );
        let expected = [
            ":1: listen",
            ":6: route /a is defined twice (first at /etc/wasm-cgi.toml:3)",
            ":9: route path \"no-slash\" must start with /",
            ":13: module \"../d.wasm\"",
            ":14: dirs: host folder /nonexistent/dir does not exist",
            ":14: dirs: guest path \"data\" must start with /",
            ":18: allowed_hosts entry \"https://api.example.com\" must be HOST or HOST:PORT",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (line, expected) in found.iter().zip(expected) {
            assert!(line.contains(expected), "{line:?} lacks {expected:?}");
        }
    }

    #[test]
    fn trusted_proxies_are_read_and_bad_entries_name_their_line() {
        let config = parse(
            "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\", \"::1\"]\n[limits]\nrate = \"50/s\"\nburst = 100\n",
        )
        .unwrap();
        assert!(config.trusted_proxies.contains("10.2.3.4".parse().unwrap()));
        assert!(config.trusted_proxies.contains("::1".parse().unwrap()));
        assert!(
            !config
                .trusted_proxies
                .contains("127.0.0.2".parse().unwrap())
        );
        assert_eq!(config.limits.burst, Some(100));
        assert!(parse("").unwrap().trusted_proxies.is_empty());

        let found = errors(
            "trusted_proxies = [\n  \"10.0.0.0/8\",\n  \"10.0.0.0/40\",\n  \"proxy.local\",\n]\n",
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("/etc/wasm-cgi.toml:3: trusted proxy \"10.0.0.0/40\""),
            "{found:?}"
        );
        assert!(found[1].starts_with("/etc/wasm-cgi.toml:4:"), "{found:?}");
        let found = errors("[limits]\n\nrate = \"50 per second\"\n");
        assert!(
            found[0].starts_with("/etc/wasm-cgi.toml:3: invalid rate"),
            "{found:?}"
        );
        let found =
            errors("[[route]]\npath = \"/a\"\nmodule = \"a.wasm\"\n[route.limits]\nburst = 0\n");
        assert!(found[0].starts_with("/etc/wasm-cgi.toml:5:"), "{found:?}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("mods")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let file = dir.path().join("wasm-cgi.toml");
        std::fs::write(
            &file,
            "modules = \"mods\"\n[[route]]\npath = \"/r\"\nmodule = \"r.wasm\"\ndirs = [{ host = \"data\", guest = \"/data\" }]\n",
        )
        .unwrap();
        let config = Config::load(&file).unwrap();
        assert_eq!(config.modules, Some(dir.path().join("mods")));
        let dir_grant = &config.routes[0].dirs[0];
        assert_eq!(dir_grant.host, dir.path().join("data"));
        assert!(
            dir_grant.read_only,
            "dirs are read-only unless said otherwise"
        );
    }

    #[test]
    fn interpreters_and_script_routes_are_checked() {
        let good = parse(
            "[[interpreter]]\nextension = \".py\"\nmodule = \"python.wasm\"\nargs = [\"-f{script}\"]\n\
             [[route]]\npath = \"/app\"\nscript = \"app.py\"\n",
        )
        .unwrap();
        assert_eq!(
            good.interpreters[0]
                .args_for("/srv/x.py")
                .collect::<Vec<_>>(),
            ["-f/srv/x.py"]
        );
        assert_eq!(
            good.routes[0].module, "python.wasm",
            "the interpreter runs it"
        );
        assert_eq!(good.routes[0].script.as_deref(), Some("app.py"));

        for (text, expected) in [
            (
                "[[interpreter]]\nextension = \"py\"\nmodule = \"p.wasm\"\n",
                "must be a dot",
            ),
            (
                "[[interpreter]]\nextension = \".wasm\"\nmodule = \"p.wasm\"\n",
                "are modules",
            ),
            (
                "[[interpreter]]\nextension = \".py\"\nmodule = \"p.wasm\"\n[[interpreter]]\nextension = \".PY\"\nmodule = \"q.wasm\"\n",
                "two interpreters",
            ),
            (
                "[[interpreter]]\nextension = \".py\"\nmodule = \"p.wasm\"\nargs = [\"{file}\"]\n",
                "placeholder",
            ),
            (
                "[[route]]\npath = \"/a\"\nscript = \"a.rb\"\n",
                "no [[interpreter]]",
            ),
            (
                "[[route]]\npath = \"/a\"\nscript = \"../a.py\"\n",
                "plain file name",
            ),
            (
                "[[route]]\npath = \"/a\"\nmodule = \"a.wasm\"\nscript = \"a.py\"\n",
                "either a `module` or a `script`",
            ),
            (
                "[[route]]\npath = \"/a\"\n",
                "either a `module` or a `script`",
            ),
        ] {
            let problems = parse(text).unwrap_err().0.join("\n");
            assert!(problems.contains(expected), "{text:?}: {problems}");
        }
    }

    #[test]
    fn init_is_read_and_the_routes_of_one_module_must_agree() {
        let config = parse(
            r#"
[[interpreter]]
extension = ".js"
module = "js.wasm"
init = "boot"
[[route]]
path = "/a"
module = "a.wasm"
init = false
[[route]]
path = "/b"
module = "b.wasm"
[[route]]
path = "/app"
script = "app.js"
"#,
        )
        .unwrap();
        assert_eq!(
            config.interpreters[0].init,
            Some(Initializer::Function("boot".into()))
        );
        assert_eq!(config.routes[0].init, Some(Initializer::Off));
        assert_eq!(config.routes[1].init, None);
        assert_eq!(
            config.routes[2].init, None,
            "unsaid: the interpreter's stands"
        );

        let problems = errors(
            "[[route]]\npath = \"/a\"\nmodule = \"a.wasm\"\ninit = false\n\
             [[route]]\npath = \"/b\"\nmodule = \"a.wasm\"\ninit = \"other\"\n\
             [[route]]\npath = \"/c\"\nmodule = \"c.wasm\"\ninit = \"\"\n",
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        let has = |needle: &str| problems.iter().any(|problem| problem.contains(needle));
        assert!(
            has(":6: init = \"other\" for a.wasm, but /etc/wasm-cgi.toml:2 says init = false"),
            "{problems:?}"
        );
        assert!(
            has(":12: init must name an exported function"),
            "{problems:?}"
        );
    }
}
