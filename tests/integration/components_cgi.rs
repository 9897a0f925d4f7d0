//! `wasi:cli/command` components (the test programs built for
//! `wasm32-wasip2`) under the same CGI contract as preview 1 modules: argv,
//! meta-variables, the body as stdin, `simple` and `cgi` output, streaming,
//! directories, and every limit and error status. Most cases run against a
//! module and its `-p2` twin and expect the same answer from both.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::support::{
    HOST_SECRET, P2_PROGRAMS, Server, argv, client, every_program, get_text, p2_name, parse_env,
    post_text, read_to_end,
};

/// How much later than its limit a breach may be answered.
const SLACK: Duration = Duration::from_millis(700);

/// The preview 1 program `name` and its preview 2 twin.
fn twins(name: &str) -> [String; 2] {
    [name.to_owned(), p2_name(name)]
}

/// A server over every module, command and the handler, plus `args`.
fn twins_server(args: &[&str]) -> Server {
    Server::start_with(&every_program(), args)
}

/// A server over the `-p2` commands only, plus `args`.
fn p2_server(args: &[&str]) -> Server {
    Server::start_with(P2_PROGRAMS, args)
}

/// `GET` of `path` under the folder URL: status, body, time taken.
async fn get(server: &Server, path: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let response = client().get(server.cgi(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    (status, body, started.elapsed())
}

#[tokio::test]
async fn argv_follows_the_search_word_rules_for_commands_as_for_modules() {
    let server = twins_server(&[]);
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("?a+b", &["a", "b"]),
        ("?hello%20world+caf%C3%A9", &["hello world", "café"]),
        ("?a%2Bb", &["a+b"]),
        ("?key=value", &[]),
        ("?ok+%FF", &[]),
    ];
    for name in twins("env-dump.wasm") {
        for (query, words) in cases {
            let body = get_text(&server.cgi(&format!("{name}{query}"))).await;
            let mut expected = vec![name.clone()];
            expected.extend(words.iter().map(|w| w.to_string()));
            assert_eq!(argv(&parse_env(&body)), expected, "{name}{query}");
        }
    }
}

/// The environment `name` sees for one POST with headers, path info and a
/// query, with what names the program itself and the client's port taken out.
async fn posted_env(server: &Server, name: &str) -> HashMap<String, String> {
    let response = client()
        .post(server.cgi(&format!("{name}/extra/p%20ath?x=1&y=%20")))
        .header("Content-Type", "application/json")
        .header("X-Custom", "first")
        .header("Authorization", "Basic cGlua3k6YnJhaW4=")
        .body("{\"a\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{name}");
    let mut env = parse_env(&response.text().await.unwrap());
    assert!(env.remove("REMOTE_PORT").is_some(), "{name}: {env:?}");
    for value in env.values_mut() {
        *value = value.replace(name, "PROGRAM");
    }
    env
}

#[tokio::test]
async fn a_command_gets_exactly_the_meta_variables_a_module_gets() {
    let server = twins_server(&[]);
    let [module, command] = twins("env-dump.wasm");
    let module_env = posted_env(&server, &module).await;
    let command_env = posted_env(&server, &command).await;
    assert_eq!(command_env, module_env);

    let expected: &[(&str, Option<&str>)] = &[
        ("GATEWAY_INTERFACE", Some("CGI/1.1")),
        ("REQUEST_METHOD", Some("POST")),
        ("SCRIPT_NAME", Some("/cgi-bin/wasm-run.cgi/PROGRAM")),
        ("PATH_INFO", Some("/extra/p ath")),
        ("QUERY_STRING", Some("x=1&y=%20")),
        ("CONTENT_TYPE", Some("application/json")),
        ("CONTENT_LENGTH", Some("7")),
        ("AUTH_TYPE", Some("Basic")),
        ("REMOTE_USER", Some("pinky")),
        ("HTTP_X_CUSTOM", Some("first")),
        ("HTTP_AUTHORIZATION", None),
        (HOST_SECRET.0, None),
        ("PATH", None),
    ];
    for (name, value) in expected {
        assert_eq!(command_env.get(*name).map(String::as_str), *value, "{name}");
    }
}

#[tokio::test]
async fn the_request_body_is_a_commands_stdin_byte_for_byte() {
    let server = twins_server(&[]);
    let binary: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    for name in twins("cat.wasm") {
        let url = server.cgi(&name);
        assert_eq!(post_text(&url, "").await, "", "{name}");
        let echoed = client()
            .post(&url)
            .body(binary.clone())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(echoed[..] == binary[..], "{name}: 1 MiB came back changed");

        let pieces = ["chunked ", "upload ", "in pieces"].map(Ok::<_, std::io::Error>);
        let body = reqwest::Body::wrap_stream(futures::stream::iter(pieces));
        let response = client().post(&url).body(body).send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), "chunked upload in pieces");
    }
}

#[tokio::test]
async fn cgi_mode_reads_a_commands_header_block_as_a_modules() {
    let server = twins_server(&["--mode", "cgi"]);
    for name in twins("cat.wasm") {
        let post = |output: &str| {
            client()
                .post(server.cgi(&name))
                .body(output.to_owned())
                .send()
        };
        let response =
            post("Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-Extra: 1\r\n\r\nnope")
                .await
                .unwrap();
        assert_eq!(response.status(), 404, "{name}");
        assert_eq!(response.headers()["x-extra"], "1");
        assert_eq!(response.text().await.unwrap(), "nope");

        let response = post("Location: https://example.com/next\n\n")
            .await
            .unwrap();
        assert_eq!(response.status(), 302, "{name}");
        assert_eq!(response.headers()["location"], "https://example.com/next");

        let response = post("just text, no header block").await.unwrap();
        assert_eq!(response.status(), 502, "{name}");
        assert!(response.text().await.unwrap().starts_with("bad gateway:"));
    }
    for name in twins("redirect-loop.wasm") {
        let (status, body, _) = get(&server, &name).await;
        assert_eq!(status, 500, "{name}");
        assert!(
            body.contains("too many internal redirects"),
            "{name}: {body}"
        );
    }
}

#[tokio::test]
async fn a_route_can_put_a_command_in_cgi_mode() {
    let config = "modules = \"modules\"\n[[route]]\npath = \"/raw\"\nmodule = \"cat-p2.wasm\"\nmode = \"cgi\"\n";
    let server = Server::with_config_and(config, P2_PROGRAMS, &[]);
    let response = client()
        .post(server.url("/raw"))
        .body("Status: 202 Accepted\nContent-Type: text/plain\n\nraw")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.text().await.unwrap(), "raw");
    assert_eq!(
        post_text(&server.cgi("cat-p2.wasm"), "Status: 202\n\nplain").await,
        "Status: 202\n\nplain",
        "the folder URL keeps the simple mode"
    );
}

#[tokio::test]
async fn a_commands_first_line_arrives_before_it_finishes() {
    let server = p2_server(&[]);
    let started = Instant::now();
    let mut response = client()
        .get(server.cgi("slow-lines-p2.wasm?3+400"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().expect("a first chunk");
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"line 0\n");
    assert!(
        first_at < Duration::from_millis(350),
        "first chunk after {first_at:?}"
    );
    let (rest, complete) = read_to_end(&mut response).await;
    assert!(complete);
    assert_eq!(rest, b"line 1\nline 2\n");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "finished after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_command_past_its_timeout_is_a_504_on_time() {
    let server = twins_server(&["--timeout", "400ms"]);
    for path in ["hostile.wasm?spin", "sleep.wasm?5000"] {
        let (name, query) = path.split_once('?').unwrap();
        for name in twins(name) {
            let (status, body, took) = get(&server, &format!("{name}?{query}")).await;
            assert_eq!(status, 504, "{name}?{query}");
            assert!(body.contains("time limit"), "{body}");
            assert!(
                took < Duration::from_millis(400) + SLACK,
                "{name}?{query} took {took:?}"
            );
        }
    }
    assert!(server.is_healthy().await);
    let (status, body, _) = get(&server, "sleep-p2.wasm?0").await;
    assert_eq!((status, body.as_str()), (200, "awake\n"));
}

#[tokio::test]
async fn a_spinning_command_does_not_slow_other_requests() {
    let server = p2_server(&["--timeout", "3s"]);
    let spinners: Vec<_> = (0..2)
        .map(|_| client().get(server.cgi("hostile-p2.wasm?spin")).send())
        .collect();
    let spinners = tokio::spawn(futures::future::join_all(spinners));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..10 {
        let (status, body, took) = get(&server, "sleep-p2.wasm?0").await;
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
async fn a_command_that_allocates_without_end_is_stopped_at_max_memory() {
    let server = twins_server(&["--max-memory", "32MiB"]);
    for name in twins("hostile.wasm") {
        let id = format!("alloc-{name}");
        let started = Instant::now();
        let response = client()
            .get(server.cgi(&format!("{name}?alloc")))
            .header("x-request-id", &id)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500, "{name}");
        assert!(started.elapsed() < Duration::from_secs(3));
        server.wait_for_line(&[&id, "memory.grow"]);

        let (status, body, _) = get(&server, &format!("{name}?big-memory+8")).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "ok 8\n"),
            "{name}: memory under the limit is fine"
        );
        let (status, _, _) = get(&server, &format!("{name}?big-memory+40")).await;
        assert_eq!(status, 500, "{name}");
    }
    assert!(server.is_healthy().await);
}

#[tokio::test]
async fn a_fuel_budget_stops_a_spinning_command_with_500() {
    let server = p2_server(&["--fuel", "5000000"]);
    let response = client()
        .get(server.cgi("hostile-p2.wasm?spin"))
        .header("x-request-id", "fuel-p2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    server.wait_for_line(&["ran out of fuel", "fuel=5000000", "fuel-p2"]);
    let (status, body, _) = get(&server, "sleep-p2.wasm?0").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "awake\n"),
        "ordinary commands fit in the budget"
    );
}

#[tokio::test]
async fn a_commands_output_past_max_output_is_cut() {
    let server = p2_server(&["--max-output", "256KiB", "--timeout", "10s"]);
    let started = Instant::now();
    let mut response = client()
        .get(server.cgi("hostile-p2.wasm?print"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (received, complete) = read_to_end(&mut response).await;
    assert!(!complete, "the client must see an incomplete body");
    assert!(received.len() <= 256 * 1024, "received {}", received.len());
    assert!(started.elapsed() < Duration::from_secs(3));
    server.wait_for_log("over max-output");
    assert!(server.is_healthy().await);
}

#[tokio::test]
async fn a_body_over_max_body_is_413_for_a_command() {
    let server = p2_server(&["--max-body", "1KiB"]);
    let response = client()
        .post(server.cgi("cat-p2.wasm"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let response = client()
        .post(server.cgi("cat-p2.wasm"))
        .body(vec![b'x'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), 1024);
}

#[tokio::test]
async fn a_stderr_flood_from_a_command_is_capped_in_the_log() {
    let server = p2_server(&["--timeout", "500ms"]);
    let (status, body, _) = get(&server, "hostile-p2.wasm?stderr").await;
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
async fn a_command_reading_stdin_past_its_end_forever_times_out() {
    let server = p2_server(&["--timeout", "400ms"]);
    let started = Instant::now();
    let response = client()
        .post(server.cgi("hostile-p2.wasm?read"))
        .body("finite")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_millis(400) + SLACK);
}

#[tokio::test]
async fn a_trapping_command_is_a_500_whose_stderr_goes_only_to_the_log() {
    let server = twins_server(&[]);
    for name in twins("trap.wasm") {
        let response = client().get(server.cgi(&name)).send().await.unwrap();
        assert_eq!(response.status(), 500, "{name}");
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.text().await.unwrap();
        assert!(
            body.contains(&id) && !body.contains("secret-stderr-line"),
            "{body}"
        );
        server.wait_for_line(&["secret-stderr-line", &id, &name]);

        let mut response = client()
            .get(server.cgi(&format!("{name}?after-output")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let (_, complete) = read_to_end(&mut response).await;
        assert!(!complete, "{name}: a trap after output must cut the body");
    }
}

#[tokio::test]
async fn a_commands_non_zero_exit_is_a_500_and_exit_zero_a_200() {
    let server = twins_server(&[]);
    for name in twins("exit-code.wasm") {
        for code in ["1", "3"] {
            let id = format!("exit-{code}-{name}");
            let response = client()
                .get(server.cgi(&format!("{name}?{code}")))
                .header("x-request-id", &id)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 500, "{name}?{code}");
            assert_eq!(response.headers()["x-request-id"], id.as_str());
            let body = response.text().await.unwrap();
            assert!(
                body.contains(&id) && !body.contains("leaving with"),
                "{body}"
            );
            let needle = format!("leaving with {code}");
            server.wait_for_line(&[&needle, &id, &name]);
        }
        let (status, body, _) = get(&server, &format!("{name}?0+print")).await;
        assert_eq!((status, body.as_str()), (200, "before exit\n"), "{name}");
    }
}

const GRANTS: &str = r#"
modules = "modules"

[[route]]
path = "/ro/..."
module = "fs-p2.wasm"
dirs = [{ host = "data", guest = "/data" }]

[[route]]
path = "/rw/..."
module = "fs-p2.wasm"
dirs = [{ host = "data", guest = "/data", read_only = false }]

[[route]]
path = "/none/..."
module = "fs-p2.wasm"
"#;

async fn fs(server: &Server, route: &str, query: &str) -> (u16, String) {
    let response = client()
        .get(server.url(&format!("/{route}?{query}")))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_command_reaches_only_the_directories_its_route_grants() {
    let server = Server::with_config_and(GRANTS, P2_PROGRAMS, &[]);
    let root = server.modules.path();
    assert_eq!(
        fs(&server, "ro", "read+/data/data.txt").await,
        (200, "granted data\n".to_owned())
    );
    assert_eq!(fs(&server, "ro", "write+/data/new.txt+x").await.0, 500);
    assert!(!root.join("data/new.txt").exists());

    assert_eq!(
        fs(&server, "rw", "write+/data/new.txt+written").await.0,
        200
    );
    assert_eq!(
        std::fs::read_to_string(root.join("data/new.txt")).unwrap(),
        "written"
    );

    assert_eq!(fs(&server, "none", "read+/data/data.txt").await.0, 500);
    assert_eq!(fs(&server, "none", "read+/etc/passwd").await.0, 500);

    std::fs::write(root.join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), root.join("data/link.txt")).unwrap();
    for query in [
        "read+/data/../secret.txt",
        "read+/data/../../etc/passwd",
        "read+/data/link.txt",
    ] {
        let (status, body) = fs(&server, "rw", query).await;
        assert_eq!(status, 500, "{query} gave {body:?}");
        assert!(!body.contains("outside") && !body.contains("root:"));
    }
    assert_eq!(
        fs(&server, "rw", "write+/data/../escaped.txt+x").await.0,
        500
    );
    assert!(!root.join("escaped.txt").exists());
}

#[tokio::test]
async fn route_args_env_and_limits_apply_to_a_command() {
    let config = r#"
modules = "modules"

[[route]]
path = "/api/..."
module = "env-dump-p2.wasm"
args = ["api"]
env = { ROUTE_NAME = "api", SERVER_NAME = "forged" }

[[route]]
path = "/slow"
module = "sleep-p2.wasm"
[route.limits]
timeout = "300ms"
max_body = "16"
"#;
    let server = Server::with_config_and(config, P2_PROGRAMS, &[]);
    let env = parse_env(&get_text(&server.url("/api/users/7?word")).await);
    assert_eq!(argv(&env), ["env-dump-p2.wasm", "api", "word"]);
    assert_eq!(env["SCRIPT_NAME"], "/api");
    assert_eq!(env["PATH_INFO"], "/users/7");
    assert_eq!(env["ROUTE_NAME"], "api");
    assert_eq!(env["SERVER_NAME"], "127.0.0.1", "meta-variables win");

    let response = client().get(server.url("/slow?2000")).send().await.unwrap();
    assert_eq!(response.status(), 504, "the route's 300ms timeout applies");
    let response = client()
        .post(server.url("/slow?1"))
        .body("x".repeat(17))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413, "the route's max_body applies");
}

#[tokio::test]
async fn a_head_request_runs_the_command_and_sends_no_body() {
    let server = p2_server(&[]);
    let response = client()
        .head(server.cgi("env-dump-p2.wasm"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(length > 0, "the length of the body a GET would get");
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_requests_each_get_their_own_command_instance() {
    let server = p2_server(&[]);
    let client = client();
    let requests = (0..32).map(|i| {
        let request = client
            .post(server.cgi(&format!("env-dump-p2.wasm/{i}?word{i}")))
            .header("X-Index", i.to_string())
            .body(format!("body {i}"))
            .send();
        async move { (i, request.await.unwrap().text().await.unwrap()) }
    });
    for (i, body) in futures::future::join_all(requests).await {
        let env = parse_env(&body);
        assert_eq!(
            argv(&env),
            ["env-dump-p2.wasm".to_owned(), format!("word{i}")]
        );
        assert_eq!(env["PATH_INFO"], format!("/{i}"));
        assert_eq!(env["HTTP_X_INDEX"], i.to_string());
        assert_eq!(env["CONTENT_LENGTH"], format!("body {i}").len().to_string());
    }
}

#[tokio::test]
async fn past_max_concurrency_commands_get_503_with_retry_after() {
    let server = p2_server(&["--max-concurrency", "1", "--queue-timeout", "100ms"]);
    let requests = (0..4).map(|_| client().get(server.cgi("sleep-p2.wasm?800")).send());
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

/// The value of the Prometheus sample named (with labels) exactly `sample`.
fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_commands_like_modules() {
    let server = p2_server(&["--timeout", "300ms"]);
    for _ in 0..3 {
        post_text(&server.cgi("cat-p2.wasm"), "x").await;
    }
    get(&server, "trap-p2.wasm").await;
    get(&server, "hostile-p2.wasm?spin").await;
    get(&server, "exit-code-p2.wasm?2").await;
    let text = get_text(&server.url("/metrics")).await;
    let expected = [
        (
            "wasm_cgi_requests_total{module=\"cat-p2.wasm\",status=\"2xx\"}",
            3.0,
        ),
        (
            "wasm_cgi_requests_total{module=\"trap-p2.wasm\",status=\"5xx\"}",
            1.0,
        ),
        (
            "wasm_cgi_module_failures_total{module=\"trap-p2.wasm\",kind=\"trap\"}",
            1.0,
        ),
        (
            "wasm_cgi_module_failures_total{module=\"hostile-p2.wasm\",kind=\"timeout\"}",
            1.0,
        ),
        (
            "wasm_cgi_module_failures_total{module=\"exit-code-p2.wasm\",kind=\"exit\"}",
            1.0,
        ),
        ("wasm_cgi_timeouts_total", 1.0),
        (
            "wasm_cgi_request_duration_seconds_count{module=\"cat-p2.wasm\"}",
            3.0,
        ),
        ("wasm_cgi_instances_in_flight", 0.0),
    ];
    for (name, value) in expected {
        assert_eq!(sample(&text, name), Some(value), "{name}:\n{text}");
    }
}

#[tokio::test]
async fn every_module_command_and_handler_is_listed_at_the_root() {
    let server = twins_server(&[]);
    let page = get_text(&server.url("/")).await;
    for (name, _) in every_program() {
        assert!(
            page.contains(&format!("href=\"/cgi-bin/wasm-run.cgi/{name}\"")),
            "{name} missing: {page}"
        );
    }
}

#[tokio::test]
async fn resident_memory_stays_flat_across_hostile_command_requests() {
    let server = p2_server(&[
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
                // Only the memory matters here: a cut response may even
                // fail to arrive at all.
                let url = server.cgi(&format!("hostile-p2.wasm?{}", kinds[i % kinds.len()]));
                if let Ok(response) = client().get(url).send().await {
                    let _ = response.bytes().await;
                }
            })
            .buffer_unordered(10)
            .collect::<Vec<_>>()
    };
    round(20).await;
    let before = server.rss_kib();
    round(60).await;
    let after = server.rss_kib();
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert!(server.is_healthy().await);
}
