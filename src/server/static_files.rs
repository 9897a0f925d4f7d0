//! Static files from `--www`, and the page at `/` listing the modules when
//! there is no `index.html`.

use std::fmt::Write as _;
use std::path::Path;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

use super::bodies::{BoxError, RequestBody, ResponseBody, full_body};
use super::cgi_bin::CGI_PREFIX;
use super::error::HttpError;
use super::state::AppState;

/// Characters escaped in a path segment of a link.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Serves a request that names no module: a file from `www`, or the listing.
pub async fn serve(
    state: &AppState,
    request: Request<RequestBody>,
) -> Result<Response<ResponseBody>, HttpError> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Err(HttpError::MethodNotAllowed);
    }
    let www = state.www.as_deref();
    if request.uri().path() == "/" && !www.is_some_and(|dir| dir.join("index.html").is_file()) {
        return Ok(listing(state));
    }
    let Some(www) = www else {
        return Err(HttpError::NotFound);
    };
    serve_file(www, request).await
}

async fn serve_file(
    www: &Path,
    request: Request<RequestBody>,
) -> Result<Response<ResponseBody>, HttpError> {
    let response = ServeDir::new(www)
        .append_index_html_on_directories(true)
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    if response.status() == StatusCode::NOT_FOUND {
        return Err(HttpError::NotFound);
    }
    Ok(response.map(|body| {
        body.map_err(|error| -> BoxError { Box::new(error) })
            .boxed_unsync()
    }))
}

/// A small HTML page linking every module.
fn listing(state: &AppState) -> Response<ResponseBody> {
    let mut page = String::from(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<title>wasm-cgi</title>\n\
         <body style=\"font-family: system-ui; padding: 1rem\">\n<h1>wasm-cgi</h1>\n<ul>\n",
    );
    for name in state.modules.names() {
        let href = format!("{CGI_PREFIX}/{}", utf8_percent_encode(&name, SEGMENT));
        let _ = writeln!(
            page,
            "<li><a href=\"{href}\"><code>{}</code></a></li>",
            escape_html(&name)
        );
    }
    page.push_str("</ul>\n</body>\n");
    let mut response = Response::new(full_body(page));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
