//! Limits under hostile modules, commands and clients (SPEC section 4):
//! each breach gets its status within the limit plus a little slack, and
//! the server keeps serving everyone else.

use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::support::{
    P2_PROGRAMS, SLACK, Server, client, config_twins, get_text, get_with_id, read_to_end, sample,
    timed_get, twins,
};

/// `GET` of `path` under the folder URL: status, body, time taken.
async fn get(server: &Server, path: &str) -> (u16, String, Duration) {
    timed_get(&server.cgi(path)).await
}

#[tokio::test]
async fn a_spinning_module_is_stopped_at_its_timeout_with_504() {
    let server = Server::start_all(&["--timeout", "400ms"]);
    for name in twins("hostile.wasm") {
        let (status, body, took) = get(&server, &format!("{name}?spin")).await;
        assert_eq!(status, 504, "{name}");
        assert!(body.contains("time limit"), "{name}: {body}");
        assert!(
            took < Duration::from_millis(400) + SLACK,
            "{name} took {took:?}"
        );
    }
    assert!(server.is_healthy().await);
    for name in twins("sleep.wasm") {
        let (status, body, _) = get(&server, &format!("{name}?0")).await;
        assert_eq!((status, body.as_str()), (200, "awake\n"), "{name}");
    }
}

#[tokio::test]
async fn a_module_sleeping_after_computing_leaves_the_long_lane_to_others() {
    // Regression: a guest kept its long-lane slot while blocked in a host
    // call, so modules that compute a little and then sleep stalled every
    // other long-running guest for the whole sleep.
    let lane_slots = std::thread::available_parallelism().map_or(1, usize::from) / 2;
    let server = Server::start_all(&["--timeout", "20s"]);
    let sleepers: Vec<_> = (0..lane_slots.max(1))
        .map(|i| {
            let url = server.cgi(&format!(
                "{}?compute-sleep+200+10000",
                twins("hostile.wasm")[i % 2]
            ));
            tokio::spawn(async move { client().get(url).send().await.unwrap().text().await })
        })
        .collect();
    // Long enough for each sleeper to have reached the lane and its sleep.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for name in twins("hostile.wasm") {
        let (status, body, took) = get(&server, &format!("{name}?compute+300")).await;
        assert_eq!((status, body.as_str()), (200, "computed\n"), "{name}");
        assert!(
            took < Duration::from_secs(5),
            "{name}: a long-running guest waited {took:?} for sleeping ones"
        );
    }
    for sleeper in sleepers {
        sleeper.abort();
    }
}

#[tokio::test]
async fn a_spinning_module_does_not_slow_other_requests() {
    let server = Server::start_all(&["--timeout", "3s"]);
    let spinners: Vec<_> = twins("hostile.wasm")
        .iter()
        .map(|name| client().get(server.cgi(&format!("{name}?spin"))).send())
        .collect();
    let spinners = tokio::spawn(futures::future::join_all(spinners));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for name in twins("sleep.wasm") {
        for _ in 0..10 {
            let (status, body, took) = get(&server, &format!("{name}?0")).await;
            assert_eq!((status, body.as_str()), (200, "awake\n"), "{name}");
            assert!(
                took < Duration::from_millis(250),
                "a normal request to {name} took {took:?} beside a spinning module and command"
            );
        }
    }
    for response in spinners.await.unwrap() {
        assert_eq!(response.unwrap().status(), 504);
    }
}

#[tokio::test]
async fn a_module_that_allocates_without_end_traps_at_max_memory() {
    let server = Server::start_all(&["--max-memory", "32MiB"]);
    for name in twins("hostile.wasm") {
        let id = format!("alloc-{name}");
        let started = Instant::now();
        let response = get_with_id(&server.cgi(&format!("{name}?alloc")), &id).await;
        assert_eq!(response.status(), 500, "{name}");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{name} took {took:?}");
        server.wait_for_line(&[&id, "memory.grow", "max-memory"]);
        assert!(server.is_healthy().await);

        let (status, body, _) = get(&server, &format!("{name}?big-memory+8")).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "ok 8\n"),
            "{name}: memory under the limit is fine"
        );
        let (status, _, _) = get(&server, &format!("{name}?big-memory+40")).await;
        assert_eq!(status, 500, "{name}");
    }
}

#[tokio::test]
async fn a_fuel_budget_stops_a_spinning_module_with_500_and_logs_the_fuel() {
    let server = Server::start_all(&["--fuel", "5000000"]);
    for name in twins("hostile.wasm") {
        let id = format!("fuel-{name}");
        let response = get_with_id(&server.cgi(&format!("{name}?spin")), &id).await;
        assert_eq!(response.status(), 500, "{name}");
        server.wait_for_line(&["ran out of fuel", "fuel=5000000", &id]);
    }
    for name in twins("sleep.wasm") {
        let (status, body, _) = get(&server, &format!("{name}?0")).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "awake\n"),
            "{name}: ordinary programs fit in the budget"
        );
    }
}

#[tokio::test]
async fn output_past_max_output_is_cut_and_the_instance_stopped() {
    let server = Server::start_all(&["--max-output", "256KiB", "--timeout", "10s"]);
    let [module, command] = twins("hostile.wasm").map(|name| format!("{name}?print"));
    for path in [module, command, "handler.wasm/big?bytes=4194304".to_owned()] {
        let id = format!("print-{}", path.replace(['/', '?', '='], "-"));
        let started = Instant::now();
        let mut response = get_with_id(&server.cgi(&path), &id).await;
        assert_eq!(response.status(), 200, "{path}");
        let (received, complete) = read_to_end(&mut response).await;
        assert!(!complete, "{path}: the client must see an incomplete body");
        assert!(
            received.len() <= 256 * 1024,
            "{path}: received {} bytes",
            received.len()
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{path} took {took:?}");
        server.wait_for_line(&[&id, "over max-output"]);
    }
    let (status, body, _) = get(&server, "handler.wasm/big?bytes=1000").await;
    assert_eq!((status, body.len()), (200, 1000), "under the limit is fine");
    assert!(server.is_healthy().await);
}

#[tokio::test]
async fn a_component_writing_more_than_it_was_granted_traps() {
    // Regression: `output-stream.write` took any size, so one component
    // could queue many times its linear memory in the host.
    let server = Server::start_all(&["--mode", "cgi"]);
    for mode in ["huge-write", "many-headers"] {
        let id = format!("ungranted-{mode}");
        let response = get_with_id(&server.cgi(&format!("hostile-p2.wasm?{mode}")), &id).await;
        assert_eq!(response.status(), 500, "{mode}");
        server.wait_for_line(&[&id, "past what check_write allowed"]);
    }
    // A module's fd_write is cut into pieces by the host: its 30,000
    // header lines run past the header-block cap.
    let (status, body, _) = get(&server, "hostile.wasm?many-headers").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("header block is longer"), "{body}");
    assert!(server.is_healthy().await);
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_keep_a_guest_past_its_timeout() {
    // Regression: the guest only runs, and only sees its deadline, while
    // its body is polled; a client leaving the socket full held it (and
    // its slot) until the write stall timed out, or for ever if it read a
    // few bytes now and then.
    use std::io::Write as _;
    let server = Server::start_all(&["--timeout", "2s"]);
    for name in twins("hostile.wasm") {
        let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
        write!(
            stream,
            "GET /cgi-bin/wasm-run.cgi/{name}?print HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        .unwrap();
        let started = Instant::now();
        loop {
            let metrics = get_text(&server.url("/metrics")).await;
            if sample(&metrics, "wasm_cgi_instances_in_flight") == Some(0.0)
                && started.elapsed() > Duration::from_millis(500)
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{name}: the guest outlived its 2 s timeout by far"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(stream);
    }
    assert!(server.is_healthy().await);
}

#[tokio::test]
async fn a_guest_opening_files_without_end_hits_its_own_cap_not_the_servers() {
    // Regression: a module on a route with `dirs` could open files until
    // the server itself had no descriptor left to accept with.
    let config = "modules = \"modules\"\n[[route]]\npath = \"/open/...\"\nmodule = \"hostile.wasm\"\nargs = [\"open-files\", \"/data/data.txt\"]\nquery_args = false\ndirs = [{ host = \"data\", guest = \"/data\" }]\n";
    for config in config_twins(config) {
        let server = Server::with_config_and(&config, P2_PROGRAMS, &[]);
        let response = get_with_id(&server.url("/open/x"), "open-files").await;
        // The guest is stopped at its own cap, long before the server's.
        assert_eq!(response.status(), 500, "{config}");
        server.wait_for_line(&["open-files", "resource table has no free keys"]);
        assert!(server.is_healthy().await);
        let (status, body, _) = get(&server, "sleep.wasm?0").await;
        assert_eq!((status, body.as_str()), (200, "awake\n"));
    }
}

#[tokio::test]
async fn a_stderr_flood_is_capped_in_the_log() {
    let server = Server::start_all(&["--timeout", "500ms"]);
    for name in twins("hostile.wasm") {
        let id = format!("stderr-{name}");
        let response = get_with_id(&server.cgi(&format!("{name}?stderr")), &id).await;
        assert_eq!(response.status(), 504, "{name}");
        assert!(!response.text().await.unwrap().contains("eeee"), "{name}");
        server.wait_for_line(&[&id, "stderr over its cap"]);
        let flood_lines = server
            .log()
            .lines()
            .filter(|l| l.contains(&id) && l.contains("eeeeeeeeee"))
            .count();
        assert!(
            (1..=70).contains(&flood_lines),
            "{name}: {flood_lines} stderr lines logged"
        );
    }
}

#[tokio::test]
async fn reading_stdin_past_its_end_forever_times_out() {
    let server = Server::start_all(&["--timeout", "400ms"]);
    for name in twins("hostile.wasm") {
        let started = Instant::now();
        let response = client()
            .post(server.cgi(&format!("{name}?read")))
            .body("finite")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 504, "{name}");
        assert!(
            started.elapsed() < Duration::from_millis(400) + SLACK,
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_endless_cgi_header_is_a_502() {
    let server = Server::start(&["--mode", "cgi"]);
    // That the module is stopped at the cap, without waiting for its end,
    // is unit-tested in `server::cgi_response`.
    let (status, body, _) = get(&server, "hostile.wasm?header").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("header block is longer"), "{body}");
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
    // Freed at once (unit-tested in `runtime::guest_body`); the wide
    // deadline only allows for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(10);
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
async fn resident_memory_stays_flat_across_many_hostile_requests() {
    let server = Server::start_all(&[
        "--timeout",
        "300ms",
        "--max-memory",
        "32MiB",
        "--max-output",
        "128KiB",
    ]);
    let names = twins("hostile.wasm");
    let kinds = ["spin", "alloc", "print", "big-memory+24", "stderr"];
    let round = |count: usize| {
        let (server, names) = (&server, &names);
        futures::stream::iter(0..count)
            .map(move |i| async move {
                // Only the memory matters here: a cut response may even
                // fail to arrive at all.
                let path = format!("{}?{}", names[i % 2], kinds[i % kinds.len()]);
                if let Ok(response) = client().get(server.cgi(&path)).send().await {
                    let _ = response.bytes().await;
                }
            })
            .buffer_unordered(10)
            .collect::<Vec<_>>()
    };
    round(20).await;
    let before = server.rss_kib();
    round(120).await;
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
