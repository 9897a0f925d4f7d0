//! `wasmtime serve` baseline: the same reply as the wasm-cgi hello module,
//! as a wasi:http incoming handler.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(Hello);

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[(
            "content-type".to_string(),
            b"text/plain; charset=utf-8".to_vec(),
        )])
        .expect("valid header");
        let resp = OutgoingResponse::new(headers);
        let body = resp.body().expect("outgoing body");
        ResponseOutparam::set(response_out, Ok(resp));
        let out = body.write().expect("body stream");
        out.blocking_write_and_flush(b"Hello Pinky!\n")
            .expect("write body");
        drop(out);
        OutgoingBody::finish(body, None).expect("finish body");
    }
}
