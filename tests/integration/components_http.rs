//! `wasi:http/proxy` components served as native HTTP handlers: the whole
//! request in (body streamed), the handler's own response out, under the
//! limits, request ids, logs and metrics of CGI modules; outbound HTTP only
//! to a route's `allowed_hosts`. What handlers share word for word with
//! modules and commands (body echo, `max-body`, `max-output`, the access
//! line, SIGTERM) is tested with them, in the topic files.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    HANDLER, HOST_SECRET, SLACK, Server, assert_samples, assert_served_then_busy, assert_streams,
    client, get_at_once, get_text, get_with_id, parse_env, post_status, post_text, read_to_end,
    request_id, timed_get,
};

/// A server over the test handler alone, as `handler.wasm`, plus `args`.
fn handler_server(args: &[&str]) -> Server {
    Server::start_with(&[HANDLER], args)
}

/// The folder URL of `handler.wasm` followed by `path`.
fn handler_url(server: &Server, path: &str) -> String {
    server.cgi(&format!("handler.wasm{path}"))
}

/// `GET` of the handler at `path`: status, body, time taken.
async fn get(server: &Server, path: &str) -> (u16, String, Duration) {
    timed_get(&handler_url(server, path)).await
}

#[tokio::test]
async fn a_get_reaches_the_handler_with_its_path_scheme_authority_and_headers() {
    let server = handler_server(&[]);
    let response = client()
        .get(handler_url(&server, "/echo?x=1"))
        .header("X-Custom", "first")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain");
    let id = request_id(&response);
    assert_eq!(id.len(), 32);
    let body = response.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    for expected in [
        "method: GET".to_owned(),
        "path: /cgi-bin/wasm-run.cgi/handler.wasm/echo?x=1".to_owned(),
        "scheme: http".to_owned(),
        format!("authority: 127.0.0.1:{}", server.addr.port()),
        "header: x-custom: first".to_owned(),
        format!("header: x-request-id: {id}"),
        "body-bytes: 0".to_owned(),
    ] {
        assert!(lines.contains(&expected.as_str()), "{expected:?} in {body}");
    }
    assert!(
        !body.contains("env: "),
        "no environment without a route: {body}"
    );
    assert!(!body.contains(HOST_SECRET.1), "{body}");
}

#[tokio::test]
async fn a_handler_sees_authorization_but_not_the_headers_wasi_http_keeps_from_guests() {
    let server = handler_server(&[]);
    let response = client()
        .get(handler_url(&server, "/echo"))
        .header("Authorization", "Bearer for-the-handler")
        .header("Proxy-Authorization", "Basic bm90LWZvci1ndWVzdHM=")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("header: authorization: Bearer for-the-handler\n"),
        "{body}"
    );
    for kept_back in ["proxy-authorization", "header: host:", "connection"] {
        assert!(!body.contains(kept_back), "{kept_back} in {body}");
    }
}

#[tokio::test]
async fn a_client_request_id_reaches_the_handler_and_comes_back() {
    let server = handler_server(&[]);
    let response = get_with_id(&handler_url(&server, "/echo"), "client-id-7").await;
    assert_eq!(response.headers()["x-request-id"], "client-id-7");
    let body = response.text().await.unwrap();
    assert_eq!(
        body.matches("header: x-request-id: ").count(),
        1,
        "one request id: {body}"
    );
    assert!(
        body.contains("header: x-request-id: client-id-7\n"),
        "{body}"
    );
}

const ROUTES: &str = r#"
modules = "modules"

[[route]]
path = "/api/..."
module = "handler.wasm"
env = { ROUTE_NAME = "api", GREETING = "hello there" }

[[route]]
path = "/limited/..."
module = "handler.wasm"
[route.limits]
timeout = "300ms"
max_body = "16"
"#;

#[tokio::test]
async fn route_env_reaches_the_handler_and_the_route_prefix_stays_in_its_path() {
    let server = Server::with_config_and(ROUTES, &[HANDLER], &[]);
    let (status, body, _) = timed_get(&server.url("/api/users/7?q=1")).await;
    assert_eq!(status, 200);
    for expected in [
        "path: /api/users/7?q=1",
        "env: ROUTE_NAME=api",
        "env: GREETING=hello there",
    ] {
        assert!(
            body.lines().any(|l| l == expected),
            "{expected:?} in {body}"
        );
    }
    assert_eq!(
        body.lines().filter(|l| l.starts_with("env: ")).count(),
        2,
        "only the route's env: {body}"
    );
    server.wait_for_line(&[
        "wasm_cgi::access",
        "module=\"handler.wasm\"",
        "route=\"/api/...\"",
    ]);
}

#[tokio::test]
async fn route_limits_apply_to_a_handler() {
    let server = Server::with_config_and(ROUTES, &[HANDLER], &[]);
    let (status, _, took) = timed_get(&server.url("/limited/spin")).await;
    assert_eq!(status, 504, "the route's 300ms timeout applies");
    assert!(took < Duration::from_millis(300) + SLACK, "took {took:?}");
    assert_eq!(
        post_status(&server.url("/limited/echo"), "x".repeat(17)).await,
        413,
        "the route's max_body applies"
    );
    assert_eq!(
        post_text(&server.url("/limited/echo-body"), "x".repeat(16)).await,
        "x".repeat(16)
    );
}

#[tokio::test]
async fn a_posted_body_reaches_the_handler_with_its_content_type() {
    let server = handler_server(&[]);
    let response = client()
        .post(handler_url(&server, "/echo-body"))
        .header("Content-Type", "application/json")
        .body("{\"a\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), "{\"a\":1}");

    let described = post_text(&handler_url(&server, "/echo"), vec![7u8; 1000]).await;
    assert!(described.contains("method: POST\n"), "{described}");
    assert!(described.contains("body-bytes: 1000\n"), "{described}");
}

#[tokio::test]
async fn the_body_streams_to_the_handler_while_the_client_sends_it() {
    let server = handler_server(&[]);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream(receiver));
    let mut response = client()
        .post(handler_url(&server, "/echo-body"))
        .body(body)
        .send()
        .await
        .unwrap();
    sender.send(Ok(b"first piece\n".to_vec())).await.unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().expect("the first piece");
    assert_eq!(&first[..], b"first piece\n", "echoed before the body ended");
    sender.send(Ok(b"second piece\n".to_vec())).await.unwrap();
    drop(sender);
    let (rest, complete) = read_to_end(&mut response).await;
    assert!(complete);
    assert_eq!(rest, b"second piece\n");
}

/// The receiving end of `receiver` as a stream.
fn tokio_stream<T>(mut receiver: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

#[tokio::test]
async fn a_handler_sets_its_own_status() {
    let server = handler_server(&[]);
    for code in [418, 201, 404, 503] {
        let (status, body, _) = get(&server, &format!("/status/{code}")).await;
        assert_eq!(status, code);
        assert_eq!(body, format!("status {code}\n"));
    }
}

#[tokio::test]
async fn an_informational_status_from_a_handler_is_a_502() {
    // Regression: a 1xx went to hyper, which answered 500 and closed.
    let server = handler_server(&[]);
    for code in [100, 101, 103] {
        let (status, body, _) = get(&server, &format!("/status/{code}")).await;
        assert_eq!(status, 502, "{code}: {body}");
        assert!(body.contains("informational"), "{body}");
    }
    assert!(server.is_healthy().await);
}

#[tokio::test]
async fn a_handler_response_streams_as_it_is_written() {
    let server = handler_server(&[]);
    assert_streams(
        &server,
        "handler.wasm/stream?n=2&ms=1500",
        b"chunk 0\n",
        b"chunk 1\n",
    )
    .await;
}

#[tokio::test]
async fn a_handler_that_traps_or_sets_no_response_is_a_500_naming_the_request_id() {
    let server = handler_server(&[]);
    for (path, says) in [
        ("/trap", "internal error"),
        ("/no-response", "without sending a response"),
    ] {
        let response = client()
            .get(handler_url(&server, path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500, "{path}");
        let id = request_id(&response);
        let body = response.text().await.unwrap();
        assert!(body.contains(says) && body.contains(&id), "{path}: {body}");
        assert!(!body.contains("trap requested"), "{path}: {body}");
    }
    assert!(server.is_healthy().await);
}

#[tokio::test]
async fn a_handler_error_code_is_a_502() {
    let server = handler_server(&[]);
    let (status, body, _) = get(&server, "/error-code").await;
    assert_eq!(status, 502);
    assert!(body.starts_with("bad gateway:"), "{body}");
}

#[tokio::test]
async fn a_trap_after_the_response_started_cuts_the_body_short() {
    let server = handler_server(&[]);
    let mut response = get_with_id(&handler_url(&server, "/late-trap"), "late-trap-1").await;
    assert_eq!(response.status(), 200);
    let (received, complete) = read_to_end(&mut response).await;
    assert!(!complete, "the client must see an incomplete body");
    assert!(b"partial\n".starts_with(&received), "{received:?}");
    server.wait_for_line(&["wasm_cgi::access", "late-trap-1", "body=\"cut\""]);
}

#[tokio::test]
async fn a_spinning_handler_is_stopped_at_its_timeout_with_504() {
    let server = handler_server(&["--timeout", "1s"]);
    let (status, body, took) = get(&server, "/spin").await;
    assert_eq!(status, 504);
    assert!(body.contains("time limit"), "{body}");
    assert!(took < Duration::from_secs(1) + SLACK, "took {took:?}");
    assert!(server.is_healthy().await);
    let (status, _, _) = get(&server, "/echo").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_handler_growing_past_max_memory_is_a_500_and_the_log_says_why() {
    let server = handler_server(&[]);
    let response = get_with_id(&handler_url(&server, "/grow"), "grow-1").await;
    assert_eq!(response.status(), 500);
    server.wait_for_line(&["grow-1", "memory.grow"]);
    assert!(server.is_healthy().await);
}

#[tokio::test]
async fn handler_stderr_goes_to_the_log_with_the_request_id() {
    let server = handler_server(&[]);
    let response = get_with_id(&handler_url(&server, "/stderr"), "stderr-1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok\n");
    server.wait_for_line(&["handler stderr line", "stderr-1", "handler.wasm"]);
}

#[tokio::test]
async fn work_after_the_response_does_not_hold_it_back() {
    let server = handler_server(&[]);
    let response = get_with_id(&handler_url(&server, "/post-response"), "post-response-1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "done\n");
    assert!(
        !server.log().contains("after response"),
        "the response waited for the work after it"
    );
    server.wait_for_line(&["after response", "post-response-1"]);
}

/// A tiny HTTP/1.1 server on `127.0.0.1:0` answering every request with
/// `200` and `upstream body\n`: its port, and the request heads it received.
async fn upstream() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let response = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 14\r\nconnection: close\r\n\r\nupstream body\n";
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, heads)
}

/// `url` percent-encoded as a query value.
fn encoded(url: &str) -> String {
    url.replace('%', "%25")
        .replace(':', "%3A")
        .replace('/', "%2F")
        .replace('?', "%3F")
        .replace('&', "%26")
        .replace('=', "%3D")
}

#[tokio::test]
async fn outbound_http_is_denied_without_allowed_hosts_before_any_connection() {
    let (port, heads) = upstream().await;
    let server = handler_server(&[]);
    for url in [
        "http://example.com/".to_owned(),
        "https://example.com/".to_owned(),
        format!("http://127.0.0.1:{port}/hello"),
    ] {
        let started = Instant::now();
        let (status, body, _) = get(&server, &format!("/outbound?url={}", encoded(&url))).await;
        assert_eq!(status, 502, "{url}: {body}");
        assert!(
            body.starts_with("outbound error: ") && body.contains("HttpRequestDenied"),
            "{url}: {body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{url}: denied without network use, yet took {:?}",
            started.elapsed()
        );
    }
    assert!(
        heads.lock().unwrap().is_empty(),
        "a denied request went out"
    );
}

#[tokio::test]
async fn outbound_http_reaches_only_the_hosts_and_ports_a_route_allows() {
    let (port, heads) = upstream().await;
    let config = format!(
        r#"
modules = "modules"

[[route]]
path = "/allowed/..."
module = "handler.wasm"
allowed_hosts = ["127.0.0.1:{port}"]

[[route]]
path = "/other-port/..."
module = "handler.wasm"
allowed_hosts = ["127.0.0.1:1"]

[[route]]
path = "/default-port/..."
module = "handler.wasm"
allowed_hosts = ["127.0.0.1", "*", "*.example.com"]

[[route]]
path = "/anywhere/..."
module = "handler.wasm"
allowed_hosts = ["*:{port}"]
"#
    );
    let server = Server::with_config_and(&config, &[HANDLER], &[]);
    let target = encoded(&format!("http://127.0.0.1:{port}/hello?q=1"));
    let fetch = |route: &str| {
        let url = server.url(&format!("/{route}/outbound?url={target}"));
        async move {
            let (status, body, _) = timed_get(&url).await;
            (status, body)
        }
    };

    for route in ["allowed", "anywhere"] {
        let (status, body) = fetch(route).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "upstream-status: 200\nupstream body\n"),
            "{route}"
        );
    }
    {
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 2, "{heads:?}");
        assert!(
            heads[0].starts_with("GET /hello?q=1 HTTP/1.1\r\n"),
            "{heads:?}"
        );
        assert!(
            heads[0]
                .to_ascii_lowercase()
                .contains(&format!("host: 127.0.0.1:{port}\r\n")),
            "{heads:?}"
        );
    }

    for route in ["other-port", "default-port"] {
        let (status, body) = fetch(route).await;
        assert_eq!(status, 502, "{route}: {body}");
        assert!(body.contains("HttpRequestDenied"), "{route}: {body}");
    }
    assert_eq!(heads.lock().unwrap().len(), 2, "a denied request went out");

    let (status, body, _) = get(&server, &format!("/outbound?url={target}")).await;
    assert_eq!(status, 502, "the folder URL allows no host: {body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
}

#[tokio::test]
async fn an_outbound_request_to_a_silent_host_ends_with_the_requests_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            connections.push(stream);
        }
    });
    let config = format!(
        "modules = \"modules\"\n[[route]]\npath = \"/out/...\"\nmodule = \"handler.wasm\"\nallowed_hosts = [\"127.0.0.1:{port}\"]\n"
    );
    let server = Server::with_config_and(&config, &[HANDLER], &["--timeout", "1s"]);
    let target = encoded(&format!("http://127.0.0.1:{port}/never"));
    let (status, _, took) = timed_get(&server.url(&format!("/out/outbound?url={target}"))).await;
    assert!([502, 504].contains(&status), "{status}");
    assert!(took < Duration::from_secs(1) + SLACK, "took {took:?}");
    assert!(server.is_healthy().await);
    held.abort();
}

#[tokio::test]
async fn a_head_request_to_a_handler_gets_the_head_and_no_body() {
    let server = handler_server(&[]);
    let response = client()
        .head(handler_url(&server, "/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert!(response.bytes().await.unwrap().is_empty());

    let response = server.raw(
        b"HEAD /cgi-bin/wasm-run.cgi/handler.wasm/status/404 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    assert!(response.ends_with("\r\n\r\n"), "no body: {response:?}");

    // The handler still runs to its end, past its (discarded) body; so it
    // does when it answers with a status that carries no body.
    let response = client()
        .head(handler_url(&server, "/post-response"))
        .header("x-request-id", "head-post-response")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.wait_for_line(&["after response", "head-post-response"]);
    for status in [204, 304] {
        let id = format!("post-response-{status}");
        let url = handler_url(&server, &format!("/post-response?status={status}"));
        let response = get_with_id(&url, &id).await;
        assert_eq!(response.status().as_u16(), status);
        assert!(response.bytes().await.unwrap().is_empty());
        server.wait_for_line(&["after response", &id]);
    }
}

#[tokio::test]
async fn an_http_1_0_request_without_host_still_reaches_the_handler() {
    let server = handler_server(&[]);
    let response = server.raw(b"GET /cgi-bin/wasm-run.cgi/handler.wasm/echo HTTP/1.0\r\n\r\n");
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(
        response.contains(&format!("authority: 127.0.0.1:{}\n", server.addr.port())),
        "{response}"
    );
}

#[tokio::test]
async fn past_max_concurrency_handler_requests_get_503_with_retry_after() {
    let server = handler_server(&["--max-concurrency", "2", "--queue-timeout", "100ms"]);
    let answers = get_at_once(&handler_url(&server, "/stream?n=4&ms=200"), 5).await;
    assert_served_then_busy(&answers, 2);
    for (status, _, body) in answers {
        if status == 200 {
            assert_eq!(body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
        }
    }
}

#[tokio::test]
async fn concurrent_requests_each_get_their_own_handler_instance() {
    let server = handler_server(&[]);
    let client = client();
    let requests = (0..32).map(|i| {
        let request = client
            .post(handler_url(&server, &format!("/echo/{i}")))
            .header("X-Index", i.to_string())
            .body(vec![b'b'; i])
            .send();
        async move { (i, request.await.unwrap().text().await.unwrap()) }
    });
    for (i, body) in futures::future::join_all(requests).await {
        assert!(
            body.contains(&format!(
                "path: /cgi-bin/wasm-run.cgi/handler.wasm/echo/{i}\n"
            )),
            "{body}"
        );
        assert!(body.contains(&format!("header: x-index: {i}\n")), "{body}");
        assert!(body.contains(&format!("body-bytes: {i}\n")), "{body}");
    }
}

#[tokio::test]
async fn metrics_count_handler_requests_like_module_requests() {
    let server = handler_server(&["--timeout", "300ms"]);
    for _ in 0..3 {
        get(&server, "/echo").await;
    }
    get(&server, "/status/404").await;
    get(&server, "/trap").await;
    get(&server, "/spin").await;
    let text = get_text(&server.url("/metrics")).await;
    assert_samples(
        &text,
        &[
            (
                "wasm_cgi_requests_total{module=\"handler.wasm\",status=\"2xx\"}",
                3.0,
            ),
            (
                "wasm_cgi_requests_total{module=\"handler.wasm\",status=\"4xx\"}",
                1.0,
            ),
            (
                "wasm_cgi_requests_total{module=\"handler.wasm\",status=\"5xx\"}",
                2.0,
            ),
            (
                "wasm_cgi_module_failures_total{module=\"handler.wasm\",kind=\"trap\"}",
                1.0,
            ),
            (
                "wasm_cgi_module_failures_total{module=\"handler.wasm\",kind=\"timeout\"}",
                1.0,
            ),
            ("wasm_cgi_timeouts_total", 1.0),
            (
                "wasm_cgi_request_duration_seconds_count{module=\"handler.wasm\"}",
                6.0,
            ),
            ("wasm_cgi_instances_in_flight", 0.0),
        ],
    );
}

#[tokio::test]
async fn a_module_a_command_and_a_handler_answer_side_by_side() {
    let server = Server::start_all(&[]);
    let module = parse_env(&get_text(&server.cgi("env-dump.wasm/m?one")).await);
    assert_eq!(module["ARGV[1]"], "one");
    assert_eq!(module["PATH_INFO"], "/m");
    let command = parse_env(&get_text(&server.cgi("env-dump-p2.wasm/c?two")).await);
    assert_eq!(command["ARGV[1]"], "two");
    assert_eq!(command["PATH_INFO"], "/c");
    let handler = get_text(&handler_url(&server, "/h?three")).await;
    assert!(
        handler.contains("path: /cgi-bin/wasm-run.cgi/handler.wasm/h?three\n"),
        "{handler}"
    );
    assert_eq!(post_text(&server.cgi("cat.wasm"), "p1").await, "p1");
    assert_eq!(post_text(&server.cgi("cat-p2.wasm"), "p2").await, "p2");
    assert_eq!(
        post_text(&handler_url(&server, "/echo-body"), "http").await,
        "http"
    );
}
