//! The dispatcher: assigns the request id, routes the request (health,
//! metrics, configured routes, `/cgi-bin/wasm-run.cgi/…`, static files) to
//! what answers it (a command through CGI, a wasi:http handler, a file),
//! follows internal redirects, and hands the response to the access log.
//! The client is worked out once ([`ClientAddress`], which trusted proxies
//! may name) and its rate checked ([`rate_limit`]) before a module runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;

use super::access_log::{AnsweredBy, LoggedBody, RequestRecord};
use super::bodies::{RequestBody, ResponseBody, full_body};
use super::client_address::ClientAddress;
use super::endpoint::{Endpoint, Next};
use super::error::{HttpError, plain_text};
use super::request_id::{REQUEST_ID, request_id};
use super::state::{AppState, Connection};
use super::{cgi_bin, cgi_run, handler_run, metrics, rate_limit, static_files};
use crate::runtime::ProgramKind;

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Everything: modules, routes, static files, probes, and `/metrics`
    /// unless it has a listener of its own.
    Public,
    /// `GET /metrics` alone, on an address apart from the public one.
    Metrics,
}

/// Internal redirects (`cgi` mode, local `Location`) followed per request.
pub const MAX_REDIRECTS: usize = 5;

/// How long after its guest's own deadline an unfinished response has its
/// connection closed: a guest that is polled stops itself first, with the
/// usual 504 or cut body.
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Longest request target (path and query) accepted, as Apache's
/// `LimitRequestLine`; longer ones get 414.
pub const MAX_URI_LEN: usize = 8 * 1024;

/// Paths that answer about the server itself: they never count as work in
/// flight and keep answering while the server drains.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Answers one request that came in on `surface`. Never fails: every error
/// is a response.
pub async fn handle(
    state: Arc<AppState>,
    request: Request<RequestBody>,
    connection: Connection,
    surface: Surface,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let request_id = request_id(request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let client =
        ClientAddress::resolve(connection.remote, request.headers(), &state.trusted_proxies);
    let probe = surface == Surface::Metrics || is_probe(&path);
    let in_flight = (!probe).then(|| state.drain.enter());
    let draining = state.drain.is_draining();

    let mut answered_by = None;
    let result = match surface {
        Surface::Metrics if path == "/metrics" => Ok(metrics_response(&state)),
        Surface::Metrics => Err(HttpError::NotFound),
        Surface::Public if draining && !probe => {
            state.metrics.refused_shutting_down();
            Err(HttpError::ShuttingDown)
        }
        Surface::Public if !probe && connection.redirect_to_https.is_some() => {
            Ok(redirect_to_https(&request, &connection))
        }
        Surface::Public => {
            follow_redirects(
                &state,
                request,
                &connection,
                &client,
                &request_id,
                &mut answered_by,
            )
            .await
        }
    };
    let mut response = result.unwrap_or_else(|error| error.into_response(&request_id));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if draining {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    let record = RequestRecord {
        method,
        path,
        request_id,
        client: client.ip,
        started,
        status: response.status().as_u16(),
        answered_by,
    };
    // A guest's response still streaming (a complete body has a known
    // size; a guest's streamed one never has) is bound to its deadline even
    // if the client stops reading (see `watchdog`).
    let streaming = response.body().size_hint().exact().is_none();
    let armed = record
        .answered_by
        .as_ref()
        .filter(|_| streaming)
        .map(|by| connection.watchdog.arm(by.deadline));
    let metrics = state.metrics.clone();
    response.map(|body| LoggedBody::new(body, record, metrics, in_flight, armed).boxed_unsync())
}

/// 308 to the same URL over HTTPS, on the TLS port (`--redirect-http`).
fn redirect_to_https(
    request: &Request<RequestBody>,
    connection: &Connection,
) -> Response<ResponseBody> {
    let port = connection.redirect_to_https.unwrap_or(443);
    let host = request
        .uri()
        .host()
        .map(str::to_owned)
        .or_else(|| {
            let host = request.headers().get(http::header::HOST)?.to_str().ok()?;
            let authority: http::uri::Authority = host.parse().ok()?;
            Some(authority.host().to_owned())
        })
        .unwrap_or_else(|| match connection.local.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        });
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    let mut response = Response::new(full_body(format!("moved to {location}\n")));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    response
}

async fn follow_redirects(
    state: &AppState,
    mut request: Request<RequestBody>,
    connection: &Connection,
    client: &ClientAddress,
    request_id: &Arc<str>,
    answered_by: &mut Option<AnsweredBy>,
) -> Result<Response<ResponseBody>, HttpError> {
    // The rate-limit scopes this request has taken a token in: an internal
    // redirect within one costs no second token.
    let mut charged = Vec::new();
    for _ in 0..=MAX_REDIRECTS {
        let next = dispatch(
            state,
            request,
            connection,
            client,
            &mut charged,
            request_id,
            answered_by,
        );
        match next.await? {
            Next::Response(response) => return Ok(response),
            Next::Redirect(next) => request = next,
        }
    }
    Err(HttpError::TooManyRedirects)
}

/// Routes one request (or one internal redirect) to what answers it, and
/// notes in `answered_by` which module (and route) that was.
async fn dispatch(
    state: &AppState,
    request: Request<RequestBody>,
    connection: &Connection,
    client: &ClientAddress,
    charged: &mut Vec<String>,
    request_id: &Arc<str>,
    answered_by: &mut Option<AnsweredBy>,
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
            // Modules are loaded before the socket is bound: ready unless draining.
            let response = if !state.drain.is_draining() {
                plain_text(StatusCode::OK, "ready\n")
            } else {
                plain_text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            };
            return Ok(Next::Response(response));
        }
        "/metrics" if state.metrics_on_main => return Ok(Next::Response(metrics_response(state))),
        _ => {}
    }
    let uri = request.uri().clone();
    let path = uri.path();
    let endpoint = if let Some(found) = state.routes.find(path) {
        let script = match &found.route.config.script {
            Some(name) => Some(state.scripts.find(name).ok_or(HttpError::NotFound)?),
            None => None,
        };
        let path_info = cgi_bin::path_info(found.rest)?;
        let params = found
            .params
            .iter()
            .map(|(name, raw)| Ok(((*name).to_owned(), cgi_bin::path_info(raw)?)))
            .collect::<Result<_, HttpError>>()?;
        Endpoint::resolve(
            state,
            Some(found.route),
            script,
            found.script_name.to_owned(),
            path_info,
        )?
        .matched(params, found.rest)
    } else if let Some(target) = state
        .scripts
        .dir()
        .and_then(|_| cgi_bin::parse_script(path))
    {
        // A script, or nothing: never its source as a static file.
        let target = target?;
        let script = state
            .scripts
            .find(&target.module)
            .ok_or(HttpError::NotFound)?;
        Endpoint::resolve(
            state,
            None,
            Some(script),
            target.script_name,
            target.path_info,
        )?
    } else if let Some(target) = cgi_bin::parse(path) {
        let target = target?;
        Endpoint::module(state, &target.module, target.script_name, target.path_info)?
    } else {
        return static_files::serve(state, request)
            .await
            .map(Next::Response);
    };
    // Before the body is read, a slot taken or a module started.
    rate_limit::admit(state, &endpoint, client, charged)?;
    run(
        state,
        request,
        connection,
        client,
        endpoint,
        request_id,
        answered_by,
    )
    .await
}

/// Runs `endpoint` for `request`: a wasi:http handler answers it itself, a
/// command (module or component) through CGI. Notes in `answered_by` which
/// program answers, and by when its guest is over at the latest.
async fn run(
    state: &AppState,
    request: Request<RequestBody>,
    connection: &Connection,
    client: &ClientAddress,
    endpoint: Endpoint<'_>,
    request_id: &Arc<str>,
    answered_by: &mut Option<AnsweredBy>,
) -> Result<Next, HttpError> {
    let limits = endpoint.limits(state);
    *answered_by = Some(AnsweredBy {
        module: endpoint.program.name().clone(),
        script: endpoint
            .script
            .as_ref()
            .map(|script| script.name.as_str().into()),
        route: endpoint.route.map(|route| route.config.path.to_string()),
        deadline: tokio::time::Instant::now()
            + limits.queue_timeout
            + limits.timeout
            + DEADLINE_GRACE,
    });
    match endpoint.program.kind() {
        ProgramKind::Proxy => handler_run::serve(state, request, connection, endpoint, request_id)
            .await
            .map(Next::Response),
        ProgramKind::Module | ProgramKind::Command => {
            cgi_run::serve(state, request, connection, client, endpoint, request_id).await
        }
    }
}

/// `GET /metrics`: the Prometheus text exposition.
fn metrics_response(state: &AppState) -> Response<ResponseBody> {
    for name in state.modules.names() {
        if let Some(entry) = state.modules.get(&name) {
            state.metrics.module_tier(&name, entry.program.tier());
        }
    }
    let limiter = &state.rate_limiter;
    state
        .metrics
        .rate_limit_table(limiter.entries(), limiter.capacity(), limiter.evictions());
    let text = state
        .metrics
        .render(state.admission.queued(), state.sandbox.compilations());
    let mut response = Response::new(full_body(text));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}
