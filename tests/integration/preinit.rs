//! Pre-initialization: a module exporting `wizer.initialize` is initialized
//! once at load and every request starts from the snapshot. The guest
//! (`guests/test-programs/src/bin/preinit.rs`) builds an expensive table in
//! its initializer and reports what each request finds; `js-cgi.wasm` is a
//! real JavaScript interpreter (Boa) that builds its engine there.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::{Server, client, get_text, run_in};

const PREINIT: (&str, &str) = ("preinit.wasm", test_artifacts::PREINIT);
const ENV_DUMP: (&str, &str) = ("env-dump.wasm", test_artifacts::ENV_DUMP);

/// What one request to the preinit guest reported, `key=value` per line.
async fn report(url: &str) -> HashMap<String, String> {
    get_text(url)
        .await
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// A module whose `wizer.initialize` runs `body`, written as WAT.
fn wat_module(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (memory (export "memory") 1)
             (func (export "wizer.initialize") {body})
             (func (export "_start")))"#
    ))
    .unwrap()
}

#[tokio::test]
async fn every_request_starts_from_the_snapshot_fresh() {
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &[PREINIT, ENV_DUMP],
        &["--cache-dir", cache.path().to_str().unwrap()],
    );
    let first = report(&server.cgi("preinit.wasm?first")).await;
    assert_eq!(first["state"], "snapshot", "{first:?}");
    assert_eq!(first["init"], "wizer.initialize");
    for query in ["second", "third", "fourth"] {
        let next = report(&server.cgi(&format!("preinit.wasm?{query}"))).await;
        assert_eq!(next["state"], "snapshot");
        assert_eq!(next["init_runs"], "1", "the initializer ran once, at load");
        assert_eq!(
            next["seen"], first["seen"],
            "a request's write to the table is not seen by the next"
        );
        assert_eq!(next["checksum"], first["checksum"]);
    }
    let loaded: Vec<_> = server
        .log()
        .lines()
        .filter(|line| line.contains("preinit.wasm") && line.contains("pre-initialized"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        loaded.len(),
        1,
        "one pre-initialization per load: {loaded:?}"
    );
    assert!(loaded[0].contains("init_ms="), "{}", loaded[0]);
    assert!(loaded[0].contains("wizer.initialize"), "{}", loaded[0]);
    // Modules without an initializer load as before.
    assert!(
        !server
            .log()
            .lines()
            .any(|line| line.contains("env-dump.wasm") && line.contains("pre-initialized"))
    );
}

#[tokio::test]
async fn init_false_and_a_named_initializer_do_what_they_say() {
    let config = r#"modules = "modules"
[[route]]
path = "/plain"
module = "plain.wasm"
init = false
[[route]]
path = "/other"
module = "other.wasm"
init = "other"
"#;
    let extra = [
        PREINIT,
        ("plain.wasm", PREINIT.1),
        ("other.wasm", PREINIT.1),
    ];
    let server = Server::with_config_and(config, &extra, &[]);
    let snapshot = report(&server.cgi("preinit.wasm")).await;
    let plain = report(&server.url("/plain")).await;
    assert_eq!(plain["state"], "built-now", "init = false: {plain:?}");
    assert_eq!(plain["init"], "main");
    let other = report(&server.url("/other")).await;
    assert_eq!(other["state"], "snapshot", "{other:?}");
    assert_eq!(other["init"], "other");
    // However the table was built, it is the same table.
    assert_eq!(plain["checksum"], snapshot["checksum"]);
    assert_eq!(other["checksum"], snapshot["checksum"]);
    // The classic path serves the very module the route does.
    let classic = report(&server.cgi("plain.wasm")).await;
    assert_eq!(classic["state"], "built-now");
}

#[tokio::test]
async fn a_failing_initializer_refuses_the_module_and_the_rest_serves_on() {
    let server = Server::start_with(&[PREINIT], &["--timeout", "2s"]);
    assert_eq!(
        report(&server.cgi("preinit.wasm")).await["state"],
        "snapshot"
    );
    let dir = server.modules.path();
    std::fs::write(dir.join("trapping.wasm"), wat_module("unreachable")).unwrap();
    std::fs::write(dir.join("looping.wasm"), wat_module("(loop br 0)")).unwrap();
    let trapped = server.wait_for_line(&["module skipped", "trapping.wasm"]);
    assert!(
        trapped.contains("the initializer `wizer.initialize` trapped"),
        "{trapped}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !server.log().contains("looping.wasm") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = server.wait_for_line(&["module skipped", "looping.wasm"]);
    assert!(
        stopped.contains("ran past its timeout"),
        "the load timeout stops an initializer that never returns: {stopped}"
    );
    for refused in ["trapping.wasm", "looping.wasm"] {
        let status = client()
            .get(server.cgi(refused))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{refused} is not served half-initialized");
    }
    assert_eq!(
        report(&server.cgi("preinit.wasm")).await["state"],
        "snapshot"
    );
}

#[test]
fn check_names_initializers_that_call_what_a_snapshot_cannot_keep() {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    let routes: String = ["env-init", "file-init", "trap-init", "grow-init", "missing"]
        .iter()
        .map(|init| {
            std::fs::copy(PREINIT.1, modules.join(format!("{init}.wasm"))).unwrap();
            format!("[[route]]\npath = \"/{init}\"\nmodule = \"{init}.wasm\"\ninit = \"{init}\"\n")
        })
        .collect();
    let config = format!("modules = \"modules\"\n[limits]\nmax_memory = \"64MiB\"\n{routes}");
    std::fs::write(dir.path().join("wasm-cgi.toml"), config).unwrap();
    let (code, _, stderr) = run_in(dir.path(), &["check", "--config", "wasm-cgi.toml"]);
    assert_eq!(code, Some(1), "{stderr}");
    let line = |module: &str| {
        stderr
            .lines()
            .find(|line| line.contains(&format!("/{module}.wasm:")))
            .unwrap_or_else(|| panic!("no problem for {module}:\n{stderr}"))
            .to_owned()
    };
    assert!(
        line("env-init").contains("WASI `environ_sizes_get`"),
        "{stderr}"
    );
    assert!(
        line("file-init").contains("WASI `fd_prestat_get`"),
        "{stderr}"
    );
    assert!(
        line("trap-init").contains("`trap-init` trapped"),
        "{stderr}"
    );
    assert!(line("grow-init").contains("max-memory"), "{stderr}");
    assert!(
        line("missing").contains("`missing` is not an exported function"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_restart_reuses_the_cached_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    std::fs::copy(PREINIT.1, modules.join(PREINIT.0)).unwrap();
    let check = ["check", "--modules", "modules", "--cache-dir", "cache"];
    let (code, stdout, stderr) = run_in(dir.path(), &check);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(
            "preinit.wasm: WASI preview 1 module, pre-initialized by `wizer.initialize` ("
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(" ms)"),
        "check gives the init time: {stdout}"
    );
    let (_, stdout, _) = run_in(dir.path(), &check);
    assert!(stdout.contains("(snapshot from the cache)"), "{stdout}");

    let cwd = dir.path().to_path_buf();
    let serve = ["--modules", "modules", "--cache-dir", "cache"];
    let server = Server::launch(&serve, &[], &cwd, dir);
    let line = server.wait_for_line(&["preinit.wasm", "pre-initialized"]);
    assert!(
        line.contains("snapshot from the cache"),
        "nothing ran again: {line}"
    );
    assert_eq!(
        report(&server.cgi("preinit.wasm")).await["state"],
        "snapshot"
    );
}

#[test]
fn compile_init_writes_a_portable_snapshot_and_run_preinitializes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(PREINIT.1, dir.path().join("preinit.wasm")).unwrap();
    let (code, stdout, stderr) = run_in(dir.path(), &["run", "preinit.wasm"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("state=snapshot"),
        "run pre-initializes: {stdout}"
    );
    let (_, stdout, _) = run_in(dir.path(), &["run", "--no-init", "preinit.wasm"]);
    assert!(stdout.contains("state=built-now"), "{stdout}");

    let (code, stdout, stderr) = run_in(
        dir.path(),
        &["compile", "--init=other", "preinit.wasm", "-o", "out"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("pre-initialized by `other`"), "{stdout}");
    let snapshot = std::fs::read(dir.path().join("out/preinit.wasm")).unwrap();
    assert!(snapshot.starts_with(b"\0asm"), "a .wasm, not native code");
    // The snapshot no longer exports the initializers it ran, and starts
    // initialized wherever it runs.
    let (code, stdout, stderr) = run_in(dir.path(), &["run", "--no-init", "out/preinit.wasm"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("state=snapshot"), "{stdout}");
    assert!(stdout.contains("init=other"), "{stdout}");

    let plain = tempfile::tempdir().unwrap();
    std::fs::copy(ENV_DUMP.1, plain.path().join("env-dump.wasm")).unwrap();
    let (code, _, stderr) = run_in(
        plain.path(),
        &["compile", "--init", "env-dump.wasm", "-o", "out"],
    );
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("exports neither `wizer.initialize`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_javascript_interpreter_runs_scripts_from_its_snapshot() {
    let config = r#"modules = "modules"
scripts = "scripts"
[[interpreter]]
extension = ".js"
module = "js-cgi.wasm"
mode = "cgi"
[[interpreter]]
extension = ".mjs"
module = "js-cgi-plain.wasm"
mode = "cgi"
init = false
"#;
    let script = r#"header("Content-Type", "text/plain");
write("\n");
const q = query(env("QUERY_STRING"));
print("hello " + html(q.name) + " from " + interpreter.name);
"#;
    let extra = [
        ("js-cgi.wasm", test_artifacts::JS_CGI),
        ("js-cgi-plain.wasm", test_artifacts::JS_CGI),
    ];
    let dir = crate::support::config_dir_with(config, &extra);
    std::fs::write(dir.path().join("scripts/hello.js"), script).unwrap();
    std::fs::write(dir.path().join("scripts/hello.mjs"), script).unwrap();
    let cwd = dir.path().to_path_buf();
    let server = Server::launch(&["--config", "wasm-cgi.toml"], &[], &cwd, dir);
    let line = server.wait_for_line(&["js-cgi.wasm", "pre-initialized"]);
    assert!(line.contains("wizer.initialize"), "{line}");
    for path in ["/cgi-bin/hello.js", "/cgi-bin/hello.mjs"] {
        let body = get_text(&server.url(&format!("{path}?name=%3Cb%3E+you"))).await;
        assert_eq!(body, "hello &lt;b&gt; you from js-cgi\n", "{path}");
    }
}
