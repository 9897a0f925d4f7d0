//! WAGI's `modules.toml`, read unchanged into routes: each `[[module]]`
//! (`route`, `module`, `entrypoint`, `volumes`, `allowed_hosts`,
//! `http_max_concurrency`, `argv`, and the `environment` table of WAGI's
//! earlier documentation) becomes a `cgi`-mode route over the module file it
//! names, with WAGI's argv and variables, asked at load for the sub-routes
//! it declares (`_routes`). Problems are `FILE:LINE` lines, all at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::compat::{ArgvTemplate, Flavor, RouteCompat};
use super::{Config, DirEntry, ModuleFile, Problems, RouteConfig, RoutePath};
use crate::cgi::Mode;
use crate::runtime::AllowedHosts;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModulesFile {
    module: Vec<ModuleEntry>,
}

/// One `[[module]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleEntry {
    route: Spanned<String>,
    module: Spanned<String>,
    entrypoint: Option<Spanned<String>>,
    /// `{"/guest" = "/host"}`; WAGI grants them writable.
    volumes: Option<Spanned<BTreeMap<String, String>>>,
    allowed_hosts: Option<Spanned<Vec<String>>>,
    /// WAGI's cap on a module's concurrent outbound requests through its
    /// experimental HTTP import, which wasm-cgi does not provide.
    http_max_concurrency: Option<Spanned<u32>>,
    argv: Option<Spanned<String>>,
    /// In WAGI's documentation up to 0.4; later versions ignore it.
    #[serde(default)]
    environment: BTreeMap<String, String>,
    /// "RESERVED for future use" in WAGI: accepted, unused.
    #[serde(rename = "repository")]
    _repository: Option<String>,
    /// Only for `bindle:` modules, which are refused.
    #[serde(rename = "bindle_server")]
    _bindle_server: Option<String>,
}

/// Reads `text`, the WAGI `modules.toml` at `file`.
pub(super) fn check(file: &Path, text: &str) -> (Option<Config>, Vec<String>) {
    let mut problems = Problems::new(file, text);
    let raw: ModulesFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(error) => {
            problems.add(&error.span().unwrap_or(0..0), error.message().trim_end());
            return (None, problems.found);
        }
    };
    let base = super::folder_of(file);
    let mut config = Config {
        file: file.to_path_buf(),
        format: super::Format::Wagi,
        ..Config::default()
    };
    let mut writable = Vec::new();
    for entry in raw.module {
        let span = entry.route.span();
        let path = match RoutePath::parse(entry.route.get_ref()) {
            Ok(path) => path,
            Err(message) => {
                problems.add(&span, message);
                continue;
            }
        };
        if let Some(first) = config.routes.iter().find(|r| r.path.same_shape(&path)) {
            let message = format!(
                "route {path} is defined twice (first at {})",
                first.location
            );
            problems.add(&span, message);
            continue;
        }
        let Some(module) = problems.module_file(&entry.module, &base, &mut config.module_files)
        else {
            continue;
        };
        problems.check_entrypoint(entry.entrypoint.as_ref());
        let argv = match &entry.argv {
            None => ArgvTemplate::default(),
            Some(argv) => ArgvTemplate::parse(argv.get_ref()).unwrap_or_else(|message| {
                problems.add(&argv.span(), message);
                ArgvTemplate::default()
            }),
        };
        problems.check_env(&span, entry.environment.keys());
        let volumes: Vec<Spanned<DirEntry>> = entry
            .volumes
            .iter()
            .flat_map(|volumes| {
                let at = volumes.span();
                volumes.get_ref().iter().map(move |(guest, host)| {
                    Spanned::new(
                        at.clone(),
                        DirEntry {
                            host: host.into(),
                            guest: guest.clone(),
                            read_only: false,
                        },
                    )
                })
            })
            .collect();
        let dirs = problems.check_dirs(&volumes, &|path: &Path| base.join(path));
        writable.extend(
            dirs.iter()
                .map(|dir| format!("{} = {}", dir.guest, dir.host.display())),
        );
        let allowed_hosts = problems.outbound_hosts(entry.allowed_hosts.as_ref());
        if let Some(limit) = &entry.http_max_concurrency {
            config.warnings.push(format!(
                "{}: http_max_concurrency = {} has no effect: it caps WAGI's experimental \
                 HTTP import, which wasm-cgi does not provide (components use wasi:http)",
                problems.location(&limit.span()),
                limit.get_ref()
            ));
        }
        config.routes.push(RouteConfig {
            location: problems.location(&span),
            path,
            module,
            script: None,
            mode: Some(Mode::Cgi),
            entrypoint: entry.entrypoint.map(Spanned::into_inner),
            args: Vec::new(),
            env: entry.environment.into_iter().collect(),
            dirs,
            limits: Default::default(),
            pass_authorization: false,
            unverified_remote_user: false,
            query_args: false,
            allowed_hosts: Arc::new(allowed_hosts),
            init: None,
            compat: Some(RouteCompat {
                flavor: Flavor::Wagi,
                argv,
                subroutes: true,
                group: None,
            }),
        });
    }
    if !writable.is_empty() {
        config.warnings.push(format!(
            "{}: WAGI grants volumes writable, and so does wasm-cgi for this file: {}; \
             to make one read-only, move the app to a wasm-cgi config (dirs, read_only = true)",
            file.display(),
            writable.join(", ")
        ));
    }
    (Some(config), problems.found)
}

impl Problems<'_> {
    /// The registry name of the module file `reference` (its real path),
    /// added to `files` if it is new; `None` (and a problem) if it can't be
    /// served.
    pub(super) fn module_file(
        &mut self,
        reference: &Spanned<String>,
        base: &Path,
        files: &mut Vec<ModuleFile>,
    ) -> Option<String> {
        match super::module_ref::resolve(reference.get_ref(), base) {
            Ok(path) => {
                let name = path.display().to_string();
                if !files.iter().any(|file| file.name == name) {
                    files.push(ModuleFile {
                        name: name.clone(),
                        path,
                    });
                }
                Some(name)
            }
            Err(message) => {
                self.add(&reference.span(), message);
                None
            }
        }
    }

    /// An outbound-host list as WAGI and Spin write it (URLs).
    pub(super) fn outbound_hosts(&mut self, hosts: Option<&Spanned<Vec<String>>>) -> AllowedHosts {
        let Some(hosts) = hosts else {
            return AllowedHosts::default();
        };
        super::outbound_url::allowed_hosts(hosts.get_ref()).unwrap_or_else(|message| {
            self.add(&hosts.span(), message);
            AllowedHosts::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.wasm"), b"").unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        dir
    }

    #[test]
    fn a_documented_modules_toml_is_read() {
        let dir = folder();
        let file = dir.path().join("modules.toml");
        let text = r#"
[[module]]
route = "/"
module = "app.wasm"

[[module]]
# The "/..." suffix means this will match /bar and its subpaths
route = "/bar/..."
module = "./app.wasm"
volumes = {"/path/inside/wasm" = "data"}
environment.TEST_NAME = "test value"
allowed_hosts = ["https://api.example.com"]

[[module]]
route = "/entrypoint/hello"
module = "app.wasm"
entrypoint = "hello"
argv = "${SCRIPT_NAME} extra ${ARGS}"
"#;
        std::fs::write(&file, text).unwrap();
        let config = Config::load(&file).unwrap();
        assert_eq!(config.format, Format::Wagi);
        assert_eq!(config.module_files.len(), 1, "one file, named twice");
        let [root, bar, hello] = &config.routes[..] else {
            panic!("{:?}", config.routes)
        };
        assert_eq!(root.module, config.module_files[0].name);
        assert_eq!(root.mode, Some(Mode::Cgi));
        assert!(bar.path.is_prefix());
        assert_eq!(bar.dirs[0].guest, "/path/inside/wasm");
        assert!(!bar.dirs[0].read_only, "WAGI's volumes are writable");
        assert_eq!(bar.env, [("TEST_NAME".into(), "test value".into())]);
        assert!(
            bar.allowed_hosts
                .allows(&"https://api.example.com/".parse().unwrap())
        );
        assert_eq!(hello.entrypoint.as_deref(), Some("hello"));
        let argv = &hello.compat.as_ref().unwrap().argv;
        assert_eq!(argv.expand("/x", "a=1"), ["/x", "extra", "a=1"]);
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
        assert!(config.warnings[0].contains("writable"));
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let dir = folder();
        let file = dir.path().join("modules.toml");
        let text = "[[module]]\nroute = \"/a\"\nmodule = \"oci:foo/bar:1.2.3\"\n\
                    [[module]]\nroute = \"/b\"\nmodule = \"missing.wasm\"\n\
                    [[module]]\nroute = \"nope\"\nmodule = \"app.wasm\"\n\
                    [[module]]\nroute = \"/c\"\nmodule = \"app.wasm\"\nvolumes = {\"/g\" = \"nowhere\"}\n\
                    [[module]]\nroute = \"/c\"\nmodule = \"app.wasm\"\n";
        std::fs::write(&file, text).unwrap();
        let problems = Config::load(&file).unwrap_err().0;
        let expected = [
            ":3: module \"oci:foo/bar:1.2.3\": OCI references are not fetched",
            ":6: module \"missing.wasm\"",
            ":8: route path \"nope\" must start with /",
            ":13: dirs: host folder",
            ":15: route /c is defined twice",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for (problem, expected) in problems.iter().zip(expected) {
            assert!(problem.contains(expected), "{problem:?} lacks {expected:?}");
        }
    }
}
