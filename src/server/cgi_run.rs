//! Runs a command (a WASI module or a `wasi:cli/command` component) for one
//! request through CGI: checks the body against `max-body` (a body of
//! undeclared length is read whole first), waits for an instance slot,
//! builds the CGI environment and argv, starts the guest with the body as
//! its stdin (streamed as it reads), and hands its stdout to
//! [`cgi_response`](super::cgi_response).

use std::sync::Arc;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, TRANSFER_ENCODING};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Empty};

use super::bodies::RequestBody;
use super::cgi_response::{Reply, ResponsePlan, respond};
use super::client_address::ClientAddress;
use super::endpoint::{Endpoint, Next};
use super::error::HttpError;
use super::guest::{Supervisor, stderr_log};
use super::request_body::{BodyFault, StreamedBody, declared_length, has_body, read_whole};
use super::request_id::REQUEST_ID;
use super::state::{AppState, Connection};
use super::stdin::RequestStdin;
use crate::cgi::request::{CgiRequest, search_words};
use crate::runtime::{Input, Output};

/// Runs the command `endpoint` for `request`.
pub async fn serve(
    state: &AppState,
    request: Request<RequestBody>,
    connection: &Connection,
    client: &ClientAddress,
    endpoint: Endpoint<'_>,
    request_id: &Arc<str>,
) -> Result<Next, HttpError> {
    let (mut parts, body) = request.into_parts();
    let route = endpoint.route;
    // The module sees the id the server logs (a client's unusable id was
    // replaced), as HTTP_X_REQUEST_ID.
    if let Ok(id) = HeaderValue::from_str(request_id) {
        parts.headers.insert(REQUEST_ID, id);
    }
    state.default_host_for(&mut parts);
    let limits = endpoint.limits(state);
    let max_body = limits.max_body.0;
    // A body declared too large is refused before anything runs.
    let has_body = has_body(&parts.headers, max_body)?;
    let fault = Arc::new(BodyFault::default());
    let (stdin, body_len, charge) = match (has_body, declared_length(&parts.headers)) {
        (false, _) => (Input::Empty, None, None),
        // Streamed to stdin as the module reads it, once it runs.
        (true, Some(len)) => {
            let body = StreamedBody::new(Some(body), max_body, fault.clone());
            let stdin = Input::Stream(Arc::new(RequestStdin::new(body)));
            (stdin, usize::try_from(len).ok(), None)
        }
        // CONTENT_LENGTH must be known first: read whole, under the
        // server-wide budget, before a slot is taken (a slow upload holds
        // no instance slot).
        (true, None) => {
            let buffered = read_whole(body, max_body, &state.body_buffer).await?;
            let len = buffered.bytes.len();
            (Input::Bytes(buffered.bytes), Some(len), buffered.charge)
        }
    };
    let permit = endpoint.acquire_slot(state).await?;

    let cgi = CgiRequest {
        method: &parts.method,
        uri: &parts.uri,
        version: parts.version,
        headers: &parts.headers,
        remote_ip: client.ip,
        remote_port: client.port,
        https: client.is_https(connection.is_https()),
        local_addr: connection.local,
        script_name: &endpoint.script_name,
        path_info: &endpoint.path_info,
        body_len,
        pass_authorization: route.is_some_and(|route| route.config.pass_authorization),
        unverified_remote_user: route.is_some_and(|route| route.config.unverified_remote_user),
        client_certificate: connection.client_certificate(),
    };
    let plan = ResponsePlan {
        mode: endpoint.mode,
        head_only: parts.method == Method::HEAD,
    };
    let mut invocation = endpoint.invocation(state, limits);
    if let Some(argv) = endpoint.compat_argv(parts.uri.query().unwrap_or("")) {
        invocation.args = argv;
    } else if endpoint.query_args() {
        invocation
            .args
            .extend(search_words(parts.uri.query().unwrap_or("")));
    }
    let mut meta = cgi.meta_variables();
    meta.extend(endpoint.script_variables());
    let compat = endpoint.compat_variables(&meta);
    meta.extend(compat);
    // Route variables first; a meta-variable of the same name replaces one.
    invocation
        .env
        .retain(|(name, _)| !meta.iter().any(|(cgi, _)| cgi == name));
    invocation.env.extend(meta);
    invocation.stdin = stdin;

    let program = &endpoint.program;
    let label = endpoint.label();
    let supervisor = Supervisor::new(state, &label, request_id, permit);
    let stderr = Output::Log(stderr_log(&label, request_id));
    let run = program
        .stream(invocation, stderr)
        .map_err(|error| Supervisor::start_failed(&label, request_id, &error))?
        .on_end(supervisor.on_end())
        // A buffered body's memory is given back when the module is gone.
        .on_end(move |_| drop(charge));
    // When the body went wrong while the module read it, that is what the
    // client hears about (413, 408), not the module's reaction to it.
    match respond(run, plan, request_id)
        .await
        .map_err(|error| fault.error().unwrap_or(error))?
    {
        Reply::Response(response) => Ok(Next::Response(response)),
        Reply::Redirect(target) => redirected(&parts, &target).map(Next::Redirect),
    }
}

/// The request an internal redirect to `target` makes: a GET without a body,
/// with the original request's other headers (RFC 3875 6.2.2).
fn redirected(
    original: &http::request::Parts,
    target: &str,
) -> Result<Request<RequestBody>, HttpError> {
    let uri: Uri = target.parse().map_err(|_| {
        HttpError::BadGateway("the Location path is not a valid URI path".to_owned())
    })?;
    let mut request = Request::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri;
    *request.version_mut() = original.version;
    *request.headers_mut() = original.headers.clone();
    for name in [CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING] {
        request.headers_mut().remove(name);
    }
    Ok(request)
}
