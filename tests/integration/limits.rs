//! Limits under hostile modules and clients (SPEC section 4): each breach
//! gets its status within the limit plus a little slack, and the server
//! keeps serving everyone else.

use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::support::{Server, client};

/// How much later than its limit a breach may be answered.
const SLACK: Duration = Duration::from_millis(700);

async fn get(server: &Server, path: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let response = client().get(server.cgi(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    (status, body, started.elapsed())
}

#[tokio::test]
async fn a_spinning_module_is_stopped_at_its_timeout_with_504() {
    let server = Server::start(&["--timeout", "400ms"]);
    let (status, _, took) = get(&server, "hostile.wasm?spin").await;
    assert_eq!(status, 504);
    assert!(took < Duration::from_millis(400) + SLACK, "took {took:?}");
    assert!(server.is_healthy().await);
}

#[tokio::test]
async fn a_spinning_module_does_not_slow_other_requests() {
    let server = Server::start(&["--timeout", "3s"]);
    let spinners: Vec<_> = (0..2)
        .map(|_| client().get(server.cgi("hostile.wasm?spin")).send())
        .collect();
    let spinners = tokio::spawn(futures::future::join_all(spinners));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..10 {
        let (status, body, took) = get(&server, "sleep.wasm?0").await;
        assert_eq!((status, body.as_str()), (200, "awake\n"));
        assert!(
            took < Duration::from_millis(250),
            "a normal request took {took:?} beside two spinning ones"
        );
    }
    for response in spinners.await.unwrap() {
        assert_eq!(response.unwrap().status(), 504);
    }
}

#[tokio::test]
async fn a_module_that_allocates_without_end_traps_at_max_memory() {
    let server = Server::start(&["--max-memory", "32MiB"]);
    let (status, _, took) = get(&server, "hostile.wasm?alloc").await;
    assert_eq!(status, 500);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let log = server.wait_for_log("max-memory");
    assert!(log.contains("memory.grow"), "{log}");
    assert!(server.is_healthy().await);

    let (status, body, _) = get(&server, "hostile.wasm?big-memory+8").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "ok 8\n"),
        "memory under the limit is fine"
    );
    let (status, _, _) = get(&server, "hostile.wasm?big-memory+40").await;
    assert_eq!(status, 500);
}

#[tokio::test]
async fn a_fuel_budget_stops_a_spinning_module_with_500_and_logs_the_fuel() {
    let server = Server::start(&["--fuel", "5000000"]);
    let (status, _, _) = get(&server, "hostile.wasm?spin").await;
    assert_eq!(status, 500);
    let log = server.wait_for_log("ran out of fuel");
    let line = log
        .lines()
        .find(|l| l.contains("ran out of fuel"))
        .expect("logged");
    assert!(line.contains("fuel=5000000"), "{line}");
    let (status, body, _) = get(&server, "sleep.wasm?0").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "awake\n"),
        "ordinary modules fit in the budget"
    );
}

#[tokio::test]
async fn output_past_max_output_is_cut_and_the_instance_stopped() {
    let server = Server::start(&["--max-output", "256KiB", "--timeout", "10s"]);
    let started = Instant::now();
    let mut response = client()
        .get(server.cgi("hostile.wasm?print"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = 0;
    let ended = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => break "complete",
            Err(_) => break "cut",
        }
    };
    assert_eq!(ended, "cut", "the client must see an incomplete body");
    assert!(received <= 256 * 1024, "received {received} bytes");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    server.wait_for_log("over max-output");
    assert!(server.is_healthy().await);
}

#[tokio::test]
async fn a_stderr_flood_is_capped_in_the_log() {
    let server = Server::start(&["--timeout", "500ms"]);
    let (status, body, _) = get(&server, "hostile.wasm?stderr").await;
    assert_eq!(status, 504);
    assert!(!body.contains("eeee"));
    let log = server.wait_for_log("stderr over its cap");
    let flood_lines = log.lines().filter(|l| l.contains("eeeeeeeeee")).count();
    assert!(
        (1..=70).contains(&flood_lines),
        "{flood_lines} stderr lines logged"
    );
}

#[tokio::test]
async fn reading_stdin_past_its_end_forever_times_out() {
    let server = Server::start(&["--timeout", "400ms"]);
    let started = Instant::now();
    let response = client()
        .post(server.cgi("hostile.wasm?read"))
        .body("finite")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_millis(400) + SLACK);
}

#[tokio::test]
async fn an_endless_cgi_header_is_a_502() {
    let server = Server::start(&["--mode", "cgi"]);
    let (status, body, took) = get(&server, "hostile.wasm?header").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("header block is longer"), "{body}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn huge_request_heads_are_refused() {
    let server = Server::start(&[]);
    let long_uri = format!(
        "GET /cgi-bin/wasm-run.cgi/cat.wasm?{} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        "q".repeat(10_000)
    );
    let response = server.raw(long_uri.as_bytes());
    assert!(response.starts_with("HTTP/1.1 414"), "{response:.80}");
    let big_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
        "h".repeat(100_000)
    );
    let response = server.raw(big_headers.as_bytes());
    assert!(response.starts_with("HTTP/1.1 431"), "{response:.80}");
    assert!(server.is_healthy().await);
}

#[tokio::test]
async fn a_client_that_disconnects_frees_its_instance() {
    let server = Server::start(&[
        "--max-concurrency",
        "1",
        "--queue-timeout",
        "100ms",
        "--timeout",
        "20s",
    ]);
    let abandoned = tokio::spawn(client().get(server.cgi("hostile.wasm?spin")).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    abandoned.abort();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, _, _) = get(&server, "sleep.wasm?0").await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned instance still holds the only slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn resident_memory_stays_flat_across_a_hundred_hostile_requests() {
    let server = Server::start(&[
        "--timeout",
        "300ms",
        "--max-memory",
        "32MiB",
        "--max-output",
        "128KiB",
    ]);
    let kinds = ["spin", "alloc", "print", "big-memory+24", "stderr"];
    let round = |count: usize| {
        let server = &server;
        futures::stream::iter(0..count)
            .map(move |i| async move {
                get(server, &format!("hostile.wasm?{}", kinds[i % kinds.len()])).await
            })
            .buffer_unordered(10)
            .collect::<Vec<_>>()
    };
    round(20).await;
    let before = server.rss_kib();
    round(100).await;
    let after = server.rss_kib();
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert!(server.is_healthy().await);
}

#[test]
fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    use std::io::{Read, Write};
    let server = Server::start(&[]);
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Drip: ")
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(9), "closed after {waited:?}");
    assert!(
        waited < Duration::from_secs(15),
        "still open after {waited:?}"
    );
}
