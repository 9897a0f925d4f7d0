//! WAGI's `_routes` export: a module of a WAGI route that exports `_routes`
//! is run once at load (no arguments, no environment, no files), and each
//! line it prints, `SUBPATH FUNCTION`, adds a route under the module's
//! route that calls that exported function instead of `_start`
//! (`/hello hello`, `/goodbye/... goodbye`). They rank among themselves
//! WAGI's way (the last printed line that matches wins, any of them over
//! the module's own route; see [`crate::routes`]). Output that is not such
//! lines refuses the module.

use std::time::Duration;

use crate::config::RouteConfig;
use crate::config::RoutePath;
use crate::config::compat::RouteGroup;
use crate::limits::Limits;
use crate::modules::{LoadFailure, ModuleRegistry};
use crate::runtime::{Invocation, Program};

/// The export that declares sub-routes.
pub const ROUTES_EXPORT: &str = "_routes";

/// The most `_routes` may print.
const MAX_OUTPUT: u64 = 64 * 1024;

/// The longest `_routes` may run.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `configs` with the sub-routes their modules declare added after each
/// route that asks for them, and the modules whose `_routes` failed (to be
/// refused: their routes can't be served as their authors meant).
pub async fn expand(
    configs: &[RouteConfig],
    modules: &ModuleRegistry,
    defaults: &Limits,
) -> (Vec<RouteConfig>, Vec<LoadFailure>) {
    let mut expanded = Vec::new();
    let mut failures: Vec<LoadFailure> = Vec::new();
    for (id, config) in configs.iter().enumerate() {
        let asks = config
            .compat
            .as_ref()
            .is_some_and(|compat| compat.subroutes);
        let program = modules
            .get(&config.module)
            .map(|entry| entry.program.clone())
            .filter(|program| asks && program.has_entrypoint(ROUTES_EXPORT));
        let Some(program) = program else {
            expanded.push(config.clone());
            continue;
        };
        let routes = match declared(&program, defaults).await {
            Ok(lines) => sub_routes(id, config, &lines, &program),
            Err(reason) => Err(reason),
        };
        match routes {
            Ok(routes) => {
                tracing::info!(
                    module = %config.module,
                    route = %config.path,
                    subroutes = routes.len() - 1,
                    "module declares sub-routes"
                );
                expanded.extend(routes);
            }
            Err(reason) => {
                failures.push(failure(config, reason));
                // Kept, so that the route table says it can't be served.
                expanded.push(config.clone());
            }
        }
    }
    (expanded, failures)
}

fn failure(config: &RouteConfig, reason: String) -> LoadFailure {
    LoadFailure {
        module: config.module.clone(),
        reason: format!("`{ROUTES_EXPORT}` (for route {}): {reason}", config.path),
    }
}

/// What `_routes` printed, run as WAGI runs it.
async fn declared(program: &Program, defaults: &Limits) -> Result<String, String> {
    let mut limits = defaults.run();
    limits.timeout = limits.timeout.min(TIMEOUT);
    limits.max_output = MAX_OUTPUT;
    let invocation = Invocation {
        entrypoint: Some(ROUTES_EXPORT.to_owned()),
        limits,
        ..Invocation::default()
    };
    let run = program
        .run_captured(invocation)
        .await
        .map_err(|error| format!("{error:#}"))?;
    if !run.outcome.exit.is_success() {
        return Err(format!("it did not succeed: {}", run.outcome.exit));
    }
    String::from_utf8(run.stdout.to_vec()).map_err(|_| "it printed bytes that are not UTF-8".into())
}

/// The module's own route, then one per line of `output`, ranked in order.
fn sub_routes(
    id: usize,
    config: &RouteConfig,
    output: &str,
    program: &Program,
) -> Result<Vec<RouteConfig>, String> {
    let with_group = |mut route: RouteConfig, rank: usize| {
        if let Some(compat) = &mut route.compat {
            compat.group = Some(RouteGroup { id, rank });
        }
        route
    };
    let mut routes = vec![with_group(config.clone(), 0)];
    for (number, line) in output.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = |what: String| format!("line {} ({line:?}): {what}", number + 1);
        let mut words = line.split_whitespace();
        let (Some(sub), Some(function), None) = (words.next(), words.next(), words.next()) else {
            return Err(at("expected `SUBPATH FUNCTION`".into()));
        };
        let sub = RoutePath::parse(sub).map_err(at)?;
        if !program.has_entrypoint(function) {
            return Err(at(format!(
                "the module exports no function `{function}` taking no arguments"
            )));
        }
        let mut route = config.clone();
        route.path = config.path.join(&sub);
        route.entrypoint = Some(function.to_owned()).filter(|f| f != "_start");
        routes.push(with_group(route, routes.len()));
    }
    Ok(routes)
}
