//! WAGI and Spin apps run unchanged: a `modules.toml` and a Spin manifest
//! written the way those projects document them, over a WAGI-shaped module
//! built from source (`wagi-app.wasm`: `_routes`, extra entry points, a
//! writable volume), each answer compared with what WAGI's docs
//! (`writing_modules.md`, `environment_variables.md`,
//! `configuring_and_running.md`) and Spin's WAGI executor say the module
//! sees. Where wasm-cgi differs on purpose (repeated headers kept,
//! `CONTENT_TYPE` set), our behaviour is asserted (docs/MIGRATING.md).

use std::collections::HashMap;
use std::path::Path;

use crate::support::{Server, argv, client, get_text, parse_env, run_in};

/// The WAGI-shaped test module.
const WAGI_APP: &str = test_artifacts::WAGI_APP;

/// A WAGI module whose `_routes` output is wrong.
const WAGI_BAD_ROUTES: &str = test_artifacts::WAGI_BAD_ROUTES;

/// A folder holding `wagi-app.wasm`, `data/data.txt`, an env file and
/// `file` with `text`, in which `{DIR}` stands for the folder itself.
fn app_dir(file: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(WAGI_APP, dir.path().join("wagi-app.wasm")).unwrap();
    std::fs::copy(WAGI_BAD_ROUTES, dir.path().join("bad-routes.wasm")).unwrap();
    std::fs::copy(
        test_artifacts::HTTP_HANDLER,
        dir.path().join("handler.wasm"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/data.txt"), "granted data\n").unwrap();
    std::fs::write(
        dir.path().join("env.txt"),
        "# WAGI's --env-file format\nFROM_FILE = \"file value\"\nTEST_NAME = \"from the file\"\n",
    )
    .unwrap();
    let text = text.replace("{DIR}", dir.path().to_str().unwrap());
    std::fs::write(dir.path().join(file), text).unwrap();
    dir
}

/// `serve --config FILE ARGS` in the folder.
fn serve(dir: tempfile::TempDir, file: &str, args: &[&str]) -> Server {
    let config = dir.path().join(file);
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend(args);
    let cwd = dir.path().to_path_buf();
    Server::launch(&all, &[], &cwd, dir)
}

/// What a `wagi-app.wasm` answer says: its headers' `Set-Cookie` values
/// and its body as variables.
async fn get_app(server: &Server, path: &str) -> (Vec<String>, HashMap<String, String>) {
    let response = client().get(server.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    (cookies, parse_env(&response.text().await.unwrap()))
}

/// A `modules.toml` in the shapes WAGI's docs show: a root route, a module
/// declaring `_routes`, entry points, a `file://` module, a writable volume,
/// allowed hosts and `http_max_concurrency`.
const MODULES_TOML: &str = r#"
[[module]]
route = "/example"
module = "wagi-app.wasm"

[[module]]
# The "/..." suffix means this will match /bar and its subpaths
route = "/bar/..."
module = "file://{DIR}/wagi-app.wasm"
entrypoint = "goodbye"
allowed_hosts = ["https://api.example.com"]

[[module]]
route = "/volume"
module = "./wagi-app.wasm"
entrypoint = "write_volume"
volumes = {"/data" = "data"}
http_max_concurrency = 4
"#;

#[tokio::test]
async fn wagi_modules_toml_apps_see_what_wagis_docs_say() {
    let dir = app_dir("modules.toml", MODULES_TOML);
    let env_file = dir.path().join("env.txt");
    let server = serve(
        dir,
        "modules.toml",
        &[
            "--env-file",
            env_file.to_str().unwrap(),
            "-e",
            "TEST_NAME=\"test value\"",
            "--default-host",
            "wagi.example:3000",
        ],
    );

    // writing_modules.md: `/env?greet=matt&foo=bar` gives argv
    // `/env greet=matt foo=bar` and the CGI variables, plus WAGI's own.
    let (cookies, env) = get_app(&server, "/example?greet=matt&foo=bar").await;
    assert_eq!(env["ENTRY"], "main");
    assert_eq!(argv(&env), ["/example", "greet=matt", "foo=bar"]);
    assert_eq!(env["SCRIPT_NAME"], "/example");
    assert_eq!(env["PATH_INFO"], "");
    assert_eq!(env["QUERY_STRING"], "greet=matt&foo=bar");
    assert_eq!(env["X_MATCHED_ROUTE"], "/example");
    assert_eq!(env["X_RAW_PATH_INFO"], "");
    let port = server.addr.port();
    assert_eq!(
        env["X_FULL_URL"],
        format!("http://127.0.0.1:{port}/example?greet=matt&foo=bar")
    );
    assert_eq!(env["GATEWAY_INTERFACE"], "CGI/1.1");
    assert_eq!(env["REQUEST_METHOD"], "GET");
    // --env wins over --env-file, as WAGI's help says.
    assert_eq!(env["TEST_NAME"], "test value");
    assert_eq!(env["FROM_FILE"], "file value");
    // On purpose unlike WAGI (a HashMap of headers): both cookies arrive.
    assert_eq!(cookies, ["a=1", "b=2"]);

    // `_routes` printed `/hello hello` and `/goodbye/... goodbye`.
    let (_, env) = get_app(&server, "/example/hello").await;
    assert_eq!(env["ENTRY"], "hello");
    assert_eq!(env["SCRIPT_NAME"], "/example/hello");
    let (_, env) = get_app(&server, "/example/goodbye/today/is/good").await;
    assert_eq!(env["ENTRY"], "goodbye");
    assert_eq!(env["SCRIPT_NAME"], "/example/goodbye");
    assert_eq!(env["PATH_INFO"], "/today/is/good");
    assert_eq!(env["X_MATCHED_ROUTE"], "/example/goodbye/...");

    // A wildcard route with an entry point, through a file:// module.
    let (_, env) = get_app(&server, "/bar/a%20b").await;
    assert_eq!(env["ENTRY"], "goodbye");
    assert_eq!(env["SCRIPT_NAME"], "/bar");
    assert_eq!(env["PATH_INFO"], "/a b");
    assert_eq!(env["X_RAW_PATH_INFO"], "/a%20b");
    assert_eq!(argv(&env), ["/bar"], "argv[0] is SCRIPT_NAME (WAGI's docs)");
    // The module's `_routes` adds under every route that names it.
    let (_, env) = get_app(&server, "/bar/hello").await;
    assert_eq!(env["ENTRY"], "hello");

    // On purpose unlike WAGI (it looks up a `CONTENT_TYPE` request header):
    // the body's type arrives.
    let response = client()
        .post(server.url("/example"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let env = parse_env(&response.text().await.unwrap());
    assert_eq!(env["CONTENT_TYPE"], "application/json");
    assert_eq!(env["CONTENT_LENGTH"], "2");

    // WAGI grants volumes writable; the server warned once that it does.
    let body = get_text(&server.url("/volume")).await;
    assert!(body.contains("wrote=true"), "{body}");
    assert!(body.contains("read=granted data"), "{body}");
    let log = server.wait_for_log("WAGI grants volumes writable");
    assert_eq!(
        log.matches("WAGI grants volumes writable").count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("http_max_concurrency = 4 has no effect"),
        "{log}"
    );

    // --default-host for a request without Host (HTTP/1.0).
    let raw = server.raw(b"GET /example HTTP/1.0\r\n\r\n");
    let env = parse_env(&raw);
    assert_eq!(env["SERVER_NAME"], "wagi.example", "{raw}");
    assert_eq!(env["SERVER_PORT"], "3000");
    assert_eq!(env["X_FULL_URL"], "http://wagi.example:3000/example");

    // WAGI's health route, as wasm-cgi has always answered it.
    let response = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // Modules named by path are not reachable through the modules URL.
    let status = client()
        .get(server.cgi("wagi-app.wasm"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
}

#[test]
fn check_names_the_format_and_every_derived_route() {
    let dir = app_dir("modules.toml", MODULES_TOML);
    let (code, stdout, stderr) = run_in(dir.path(), &["check", "--config", "modules.toml"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("format: WAGI modules.toml"), "{stdout}");
    let routes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("route ")).collect();
    let module = dir.path().canonicalize().unwrap().join("wagi-app.wasm");
    let module = module.display();
    for expected in [
        format!("route /example -> {module}"),
        format!("route /example/hello -> {module} (entrypoint hello) (from _routes)"),
        format!("route /example/goodbye/... -> {module} (entrypoint goodbye) (from _routes)"),
        format!("route /bar/... -> {module} (entrypoint goodbye)"),
        format!("route /volume -> {module} (entrypoint write_volume)"),
    ] {
        assert!(
            routes.contains(&expected.as_str()),
            "{expected:?} not in {routes:#?}"
        );
    }
    assert!(
        stderr.contains("warning:") && stderr.contains("writable"),
        "{stderr}"
    );
}

#[test]
fn bad_routes_output_and_remote_modules_are_refused_with_why() {
    let dir = app_dir(
        "modules.toml",
        "[[module]]\nroute = \"/bad\"\nmodule = \"bad-routes.wasm\"\n\
         [[module]]\nroute = \"/oci\"\nmodule = \"oci:example/app:1.0\"\n",
    );
    let (code, _, stderr) = run_in(dir.path(), &["check", "--config", "modules.toml"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "modules.toml:6: module \"oci:example/app:1.0\": OCI references are not fetched"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = run_in(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            "modules.toml",
        ],
    );
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("OCI references are not fetched"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("modules.toml"),
        "[[module]]\nroute = \"/bad\"\nmodule = \"bad-routes.wasm\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run_in(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            "modules.toml",
        ],
    );
    assert_ne!(code, Some(0), "{stderr}");
    let skipped = stderr
        .lines()
        .find(|line| line.contains("module skipped"))
        .unwrap_or_else(|| panic!("no `module skipped` line:\n{stderr}"));
    assert!(
        skipped.contains("`_routes` (for route /bad): line 2 (\"/missing no_such_function\")")
            && skipped.contains("exports no function `no_such_function`"),
        "{skipped}"
    );
}

/// A Spin manifest (version 2) as Spin's docs write one: a WAGI-executor
/// component with an argv template, files, environment and a parameter
/// route, and a wasi:http component with Spin's default executor.
const SPIN_TOML: &str = r#"
spin_manifest_version = 2

[application]
name = "spin-wagi"
version = "0.1.0"

[[trigger.http]]
route = "/users/:id/..."
component = "app"
executor = { type = "wagi", argv = "${SCRIPT_NAME} -v ${ARGS}" }

[[trigger.http]]
route = "/handler/:name/..."
component = "handler"

[component.app]
source = "wagi-app.wasm"
files = [{ source = "data", destination = "/data" }]
environment = { GREETING = "hi" }
allowed_outbound_hosts = ["https://api.example.com"]
[component.app.build]
command = "cargo build --target wasm32-wasip1 --release"

[component.handler]
source = "handler.wasm"
"#;

#[tokio::test]
async fn spin_wagi_components_and_handlers_are_served() {
    let dir = app_dir("spin.toml", SPIN_TOML);
    let server = serve(dir, "spin.toml", &[]);

    let (_, env) = get_app(&server, "/users/a%20b/posts?x=1&y=2").await;
    assert_eq!(env["ENTRY"], "main");
    // The executor's argv template, `${SCRIPT_NAME}` being SCRIPT_NAME.
    assert_eq!(argv(&env), ["/users/a%20b", "-v", "x=1", "y=2"]);
    assert_eq!(env["SCRIPT_NAME"], "/users/a%20b");
    assert_eq!(env["PATH_INFO"], "/posts");
    assert_eq!(env["ROUTE_PARAM_ID"], "a b");
    assert_eq!(env["X_PATH_MATCH_ID"], "a b");
    assert_eq!(env["X_MATCHED_ROUTE"], "/users/:id/...");
    assert_eq!(env["X_COMPONENT_ROUTE"], "/users/:id");
    assert_eq!(env["X_BASE_PATH"], "/");
    assert_eq!(env["GREETING"], "hi");
    assert!(env["X_CLIENT_ADDR"].starts_with("127.0.0.1:"));

    // Spin's own executor: the wasi:http component answers itself.
    let body = get_text(&server.url("/handler/abc/echo")).await;
    assert!(body.contains("ROUTE_PARAM_NAME=abc"), "{body}");
    let status = client()
        .get(server.url("/handler/abc/status/201"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
}

#[test]
fn spin_check_lists_routes_and_refuses_spin_interfaces() {
    let dir = app_dir("spin.toml", SPIN_TOML);
    let (code, stdout, stderr) = run_in(dir.path(), &["check", "--config", "spin.toml"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("format: Spin manifest (version 2)"),
        "{stdout}"
    );
    assert!(stdout.contains("route /users/:id/... -> "), "{stdout}");
    assert!(stdout.contains("route /handler/:name/... -> "), "{stdout}");

    // A Spin SDK component importing a Spin interface.
    let kv = wat_component(dir.path());
    let manifest = format!(
        "spin_manifest_version = 2\n[[trigger.http]]\nroute = \"/kv\"\ncomponent = \"kv\"\n\
         [component.kv]\nsource = \"{kv}\"\n"
    );
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    let (code, _, stderr) = run_in(dir.path(), &["check", "--config", "spin.toml"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("spin.toml:5: component kv imports fermyon:spin/key-value@2.0.0"),
        "{stderr}"
    );
}

/// Writes a component importing `fermyon:spin/key-value` into `dir`.
fn wat_component(dir: &Path) -> String {
    let wasm = wat::parse_str(r#"(component (import "fermyon:spin/key-value@2.0.0" (instance)))"#)
        .unwrap();
    std::fs::write(dir.join("kv.wasm"), wasm).unwrap();
    "kv.wasm".to_owned()
}
