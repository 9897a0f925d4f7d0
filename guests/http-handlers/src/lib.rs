//! A `wasi:http/proxy` test handler whose behaviour is picked by the end of
//! the request path, whatever prefix it is mounted under (so
//! `/cgi-bin/wasm-run.cgi/handler.wasm/echo-body` and `/api/echo-body` both
//! echo the body):
//!
//! - `/echo-body`: `200`, the request body streamed back chunk by chunk, with
//!   the request's `content-type` (default `application/octet-stream`).
//! - `/status/NNN`: status `NNN`, body `status NNN\n`.
//! - `/stream?n=N&ms=M`: `N` lines `chunk I\n` (default 5), each flushed, `M`
//!   milliseconds apart (default 100).
//! - `/big?bytes=N`: `N` bytes of `x` (default 1 MiB).
//! - `/trap`: panics before setting a response.
//! - `/late-trap`: sends the head and `partial\n`, then panics.
//! - `/spin`: loops forever.
//! - `/grow`: touches 512 MiB of memory, then answers `grew\n`.
//! - `/no-response`: returns without setting a response.
//! - `/error-code`: sets the response to an `internal-error` error code.
//! - `/stderr`: writes `handler stderr line` to stderr, answers `ok\n`.
//! - `/outbound?url=URL`: GETs the (percent-encoded) `URL` through
//!   `wasi:http/outgoing-handler`; answers `upstream-status: S\n` and the
//!   upstream body, or `502` with `outbound error: CODE\n`.
//! - `/post-response?status=S`: answers `done\n` with status `S` (default
//!   200), then sleeps 200 ms and writes `after response` to stderr.
//! - anything else (such as `/echo`): `200`, a description of the request
//!   (method, path, scheme, authority, headers), the environment and the
//!   request body's length, one `key: value` line each.

use std::hint::black_box;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme, http_error_code,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

wasip2::http::proxy::export!(Handlers);

/// The most `blocking-write-and-flush` takes in one call.
const MAX_WRITE: usize = 4096;

/// How much `/big` sends without a `bytes` parameter.
const DEFAULT_BIG_BYTES: u64 = 1 << 20;

/// How much memory `/grow` touches.
const GROW_BYTES: usize = 512 << 20;

/// The exported `wasi:http/incoming-handler`.
struct Handlers;

impl Guest for Handlers {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((path_with_query.as_str(), ""));
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            [.., "status", code] => status(out, code),
            [.., "echo-body"] => echo_body(request, out),
            [.., "stream"] => stream(out, query),
            [.., "big"] => big(out, query),
            [.., "trap"] => panic!("trap requested"),
            [.., "late-trap"] => late_trap(out),
            [.., "spin"] => spin(),
            [.., "grow"] => grow(out),
            [.., "no-response"] => drop(out),
            [.., "error-code"] => error_code(out),
            [.., "stderr"] => stderr(out),
            [.., "outbound"] => outbound(out, query),
            [.., "post-response"] => post_response(out, query),
            _ => describe(request, out),
        }
    }
}

/// Any other path: the request, the environment and the body length as text.
fn describe(request: IncomingRequest, out: ResponseOutparam) {
    let mut text = String::new();
    text += &format!("method: {}\n", method_name(&request.method()));
    text += &format!(
        "path: {}\n",
        request.path_with_query().as_deref().unwrap_or("none")
    );
    text += &format!("scheme: {}\n", scheme_name(request.scheme().as_ref()));
    text += &format!(
        "authority: {}\n",
        request.authority().as_deref().unwrap_or("none")
    );
    for (name, value) in request.headers().entries() {
        text += &format!("header: {name}: {}\n", String::from_utf8_lossy(&value));
    }
    for (name, value) in std::env::vars() {
        text += &format!("env: {name}={value}\n");
    }
    let mut body_bytes = 0;
    read_body(&request, |chunk| body_bytes += chunk.len());
    text += &format!("body-bytes: {body_bytes}\n");
    respond(out, 200, text.as_bytes());
}

/// `/echo-body`: the request body back, each chunk written as it arrives.
fn echo_body(request: IncomingRequest, out: ResponseOutparam) {
    let content_type = request
        .headers()
        .get("content-type")
        .into_iter()
        .next()
        .unwrap_or_else(|| b"application/octet-stream".to_vec());
    let writer = BodyWriter::start(out, 200, &content_type);
    read_body(&request, |chunk| writer.write(chunk));
    writer.finish();
}

/// `/status/NNN`: that status, or `400` if `NNN` is no status code.
fn status(out: ResponseOutparam, code: &str) {
    match code.parse::<u16>() {
        Ok(code) if (100..=999).contains(&code) => {
            respond(out, code, format!("status {code}\n").as_bytes());
        }
        _ => respond(out, 400, b"invalid status code\n"),
    }
}

/// `/stream?n=N&ms=M`: the head first, then `N` flushed lines `M` ms apart.
fn stream(out: ResponseOutparam, query: &str) {
    let lines: u32 = query_number(query, "n").unwrap_or(5);
    let millis: u64 = query_number(query, "ms").unwrap_or(100);
    let writer = BodyWriter::start(out, 200, b"text/plain");
    for line in 0..lines {
        if line > 0 {
            sleep_ms(millis);
        }
        writer.write(format!("chunk {line}\n").as_bytes());
    }
    writer.finish();
}

/// `/big?bytes=N`: `N` bytes of `x`, written in the largest pieces allowed.
fn big(out: ResponseOutparam, query: &str) {
    let mut remaining: u64 = query_number(query, "bytes").unwrap_or(DEFAULT_BIG_BYTES);
    let piece = [b'x'; MAX_WRITE];
    let writer = BodyWriter::start(out, 200, b"text/plain");
    while remaining > 0 {
        let len = remaining.min(MAX_WRITE as u64) as usize;
        writer.write(&piece[..len]);
        remaining -= len as u64;
    }
    writer.finish();
}

/// `/late-trap`: a panic after the head and some body went out.
fn late_trap(out: ResponseOutparam) {
    let writer = BodyWriter::start(out, 200, b"text/plain");
    writer.write(b"partial\n");
    panic!("late trap requested");
}

/// `/spin`: a busy loop the optimizer cannot remove; the host must stop it.
fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// `/grow`: touches [`GROW_BYTES`] of memory (more than the host should
/// allow), then answers `grew\n`.
fn grow(out: ResponseOutparam) {
    let block = black_box(vec![1u8; GROW_BYTES]);
    drop(block);
    respond(out, 200, b"grew\n");
}

/// `/error-code`: an error instead of a response.
fn error_code(out: ResponseOutparam) {
    let error = ErrorCode::InternalError(Some("handler chose an error".into()));
    ResponseOutparam::set(out, Err(error));
}

/// `/stderr`: one line on stderr, then `ok\n`.
fn stderr(out: ResponseOutparam) {
    eprintln!("handler stderr line");
    respond(out, 200, b"ok\n");
}

/// `/post-response?status=S`: work after the response is complete.
fn post_response(out: ResponseOutparam, query: &str) {
    let status = query_param(query, "status")
        .and_then(|status| status.parse().ok())
        .unwrap_or(200);
    respond(out, status, b"done\n");
    sleep_ms(200);
    eprintln!("after response");
}

/// `/outbound?url=URL`: a GET of `URL` through the host, relayed as
/// `upstream-status: S\n` and the upstream body; `502` if the request fails,
/// `400` if `URL` is missing or not an `http(s)://` URL.
fn outbound(out: ResponseOutparam, query: &str) {
    let Some(request) = query_param(query, "url").and_then(|url| outgoing_request(&url)) else {
        respond(out, 400, b"outbound: missing or invalid url\n");
        return;
    };
    match fetch(request) {
        Ok((status, body)) => {
            let mut text = format!("upstream-status: {status}\n").into_bytes();
            text.extend_from_slice(&body);
            respond(out, 200, &text);
        }
        Err(code) => respond(out, 502, format!("outbound error: {code:?}\n").as_bytes()),
    }
}

/// A GET request for an `http://` or `https://` URL, or `None` if `url` is
/// not one.
fn outgoing_request(url: &str) -> Option<OutgoingRequest> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return None;
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_with_query) = rest.split_at(split);
    let path_with_query = match path_with_query {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_scheme(Some(&scheme)).ok()?;
    request.set_authority(Some(authority)).ok()?;
    request.set_path_with_query(Some(&path_with_query)).ok()?;
    Some(request)
}

/// Sends `request` and waits for the whole response: its status and body.
fn fetch(request: OutgoingRequest) -> Result<(u16, Vec<u8>), ErrorCode> {
    let future = outgoing_handler::handle(request, None)?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(result)) => result?,
        Some(Err(())) => return Err(ErrorCode::InternalError(Some("response taken".into()))),
        None => return Err(ErrorCode::InternalError(Some("response not ready".into()))),
    };
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| ErrorCode::InternalError(Some("no response body".into())))?;
    let mut bytes = Vec::new();
    let result = read_stream(&body, |chunk| bytes.extend_from_slice(chunk));
    drop(IncomingBody::finish(body));
    result.map(|()| (status, bytes))
}

/// Reads the whole body of `request`, handing each chunk to `on_chunk`.
/// Panics if the body was already taken or fails to arrive.
fn read_body(request: &IncomingRequest, on_chunk: impl FnMut(&[u8])) {
    let body = request.consume().expect("the request body is taken once");
    read_stream(&body, on_chunk).expect("the request body arrives");
    drop(IncomingBody::finish(body));
}

/// Reads `body`'s stream to its end, handing each chunk to `on_chunk`.
fn read_stream(body: &IncomingBody, mut on_chunk: impl FnMut(&[u8])) -> Result<(), ErrorCode> {
    let stream: InputStream = body.stream().expect("the body stream is taken once");
    loop {
        match stream.blocking_read(MAX_WRITE as u64) {
            Ok(chunk) => on_chunk(&chunk),
            Err(StreamError::Closed) => return Ok(()),
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(http_error_code(&error)
                    .unwrap_or(ErrorCode::InternalError(Some(error.to_debug_string()))));
            }
        }
    }
}

/// A whole `text/plain` response with `status` and `body`.
fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let writer = BodyWriter::start(out, status, b"text/plain");
    writer.write(body);
    writer.finish();
}

/// A response whose head is set and whose body is being written.
struct BodyWriter {
    /// The body's stream; dropped before `body` is finished.
    stream: OutputStream,
    /// The body itself, finished by [`BodyWriter::finish`].
    body: OutgoingBody,
}

impl BodyWriter {
    /// Sets a response with `status` and `content_type` on `out`, which sends
    /// the head, and opens its body.
    fn start(out: ResponseOutparam, status: u16, content_type: &[u8]) -> Self {
        let headers = Fields::from_list(&[("content-type".to_string(), content_type.to_vec())])
            .expect("the content type is a valid header value");
        let response = OutgoingResponse::new(headers);
        response
            .set_status_code(status)
            .expect("the status code is valid");
        let body = response.body().expect("a new response has a body");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("the body stream is taken once");
        Self { stream, body }
    }

    /// Writes and flushes `bytes`, in pieces of at most [`MAX_WRITE`] bytes
    /// (the most `blocking-write-and-flush` accepts; it waits for
    /// `check-write` to allow each piece). Panics if the client is gone.
    fn write(&self, bytes: &[u8]) {
        for piece in bytes.chunks(MAX_WRITE) {
            self.stream
                .blocking_write_and_flush(piece)
                .expect("the client takes the body");
        }
    }

    /// Ends the body, with no trailers.
    fn finish(self) {
        let Self { stream, body } = self;
        drop(stream);
        OutgoingBody::finish(body, None).expect("the body is complete");
    }
}

/// The method as it appears on the request line.
fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(name) => name,
    }
}

/// `http`, `https`, `other` (any other scheme) or `none`.
fn scheme_name(scheme: Option<&Scheme>) -> &'static str {
    match scheme {
        Some(Scheme::Http) => "http",
        Some(Scheme::Https) => "https",
        Some(Scheme::Other(_)) => "other",
        None => "none",
    }
}

/// Blocks for `millis` milliseconds on the monotonic clock.
fn sleep_ms(millis: u64) {
    wasip2::clocks::monotonic_clock::subscribe_duration(millis.saturating_mul(1_000_000)).block();
}

/// The query parameter `name` parsed as a number, if present and valid.
fn query_number<T: std::str::FromStr>(query: &str, name: &str) -> Option<T> {
    query_param(query, name)?.parse().ok()
}

/// The percent-decoded value of the first query parameter called `name`.
fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
}

/// Decodes `%XX` escapes; anything else, including a malformed escape, is
/// kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}
