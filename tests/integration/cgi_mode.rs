//! `cgi` mode: every response shape a module or command can produce (RFC
//! 3875 section 6), using `cat.wasm` and its `-p2` twin to echo the exact
//! output a test posts.

use crate::support::{Server, client, twins};

/// `POST` of `output` to the echoing program `name`.
async fn cgi_output(server: &Server, name: &str, output: &str) -> reqwest::Response {
    client()
        .post(server.cgi(name))
        .body(output.to_owned())
        .send()
        .await
        .unwrap()
}

fn cgi_server() -> Server {
    Server::start_all(&["--mode", "cgi"])
}

#[tokio::test]
async fn status_and_headers_set_the_response() {
    let server = cgi_server();
    for name in twins("cat.wasm") {
        let response = cgi_output(
            &server,
            &name,
            "Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-Extra: 1\r\n\r\nnope",
        )
        .await;
        assert_eq!(response.status(), 404, "{name}");
        assert_eq!(response.headers()["content-type"], "text/plain");
        assert_eq!(response.headers()["x-extra"], "1");
        assert_eq!(response.text().await.unwrap(), "nope");
    }
}

#[tokio::test]
async fn lf_only_header_blocks_are_accepted_and_status_defaults_to_200() {
    let server = cgi_server();
    for name in twins("cat.wasm") {
        let response = cgi_output(&server, &name, "Content-Type: text/html\n\n<p>hi</p>\n").await;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.headers()["content-type"], "text/html");
        assert_eq!(response.text().await.unwrap(), "<p>hi</p>\n");
    }
}

#[tokio::test]
async fn repeated_headers_stay_repeated() {
    let server = cgi_server();
    for name in twins("cat.wasm") {
        let response = cgi_output(
            &server,
            &name,
            "Content-Type: text/plain\nSet-Cookie: a=1\nSet-Cookie: b=2\n\nok",
        )
        .await;
        let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"], "{name}");
    }
}

#[tokio::test]
async fn hop_by_hop_headers_from_the_module_are_dropped() {
    let server = cgi_server();
    for name in twins("cat.wasm") {
        let response = cgi_output(&server, &name, "Content-Type: text/plain\nConnection: close\nContent-Length: 999\nX-Request-Id: forged\n\nok").await;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.headers()["content-length"], "2");
        assert_ne!(response.headers()["x-request-id"], "forged");
        assert_eq!(response.text().await.unwrap(), "ok");
    }
}

#[tokio::test]
async fn an_absolute_location_redirects_with_302_unless_a_status_is_given() {
    let server = cgi_server();
    for name in twins("cat.wasm") {
        let response = cgi_output(&server, &name, "Location: https://example.com/next\n\n").await;
        assert_eq!(response.status(), 302, "{name}");
        assert_eq!(response.headers()["location"], "https://example.com/next");

        let response = cgi_output(
            &server,
            &name,
            "Status: 301 Moved Permanently\nLocation: https://example.com/\n\n",
        )
        .await;
        assert_eq!(response.status(), 301, "{name}");
    }
}

#[tokio::test]
async fn a_local_location_is_served_as_an_internal_redirect() {
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("page.txt"), "static page\n").unwrap();
    let server = Server::start_all(&["--mode", "cgi", "--www", www.path().to_str().unwrap()]);
    for name in twins("cat.wasm") {
        let response = cgi_output(&server, &name, "Location: /page.txt\n\n").await;
        assert_eq!(response.status(), 200, "{name}");
        assert!(response.headers().get("location").is_none());
        assert_eq!(response.text().await.unwrap(), "static page\n");
    }
}

#[tokio::test]
async fn more_than_five_internal_redirects_are_a_500() {
    let server = cgi_server();
    for name in twins("redirect-loop.wasm") {
        let response = client().get(server.cgi(&name)).send().await.unwrap();
        assert_eq!(response.status(), 500, "{name}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains("too many internal redirects"),
            "{name}: {body}"
        );
    }
}

#[tokio::test]
async fn invalid_cgi_output_is_a_502_with_a_short_message() {
    let server = cgi_server();
    for name in twins("cat.wasm") {
        for output in [
            "",
            "just text, no header block",
            "Content-Type: text/plain",
            "X-Only: header\n\nbody",
            "Status: abc\nContent-Type: text/plain\n\n",
            "Status: 700 Too High\nContent-Type: text/plain\n\n",
            "Bad Header Name: x\nContent-Type: text/plain\n\n",
            "Location: not/absolute\n\n",
            &format!("X-Big: {}\n\n", "a".repeat(70_000)),
        ] {
            let response = cgi_output(&server, &name, output).await;
            assert_eq!(
                response.status(),
                502,
                "{name}: output {:?}",
                &output[..output.len().min(40)]
            );
            let body = response.text().await.unwrap();
            assert!(
                body.starts_with("bad gateway:") && body.len() < 400,
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn a_head_request_in_cgi_mode_gets_the_status_and_no_body() {
    let server = cgi_server();
    for name in twins("redirect-loop.wasm") {
        let response = client().head(server.cgi(&name)).send().await.unwrap();
        assert_eq!(response.status(), 500, "{name}");
    }
    for name in twins("cat.wasm") {
        let response = server.raw(
            format!(
                "HEAD /cgi-bin/wasm-run.cgi/{name} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert!(response.starts_with("HTTP/1.1 502"), "{name}: {response}");
    }
}
