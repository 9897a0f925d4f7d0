//! The route table: configured paths, exact (`/report`), with parameters
//! (`/users/:id`) or prefix wildcards (`/api/...`), each naming a module and
//! how to run it. The most specific match wins (exact, then parameters,
//! then the longest prefix: see [`RoutePath`]); among the sub-routes one
//! module declared through WAGI's `_routes`, WAGI's rule comes first (the
//! last one printed that matches). The matched part becomes `SCRIPT_NAME`,
//! the rest `PATH_INFO`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::admission::Admission;
use crate::config::{InterpreterConfig, PathMatch, RouteConfig};
use crate::limits::Limits;
use crate::modules::InitPlan;
use crate::runtime::{COMMAND_ENTRY, DirGrant, InitOptions, Initializer, ProgramKind};

/// One configured route, with its limits resolved.
#[derive(Debug)]
pub struct Route {
    /// The route as configured: path, module, mode, entry point, args, env,
    /// directories. The module is looked up by name per request, so a
    /// reloaded module is picked up.
    pub config: RouteConfig,
    /// The limits its requests run under: the server's, overridden by the
    /// route's own.
    pub limits: Limits,
    /// Its own instance slots, when its limits set `max_concurrency`.
    pub admission: Option<Arc<Admission>>,
}

/// A route that matched a request path.
#[derive(Debug, Clone)]
pub struct RouteMatch<'a> {
    /// The route.
    pub route: &'a Route,
    /// The matched part of the path: `SCRIPT_NAME`.
    pub script_name: &'a str,
    /// The rest, still percent-encoded.
    pub rest: &'a str,
    /// The route's parameters (`:id`) as written and the segments they
    /// matched, still percent-encoded.
    pub params: Vec<(&'a str, &'a str)>,
}

/// Every configured route.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// A table of `routes`; their paths must be distinct.
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    /// The routes, in configuration order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `path` (as sent, percent-encoded), if any.
    pub fn find<'a>(&'a self, path: &'a str) -> Option<RouteMatch<'a>> {
        let found: Vec<(&Route, PathMatch<'a>)> = self
            .routes
            .iter()
            .filter_map(|route| Some((route, route.config.path.matches(path)?)))
            .collect();
        // WAGI's `_routes` order first: of one module's sub-routes (and its
        // own route), only the last printed that matches stays in the race.
        let group = |route: &Route| route.config.compat.as_ref().and_then(|c| c.group);
        let (route, found) = found
            .iter()
            .filter(|(route, _)| {
                group(route).is_none_or(|mine| {
                    !found.iter().any(|(other, _)| {
                        group(other)
                            .is_some_and(|theirs| theirs.id == mine.id && theirs.rank > mine.rank)
                    })
                })
            })
            .max_by_key(|(route, _)| route.config.path.specificity())?;
        let (script_name, rest) = path.split_at(found.len);
        Some(RouteMatch {
            route,
            script_name,
            rest,
            params: found.params.clone(),
        })
    }
}

/// A folder (or file) of the server's own that no guest may ever be
/// granted: what the server loads as code or serves as its own.
#[derive(Debug, Clone)]
pub struct Protected {
    /// What it is, for the message: "the modules folder".
    pub what: &'static str,
    /// Where it is.
    pub path: PathBuf,
}

/// Builds the route table from checked config, with each route's limits
/// resolved over `defaults`. Fails with one `FILE:LINE: message` per route
/// whose module is not loaded or lacks its entry point, and per `dirs`
/// grant that overlaps a `protected` path.
pub fn from_config(
    configs: &[RouteConfig],
    modules: &crate::modules::ModuleRegistry,
    defaults: &Limits,
    protected: &[Protected],
) -> Result<RouteTable, Vec<String>> {
    let mut problems = Vec::new();
    let mut routes = Vec::new();
    // The module files routes name by path (WAGI, Spin): no guest may be
    // able to rewrite the code it, or another route, runs.
    let module_files: Vec<Protected> = configs
        .iter()
        .filter(|config| config.module.contains('/'))
        .map(|config| Protected {
            what: "a module file a route runs",
            path: PathBuf::from(&config.module),
        })
        .collect();
    for (i, config) in configs.iter().enumerate() {
        let owner = format!("{}: route {}", config.location, config.path);
        problems.extend(overlapping_grants(&owner, &config.dirs, protected));
        let writable: Vec<DirGrant> = config
            .dirs
            .iter()
            .filter(|d| !d.read_only)
            .cloned()
            .collect();
        problems.extend(overlapping_grants(&owner, &writable, &module_files));
        let group =
            |config: &RouteConfig| config.compat.as_ref().and_then(|c| c.group.map(|g| g.id));
        if let Some(other) = configs[..i].iter().find(|other| {
            other.path.same_shape(&config.path)
                && (group(other).is_none() || group(other) != group(config))
        }) {
            problems.push(format!(
                "{owner}: the same path as route {} ({})",
                other.path, other.location
            ));
        }
        match modules.get(&config.module) {
            None if config.module.contains('/') => problems.push(format!(
                "{}: route {}: module {} failed to load",
                config.location, config.path, config.module
            )),
            None => problems.push(format!(
                "{}: route {}: module {} is not in the modules folder (or failed to load)",
                config.location, config.path, config.module
            )),
            Some(entry) => {
                if let Err(problem) = fits(config, entry.program.kind(), |name| {
                    entry.program.has_entrypoint(name)
                }) {
                    problems.push(format!(
                        "{}: route {}: module {} {problem}",
                        config.location, config.path, config.module
                    ));
                }
            }
        }
        let limits = config.limits.apply(defaults.clone());
        let admission = config
            .limits
            .max_concurrency
            .map(|_| Arc::new(Admission::new(limits.max_concurrency, limits.queue_timeout)));
        routes.push(Route {
            config: config.clone(),
            limits,
            admission,
        });
    }
    if problems.is_empty() {
        Ok(RouteTable::new(routes))
    } else {
        Err(problems)
    }
}

/// How each module is pre-initialized: by the `init` its routes and
/// interpreters give (the config has checked they agree), under the
/// tightest limits among them (so the initializer fits every one), or by
/// default under the server's.
pub fn init_plan(
    configs: &[RouteConfig],
    interpreters: &[InterpreterConfig],
    defaults: &Limits,
) -> InitPlan {
    let mut plan = InitPlan::new(defaults.run());
    let users = interpreters
        .iter()
        .map(|i| (&i.module, &i.init, &i.limits))
        .chain(configs.iter().map(|r| (&r.module, &r.init, &r.limits)));
    let mut settled: HashMap<&str, InitOptions> = HashMap::new();
    for (module, init, overrides) in users {
        let limits = overrides.apply(defaults.clone()).run();
        let options = settled
            .entry(module.as_str())
            .or_insert_with(|| InitOptions {
                initializer: Initializer::Auto,
                limits,
            });
        if let Some(init) = init {
            options.initializer = init.clone();
        }
        let tightest = &mut options.limits;
        tightest.timeout = tightest.timeout.min(limits.timeout);
        tightest.max_memory = tightest.max_memory.min(limits.max_memory);
        tightest.fuel = match (tightest.fuel, limits.fuel) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    for (module, options) in settled {
        plan.set(module, options);
    }
    plan
}

/// One problem per grant in `dirs` (of `owner`, `FILE:LINE: route /x`)
/// that contains, or lies inside,
/// a protected path: a guest given the modules folder, the compile cache or
/// its key could plant code the server then runs as its own (a sandbox
/// escape); given `www`, files it then serves.
pub fn overlapping_grants(owner: &str, dirs: &[DirGrant], protected: &[Protected]) -> Vec<String> {
    let real = |path: &Path| path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut problems = Vec::new();
    for grant in dirs {
        let granted = real(&grant.host);
        for own in protected {
            let own_path = real(&own.path);
            if granted.starts_with(&own_path) || own_path.starts_with(&granted) {
                problems.push(format!(
                    "{owner}: dirs grants {} to the guest, which overlaps {} ({}): no guest may reach it",
                    grant.host.display(),
                    own.what,
                    own.path.display()
                ));
            }
        }
    }
    problems
}

/// The check hot reload makes of a new version of a module: every route
/// in `configs` that names it must still fit it (a module replaced by a
/// component can't keep an `entrypoint` route, say), and an interpreter
/// must stay a command.
pub fn reload_check(
    configs: Vec<RouteConfig>,
    interpreters: &[crate::config::InterpreterConfig],
) -> crate::modules::reload::FitCheck {
    let interpreter_modules: Vec<String> = interpreters
        .iter()
        .map(|interpreter| interpreter.module.clone())
        .collect();
    Box::new(move |name, program| {
        if interpreter_modules.iter().any(|module| module == name) {
            crate::scripts::can_interpret(program)
                .map_err(|problem| format!("an interpreter can't serve it: it {problem}"))?;
        }
        for config in configs.iter().filter(|config| config.module == name) {
            fits(config, program.kind(), |entry| {
                program.has_entrypoint(entry)
            })
            .map_err(|problem| {
                format!(
                    "route {} ({}) can't serve it: it {problem}",
                    config.path, config.location
                )
            })?;
        }
        Ok(())
    })
}

/// Whether a route's settings apply to a program of `kind`: entry points
/// are functions of core modules; `mode` is how a command's output is read,
/// and a wasi:http handler answers in HTTP itself.
pub fn fits(
    config: &RouteConfig,
    kind: ProgramKind,
    has_entrypoint: impl Fn(&str) -> bool,
) -> Result<(), String> {
    match (kind, &config.entrypoint) {
        (ProgramKind::Module, entrypoint) => {
            let entrypoint = entrypoint.as_deref().unwrap_or(COMMAND_ENTRY);
            if !has_entrypoint(entrypoint) {
                return Err(format!(
                    "exports no function `{entrypoint}` taking no arguments"
                ));
            }
        }
        (_, Some(entrypoint)) => {
            return Err(format!(
                "is a {kind}, which has no entry points: remove `entrypoint = {entrypoint:?}`"
            ));
        }
        (_, None) => {}
    }
    if kind == ProgramKind::Proxy && config.mode.is_some() {
        return Err(format!(
            "is a {kind}, which answers in HTTP itself: remove `mode`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, module: &str) -> Route {
        let config = RouteConfig {
            location: "test".to_owned(),
            path: crate::config::RoutePath::parse(path).unwrap(),
            module: module.to_owned(),
            script: None,
            mode: None,
            entrypoint: None,
            args: Vec::new(),
            env: Vec::new(),
            dirs: Vec::new(),
            limits: Default::default(),
            pass_authorization: false,
            unverified_remote_user: false,
            query_args: true,
            allowed_hosts: Default::default(),
            init: None,
            compat: None,
        };
        Route {
            config,
            limits: Limits::default(),
            admission: None,
        }
    }

    fn found(table: &RouteTable, path: &str) -> Option<(String, String, String)> {
        let found = table.find(path)?;
        Some((
            found.route.config.module.clone(),
            found.script_name.to_owned(),
            found.rest.to_owned(),
        ))
    }

    #[test]
    fn grants_overlapping_the_servers_own_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("state/cache");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        let protected = [Protected {
            what: "the compile cache",
            path: cache.clone(),
        }];
        let mut config = route("/r", "m.wasm").config;
        for (host, refused) in [
            (cache.clone(), true),
            (cache.join("."), true),
            (dir.path().join("state"), true),
            (dir.path().to_path_buf(), true),
            (data.clone(), false),
        ] {
            config.dirs = vec![crate::runtime::DirGrant {
                host: host.clone(),
                guest: "/g".into(),
                read_only: true,
            }];
            let problems = overlapping_grants("r", &config.dirs, &protected);
            assert_eq!(
                !problems.is_empty(),
                refused,
                "{}: {problems:?}",
                host.display()
            );
        }
        // Through a symlink too.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&cache, &link).unwrap();
        config.dirs[0].host = link;
        assert_eq!(overlapping_grants("r", &config.dirs, &protected).len(), 1);
    }

    #[test]
    fn the_longest_match_wins_and_exact_beats_prefix() {
        let table = RouteTable::new(vec![
            route("/api/...", "api.wasm"),
            route("/api/users/...", "users.wasm"),
            route("/api/users", "list.wasm"),
            route("/report", "report.wasm"),
        ]);
        let s = |t: (&str, &str, &str)| Some((t.0.to_owned(), t.1.to_owned(), t.2.to_owned()));
        assert_eq!(found(&table, "/api"), s(("api.wasm", "/api", "")));
        assert_eq!(found(&table, "/api/x/y"), s(("api.wasm", "/api", "/x/y")));
        assert_eq!(
            found(&table, "/api/users"),
            s(("list.wasm", "/api/users", ""))
        );
        assert_eq!(
            found(&table, "/api/users/7"),
            s(("users.wasm", "/api/users", "/7"))
        );
        assert_eq!(found(&table, "/report"), s(("report.wasm", "/report", "")));
        assert_eq!(found(&table, "/report/x"), None);
        assert_eq!(found(&table, "/apix"), None);
        assert_eq!(found(&table, "/r%65port"), None);
    }

    #[test]
    fn exact_beats_parameter_beats_prefix() {
        let table = RouteTable::new(vec![
            route("/users/...", "any.wasm"),
            route("/users/:id", "one.wasm"),
            route("/users/me", "me.wasm"),
            route("/users/:id/posts/:post", "post.wasm"),
            route("/users/:id/...", "under.wasm"),
        ]);
        let module = |path: &str| found(&table, path).map(|f| f.0);
        assert_eq!(module("/users/me").as_deref(), Some("me.wasm"));
        assert_eq!(module("/users/7").as_deref(), Some("one.wasm"));
        assert_eq!(module("/users/7/posts/9").as_deref(), Some("post.wasm"));
        assert_eq!(module("/users/7/avatar").as_deref(), Some("under.wasm"));
        assert_eq!(module("/users").as_deref(), Some("any.wasm"));
        assert_eq!(module("/users/").as_deref(), Some("any.wasm"));
        let post = table.find("/users/7/posts/a%2Fb").unwrap();
        assert_eq!(post.params, [("id", "7"), ("post", "a%2Fb")]);
        assert_eq!(post.script_name, "/users/7/posts/a%2Fb");
    }

    #[test]
    fn among_a_modules_sub_routes_the_last_printed_that_matches_wins() {
        use crate::config::compat::{ArgvTemplate, Flavor, RouteCompat, RouteGroup};
        let sub = |path: &str, module: &str, rank: usize| {
            let mut route = route(path, module);
            route.config.compat = Some(RouteCompat {
                flavor: Flavor::Wagi,
                argv: ArgvTemplate::default(),
                subroutes: true,
                group: Some(RouteGroup { id: 0, rank }),
            });
            route
        };
        // WAGI's documented example, printed in reverse: `/one/...` last.
        let table = RouteTable::new(vec![
            sub("/example/...", "own", 0),
            sub("/example/one/two/three/...", "three", 1),
            sub("/example/one/two/...", "two", 2),
            sub("/example/one/...", "one", 3),
            route("/example/one/two/three/four/five", "other"),
        ]);
        let module = |path: &str| found(&table, path).map(|f| f.0);
        assert_eq!(
            module("/example/one/two/three/four").as_deref(),
            Some("one")
        );
        assert_eq!(module("/example/x").as_deref(), Some("own"));
        assert_eq!(
            module("/example/one/two/three/four/five").as_deref(),
            Some("other"),
            "other routes still race on specificity"
        );
    }
}
