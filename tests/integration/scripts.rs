//! CGI scripts run by an interpreter module: `guests/test-interpreter`, a
//! small Rhai interpreter built from source, stands in for CPython and
//! friends. Scripts live in their own folder and answer at
//! `/cgi-bin/NAME.EXT`, or at a route that names them.

use std::time::{Duration, Instant};

use crate::support::{Server, client, get_status, get_text, get_with_id, parse_env, sample};

const CONFIG: &str = r#"modules = "modules"
scripts = "scripts"

[[interpreter]]
extension = ".rhai"
module = "rhai-cgi.wasm"
args = ["{script}", "--flag={script}"]
mode = "cgi"
env = { RHAI_HOME = "/opt/rhai", SCRIPT_NAME = "forged" }
[interpreter.limits]
timeout = "2s"
max_memory = "32MiB"

[[route]]
path = "/app/..."
script = "env.rhai"
"#;

/// Prints the CGI variables a script sees, and its args, as `NAME=value`.
const ENV_SCRIPT: &str = r#"
print("Content-Type: text/plain");
print("");
for name in ["SCRIPT_NAME", "PATH_INFO", "SCRIPT_FILENAME", "DOCUMENT_ROOT",
             "REDIRECT_STATUS", "QUERY_STRING", "RHAI_HOME", "REQUEST_METHOD", "HTTP_X_TEST"] {
    print(name + "=" + env(name));
}
let i = 0;
for arg in args() {
    print("ARG" + i + "=" + arg);
    i += 1;
}
"#;

const SCRIPTS: &[(&str, &str)] = &[
    ("env.rhai", ENV_SCRIPT),
    (
        "echo.rhai",
        "let body = stdin();\nprint(\"Content-Type: text/plain\");\nprint(\"\");\nwrite(\"got: \" + body);\n",
    ),
    (
        "stream.rhai",
        "print(\"Content-Type: text/plain\");\nprint(\"\");\nwrite(\"first\\n\");\nsleep_ms(1500);\nwrite(\"second\\n\");\n",
    ),
    ("spin.rhai", "let x = 0;\nloop { x += 1; }\n"),
    (
        "grow.rhai",
        "grow(64);\nprint(\"Content-Type: text/plain\\n\");\n",
    ),
    (
        "bad.rhai",
        "print(\"Content-Type: text/plain\");\nlet x = ;\n",
    ),
    (
        "write.rhai",
        "print(\"Content-Type: text/plain\");\nprint(\"\");\nprint(write_file(\"/srv/cgi-bin/planted.rhai\", \"x\"));\n",
    ),
    (
        "status.rhai",
        "print(\"Status: 201 Created\");\nprint(\"Content-Type: text/plain\");\nprint(\"\");\nprint(\"made\");\n",
    ),
    (".hidden.rhai", ENV_SCRIPT),
    ("notes.txt", "the source of nothing"),
];

/// A server over [`CONFIG`] with the test interpreter and [`SCRIPTS`].
fn server() -> Server {
    let server =
        Server::with_config_and(CONFIG, &[("rhai-cgi.wasm", test_artifacts::RHAI_CGI)], &[]);
    let dir = scripts_dir(&server);
    for (name, source) in SCRIPTS {
        std::fs::write(dir.join(name), source).unwrap();
    }
    server
}

fn scripts_dir(server: &Server) -> std::path::PathBuf {
    server.modules.path().join("scripts")
}

#[tokio::test]
async fn a_script_gets_the_cgi_contract_and_its_path_in_argv() {
    let server = server();
    let response = client()
        .get(server.url("/cgi-bin/env.rhai/extra/p%20q?w1+w2"))
        .header("X-Test", "yes")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let env = parse_env(&response.text().await.unwrap());
    assert_eq!(
        env["SCRIPT_NAME"], "/cgi-bin/env.rhai",
        "meta-variables win over interpreter env"
    );
    assert_eq!(env["PATH_INFO"], "/extra/p q");
    assert_eq!(env["SCRIPT_FILENAME"], "/srv/cgi-bin/env.rhai");
    assert_eq!(env["DOCUMENT_ROOT"], "/srv/cgi-bin");
    assert_eq!(env["REDIRECT_STATUS"], "200");
    assert_eq!(env["QUERY_STRING"], "w1+w2");
    assert_eq!(env["RHAI_HOME"], "/opt/rhai");
    assert_eq!(env["HTTP_X_TEST"], "yes");
    // argv: the interpreter, the script, `--flag={script}`, then the words.
    assert_eq!(env["ARG0"], "--flag=/srv/cgi-bin/env.rhai");
    assert_eq!(env["ARG1"], "w1");
    assert_eq!(env["ARG2"], "w2");

    let env = parse_env(&get_text(&server.url("/app/more?x=1")).await);
    assert_eq!(env["SCRIPT_NAME"], "/app", "a route runs a script too");
    assert_eq!(env["PATH_INFO"], "/more");
    assert_eq!(env["SCRIPT_FILENAME"], "/srv/cgi-bin/env.rhai");
}

#[tokio::test]
async fn a_script_reads_the_body_sets_its_status_and_streams() {
    let server = server();
    let response = client()
        .post(server.url("/cgi-bin/echo.rhai"))
        .body("posted body")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "got: posted body");
    let response = client()
        .get(server.url("/cgi-bin/status.rhai"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let mut response = client()
        .get(server.url("/cgi-bin/stream.rhai"))
        .send()
        .await
        .unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"first\n");
    let metrics = get_text(&server.url("/metrics")).await;
    assert!(
        sample(&metrics, "wasm_cgi_instances_in_flight").is_some_and(|n| n >= 1.0),
        "the first chunk came while the script still ran"
    );
    assert_eq!(&response.chunk().await.unwrap().unwrap()[..], b"second\n");
}

#[tokio::test]
async fn a_failing_script_gets_a_status_and_its_stderr_in_the_log() {
    let server = server();
    let started = Instant::now();
    assert_eq!(get_status(&server.url("/cgi-bin/spin.rhai")).await, 504);
    assert!(started.elapsed() < Duration::from_secs(2) + crate::support::SLACK);
    assert_eq!(get_status(&server.url("/cgi-bin/grow.rhai")).await, 500);
    let response = get_with_id(&server.url("/cgi-bin/bad.rhai"), "bad-script").await;
    assert_eq!(response.status(), 500);
    let body = response.text().await.unwrap();
    assert!(
        !body.contains("Syntax"),
        "the error stays in the log: {body}"
    );
    server.wait_for_line(&["bad-script", "bad.rhai (rhai-cgi.wasm)", "Syntax error"]);
    // Metrics name the script, not only the interpreter.
    let metrics = get_text(&server.url("/metrics")).await;
    assert!(
        metrics.contains("wasm_cgi_requests_total{module=\"bad.rhai\",status=\"5xx\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn only_scripts_answer_and_their_folder_is_read_only() {
    let server = server();
    for (path, status) in [
        ("/cgi-bin/notes.txt", 404),
        ("/cgi-bin/.hidden.rhai", 404),
        ("/cgi-bin/missing.rhai", 404),
        ("/cgi-bin/", 400),
        ("/cgi-bin/sub%2fenv.rhai", 400),
    ] {
        let response = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert!(
            !response.text().await.unwrap().contains("source of nothing"),
            "{path}"
        );
    }
    // As sent, not as a client library would normalize them.
    for line in [
        "GET /cgi-bin/%2e%2e HTTP/1.1",
        "GET /cgi-bin/../modules/cat.wasm HTTP/1.1",
        "GET /cgi-bin/%2e%2e/modules/cat.wasm HTTP/1.1",
    ] {
        let raw = server.raw(format!("{line}\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes());
        assert!(
            raw.starts_with("HTTP/1.1 400") || raw.starts_with("HTTP/1.1 404"),
            "{line}: {raw:.60}"
        );
    }
    // A link in the scripts folder to a script elsewhere is not followed.
    let outside = server.modules.path().join("data/outside.rhai");
    std::fs::write(&outside, ENV_SCRIPT).unwrap();
    std::os::unix::fs::symlink(&outside, scripts_dir(&server).join("linked.rhai")).unwrap();
    assert_eq!(get_status(&server.url("/cgi-bin/linked.rhai")).await, 404);

    let written = get_text(&server.url("/cgi-bin/write.rhai")).await;
    assert!(
        written.starts_with("error"),
        "the script wrote into its folder: {written}"
    );
    assert!(!scripts_dir(&server).join("planted.rhai").exists());
}

#[tokio::test]
async fn a_script_added_while_serving_answers_at_once() {
    let server = server();
    assert_eq!(get_status(&server.url("/cgi-bin/new.rhai")).await, 404);
    std::fs::write(
        scripts_dir(&server).join("new.rhai"),
        "print(\"Content-Type: text/plain\");\nprint(\"\");\nprint(\"brand new\");\n",
    )
    .unwrap();
    assert_eq!(
        get_text(&server.url("/cgi-bin/new.rhai")).await,
        "brand new\n"
    );
}

/// `wasm-cgi check --config wasm-cgi.toml` in `dir`.
fn check_in(dir: &std::path::Path) -> (Option<i32>, String, String) {
    crate::support::run_in(dir, &["check", "--config", "wasm-cgi.toml"])
}

#[test]
fn check_lists_the_scripts_and_refuses_an_interpreter_that_is_no_command() {
    let dir =
        crate::support::config_dir_with(CONFIG, &[("rhai-cgi.wasm", test_artifacts::RHAI_CGI)]);
    std::fs::write(dir.path().join("scripts/env.rhai"), ENV_SCRIPT).unwrap();
    std::fs::write(dir.path().join("scripts/notes.txt"), "not a script").unwrap();
    let (code, stdout, stderr) = check_in(dir.path());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("env.rhai: script, run by rhai-cgi.wasm"),
        "{stdout}"
    );
    assert!(!stdout.contains("notes.txt"), "{stdout}");
    assert!(stdout.contains("1 scripts in"), "{stdout}");

    let handler_as_interpreter = CONFIG.replace("rhai-cgi.wasm", "handler.wasm");
    let dir = crate::support::config_dir_with(&handler_as_interpreter, &[crate::support::HANDLER]);
    let (code, _, stderr) = check_in(dir.path());
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("interpreter for .rhai: module handler.wasm is a"),
        "{stderr}"
    );
}

/// The CPython WASI build `scripts/fetch-cpython.sh` fetches, if it is
/// here: `WASM_CGI_CPYTHON` (which CI sets, and then it must exist), else
/// `target/cpython/python.wasm`.
fn cpython() -> Option<std::path::PathBuf> {
    if let Ok(path) = std::env::var("WASM_CGI_CPYTHON") {
        let path = std::path::PathBuf::from(path);
        assert!(
            path.is_file(),
            "WASM_CGI_CPYTHON={} does not exist",
            path.display()
        );
        return Some(path);
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/cpython/python.wasm");
    path.is_file().then_some(path)
}

/// A Python CGI script of the classic kind: `cgi.FieldStorage` for the
/// form, whether it came in the query or the body.
const FORM_PY: &str = r#"import cgi, html, os, sys
form = cgi.FieldStorage()
print("Content-Type: text/plain; charset=utf-8")
print()
print("method=" + os.environ["REQUEST_METHOD"])
print("name=" + form.getfirst("name", ""))
print("message=" + form.getfirst("message", ""))
print("script=" + os.environ["SCRIPT_FILENAME"])
print("python=" + sys.version.split()[0])
"#;

#[tokio::test]
async fn cpython_serves_a_cgi_script_reading_its_form_with_field_storage() {
    let Some(python) = cpython() else {
        eprintln!("skipped: no CPython WASI build (run scripts/fetch-cpython.sh)");
        return;
    };
    let config = r#"modules = "modules"
scripts = "scripts"

[[interpreter]]
extension = ".py"
module = "python.wasm"
mode = "cgi"
env = { PYTHONDONTWRITEBYTECODE = "1" }
"#;
    let python = python.to_str().unwrap().to_owned();
    let server = Server::with_config_and(config, &[("python.wasm", &python)], &[]);
    std::fs::write(scripts_dir(&server).join("form.py"), FORM_PY).unwrap();

    let env =
        parse_env(&get_text(&server.url("/cgi-bin/form.py?name=Pinky&message=hi%20there")).await);
    assert_eq!(env["method"], "GET");
    assert_eq!(env["name"], "Pinky");
    assert_eq!(env["message"], "hi there");
    assert_eq!(env["script"], "/srv/cgi-bin/form.py");
    assert!(env["python"].starts_with("3.12"), "{env:?}");

    let response = client()
        .post(server.url("/cgi-bin/form.py"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("name=Brain&message=world+domination")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let env = parse_env(&response.text().await.unwrap());
    assert_eq!(env["method"], "POST");
    assert_eq!(env["name"], "Brain");
    assert_eq!(env["message"], "world domination");
}
