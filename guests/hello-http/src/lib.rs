//! The built-in `hello-http.wasm` example: a `wasi:http/proxy` component that
//! answers every request with `200`, `content-type: text/plain;
//! charset=utf-8` and the body `Hello Pinky!\n`, the same greeting as the
//! `hello.wasm` CGI example.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(HelloHttp);

/// The greeting sent as the body of every response.
const GREETING: &[u8] = b"Hello Pinky!\n";

/// The exported `wasi:http/incoming-handler`.
struct HelloHttp;

impl Guest for HelloHttp {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[(
            "content-type".to_string(),
            b"text/plain; charset=utf-8".to_vec(),
        )])
        .expect("content-type is a valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("a new response has a body");
        ResponseOutparam::set(response_out, Ok(response));

        let stream = body.write().expect("the body stream is taken once");
        stream
            .blocking_write_and_flush(GREETING)
            .expect("the client takes the greeting");
        drop(stream);
        OutgoingBody::finish(body, None).expect("the body is complete");
    }
}
