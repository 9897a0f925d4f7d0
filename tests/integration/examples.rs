//! The built-in examples: what a newcomer gets from `wasm-cgi serve` with no
//! flags and no folders, and the classic image's `INSTALL_DIR` layout.

use crate::support::{Server, client};

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
    let page = client()
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("hello.wasm") && page.contains("form.wasm"),
        "{page}"
    );
    assert_eq!(
        client()
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
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
    let dir = install.path().to_path_buf();
    let server = Server::launch(
        &[],
        &[("INSTALL_DIR", dir.to_str().unwrap())],
        &dir,
        install,
    );

    let index = client()
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
