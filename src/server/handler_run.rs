//! Serves a request with a `wasi:http/proxy` component: the request (method,
//! target, headers, body streamed in as it arrives) goes to the handler as a
//! wasi:http `incoming-request`, and the response it sets streams back out
//! through the runtime's [`GuestBody`](crate::runtime::GuestBody). Limits,
//! request ids, logs and metrics are those of CGI runs.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::bodies::{BoxError, RequestBody, ResponseBody, full_body};
use super::endpoint::Endpoint;
use super::error::HttpError;
use super::guest::{Supervisor, failure_status, stderr_log};
use super::request_body::{BodyFault, StreamedBody, has_body};
use super::request_id::REQUEST_ID;
use super::state::{AppState, Connection};
use crate::runtime::{HandlerFailure, Output, Stdio};

/// Runs the handler `endpoint` for `request`.
pub async fn serve(
    state: &AppState,
    request: Request<RequestBody>,
    connection: &Connection,
    endpoint: Endpoint<'_>,
    request_id: &Arc<str>,
) -> Result<Response<ResponseBody>, HttpError> {
    let (mut parts, body) = request.into_parts();
    let limits = endpoint.limits(state);
    let max_body = limits.max_body.0;
    let fault = Arc::new(BodyFault::default());
    let body = has_body(&parts.headers, max_body)?.then_some(body);
    let body = StreamedBody::new(body, max_body, fault.clone());
    state.default_host_for(&mut parts);
    // wasi:http needs an authority, as text: HTTP/1.0 clients may send no
    // Host, and a Host of raw bytes can't be one.
    match parts.headers.get(HOST) {
        Some(host) if host.to_str().is_err() => {
            return Err(HttpError::BadRequest("the Host header is not valid"));
        }
        Some(_) => {}
        None if parts.uri.authority().is_some() => {}
        None => {
            let local = HeaderValue::from_str(&connection.local.to_string())
                .map_err(|_| HttpError::BadRequest("no Host header"))?;
            parts.headers.insert(HOST, local);
        }
    }
    if connection.is_https() {
        // The handler's `scheme()` is https: say so in the URI it is given.
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        if let Some(uri) = authority.and_then(|authority| {
            http::Uri::builder()
                .scheme("https")
                .authority(authority)
                .path_and_query(path)
                .build()
                .ok()
        }) {
            parts.uri = uri;
        }
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        parts.headers.insert(REQUEST_ID, id);
    }
    let head_only = parts.method == Method::HEAD;
    let request = Request::from_parts(parts, body);

    let invocation = endpoint.invocation(state, limits);
    let program = &endpoint.program;
    let log = stderr_log(program.name(), request_id);
    let stdio = Stdio {
        stdout: Output::Log(log.clone()),
        stderr: Output::Log(log),
    };
    let permit = endpoint.acquire_slot(state).await?;
    let supervisor = Supervisor::new(state, program.name(), request_id, permit);
    let call = program
        .handle_http(request, invocation, stdio)
        .map_err(|error| Supervisor::start_failed(program.name(), request_id, &error))?
        .on_end(supervisor.on_end());

    let response = match call.response().await {
        Ok(response) => response,
        Err(HandlerFailure::ErrorCode(code)) => {
            tracing::warn!(module = %program.name(), %request_id, "handler answered with an error: {code:?}");
            return Err(fault.error().unwrap_or(HttpError::HandlerError));
        }
        Err(HandlerFailure::NoResponse(exit)) => {
            return Err(fault.error().or_else(|| failure_status(&exit)).unwrap_or_else(|| {
                tracing::warn!(module = %program.name(), %request_id, "handler ended without sending a response");
                HttpError::NoResponse
            }));
        }
    };
    let (parts, mut body) = response.into_parts();
    if parts.status.is_informational() {
        tracing::warn!(module = %program.name(), %request_id, status = parts.status.as_u16(), "handler answered with an informational status");
        return Err(HttpError::InvalidHandlerResponse(
            "an informational (1xx) status is not a final response",
        ));
    }
    let bodiless = head_only
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    if bodiless {
        // hyper drops such a response's body unread, and with it the
        // handler: let it run to its end anyway, as CGI modules do.
        tokio::spawn(async move { while body.frame().await.is_some() {} });
        return Ok(Response::from_parts(parts, full_body(Bytes::new())));
    }
    Ok(Response::from_parts(
        parts,
        body.map_err(BoxError::from).boxed_unsync(),
    ))
}
