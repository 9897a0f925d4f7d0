//! Every error status of SPEC section 2, each with a short plain-text body
//! that leaks no host path, host environment or module stderr.

use std::time::{Duration, Instant};

use crate::support::{PROGRAMS, Server, client, get_status, get_text, post_text};

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

#[tokio::test]
async fn names_that_are_not_plain_file_names_are_400_without_touching_the_filesystem() {
    let server = Server::start(&[]);
    let modules_path = server.modules.path().to_str().unwrap().to_owned();
    for target in [
        "/cgi-bin/wasm-run.cgi",
        "/cgi-bin/wasm-run.cgi/",
        "/cgi-bin/wasm-run.cgi/..",
        "/cgi-bin/wasm-run.cgi/../../../etc/passwd",
        "/cgi-bin/wasm-run.cgi/%2e%2e/%2e%2e/etc/passwd",
        "/cgi-bin/wasm-run.cgi/%2E%2E",
        "/cgi-bin/wasm-run.cgi/..%2f..%2fetc%2fpasswd",
        "/cgi-bin/wasm-run.cgi/env-dump.wasm%2f..%2f..%2fetc%2fpasswd",
        "/cgi-bin/wasm-run.cgi/..%5c..%5cwindows",
        "/cgi-bin/wasm-run.cgi/hello.wasm%00.txt",
        "/cgi-bin/wasm-run.cgi//etc/passwd",
        "/cgi-bin/wasm-run.cgi/%ff%fe.wasm",
    ] {
        let response = server.raw(
            format!("GET {target} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(
            status_line(&response).starts_with("HTTP/1.1 400"),
            "{target}: {response}"
        );
        assert!(response.contains("bad request"), "{target}: {response}");
        assert!(
            !response.contains("root:") && !response.contains(&modules_path),
            "{target} leaked: {response}"
        );
    }
}

#[tokio::test]
async fn unknown_hidden_and_non_wasm_names_are_404() {
    let modules = tempfile::tempdir().unwrap();
    std::fs::copy(test_artifacts::CAT, modules.path().join(".hidden.wasm")).unwrap();
    std::fs::write(modules.path().join("notes.txt"), "not a module").unwrap();
    let server = Server::start_in(modules, &[]);
    for name in ["missing.wasm", ".hidden.wasm", "notes.txt", "cat"] {
        let response = client().get(server.cgi(name)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{name}");
        assert_eq!(response.text().await.unwrap(), "not found\n");
    }
}

#[tokio::test]
async fn invalid_module_files_are_skipped_and_the_rest_served() {
    let modules = tempfile::tempdir().unwrap();
    std::fs::write(modules.path().join("broken.wasm"), b"\0asm garbage").unwrap();
    std::fs::write(modules.path().join("empty.wasm"), b"").unwrap();
    std::fs::copy(test_artifacts::CAT, modules.path().join("cat.wasm")).unwrap();
    let server = Server::start_in(modules, &[]);
    assert_eq!(get_status(&server.cgi("broken.wasm")).await, 404);
    assert_eq!(get_status(&server.cgi("empty.wasm")).await, 404);
    assert_eq!(post_text(&server.cgi("cat.wasm"), "ok").await, "ok");
    let log = server.wait_for_log("empty.wasm");
    assert!(
        log.contains("module skipped") && log.contains("broken.wasm"),
        "{log}"
    );
}

#[tokio::test]
async fn a_non_zero_exit_is_a_500_naming_the_request_id_and_stderr_goes_to_the_log() {
    let server = Server::start(&[]);
    let response = client()
        .get(server.cgi("exit-code.wasm?3+print"))
        .header("x-request-id", "req-nonzero-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-request-id"], "req-nonzero-1");
    let body = response.text().await.unwrap();
    assert!(body.contains("req-nonzero-1"), "{body}");
    assert!(
        !body.contains("before exit") && !body.contains("leaving with"),
        "{body}"
    );
    let log = server.wait_for_log("leaving with 3");
    let line = log
        .lines()
        .find(|l| l.contains("leaving with 3"))
        .expect("stderr logged");
    assert!(
        line.contains("exit-code.wasm") && line.contains("req-nonzero-1"),
        "{line}"
    );
}

#[tokio::test]
async fn proc_exit_zero_is_success() {
    let server = Server::start(&[]);
    let response = client()
        .get(server.cgi("exit-code.wasm?0+print"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "before exit\n");
}

#[tokio::test]
async fn a_trap_is_a_500_whose_body_shows_no_stderr() {
    let server = Server::start(&[]);
    let response = client().get(server.cgi("trap.wasm")).send().await.unwrap();
    assert_eq!(response.status(), 500);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    assert!(
        body.contains(&id) && !body.contains("secret-stderr-line"),
        "{body}"
    );
    let log = server.wait_for_log("trapped");
    assert!(
        log.lines()
            .any(|l| l.contains("secret-stderr-line") && l.contains(&id)),
        "{log}"
    );
}

#[tokio::test]
async fn a_trap_after_the_response_started_cuts_the_body_short() {
    let server = Server::start(&[]);
    let response = client()
        .get(server.cgi("trap.wasm?after-output"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.is_err(),
        "the client must see an incomplete body"
    );
}

#[tokio::test]
async fn a_client_request_id_is_echoed_and_a_missing_one_generated() {
    let server = Server::start(&[]);
    let response = client()
        .get(server.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    let response = client().get(server.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"].len(), 32);
}

#[tokio::test]
async fn a_body_over_max_body_is_413_before_the_module_starts() {
    let server = Server::start(&["--max-body", "1KiB"]);
    let response = client()
        .post(server.cgi("cat.wasm"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    let response = server.raw(
        format!(
            "POST /cgi-bin/wasm-run.cgi/cat.wasm HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             800\r\n{}\r\n0\r\n\r\n",
            "y".repeat(2048)
        )
        .as_bytes(),
    );
    assert!(
        status_line(&response).starts_with("HTTP/1.1 413"),
        "{response}"
    );

    let response = client()
        .post(server.cgi("cat.wasm"))
        .body(vec![b'x'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_module_past_its_timeout_is_a_504_on_time() {
    let server = Server::start(&["--timeout", "300ms"]);
    let started = Instant::now();
    let response = client()
        .get(server.cgi("sleep.wasm?5000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(response.text().await.unwrap().contains("time limit"));
}

#[tokio::test]
async fn past_max_concurrency_and_a_full_queue_clients_get_503_with_retry_after() {
    let server = Server::start(&["--max-concurrency", "1", "--queue-timeout", "100ms"]);
    let requests = (0..4).map(|_| client().get(server.cgi("sleep.wasm?800")).send());
    let responses = futures::future::join_all(requests).await;
    let statuses: Vec<u16> = responses
        .iter()
        .map(|r| r.as_ref().unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        3,
        "{statuses:?}"
    );
    let busy = responses
        .iter()
        .map(|r| r.as_ref().unwrap())
        .find(|r| r.status() == 503)
        .unwrap();
    assert_eq!(busy.headers()["retry-after"], "1");
}

#[tokio::test]
async fn static_files_answer_only_get_and_head() {
    let server = Server::start(&[]);
    let response = client().post(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn every_test_program_is_listed_at_the_root() {
    let server = Server::start(&[]);
    let page = get_text(&server.url("/")).await;
    for (name, _) in PROGRAMS {
        assert!(
            page.contains(&format!("href=\"/cgi-bin/wasm-run.cgi/{name}\"")),
            "{name} missing: {page}"
        );
    }
}
