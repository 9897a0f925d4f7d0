//! Runs a module for one request: reads the body within `max-body`, builds
//! the CGI environment and argv, waits for an instance slot, starts the
//! guest, and hands its output to [`respond`](super::respond).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use tokio::sync::OwnedSemaphorePermit;

use super::error::HttpError;
use super::guest_run::GuestRun;
use super::proxy_run::execute_proxy;
use super::respond::{Reply, ResponsePlan, respond};
use super::{AppState, Connection, RequestBody, ResponseBody};
use crate::cgi::Mode;
use crate::cgi::request::{CgiRequest, search_words};
use crate::limits::Limits;
use crate::routes::Route;
use crate::runtime::{Input, Invocation, Program, ProgramKind};

/// How long a client may take to send the whole request body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A module chosen to answer a request, and how.
pub struct Endpoint<'a> {
    /// The module.
    pub program: Arc<Program>,
    /// `SCRIPT_NAME`.
    pub script_name: String,
    /// `PATH_INFO`, decoded.
    pub path_info: String,
    /// How its output is read.
    pub mode: Mode,
    /// The configured route it was reached by: its args, env, directories,
    /// entry point and limits. `None`: the server's defaults.
    pub route: Option<&'a Route>,
}

impl Endpoint<'_> {
    /// What every run of this endpoint gets: argv `[NAME, route args...]`,
    /// the route's environment, directories, entry point and allowed hosts,
    /// and `limits`.
    pub fn invocation(&self, limits: Limits) -> Invocation {
        let mut args = vec![self.program.name().to_string()];
        let Some(route) = self.route else {
            return Invocation {
                args,
                limits,
                ..Invocation::default()
            };
        };
        let config = &route.config;
        args.extend(config.args.iter().cloned());
        Invocation {
            args,
            env: config.env.clone(),
            stdin: Input::Empty,
            dirs: config.dirs.clone(),
            entrypoint: config.entrypoint.clone(),
            allowed_hosts: config.allowed_hosts.clone(),
            limits,
        }
    }
}

/// An instance slot for a request on `route` (its own slots, if it has
/// them), waiting in the queue if need be; 503 when none comes.
pub async fn acquire_slot(
    state: &AppState,
    route: Option<&Route>,
) -> Result<OwnedSemaphorePermit, HttpError> {
    let admission = route
        .and_then(|route| route.admission.as_deref())
        .unwrap_or(&state.admission);
    admission.acquire().await.map_err(|_| HttpError::Overloaded)
}

/// What a request leads to.
pub enum Next {
    /// Send this response.
    Response(Response<ResponseBody>),
    /// Serve this request instead (an internal redirect).
    Redirect(Request<RequestBody>),
}

/// Runs `endpoint` for `request`: a wasi:http handler answers it itself,
/// a command (module or component) through CGI.
pub async fn execute(
    state: &AppState,
    request: Request<RequestBody>,
    connection: &Connection,
    endpoint: Endpoint<'_>,
    request_id: &Arc<str>,
) -> Result<Next, HttpError> {
    if endpoint.program.kind() == ProgramKind::Proxy {
        return execute_proxy(state, request, connection, endpoint, request_id)
            .await
            .map(Next::Response);
    }
    let (parts, body) = request.into_parts();
    let route = endpoint.route;
    let limits = route.map_or(&state.limits, |route| &route.limits).clone();
    let body = read_body(body, &parts.headers, limits.max_body.0).await?;

    let cgi = CgiRequest {
        method: &parts.method,
        uri: &parts.uri,
        version: parts.version,
        headers: &parts.headers,
        remote_addr: connection.remote,
        local_addr: connection.local,
        script_name: &endpoint.script_name,
        path_info: &endpoint.path_info,
        body_len: body.as_ref().map(Bytes::len),
        pass_authorization: route.is_some_and(|route| route.config.pass_authorization),
    };
    let plan = ResponsePlan {
        mode: endpoint.mode,
        head_only: parts.method == Method::HEAD,
        max_output: limits.max_output.0,
        request_id: request_id.clone(),
    };
    let mut invocation = endpoint.invocation(limits);
    invocation
        .args
        .extend(search_words(parts.uri.query().unwrap_or("")));
    let meta = cgi.meta_variables();
    // Route variables first; a meta-variable of the same name replaces one.
    invocation
        .env
        .retain(|(name, _)| !meta.iter().any(|(cgi, _)| cgi == name));
    invocation.env.extend(meta);

    let permit = acquire_slot(state, route).await?;
    let run = GuestRun::start(
        endpoint.program,
        invocation,
        body.unwrap_or_default(),
        permit,
        request_id.clone(),
        state.metrics.clone(),
    );
    match respond(run, plan).await? {
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

/// The whole request body, or `None` when the request has none. Bodies over
/// `max_body` are refused (413) before the module starts: at once when the
/// declared length is too large, else as soon as the count passes it.
async fn read_body(
    body: RequestBody,
    headers: &HeaderMap,
    max_body: u64,
) -> Result<Option<Bytes>, HttpError> {
    let declared_len = declared_length(headers);
    let has_body = declared_len.is_some() || headers.contains_key(TRANSFER_ENCODING);
    if !has_body {
        return Ok(None);
    }
    if declared_len.is_some_and(|len| len > max_body) {
        return Err(HttpError::PayloadTooLarge);
    }
    let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
    let collected = tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect())
        .await
        .map_err(|_| HttpError::RequestTimeout)?;
    match collected {
        Ok(collected) => Ok(Some(collected.to_bytes())),
        Err(error) if error.is::<LengthLimitError>() => Err(HttpError::PayloadTooLarge),
        Err(_) => Err(HttpError::BadRequest("the request body could not be read")),
    }
}

/// The request's `Content-Length`, if it has a valid one.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}
