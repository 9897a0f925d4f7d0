//! Operations: the access log, JSON logs, `/metrics`, and graceful shutdown
//! on SIGTERM.

use std::time::{Duration, Instant};

use crate::support::{Server, client, get_status, post_text};

/// The value of `name` in a Prometheus text exposition, for the sample whose
/// name and labels are exactly `sample`.
fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

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
    let server = Server::start(&[]);
    let response = client()
        .post(server.cgi("cat.wasm/extra?q=1"))
        .header("x-request-id", "access-line-1")
        .body("12345")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "12345");
    let log = server.wait_for_log("request_id=access-line-1");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("access-line-1") && l.contains("wasm_cgi::access"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    for field in [
        "method=POST",
        "path=/cgi-bin/wasm-run.cgi/cat.wasm/extra",
        "module=\"cat.wasm\"",
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
    let server = Server::start(&["--timeout", "300ms"]);
    let before = metrics(&server.url("/metrics")).await;
    let ok = "wasm_cgi_requests_total{module=\"cat.wasm\",status=\"2xx\"}";
    assert_eq!(sample(&before, ok), None);
    for _ in 0..3 {
        post_text(&server.cgi("cat.wasm"), "x").await;
    }
    client().get(server.cgi("trap.wasm")).send().await.unwrap();
    client()
        .get(server.cgi("hostile.wasm?spin"))
        .send()
        .await
        .unwrap();
    client()
        .get(server.cgi("missing.wasm"))
        .send()
        .await
        .unwrap();

    let after = metrics(&server.url("/metrics")).await;
    assert_eq!(sample(&after, ok), Some(3.0), "{after}");
    assert_eq!(
        sample(
            &after,
            "wasm_cgi_requests_total{module=\"-\",status=\"4xx\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &after,
            "wasm_cgi_module_failures_total{module=\"trap.wasm\",kind=\"trap\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &after,
            "wasm_cgi_module_failures_total{module=\"hostile.wasm\",kind=\"timeout\"}"
        ),
        Some(1.0)
    );
    assert_eq!(sample(&after, "wasm_cgi_timeouts_total"), Some(1.0));
    assert_eq!(
        sample(
            &after,
            "wasm_cgi_request_duration_seconds_count{module=\"cat.wasm\"}"
        ),
        Some(3.0)
    );
    assert_eq!(sample(&after, "wasm_cgi_instances_in_flight"), Some(0.0));
    assert_eq!(sample(&after, "wasm_cgi_queue_depth"), Some(0.0));
    assert!(
        sample(
            &after,
            "wasm_cgi_module_compile_seconds{module=\"cat.wasm\"}"
        )
        .is_some_and(|s| s > 0.0)
    );
    let compiled = sample(&after, "wasm_cgi_compilations").unwrap();
    assert_eq!(
        compiled,
        sample(&before, "wasm_cgi_compilations").unwrap(),
        "no compilation on the request path"
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
    let mut server = Server::start(&[]);
    let started = Instant::now();
    let mut slow = client()
        .get(server.cgi("slow-lines.wasm?4+300"))
        .send()
        .await
        .unwrap();
    let first = slow.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"line 0\n");

    server.terminate();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let ready = client().get(server.url("/readyz")).send().await.unwrap();
        if ready.status() == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never turned 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = client().get(server.cgi("cat.wasm")).send().await.unwrap();
    assert_eq!(refused.status(), 503, "no new work while draining");
    assert_eq!(get_status(&server.url("/healthz")).await, 200);

    let mut rest = Vec::new();
    while let Some(chunk) = slow.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(
        rest, b"line 1\nline 2\nline 3\n",
        "the request in flight finishes"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
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
    let mut cut = false;
    loop {
        match slow.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(cut, "the stopped request must end incomplete");
}
