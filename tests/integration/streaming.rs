//! The response streams: a module's first bytes reach the client while it
//! is still running.

use std::time::{Duration, Instant};

use crate::support::{Server, client};

#[tokio::test]
async fn the_first_line_arrives_before_the_module_finishes() {
    let server = Server::start(&[]);
    let started = Instant::now();
    let mut response = client()
        .get(server.cgi("slow-lines.wasm?3+400"))
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

    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"line 1\nline 2\n");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "finished after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_streamed_response_is_chunked() {
    let server = Server::start(&[]);
    let response = server.raw(b"GET /cgi-bin/wasm-run.cgi/slow-lines.wasm?2+100 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert!(
        response.contains("transfer-encoding: chunked"),
        "{response}"
    );
    assert!(
        response.ends_with("0\r\n\r\n"),
        "a finished stream ends with the last chunk: {response:?}"
    );
}
