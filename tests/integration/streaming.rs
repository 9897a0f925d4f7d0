//! The response streams: a module's or command's first bytes reach the
//! client while it is still running.

use crate::support::{Server, assert_streams, twins};

#[tokio::test]
async fn the_first_line_arrives_before_the_module_finishes() {
    let server = Server::start_all(&[]);
    for name in twins("slow-lines.wasm") {
        assert_streams(&server, &format!("{name}?2+1500"), b"line 0\n", b"line 1\n").await;
    }
}

#[tokio::test]
async fn a_streamed_response_is_chunked() {
    let server = Server::start_all(&[]);
    for name in twins("slow-lines.wasm") {
        let response = server.raw(
            format!("GET /cgi-bin/wasm-run.cgi/{name}?2+100 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(
            response.contains("transfer-encoding: chunked"),
            "{name}: {response}"
        );
        assert!(
            response.ends_with("0\r\n\r\n"),
            "{name}: a finished stream ends with the last chunk: {response:?}"
        );
    }
}
