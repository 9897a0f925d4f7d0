//! The request body reaches stdin byte for byte, and stdout reaches the
//! client byte for byte; for modules, commands and a handler's own body.

use crate::support::{Server, client, twins};

/// Every byte value, many times over, in a pattern that catches reordering.
fn binary_payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 256) as u8).collect()
}

/// The URLs that echo the request body: `cat.wasm`, its `-p2` twin, and the
/// handler's `/echo-body`.
fn echoes(server: &Server) -> Vec<String> {
    let mut urls: Vec<String> = twins("cat.wasm").iter().map(|n| server.cgi(n)).collect();
    urls.push(server.cgi("handler.wasm/echo-body"));
    urls
}

#[tokio::test]
async fn a_binary_post_body_comes_back_byte_for_byte() {
    let server = Server::start_all(&[]);
    for url in echoes(&server) {
        for len in [0, 1, 4095, 4096, 4097, 65_536, 300_000, 1 << 20] {
            let payload = binary_payload(len);
            let response = client()
                .post(&url)
                .header("Content-Type", "application/octet-stream")
                .body(payload.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{url}: len {len}");
            let body = response.bytes().await.unwrap();
            assert!(
                body[..] == payload[..],
                "{url}: len {len}: got {} bytes back",
                body.len()
            );
        }
    }
}

#[tokio::test]
async fn a_chunked_binary_body_is_dechunked() {
    let server = Server::start_all(&[]);
    let payload = binary_payload(100_000);
    for url in echoes(&server) {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            payload.chunks(7_000).map(|c| Ok(c.to_vec())).collect();
        let response = client()
            .post(&url)
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert!(response.bytes().await.unwrap()[..] == payload[..], "{url}");
    }
}

#[tokio::test]
async fn simple_mode_is_plain_text_with_a_length_for_short_output() {
    let server = Server::start(&[]);
    let response = client()
        .post(server.cgi("cat.wasm"))
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(response.headers()["content-length"], "2");
    assert_eq!(response.text().await.unwrap(), "hi");
}

#[tokio::test]
async fn a_head_request_runs_the_module_and_sends_no_body() {
    let server = Server::start_all(&[]);
    for name in twins("sleep.wasm") {
        let response = server.raw(
            format!("HEAD /cgi-bin/wasm-run.cgi/{name}?10 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(response.starts_with("HTTP/1.1 200"), "{name}: {response}");
        assert!(
            response.contains("content-length: 6\r\n"),
            "{name}: the length a GET would get: {response}"
        );
        assert!(
            response.ends_with("\r\n\r\n"),
            "{name}: HEAD response has a body: {response:?}"
        );
    }
}

#[tokio::test]
async fn large_uploads_stream_to_the_module_instead_of_into_memory() {
    // Regression: a CGI body was read whole, about twice over, before the
    // module started: parallel large uploads took the host's memory.
    const UPLOAD: usize = 32 << 20;
    let server = Server::start_all(&["--max-body", "64MiB"]);
    let before = server.peak_rss_kib();
    let body = bytes::Bytes::from(vec![b'u'; UPLOAD]);
    let uploads = (0..6).map(|i| {
        let url = server.cgi(&twins("wc.wasm")[i % 2]);
        let body = body.clone();
        async move {
            let response = client().post(url).body(body).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        }
    });
    for counted in futures::future::join_all(uploads).await {
        assert_eq!(counted, format!("{UPLOAD}\n"));
    }
    let after = server.peak_rss_kib();
    assert!(
        after < before + 64 * 1024,
        "peak resident memory rose from {before} KiB to {after} KiB for 6 uploads of 32 MiB"
    );
}
