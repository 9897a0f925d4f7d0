//! Operations: the access log, JSON logs, `/metrics`, and graceful shutdown
//! on SIGTERM; for modules, commands and handlers.

use std::time::{Duration, Instant};

use crate::support::{
    HANDLER, Server, assert_samples, client, get_status, post_text, read_to_end, sample, twins,
};

async fn metrics(url: &str) -> String {
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("text")
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn each_request_gets_one_access_line_with_its_details() {
    let server = Server::start_all(&[]);
    for (program, path) in [("cat.wasm", "/extra"), ("handler.wasm", "/echo-body")] {
        let id = format!("access-line-{program}");
        let response = client()
            .post(server.cgi(&format!("{program}{path}?q=1")))
            .header("x-request-id", &id)
            .body("12345")
            .send()
            .await
            .unwrap();
        assert_eq!(response.text().await.unwrap(), "12345");
        let log = server.wait_for_log(&format!("request_id={id}"));
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&id) && l.contains("wasm_cgi::access"))
            .collect();
        assert_eq!(lines.len(), 1, "{log}");
        for field in [
            "method=POST",
            &format!("path=/cgi-bin/wasm-run.cgi/{program}{path} "),
            &format!("module=\"{program}\""),
            "status=200",
            "bytes=5",
            "body=\"complete\"",
            "duration_us=",
            "client=127.0.0.1",
        ] {
            assert!(
                lines[0].contains(field),
                "{field} missing from {}",
                lines[0]
            );
        }
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let server = Server::start(&["--log-format", "json"]);
    let response = client()
        .get(server.cgi("exit-code.wasm?2"))
        .header("x-request-id", "json-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let log = server.wait_for_log("\"request_id\":\"json-1\",\"client\"");
    let objects: Vec<serde_json::Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"))
        })
        .collect();
    let access = objects
        .iter()
        .find(|o| o["target"] == "wasm_cgi::access" && o["request_id"] == "json-1")
        .expect("an access object");
    assert_eq!(access["status"], 500);
    assert_eq!(access["module"], "exit-code.wasm");
    let stderr = objects
        .iter()
        .find(|o| o["target"] == "wasm_cgi::guest" && o["request_id"] == "json-1")
        .expect("the module's stderr, tagged");
    assert_eq!(stderr["module"], "exit-code.wasm");
    assert_eq!(stderr["stderr"], "exit-code: leaving with 2");
}

#[tokio::test]
async fn metrics_count_requests_failures_and_compile_times() {
    let server = Server::start_all(&["--timeout", "300ms"]);
    let before = metrics(&server.url("/metrics")).await;
    // The programs asked for, once as modules and once as commands.
    let kinds = [0, 1].map(|twin| {
        ["cat.wasm", "trap.wasm", "hostile.wasm", "exit-code.wasm"]
            .map(|name| twins(name)[twin].clone())
    });
    for [cat, trap, hostile, exit_code] in &kinds {
        let ok = format!("wasm_cgi_requests_total{{module=\"{cat}\",status=\"2xx\"}}");
        assert_eq!(sample(&before, &ok), None);
        for _ in 0..3 {
            post_text(&server.cgi(cat), "x").await;
        }
        get_status(&server.cgi(trap)).await;
        get_status(&server.cgi(&format!("{hostile}?spin"))).await;
        get_status(&server.cgi(&format!("{exit_code}?2"))).await;
    }
    get_status(&server.cgi("missing.wasm")).await;

    let after = metrics(&server.url("/metrics")).await;
    for [cat, trap, hostile, exit_code] in &kinds {
        assert_samples(
            &after,
            &[
                (
                    &format!("wasm_cgi_requests_total{{module=\"{cat}\",status=\"2xx\"}}"),
                    3.0,
                ),
                (
                    &format!("wasm_cgi_requests_total{{module=\"{trap}\",status=\"5xx\"}}"),
                    1.0,
                ),
                (
                    &format!("wasm_cgi_module_failures_total{{module=\"{trap}\",kind=\"trap\"}}"),
                    1.0,
                ),
                (
                    &format!(
                        "wasm_cgi_module_failures_total{{module=\"{hostile}\",kind=\"timeout\"}}"
                    ),
                    1.0,
                ),
                (
                    &format!(
                        "wasm_cgi_module_failures_total{{module=\"{exit_code}\",kind=\"exit\"}}"
                    ),
                    1.0,
                ),
                (
                    &format!("wasm_cgi_request_duration_seconds_count{{module=\"{cat}\"}}"),
                    3.0,
                ),
            ],
        );
        assert!(
            sample(
                &after,
                &format!("wasm_cgi_module_compile_seconds{{module=\"{cat}\"}}")
            )
            .is_some_and(|s| s > 0.0),
            "{after}"
        );
    }
    assert_samples(
        &after,
        &[
            ("wasm_cgi_requests_total{module=\"-\",status=\"4xx\"}", 1.0),
            ("wasm_cgi_timeouts_total", 2.0),
            ("wasm_cgi_instances_in_flight", 0.0),
            ("wasm_cgi_queue_depth", 0.0),
        ],
    );
    let compiled = sample(&after, "wasm_cgi_compilations").unwrap();
    assert_eq!(
        compiled,
        sample(&before, "wasm_cgi_compilations").unwrap(),
        "no compilation on the request path"
    );
}

#[tokio::test]
async fn metrics_count_causes_not_status_codes() {
    // A handler answering 503 or 504 itself was neither refused for want
    // of a slot nor stopped at its timeout.
    let server = Server::start_with(&[HANDLER], &[]);
    for code in [503, 504] {
        let url = server.cgi(&format!("handler.wasm/status/{code}"));
        assert_eq!(get_status(&url).await, code);
    }
    let text = metrics(&server.url("/metrics")).await;
    assert_samples(
        &text,
        &[
            (
                "wasm_cgi_requests_total{module=\"handler.wasm\",status=\"5xx\"}",
                2.0,
            ),
            ("wasm_cgi_overloaded_total", 0.0),
            ("wasm_cgi_shutdown_refusals_total", 0.0),
            ("wasm_cgi_timeouts_total", 0.0),
        ],
    );
}

#[tokio::test]
async fn metrics_can_have_their_own_address() {
    let server = Server::start(&["--metrics-listen", "127.0.0.1:0"]);
    let log = server.wait_for_log("metrics on http://");
    let url = log
        .lines()
        .find_map(|line| line.split("metrics on ").nth(1))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(
        metrics(&url)
            .await
            .contains("# TYPE wasm_cgi_compilations gauge")
    );
    assert_eq!(get_status(&server.url("/metrics")).await, 404);
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    for (path, piece) in [
        ("slow-lines.wasm?4+300", "line"),
        ("handler.wasm/stream?n=4&ms=300", "chunk"),
    ] {
        let mut server = Server::start_all(&[]);
        let started = Instant::now();
        let mut slow = client().get(server.cgi(path)).send().await.unwrap();
        let first = slow.chunk().await.unwrap().unwrap();
        assert_eq!(first, format!("{piece} 0\n"), "{path}");

        server.terminate();
        let deadline = Instant::now() + Duration::from_secs(2);
        while get_status(&server.url("/readyz")).await != 503 {
            assert!(Instant::now() < deadline, "/readyz never turned 503");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            get_status(&server.cgi("cat.wasm")).await,
            503,
            "no new work while draining"
        );
        assert_eq!(get_status(&server.url("/healthz")).await, 200);
        // Counted as what it was, a refusal while draining, not overload.
        let text = metrics(&server.url("/metrics")).await;
        assert_samples(
            &text,
            &[
                ("wasm_cgi_shutdown_refusals_total", 1.0),
                ("wasm_cgi_overloaded_total", 0.0),
            ],
        );

        let (rest, complete) = read_to_end(&mut slow).await;
        assert!(complete, "{path}: the request in flight finishes");
        assert_eq!(
            String::from_utf8(rest).unwrap(),
            (1..4).map(|i| format!("{piece} {i}\n")).collect::<String>(),
            "{path}"
        );
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0), "{path}");
    }
}

#[tokio::test]
async fn past_the_grace_period_remaining_requests_are_stopped() {
    let mut server = Server::start(&["--shutdown-grace", "300ms"]);
    let mut slow = client()
        .get(server.cgi("slow-lines.wasm?20+500"))
        .send()
        .await
        .unwrap();
    slow.chunk().await.unwrap().unwrap();
    let started = Instant::now();
    server.terminate();
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let (_, complete) = read_to_end(&mut slow).await;
    assert!(!complete, "the stopped request must end incomplete");
}
