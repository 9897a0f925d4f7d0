//! What `serve` and `check` add to the modules folder for a WAGI or Spin
//! file: the module files it names by path, loaded into the registry, and
//! the sub-routes WAGI modules declare (`_routes`); a module whose
//! `_routes` fails is refused (taken out of the registry, so its routes
//! fail with the rest).

use crate::config::{ModuleFile, RouteConfig};
use crate::limits::Limits;
use crate::modules::{LoadFailure, LoadOptions, ModuleRegistry};
use crate::runtime::Sandbox;

/// Loads `files` into `modules` and expands `routes` with their
/// sub-routes: the routes to serve, and every module that failed.
pub async fn load(
    sandbox: &Sandbox,
    modules: &ModuleRegistry,
    files: &[ModuleFile],
    routes: &[RouteConfig],
    options: &LoadOptions,
    limits: &Limits,
) -> (Vec<RouteConfig>, Vec<LoadFailure>) {
    let mut failures = modules.load_files(sandbox, files, options).await;
    let (routes, refused) = crate::subroutes::expand(routes, modules, limits).await;
    for failure in &refused {
        modules.remove(&failure.module);
    }
    failures.extend(refused);
    (routes, failures)
}
