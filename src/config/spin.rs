//! A Spin application manifest (`spin.toml`, `spin_manifest_version = 2`,
//! and version 1) read into routes: each HTTP trigger whose component uses
//! the WAGI executor becomes a `cgi`-mode route with the executor's `argv`
//! and `entrypoint`; a component with Spin's own executor is served as the
//! wasi:http handler it is, when it needs nothing beyond wasi:http (one that
//! imports a Spin interface, `fermyon:spin/*`, is refused, naming it).
//! `source` must be a local file, `files` become read-only grants,
//! `environment` and `allowed_outbound_hosts` carry over; `:name` route
//! segments are route parameters. Only what serving needs is read: the
//! rest of the manifest (metadata, `build`) is Spin's tooling's business.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::compat::{ArgvTemplate, Flavor, RouteCompat};
use super::{Config, DirEntry, Format, Problems, RouteConfig, RoutePath};
use crate::cgi::Mode;
use crate::runtime::{Kind, component_interfaces};

/// Version 2, as far as serving goes.
#[derive(Debug, Deserialize)]
struct ManifestV2 {
    #[serde(default)]
    application: ApplicationV2,
    #[serde(default)]
    trigger: TriggersV2,
    #[serde(default)]
    component: BTreeMap<String, Spanned<Component>>,
}

#[derive(Debug, Default, Deserialize)]
struct ApplicationV2 {
    /// `[application.trigger.http] base`, deprecated in Spin 2.
    trigger: Option<AppTriggers>,
}

#[derive(Debug, Deserialize)]
struct AppTriggers {
    http: Option<Base>,
}

#[derive(Debug, Deserialize)]
struct Base {
    base: Option<String>,
}

/// `[[trigger.TYPE]]`: HTTP ones are served; the others Spin knows are
/// reported (an unknown type is a serde error naming the known ones).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggersV2 {
    #[serde(default)]
    http: Vec<TriggerV2>,
    redis: Option<Spanned<toml::Value>>,
    cron: Option<Spanned<toml::Value>>,
    command: Option<Spanned<toml::Value>>,
    sqs: Option<Spanned<toml::Value>>,
    mqtt: Option<Spanned<toml::Value>>,
    kafka: Option<Spanned<toml::Value>>,
}

/// One `[[trigger.http]]`.
#[derive(Debug, Deserialize)]
struct TriggerV2 {
    route: Spanned<RouteEntry>,
    component: Spanned<ComponentRef>,
    executor: Option<Spanned<Executor>>,
}

/// A trigger's `component`: the id of a `[component.ID]`, or inline.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ComponentRef {
    Id(String),
    Inline(Box<Component>),
}

/// A route, or `{ private = true }` (reachable only from other components).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RouteEntry {
    Path(String),
    Private {
        #[serde(rename = "private")]
        _private: bool,
    },
}

/// Version 1, as far as serving goes.
#[derive(Debug, Deserialize)]
struct ManifestV1 {
    trigger: Spanned<TriggerV1>,
    #[serde(default)]
    component: Vec<Spanned<ComponentV1>>,
}

#[derive(Debug, Deserialize)]
struct TriggerV1 {
    #[serde(rename = "type")]
    kind: String,
    base: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ComponentV1 {
    id: String,
    #[serde(flatten)]
    component: Component,
    trigger: Option<ComponentTriggerV1>,
}

#[derive(Debug, Deserialize)]
struct ComponentTriggerV1 {
    route: Spanned<String>,
    executor: Option<Spanned<Executor>>,
}

/// A component, in either version. (No `Spanned` inside: an inline
/// component is read through an untagged enum, which loses positions;
/// problems are reported at the component's table.)
#[derive(Debug, Deserialize)]
struct Component {
    source: Source,
    #[serde(default)]
    files: Vec<FileEntry>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    allowed_outbound_hosts: Option<Vec<String>>,
    /// Version 1's name, deprecated in version 2.
    allowed_http_hosts: Option<Vec<String>>,
}

/// `source`: a local file, or a remote one (`{ url, digest }`, a registry
/// package), which is not fetched.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Source {
    Path(String),
    Remote(serde::de::IgnoredAny),
}

/// One of `files`: a glob pattern, or a folder mapped to a guest path.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileEntry {
    Pattern(String),
    Mapping { source: String, destination: String },
}

/// `executor`: how the component is called.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Executor {
    /// Spin's own (the default): a wasi:http handler.
    Spin,
    /// The same, by its newer name.
    Http,
    /// A CGI program.
    Wagi {
        argv: Option<String>,
        entrypoint: Option<String>,
    },
}

/// One HTTP trigger, from either version.
struct Trigger<'a> {
    route: String,
    route_span: std::ops::Range<usize>,
    id: String,
    component: &'a Component,
    /// Where the component is written, for its problems.
    at: std::ops::Range<usize>,
    executor: Option<&'a Spanned<Executor>>,
}

/// Reads `text`, the Spin manifest of `version` at `file`.
pub(super) fn check(file: &Path, text: &str, version: u8) -> (Option<Config>, Vec<String>) {
    let mut problems = Problems::new(file, text);
    let parsed = match version {
        2 => toml::from_str::<ManifestV2>(text).map(|m| Parsed::V2(Box::new(m))),
        1 => toml::from_str::<ManifestV1>(text).map(Parsed::V1),
        _ => {
            problems.add(
                &(0..0),
                format!("Spin manifest version {version} is not supported (1 and 2 are)"),
            );
            return (None, problems.found);
        }
    };
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            problems.add(&error.span().unwrap_or(0..0), error.message().trim_end());
            return (None, problems.found);
        }
    };
    let triggers = parsed.triggers(&mut problems);
    let base = super::folder_of(file);
    let mut config = Config {
        file: file.to_path_buf(),
        format: Format::Spin(version),
        ..Config::default()
    };
    for trigger in triggers {
        if let Some(route) = route_config(&trigger, &base, &mut problems, &mut config) {
            config.routes.push(route);
        }
    }
    (Some(config), problems.found)
}

enum Parsed {
    V1(ManifestV1),
    V2(Box<ManifestV2>),
}

impl Parsed {
    /// Every HTTP trigger with its full route; other triggers are problems.
    fn triggers(&self, problems: &mut Problems<'_>) -> Vec<Trigger<'_>> {
        let mut found = Vec::new();
        match self {
            Parsed::V1(manifest) => {
                if manifest.trigger.get_ref().kind != "http" {
                    problems.add(
                        &manifest.trigger.span(),
                        format!(
                            "a `{}` trigger: only HTTP triggers are served",
                            manifest.trigger.get_ref().kind
                        ),
                    );
                    return found;
                }
                let base = manifest.trigger.get_ref().base.as_deref().unwrap_or("/");
                for spanned in &manifest.component {
                    let component = spanned.get_ref();
                    let Some(trigger) = &component.trigger else {
                        continue;
                    };
                    found.push(Trigger {
                        route: join_base(base, trigger.route.get_ref()),
                        route_span: trigger.route.span(),
                        id: component.id.clone(),
                        component: &component.component,
                        at: spanned.span(),
                        executor: trigger.executor.as_ref(),
                    });
                }
            }
            Parsed::V2(manifest) => {
                let base = manifest
                    .application
                    .trigger
                    .as_ref()
                    .and_then(|t| t.http.as_ref())
                    .and_then(|http| http.base.as_deref())
                    .unwrap_or("/");
                let t = &manifest.trigger;
                let others = [
                    ("redis", &t.redis),
                    ("cron", &t.cron),
                    ("command", &t.command),
                    ("sqs", &t.sqs),
                    ("mqtt", &t.mqtt),
                    ("kafka", &t.kafka),
                ];
                for (kind, triggers) in others {
                    if let Some(triggers) = triggers {
                        problems.add(
                            &triggers.span(),
                            format!("a `{kind}` trigger: only HTTP triggers are served"),
                        );
                    }
                }
                {
                    for trigger in &t.http {
                        let RouteEntry::Path(route) = trigger.route.get_ref() else {
                            continue; // private: not served over HTTP
                        };
                        let (id, component, at) = match trigger.component.get_ref() {
                            ComponentRef::Inline(component) => (
                                format!("(inline, for {route})"),
                                &**component,
                                trigger.component.span(),
                            ),
                            ComponentRef::Id(id) => match manifest.component.get(id) {
                                Some(component) => {
                                    (id.clone(), component.get_ref(), component.span())
                                }
                                None => {
                                    problems.add(
                                        &trigger.component.span(),
                                        format!("no [component.{id}] for this trigger"),
                                    );
                                    continue;
                                }
                            },
                        };
                        found.push(Trigger {
                            route: join_base(base, route),
                            route_span: trigger.route.span(),
                            id,
                            component,
                            at,
                            executor: trigger.executor.as_ref(),
                        });
                    }
                }
            }
        }
        found
    }
}

/// Spin's `base` and a route: `/api` and `/hello` give `/api/hello`.
fn join_base(base: &str, route: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.is_empty() {
        route.to_owned()
    } else if route == "/" {
        base.to_owned()
    } else {
        format!("{base}{route}")
    }
}

/// The route one trigger makes, or `None` with its problems added.
fn route_config(
    trigger: &Trigger<'_>,
    base: &Path,
    problems: &mut Problems<'_>,
    config: &mut Config,
) -> Option<RouteConfig> {
    let span = &trigger.route_span;
    let path = RoutePath::parse(&trigger.route)
        .map_err(|message| problems.add(span, message))
        .ok()?;
    if let Some(first) = config.routes.iter().find(|r| r.path.same_shape(&path)) {
        let message = format!(
            "route {path} is defined twice (first at {})",
            first.location
        );
        problems.add(span, message);
        return None;
    }
    let component = trigger.component;
    let at = &trigger.at;
    let source = match &component.source {
        Source::Path(path) => Spanned::new(at.clone(), path.clone()),
        Source::Remote(_) => {
            problems.add(
                at,
                format!(
                    "component {}: remote sources are not fetched; download the .wasm \
                     and name the local file in `source`",
                    trigger.id
                ),
            );
            return None;
        }
    };
    let module = problems.module_file(&source, base, &mut config.module_files)?;
    let wagi = match trigger.executor.map(Spanned::get_ref) {
        Some(Executor::Wagi { argv, entrypoint }) => Some((argv, entrypoint)),
        _ => None,
    };
    if wagi.is_none() {
        check_handler(&trigger.id, &module, at, problems);
    }
    let mut env = Vec::new();
    for (name, value) in &component.environment {
        if value.contains("{{") {
            problems.add(
                span,
                format!(
                    "component {}: environment {name} uses a Spin variable ({value}); \
                     variables are not supported: write the value",
                    trigger.id
                ),
            );
        }
        env.push((name.clone(), value.clone()));
    }
    problems.check_env(span, component.environment.keys());
    let dirs = files(&component.files, at, problems);
    let dirs = problems.check_dirs(&dirs, &|path: &Path| base.join(path));
    let hosts = component
        .allowed_outbound_hosts
        .as_ref()
        .or(component.allowed_http_hosts.as_ref())
        .map(|hosts| Spanned::new(at.clone(), hosts.clone()));
    let allowed_hosts = problems.outbound_hosts(hosts.as_ref());
    let (mode, entrypoint, compat) = match wagi {
        Some((argv, entrypoint)) => {
            let argv = match argv {
                None => ArgvTemplate::default(),
                Some(text) => ArgvTemplate::parse(text).unwrap_or_else(|message| {
                    let at = trigger.executor.map_or(span.clone(), Spanned::span);
                    problems.add(&at, message);
                    ArgvTemplate::default()
                }),
            };
            let compat = RouteCompat {
                flavor: Flavor::Spin,
                argv,
                subroutes: false,
                group: None,
            };
            // `_start` is what runs anyway; naming it adds nothing.
            let entrypoint = entrypoint.clone().filter(|name| name != "_start");
            (Some(Mode::Cgi), entrypoint, Some(compat))
        }
        None => (None, None, None),
    };
    Some(RouteConfig {
        location: problems.location(span),
        path,
        module,
        script: None,
        mode,
        entrypoint,
        args: Vec::new(),
        env,
        dirs,
        limits: Default::default(),
        pass_authorization: false,
        unverified_remote_user: false,
        query_args: false,
        allowed_hosts: Arc::new(allowed_hosts),
        init: None,
        compat,
    })
}

/// `files` as grants: `{ source = "DIR", destination = "/GUEST" }`, and the
/// patterns `DIR/**/*` (or `DIR/**`) that take a whole folder, seen at
/// `/DIR` as Spin places it; always read-only, as Spin's are.
fn files(
    entries: &[FileEntry],
    at: &std::ops::Range<usize>,
    problems: &mut Problems<'_>,
) -> Vec<Spanned<DirEntry>> {
    let mut dirs = Vec::new();
    for entry in entries {
        let (host, guest) = match entry {
            FileEntry::Mapping {
                source,
                destination,
            } => (source.clone(), destination.clone()),
            FileEntry::Pattern(pattern) => {
                let folder = pattern
                    .strip_suffix("/**/*")
                    .or_else(|| pattern.strip_suffix("/**"))
                    .filter(|folder| !folder.contains(['*', '?', '[', '{']));
                match folder {
                    Some(folder) => {
                        let guest = format!("/{}", folder.trim_start_matches("./"));
                        (folder.to_owned(), guest)
                    }
                    None => {
                        problems.add(
                            at,
                            format!(
                                "files pattern {pattern:?}: only whole folders are granted: \
                                 write \"DIR/**/*\" or {{ source = \"DIR\", destination = \"/DIR\" }}"
                            ),
                        );
                        continue;
                    }
                }
            }
        };
        dirs.push(Spanned::new(
            at.clone(),
            DirEntry {
                host: host.into(),
                guest,
                read_only: true,
            },
        ));
    }
    dirs
}

/// Whether the component a Spin-executor trigger names can be served as a
/// wasi:http handler: a component that exports `wasi:http/incoming-handler`
/// and imports no Spin interface. Problems otherwise.
fn check_handler(id: &str, module: &str, at: &std::ops::Range<usize>, problems: &mut Problems<'_>) {
    let Ok(bytes) = std::fs::read(module) else {
        return; // said when it is loaded
    };
    if Kind::of_wasm(&bytes) == Kind::Module {
        problems.add(
            at,
            format!(
                "component {id} is a core module for Spin's HTTP executor (the Spin 1 SDK's \
                 `handle-http-request`), which wasm-cgi does not run: rebuild it as a wasi:http \
                 component, or give its trigger executor = {{ type = \"wagi\" }} if it is a CGI program"
            ),
        );
        return;
    }
    let Ok((imports, exports)) = component_interfaces(&bytes) else {
        return; // said when it is loaded
    };
    let spin: Vec<&String> = imports
        .iter()
        .filter(|name| name.starts_with("fermyon:spin/") || name.starts_with("spin:"))
        .collect();
    if let Some(first) = spin.first() {
        let all = spin
            .iter()
            .map(|name| name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        problems.add(
            at,
            format!(
                "component {id} imports {first}, a Spin interface wasm-cgi does not provide \
                 (it provides wasi:http and WASI 0.2 only; all Spin imports: {all})"
            ),
        );
    } else if !exports
        .iter()
        .any(|name| name.starts_with(crate::runtime::HTTP_HANDLER))
    {
        problems.add(
            at,
            format!(
                "component {id} is not a wasi:http handler (it exports no \
                 wasi:http/incoming-handler): give its trigger executor = {{ type = \"wagi\" }} \
                 if it is a CGI program"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cgi.wasm"),
            wat::parse_str("(module (func (export \"_start\")))").unwrap(),
        )
        .unwrap();
        let spin_sdk = "(component (import \"fermyon:spin/key-value@2.0.0\" (instance)))";
        std::fs::write(
            dir.path().join("kv.wasm"),
            wat::parse_str(spin_sdk).unwrap(),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("static")).unwrap();
        dir
    }

    fn load(dir: &Path, text: &str) -> Result<Config, Vec<String>> {
        let file = dir.join("spin.toml");
        std::fs::write(&file, text).unwrap();
        Config::load(&file).map_err(|errors| errors.0)
    }

    #[test]
    fn a_version_2_manifest_with_the_wagi_executor_is_read() {
        let dir = folder();
        let config = load(
            dir.path(),
            r#"
spin_manifest_version = 2

[application]
name = "wagi-app"
version = "1.0.0"

[[trigger.http]]
route = "/users/:id/..."
component = "app"
executor = { type = "wagi", argv = "${SCRIPT_NAME} -v ${ARGS}" }

[[trigger.http]]
route = { private = true }
component = "app"

[component.app]
source = "cgi.wasm"
files = [{ source = "static", destination = "/assets" }, "static/**/*"]
environment = { GREETING = "hi" }
allowed_outbound_hosts = ["https://api.example.com"]
[component.app.build]
command = "cargo build --target wasm32-wasip1 --release"
"#,
        )
        .unwrap();
        assert_eq!(config.format, Format::Spin(2));
        let [route] = &config.routes[..] else {
            panic!("{:?}", config.routes)
        };
        assert_eq!(route.path.to_string(), "/users/:id/...");
        assert_eq!(route.mode, Some(Mode::Cgi));
        let guests: Vec<(&str, bool)> = route
            .dirs
            .iter()
            .map(|d| (d.guest.as_str(), d.read_only))
            .collect();
        assert_eq!(guests, [("/assets", true), ("/static", true)]);
        assert_eq!(route.env, [("GREETING".into(), "hi".into())]);
        let compat = route.compat.as_ref().unwrap();
        assert_eq!(compat.flavor, Flavor::Spin);
        assert_eq!(
            compat.argv.expand("/users/7", "a=1"),
            ["/users/7", "-v", "a=1"]
        );
    }

    #[test]
    fn a_version_1_manifest_joins_the_base() {
        let dir = folder();
        let config = load(
            dir.path(),
            r#"
spin_version = "1"
name = "old"
trigger = { type = "http", base = "/api" }

[[component]]
id = "cgi"
source = "cgi.wasm"
allowed_http_hosts = ["insecure:allow-all"]
[component.trigger]
route = "/hello"
executor = { type = "wagi", entrypoint = "_start" }
"#,
        )
        .unwrap();
        assert_eq!(config.routes[0].path.to_string(), "/api/hello");
        assert_eq!(config.routes[0].entrypoint, None);
    }

    #[test]
    fn what_wasm_cgi_cannot_serve_is_refused_with_why() {
        let dir = folder();
        let problems = load(
            dir.path(),
            r#"
spin_manifest_version = 2

[[trigger.http]]
route = "/kv"
component = "kv"

[[trigger.http]]
route = "/sdk1"
component = "cgi"

[[trigger.http]]
route = "/remote"
component = { source = { url = "https://example.com/a.wasm", digest = "sha256:0" } }

[[trigger.http]]
route = "/globs"
component = { source = "cgi.wasm", files = ["*.txt"], environment = { A = "{{ secret }}" } }
executor = { type = "wagi" }

[[trigger.redis]]
channel = "x"
component = "kv"

[component.kv]
source = "kv.wasm"
[component.cgi]
source = "cgi.wasm"
"#,
        )
        .unwrap_err();
        let all = problems.join("\n");
        for expected in [
            "component kv imports fermyon:spin/key-value@2.0.0, a Spin interface",
            "component cgi is a core module for Spin's HTTP executor",
            ":14: component (inline, for /remote): remote sources are not fetched",
            ":27: component cgi is a core module",
            "variables are not supported",
            "files pattern \"*.txt\"",
            "a `redis` trigger: only HTTP triggers are served",
        ] {
            assert!(all.contains(expected), "{expected:?} missing from:\n{all}");
        }
    }
}
