//! Every error status of SPEC section 2, each with a short plain-text body
//! that leaks no host path, host environment or module stderr; for modules
//! and their `-p2` command twins (and, for `max-body`, a handler) alike.

use std::time::Duration;

use crate::support::{
    SLACK, Server, assert_served_then_busy, client, every_program, get_at_once, get_status,
    get_text, get_with_id, parse_env, post_status, post_text, read_to_end, request_id, timed_get,
    twins,
};

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
    let server = Server::start_all(&[]);
    for name in twins("exit-code.wasm") {
        for code in ["1", "3"] {
            let id = format!("exit-{code}-{name}");
            let response = get_with_id(&server.cgi(&format!("{name}?{code}+print")), &id).await;
            assert_eq!(response.status(), 500, "{name}?{code}");
            assert_eq!(response.headers()["x-request-id"], id.as_str());
            let body = response.text().await.unwrap();
            assert!(body.contains(&id), "{body}");
            assert!(
                !body.contains("before exit") && !body.contains("leaving with"),
                "{body}"
            );
            let needle = format!("leaving with {code}");
            server.wait_for_line(&[&needle, &id, &name]);
        }
    }
}

#[tokio::test]
async fn proc_exit_zero_is_success() {
    let server = Server::start_all(&[]);
    for name in twins("exit-code.wasm") {
        let (status, body, _) = timed_get(&server.cgi(&format!("{name}?0+print"))).await;
        assert_eq!((status, body.as_str()), (200, "before exit\n"), "{name}");
    }
}

#[tokio::test]
async fn a_trap_is_a_500_whose_body_shows_no_stderr() {
    let server = Server::start_all(&[]);
    for name in twins("trap.wasm") {
        let response = client().get(server.cgi(&name)).send().await.unwrap();
        assert_eq!(response.status(), 500, "{name}");
        let id = request_id(&response);
        let body = response.text().await.unwrap();
        assert!(
            body.contains(&id) && !body.contains("secret-stderr-line"),
            "{name}: {body}"
        );
        server.wait_for_line(&["secret-stderr-line", &id, &name]);
    }
}

#[tokio::test]
async fn a_trap_after_the_response_started_cuts_the_body_short() {
    let server = Server::start_all(&[]);
    for name in twins("trap.wasm") {
        let mut response = client()
            .get(server.cgi(&format!("{name}?after-output")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let (_, complete) = read_to_end(&mut response).await;
        assert!(!complete, "{name}: the client must see an incomplete body");
    }
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
async fn the_module_sees_the_request_id_the_server_logs() {
    // Regression: a client id the server replaced still reached the module.
    let server = Server::start_all(&[]);
    for name in twins("env-dump.wasm") {
        for sent in ["has space", "fine-id"] {
            let response = client()
                .get(server.cgi(&name))
                .header("x-request-id", sent)
                .send()
                .await
                .unwrap();
            let id = request_id(&response);
            let env = parse_env(&response.text().await.unwrap());
            assert_eq!(env["HTTP_X_REQUEST_ID"], id, "{name}: sent {sent:?}");
        }
    }
}

#[tokio::test]
async fn a_body_over_max_body_is_413_before_the_module_starts() {
    let server = Server::start_all(&["--max-body", "1KiB"]);
    let [module, command] = twins("cat.wasm");
    // Each program as one that reads the whole body before it answers, and
    // one that echoes it: the handler's `/echo-body` answers while a chunked
    // body still arrives, so going over the limit then can only cut it.
    for (reads, echoes) in [
        (module.clone(), module),
        (command.clone(), command),
        (
            "handler.wasm/echo".to_owned(),
            "handler.wasm/echo-body".to_owned(),
        ),
    ] {
        assert_eq!(
            post_status(&server.cgi(&echoes), vec![b'x'; 2048]).await,
            413,
            "{echoes}: a body whose length is over the limit"
        );

        let response = server.raw(
            format!(
                "POST /cgi-bin/wasm-run.cgi/{reads} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                 800\r\n{}\r\n0\r\n\r\n",
                "y".repeat(2048)
            )
            .as_bytes(),
        );
        assert!(
            status_line(&response).starts_with("HTTP/1.1 413"),
            "{reads}: a chunked body over the limit: {response:.200}"
        );

        assert_eq!(
            post_text(&server.cgi(&echoes), vec![b'x'; 1024]).await,
            "x".repeat(1024),
            "{echoes}: a body at the limit is fine"
        );
    }
}

#[tokio::test]
async fn a_module_past_its_timeout_is_a_504_on_time() {
    let server = Server::start_all(&["--timeout", "300ms"]);
    for name in twins("sleep.wasm") {
        let (status, body, took) = timed_get(&server.cgi(&format!("{name}?5000"))).await;
        assert_eq!(status, 504, "{name}");
        assert!(
            took < Duration::from_millis(300) + SLACK,
            "{name} took {took:?}"
        );
        assert!(body.contains("time limit"), "{name}: {body}");
    }
}

#[tokio::test]
async fn past_max_concurrency_and_a_full_queue_clients_get_503_with_retry_after() {
    let server = Server::start_all(&["--max-concurrency", "1", "--queue-timeout", "100ms"]);
    for name in twins("sleep.wasm") {
        let answers = get_at_once(&server.cgi(&format!("{name}?800")), 4).await;
        assert_served_then_busy(&answers, 1);
    }
}

#[tokio::test]
async fn static_files_answer_only_get_and_head() {
    let server = Server::start(&[]);
    let response = client().post(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn every_test_program_is_listed_at_the_root() {
    let server = Server::start_all(&[]);
    let page = get_text(&server.url("/")).await;
    for (name, _) in every_program() {
        assert!(
            page.contains(&format!("href=\"/cgi-bin/wasm-run.cgi/{name}\"")),
            "{name} missing: {page}"
        );
    }
}
