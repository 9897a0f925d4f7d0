//! The built-in examples: what a newcomer gets from `wasm-cgi serve` with no
//! flags and no folders, and the classic image's `INSTALL_DIR` layout.

use crate::support::{Server, client, get_status, get_text};

fn bare_server() -> Server {
    let cwd = tempfile::tempdir().unwrap();
    let path = cwd.path().to_path_buf();
    Server::launch(&[], &[], &path, cwd)
}

#[tokio::test]
async fn hello_says_hello_pinky() {
    let server = bare_server();
    let response = client().get(server.cgi("hello.wasm")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "Hello Pinky!\n");
}

#[tokio::test]
async fn the_form_demo_runs_in_cgi_mode_and_echoes_posted_fields() {
    let server = bare_server();
    let response = client().get(server.cgi("form.wasm")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let page = response.text().await.unwrap();
    assert!(
        page.contains("<form method=\"post\" action=\"/cgi-bin/wasm-run.cgi/form.wasm\">"),
        "{page}"
    );

    let page = client()
        .post(server.cgi("form.wasm"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("name=Pinky&message=%3Cb%3Ehi%3C%2Fb%3E+there")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<tr><th>name</th><td>Pinky</td></tr>"),
        "{page}"
    );
    assert!(
        page.contains("&lt;b&gt;hi&lt;/b&gt; there"),
        "posted HTML must be escaped: {page}"
    );
    assert!(page.contains("<code>POST</code>"), "{page}");
}

#[tokio::test]
async fn the_root_lists_the_examples_and_health_endpoints_answer() {
    let server = bare_server();
    let page = get_text(&server.url("/")).await;
    assert!(
        page.contains("hello.wasm") && page.contains("form.wasm"),
        "{page}"
    );
    assert_eq!(get_status(&server.url("/healthz")).await, 200);
    assert_eq!(get_status(&server.url("/readyz")).await, 200);
}

#[tokio::test]
async fn install_dir_gives_the_classic_layout() {
    let install = tempfile::tempdir().unwrap();
    let modules = install.path().join("www/cgi-bin/modules");
    std::fs::create_dir_all(&modules).unwrap();
    std::fs::copy(test_artifacts::CAT, modules.join("cat.wasm")).unwrap();
    std::fs::write(
        install.path().join("www/index.html"),
        "<h1>classic index</h1>",
    )
    .unwrap();
    std::fs::write(install.path().join("www/.env"), "SECRET=1").unwrap();
    std::fs::write(install.path().join("www/page.txt"), "page").unwrap();
    let dir = install.path().to_path_buf();
    let server = Server::launch(
        &[],
        &[("INSTALL_DIR", dir.to_str().unwrap())],
        &dir,
        install,
    );

    let index = get_text(&server.url("/")).await;
    assert_eq!(index, "<h1>classic index</h1>");
    let echoed = client()
        .post(server.cgi("cat.wasm"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.text().await.unwrap(), "x");
    let hello = client().get(server.cgi("hello.wasm")).send().await.unwrap();
    assert_eq!(
        hello.status(),
        404,
        "a modules folder replaces the built-in examples"
    );
    assert_eq!(get_text(&server.url("/page.txt")).await, "page");
    // Regression: the modules folder inside www was downloadable, and so
    // were dotfiles.
    for path in ["/cgi-bin/modules/cat.wasm", "/cgi-bin/modules/", "/.env"] {
        assert_eq!(get_status(&server.url(path)).await, 404, "{path}");
    }
}

#[tokio::test]
async fn mode_from_the_environment_applies_to_folder_modules() {
    let server = {
        let modules = tempfile::tempdir().unwrap();
        std::fs::copy(test_artifacts::CAT, modules.path().join("cat.wasm")).unwrap();
        let dir = modules.path().to_path_buf();
        Server::launch(
            &["--modules", dir.to_str().unwrap()],
            &[("MODE", "cgi")],
            &dir,
            modules,
        )
    };
    let response = client()
        .post(server.cgi("cat.wasm"))
        .body("Status: 201 Created\nContent-Type: text/plain\n\nmade")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

/// The repository's sample config for the log analyzer.
const SAMPLE_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/samples/log-analyzer/wasm-cgi.toml"
);

#[tokio::test]
async fn the_sample_config_serves_the_log_analyzer_report() {
    let cwd = tempfile::tempdir().unwrap();
    let path = cwd.path().to_path_buf();
    let server = Server::launch(&["--config", SAMPLE_CONFIG], &[], &path, cwd);
    let response = client().get(server.url("/report")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let report = response.text().await.unwrap();
    for expected in [
        "\"total_entries\": 7",
        "\"skipped_lines\": 1",
        "\"ERROR\": 2",
        "billing: database timeout",
    ] {
        assert!(
            report.contains(expected),
            "{expected} missing from {report}"
        );
    }
}

#[test]
fn the_log_analyzer_runs_from_the_shell_with_a_granted_directory() {
    let out = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/samples/log-analyzer/logs/logs.json"
        ),
        out.path().join("logs.json"),
    )
    .unwrap();
    let analyzer = concat!(env!("WASM_CGI_EXAMPLES_DIR"), "/log-analyzer.wasm");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wasm-cgi"))
        .env("WASMTIME_CACHE_DIR", crate::support::shared_cache_dir())
        .args([
            "run",
            "--dir",
            &format!("{}::/data", out.path().display()),
            analyzer,
            "--",
        ])
        .args(["/data/logs.json", "/data/report.json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = std::fs::read_to_string(out.path().join("report.json")).unwrap();
    assert!(written.contains("\"total_entries\": 7"), "{written}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        written.trim()
    );
}
