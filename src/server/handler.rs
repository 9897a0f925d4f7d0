//! The request handler: assigns the request id, routes the request (health,
//! `/cgi-bin/wasm-run.cgi/…`, static files), follows internal redirects, and
//! writes the access log line.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http::header::HeaderValue;
use http::{Request, Response, StatusCode};

use super::error::{HttpError, plain_text};
use super::execute::{Endpoint, Next, execute};
use super::request_id::{REQUEST_ID, request_id};
use super::{AppState, Connection, RequestBody, ResponseBody, cgi_bin, static_files};
use crate::modules::is_module_file;

/// Internal redirects (`cgi` mode, local `Location`) followed per request.
pub const MAX_REDIRECTS: usize = 5;

/// Longest request target (path and query) accepted, as Apache's
/// `LimitRequestLine`; longer ones get 414.
pub const MAX_URI_LEN: usize = 8 * 1024;

/// Answers one request. Never fails: every error is a response.
pub async fn handle(
    state: Arc<AppState>,
    request: Request<RequestBody>,
    connection: Connection,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let request_id = request_id(request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();

    let mut response = follow_redirects(&state, request, &connection, &request_id)
        .await
        .unwrap_or_else(|error| error.into_response(&request_id));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    tracing::info!(
        target: "wasm_cgi::access",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        duration_us = started.elapsed().as_micros() as u64,
        request_id = %request_id,
        client = %connection.remote.ip(),
    );
    response
}

async fn follow_redirects(
    state: &AppState,
    mut request: Request<RequestBody>,
    connection: &Connection,
    request_id: &Arc<str>,
) -> Result<Response<ResponseBody>, HttpError> {
    for _ in 0..=MAX_REDIRECTS {
        match dispatch(state, request, connection, request_id).await? {
            Next::Response(response) => return Ok(response),
            Next::Redirect(next) => request = next,
        }
    }
    Err(HttpError::TooManyRedirects)
}

/// Routes one request (or one internal redirect) to what answers it.
async fn dispatch(
    state: &AppState,
    request: Request<RequestBody>,
    connection: &Connection,
    request_id: &Arc<str>,
) -> Result<Next, HttpError> {
    if request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len())
        > MAX_URI_LEN
    {
        return Err(HttpError::UriTooLong);
    }
    match request.uri().path() {
        "/healthz" => return Ok(Next::Response(plain_text(StatusCode::OK, "ok\n"))),
        "/readyz" => {
            let response = if state.ready.load(Ordering::Acquire) {
                plain_text(StatusCode::OK, "ready\n")
            } else {
                plain_text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            };
            return Ok(Next::Response(response));
        }
        _ => {}
    }
    let uri = request.uri().clone();
    if let Some(found) = state.routes.find(uri.path()) {
        let entry = state
            .modules
            .get(&found.route.config.module)
            .ok_or(HttpError::NotFound)?;
        let endpoint = Endpoint {
            program: entry.program.clone(),
            script_name: found.script_name.to_owned(),
            path_info: cgi_bin::path_info(found.rest)?,
            mode: found.route.config.mode.or(entry.mode).unwrap_or(state.mode),
            route: Some(found.route),
        };
        return execute(state, request, connection, endpoint, request_id).await;
    }
    let Some(target) = cgi_bin::parse(request.uri().path()) else {
        return static_files::serve(state, request)
            .await
            .map(Next::Response);
    };
    let target = target?;
    if !is_module_file(&target.module) {
        return Err(HttpError::NotFound);
    }
    let entry = state
        .modules
        .get(&target.module)
        .ok_or(HttpError::NotFound)?;
    let endpoint = Endpoint {
        program: entry.program.clone(),
        script_name: target.script_name,
        path_info: target.path_info,
        mode: entry.mode.unwrap_or(state.mode),
        route: None,
    };
    execute(state, request, connection, endpoint, request_id).await
}
