//! The config file: routes, their precedence and `SCRIPT_NAME`/`PATH_INFO`
//! split, per-route env, args, limits, entry points and mode (over modules,
//! then over their `-p2` command twins), and the validation that refuses to
//! start on a bad file.

use crate::support::{
    HANDLER, P2_PROGRAMS, Server, argv, client, config_dir, config_dir_with, config_twins,
    get_status, get_text, parse_env, post_status, post_text, run_in, twins,
};

const ROUTES: &str = r#"
modules = "modules"

[[route]]
path = "/env"
module = "env-dump.wasm"

[[route]]
path = "/api/..."
module = "env-dump.wasm"
args = ["api"]
env = { ROUTE_NAME = "api", SERVER_NAME = "forged" }

[[route]]
path = "/api/v2/..."
module = "env-dump.wasm"
args = ["v2"]
pass_authorization = true

[[route]]
path = "/api/v2/exact"
module = "cat.wasm"

[[route]]
path = "/slow"
module = "sleep.wasm"
[route.limits]
timeout = "300ms"
max_body = "16"

[[route]]
path = "/greet"
module = "entrypoints.wasm"
entrypoint = "greet"

[[route]]
path = "/raw"
module = "cat.wasm"
mode = "cgi"

[[route]]
path = "/trusting/..."
module = "env-dump.wasm"
args = ["fixed"]
env = { HTTP_PROXY = "http://route-proxy.example" }
unverified_remote_user = true
query_args = false
"#;

async fn get_env(server: &Server, path: &str) -> std::collections::HashMap<String, String> {
    let response = client()
        .get(server.url(path))
        .header("Authorization", "Basic dTpw")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    parse_env(&response.text().await.unwrap())
}

/// A server over [`ROUTES`] as written (0), then one with the `-p2` twins
/// in its routes (1; the entry point route keeps its module): the number
/// picks the routed program's name out of [`twins`].
fn servers() -> impl Iterator<Item = (usize, Server)> {
    config_twins(ROUTES)
        .into_iter()
        .map(|config| Server::with_config_and(&config, P2_PROGRAMS, &[]))
        .enumerate()
}

#[tokio::test]
async fn the_longest_route_wins_and_splits_script_name_from_path_info() {
    for (twin, server) in servers() {
        let names = twins("env-dump.wasm");
        let env_dump = names[twin].as_str();
        let cases = [
            ("/env", "/env", "", vec![env_dump]),
            ("/api", "/api", "", vec![env_dump, "api"]),
            (
                "/api/users/7?word",
                "/api",
                "/users/7",
                vec![env_dump, "api", "word"],
            ),
            ("/api/v2", "/api/v2", "", vec![env_dump, "v2"]),
            (
                "/api/v2/x%20y/%C3%A9?word",
                "/api/v2",
                "/x y/é",
                vec![env_dump, "v2", "word"],
            ),
            (
                "/api/v2%2Fhidden",
                "/api",
                "/v2/hidden",
                vec![env_dump, "api"],
            ),
        ];
        for (path, script_name, path_info, args) in cases {
            let env = get_env(&server, path).await;
            assert_eq!(env["SCRIPT_NAME"], script_name, "{env_dump}: {path}");
            assert_eq!(env["PATH_INFO"], path_info, "{env_dump}: {path}");
            assert_eq!(argv(&env), args, "{env_dump}: {path}");
        }
        assert_eq!(
            post_text(&server.url("/api/v2/exact"), "exact route").await,
            "exact route",
            "an exact route beats a prefix"
        );
        assert_eq!(get_status(&server.url("/envx")).await, 404);
        assert_eq!(get_status(&server.url("/%65nv")).await, 404);
        server.wait_for_line(&["wasm_cgi::access", "route=\"/api/v2/...\""]);
    }
}

#[tokio::test]
async fn route_env_is_added_but_never_overrides_meta_variables() {
    for (twin, server) in servers() {
        let env_dump = &twins("env-dump.wasm")[twin];
        let env = get_env(&server, "/api/x").await;
        assert_eq!(env["ROUTE_NAME"], "api", "{env_dump}");
        assert_eq!(
            env["SERVER_NAME"], "127.0.0.1",
            "{env_dump}: meta-variables win"
        );
        assert!(!env.contains_key("HTTP_AUTHORIZATION"));
        let env = get_env(&server, "/api/v2/x").await;
        assert_eq!(
            env["HTTP_AUTHORIZATION"], "Basic dTpw",
            "{env_dump}: pass_authorization passes it"
        );
        assert!(!env.contains_key("ROUTE_NAME"), "routes don't share env");
    }
}

#[tokio::test]
async fn routes_opt_in_to_remote_user_and_out_of_query_words() {
    for (twin, server) in servers() {
        let env_dump = &twins("env-dump.wasm")[twin];
        let response = client()
            .get(server.url("/trusting/x?%2Fdata%2Fother"))
            .header("Authorization", "Basic dTpw")
            .header("Proxy", "http://evil.example:3128")
            .send()
            .await
            .unwrap();
        let env = parse_env(&response.text().await.unwrap());
        assert_eq!(env["REMOTE_USER"], "u", "{env_dump}: opted in");
        // Regression: the query's words came after the route's own args,
        // so a client could pick the log analyzer's output file.
        assert_eq!(
            argv(&env),
            [env_dump.clone(), "fixed".to_owned()],
            "{env_dump}"
        );
        // httpoxy: the request's Proxy header never reaches HTTP_PROXY.
        assert_eq!(
            env["HTTP_PROXY"], "http://route-proxy.example",
            "{env_dump}"
        );

        let env = get_env(&server, "/api/x?word").await;
        assert!(!env.contains_key("REMOTE_USER"), "{env_dump}: not opted in");
        assert_eq!(argv(&env)[2..], ["word".to_owned()], "{env_dump}");
    }
}

#[tokio::test]
async fn route_limits_override_the_defaults() {
    for (twin, server) in servers() {
        let sleep = &twins("sleep.wasm")[twin];
        assert_eq!(
            get_status(&server.url("/slow?2000")).await,
            504,
            "{sleep}: the route's 300ms timeout applies"
        );
        assert_eq!(
            post_status(&server.url("/slow?1"), "x".repeat(17)).await,
            413,
            "{sleep}: the route's 16-byte max_body applies"
        );
        assert_eq!(
            get_status(&server.cgi(&format!("{sleep}?500"))).await,
            200,
            "{sleep}: the folder URL keeps the default timeout"
        );
    }
}

#[tokio::test]
async fn a_route_can_name_another_entrypoint_and_its_own_mode() {
    for (twin, server) in servers() {
        let cat = &twins("cat.wasm")[twin];
        assert_eq!(get_text(&server.url("/greet")).await, "greet entry\n");
        assert_eq!(
            get_text(&server.cgi("entrypoints.wasm")).await,
            "main entry\n"
        );
        let response = client()
            .post(server.url("/raw"))
            .body("Status: 202 Accepted\nContent-Type: text/plain\n\nraw")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{cat}");
        assert_eq!(response.text().await.unwrap(), "raw");
        assert_eq!(
            post_text(&server.cgi(cat), "Status: 202\n\nplain").await,
            "Status: 202\n\nplain",
            "{cat}: the folder URL keeps the simple mode"
        );
    }
}

#[tokio::test]
async fn flags_override_the_config_file() {
    let server = Server::with_config(
        "listen = \"127.0.0.1:1\"\nmodules = \"modules\"\nmode = \"cgi\"\n",
        &["--mode", "simple"],
    );
    assert_eq!(
        post_text(&server.url("/cgi-bin/wasm-run.cgi/cat.wasm"), "plain").await,
        "plain"
    );
}

/// Checks that `serve` and `check` both refuse the `wasm-cgi.toml` in `dir`,
/// printing nothing and naming the file and `expected` on stderr.
fn assert_refused(dir: &tempfile::TempDir, expected: &str) {
    let config = std::fs::read_to_string(dir.path().join("wasm-cgi.toml")).unwrap();
    for command in ["serve", "check"] {
        let mut args = vec![command, "--config", "wasm-cgi.toml"];
        if command == "serve" {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        let (code, stdout, stderr) = run_in(dir.path(), &args);
        assert_ne!(code, Some(0), "{command} accepted {config:?}");
        assert!(stdout.is_empty(), "{command} printed {stdout:?}");
        assert!(
            stderr.contains("wasm-cgi.toml") && stderr.contains(expected),
            "{command}: {stderr:?} lacks {expected:?}"
        );
    }
}

#[test]
fn serve_and_check_refuse_a_bad_config_naming_file_and_line() {
    let cases = [
        (
            "modules = \"modules\"\nlisten_addr = \"x\"\n",
            ":2: unknown field `listen_addr`",
        ),
        (
            "modules = \"modules\"\n[limits]\nmax_memory = \"huge\"\n",
            ":3: invalid size",
        ),
        (
            "modules = \"modules\"\n[limits]\ntimeout = \"forever\"\n",
            ":3: invalid duration",
        ),
        ("modules = \"nowhere\"\n", ":1: modules folder"),
        (
            "modules = \"modules\"\n[[route]]\npath = \"/a\"\nmodule = \"missing.wasm\"\n",
            ":3: route /a: module missing.wasm is not in the modules folder",
        ),
        (
            "modules = \"modules\"\n[[route]]\npath = \"/a\"\nmodule = \"cat.wasm\"\ndirs = [{ host = \"absent\", guest = \"/d\" }]\n",
            ":5: dirs: host folder",
        ),
        // Regression: a guest granted the modules folder (or a folder
        // holding it) could plant code the server loads as its own.
        (
            "modules = \"modules\"\n[[route]]\npath = \"/a\"\nmodule = \"cat.wasm\"\ndirs = [{ host = \"modules\", guest = \"/m\", read_only = false }]\n",
            ":3: route /a: dirs grants",
        ),
        (
            "modules = \"modules\"\n[[route]]\npath = \"/a\"\nmodule = \"cat.wasm\"\ndirs = [{ host = \".\", guest = \"/all\" }]\n",
            "overlaps the modules folder",
        ),
        // The same for an interpreter's grants: its scripts could plant
        // modules.
        (
            "modules = \"modules\"\n[[interpreter]]\nextension = \".rhai\"\nmodule = \"cat.wasm\"\ndirs = [{ host = \"modules\", guest = \"/m\", read_only = false }]\n",
            ":3: interpreter for .rhai: dirs grants",
        ),
        (
            "modules = \"modules\"\n[[route]]\npath = \"/a\"\nmodule = \"cat.wasm\"\n[[route]]\npath = \"/a\"\nmodule = \"cat.wasm\"\n",
            ":6: route /a is defined twice",
        ),
        (
            "modules = \"modules\"\n[[route]]\npath = \"/a\"\nmodule = \"cat.wasm\"\nentrypoint = \"nope\"\n",
            ":3: route /a: module cat.wasm exports no function `nope`",
        ),
        (
            "modules = \"modules\"\n[[route]]\npath = \"/a\"\nmodule = \"cat.wasm\"\nallowed_hosts = [\"https://x.com\"]\n",
            ":5: allowed_hosts entry \"https://x.com\" must be HOST or HOST:PORT",
        ),
    ];
    for (config, expected) in cases {
        assert_refused(&config_dir(config), expected);
    }
}

#[test]
fn check_reports_every_problem_of_a_file_in_one_run() {
    // Regression: a config problem (a missing folder) hid the route's
    // missing module until the first was fixed.
    let dir = config_dir(
        "modules = \"modules\"\n[[route]]\npath = \"/a\"\nmodule = \"missing.wasm\"\ndirs = [{ host = \"absent\", guest = \"/d\" }]\n",
    );
    let (code, _, stderr) = run_in(dir.path(), &["check", "--config", "wasm-cgi.toml"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(":5: dirs: host folder"), "{stderr}");
    assert!(
        stderr.contains(":3: route /a: module missing.wasm is not in the modules folder"),
        "{stderr}"
    );
}

#[test]
fn check_accepts_a_good_config_and_reports_broken_modules_one_line_each() {
    let dir =
        config_dir("modules = \"modules\"\n[[route]]\npath = \"/a\"\nmodule = \"cat.wasm\"\n");
    let (code, stdout, stderr) = run_in(dir.path(), &["check", "--config", "wasm-cgi.toml"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l == "cat.wasm: WASI preview 1 module"),
        "each file is named with its kind: {stdout}"
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("ok: ") && summary.contains("1 routes"),
        "{stdout}"
    );

    std::fs::write(
        dir.path().join("modules/broken.wasm"),
        b"\0asm\x01\0\0\0garbage",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("modules/imports.wasm"),
        wat::parse_str(r#"(module (import "env" "magic" (func)) (func (export "_start")))"#)
            .unwrap(),
    )
    .unwrap();
    let (code, _, stderr) = run_in(dir.path(), &["check", "--config", "wasm-cgi.toml"]);
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines.iter().any(|l| l.contains("broken.wasm")), "{stderr}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("imports.wasm") && l.contains("env::magic")),
        "{stderr}"
    );

    let (code, _, stderr) = run_in(dir.path(), &["check", "--modules", "modules"]);
    assert_eq!(
        code,
        Some(1),
        "without --config the modules folder is checked: {stderr}"
    );
}

#[test]
fn route_settings_a_component_cannot_take_are_refused_naming_the_route() {
    let components = [HANDLER, ("cat-p2.wasm", test_artifacts::P2_CAT)];
    let cases = [
        (
            "modules = \"modules\"\n[[route]]\npath = \"/c\"\nmodule = \"cat-p2.wasm\"\nentrypoint = \"x\"\n",
            ":3: route /c: module cat-p2.wasm is a wasi:cli/command component, which has no entry points",
        ),
        (
            "modules = \"modules\"\n[[route]]\npath = \"/h\"\nmodule = \"handler.wasm\"\nentrypoint = \"x\"\n",
            ":3: route /h: module handler.wasm is a wasi:http/proxy component, which has no entry points",
        ),
        (
            "modules = \"modules\"\n[[route]]\npath = \"/h/...\"\nmodule = \"handler.wasm\"\nmode = \"cgi\"\n",
            ":3: route /h/...: module handler.wasm is a wasi:http/proxy component, which answers in HTTP itself",
        ),
    ];
    for (config, expected) in cases {
        assert_refused(&config_dir_with(config, &components), expected);
    }
}

#[test]
fn check_accepts_components_in_routes_and_says_what_each_file_is() {
    let config = "modules = \"modules\"\n\
        [[route]]\npath = \"/api/...\"\nmodule = \"handler.wasm\"\nallowed_hosts = [\"api.example.com\", \"127.0.0.1:8080\", \"*.example.org\"]\n\
        [[route]]\npath = \"/raw\"\nmodule = \"cat-p2.wasm\"\nmode = \"cgi\"\n";
    let dir = config_dir_with(config, &[HANDLER, ("cat-p2.wasm", test_artifacts::P2_CAT)]);
    let (code, stdout, stderr) = run_in(dir.path(), &["check", "--config", "wasm-cgi.toml"]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    for expected in [
        "handler.wasm: wasi:http/proxy component",
        "cat-p2.wasm: wasi:cli/command component",
        "cat.wasm: WASI preview 1 module",
    ] {
        assert!(lines.contains(&expected), "{expected:?} in {stdout}");
    }
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("ok: ") && summary.contains("2 routes"),
        "{stdout}"
    );
}
