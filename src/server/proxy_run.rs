//! Serves a request with a `wasi:http/proxy` component: the request (method,
//! target, headers, body streamed in as it arrives) goes to the handler as a
//! wasi:http `incoming-request`, and the response it sets streams back out.
//! Limits, request ids, logs and metrics are those of CGI modules; the
//! handler runs inside the request's task like [`GuestRun`], driven first
//! while waiting for the head and then by the response body.
//!
//! [`GuestRun`]: super::guest_run::GuestRun

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{HOST, HeaderValue, TRANSFER_ENCODING};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::Sleep;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::drain::InFlight;
use super::error::{HttpError, full_body};
use super::execute::{BODY_READ_TIMEOUT, Endpoint, acquire_slot, declared_length};
use super::guest_run::{
    Ending, FailingBody, Guest, OutputBudget, flush_then_fail, stderr_log, supervise,
};
use super::request_id::REQUEST_ID;
use super::{AppState, BoxError, Connection, RequestBody, ResponseBody};
use crate::runtime::{Output, Stdio};

/// Runs the handler `endpoint` for `request`.
pub async fn execute_proxy(
    state: &AppState,
    request: Request<RequestBody>,
    connection: &Connection,
    endpoint: Endpoint<'_>,
    request_id: &Arc<str>,
) -> Result<Response<ResponseBody>, HttpError> {
    let (mut parts, body) = request.into_parts();
    let route = endpoint.route;
    let limits = route.map_or(&state.limits, |route| &route.limits).clone();
    let max_body = limits.max_body.0;
    let declared = declared_length(&parts.headers);
    if declared.is_some_and(|len| len > max_body) {
        return Err(HttpError::PayloadTooLarge);
    }
    let has_body =
        declared.is_some_and(|len| len > 0) || parts.headers.contains_key(TRANSFER_ENCODING);
    let watch = Arc::new(BodyWatch::default());
    let body = IncomingBody {
        inner: has_body.then(|| ClientBody::new(body)),
        remaining: max_body,
        watch: watch.clone(),
    };
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
    if let Ok(id) = HeaderValue::from_str(request_id) {
        parts.headers.insert(REQUEST_ID, id);
    }
    let head_only = parts.method == Method::HEAD;
    let request = Request::from_parts(parts, body);

    let invocation = endpoint.invocation(limits.clone());
    let program = endpoint.program;
    let log = stderr_log(program.name(), request_id);
    let stdio = Stdio {
        stdout: Output::Log(log.clone()),
        stderr: Output::Log(log),
    };
    let permit = acquire_slot(state, route).await?;
    let call = program
        .handle_http(request, invocation, stdio)
        .map_err(|error| {
            tracing::error!(module = %program.name(), %request_id, "failed to start the handler: {error:#}");
            HttpError::ModuleFailed
        })?;
    let outcome = async move { Ok(call.guest.await) };
    let guest = supervise(
        program.name().clone(),
        outcome,
        permit,
        request_id.clone(),
        state.metrics.clone(),
    );
    let mut waiting = Waiting {
        response: call.response,
        closed: false,
        guest: Some(guest),
        ending: None,
    };
    let head = poll_fn(|cx| waiting.poll_head(cx)).await;
    let (guest, ending) = (waiting.guest, waiting.ending);

    match head {
        Some(Ok(response)) => {
            let (parts, body) = response.into_parts();
            let body = HandlerBody {
                guest,
                ending,
                inner: body,
                budget: OutputBudget::new(limits.max_output.0),
                failing: None,
                done: false,
                request_id: request_id.clone(),
                in_flight: Some(state.drain.enter()),
            };
            let bodiless = head_only
                || parts.status.is_informational()
                || parts.status == StatusCode::NO_CONTENT
                || parts.status == StatusCode::NOT_MODIFIED;
            if bodiless {
                // hyper drops such a response's body unread, and with it the
                // handler: let it run to its end anyway, as CGI modules do.
                tokio::spawn(run_to_end(body));
                return Ok(Response::from_parts(parts, full_body(Bytes::new())));
            }
            Ok(Response::from_parts(parts, body.boxed_unsync()))
        }
        Some(Err(code)) => {
            tracing::warn!(module = %program.name(), %request_id, "handler answered with an error: {code:?}");
            Err(watch.error().unwrap_or(HttpError::HandlerError))
        }
        None => Err(watch.error().unwrap_or(match ending.flatten() {
            Some(crate::runtime::Exit::TimedOut) => HttpError::GatewayTimeout,
            Some(exit) if exit.is_success() => {
                tracing::warn!(module = %program.name(), %request_id, "handler ended without sending a response");
                HttpError::NoResponse
            }
            _ => HttpError::ModuleFailed,
        })),
    }
}

/// Drives a handler whose body no client will read to its end, dropping
/// what it writes.
async fn run_to_end(mut body: HandlerBody) {
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
}

/// The handler while the server waits for the response head.
struct Waiting {
    response: tokio::sync::oneshot::Receiver<crate::runtime::HandlerResponse>,
    /// The handler dropped its response-outparam unset.
    closed: bool,
    guest: Option<Guest>,
    ending: Option<Ending>,
}

impl Waiting {
    /// The response once set; `None` once the handler can't set one any
    /// more (it ended, or dropped the outparam and then ended).
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Option<crate::runtime::HandlerResponse>> {
        if !self.closed {
            match Pin::new(&mut self.response).poll(cx) {
                Poll::Ready(Ok(response)) => return Poll::Ready(Some(response)),
                Poll::Ready(Err(_)) => self.closed = true,
                Poll::Pending => {}
            }
        }
        if let Some(guest) = &mut self.guest {
            let ending = ready!(guest.as_mut().poll(cx));
            self.guest = None;
            self.ending = Some(ending);
            // It may have set the response in its very last step.
            let last = (!self.closed)
                .then(|| self.response.try_recv().ok())
                .flatten();
            return Poll::Ready(last);
        }
        Poll::Ready(None)
    }
}

/// What went wrong with the request body while the handler read it, so the
/// client gets 413 or 408 rather than the handler's reaction to it.
#[derive(Default)]
struct BodyWatch {
    too_large: AtomicBool,
    timed_out: AtomicBool,
}

impl BodyWatch {
    fn error(&self) -> Option<HttpError> {
        if self.too_large.load(Ordering::Relaxed) {
            Some(HttpError::PayloadTooLarge)
        } else if self.timed_out.load(Ordering::Relaxed) {
            Some(HttpError::RequestTimeout)
        } else {
            None
        }
    }
}

/// The request body as the handler reads it: streamed from the client, cut
/// with an error past `max-body`, or when the client sends nothing for the
/// body read timeout (the handler may take its time between reads; the
/// client may not).
struct IncomingBody {
    /// The client's body; `None` when the request has no body, or once it
    /// has ended or failed.
    inner: Option<ClientBody>,
    /// Bytes still allowed by `max-body`.
    remaining: u64,
    watch: Arc<BodyWatch>,
}

/// One frame of the client's body, or why it could not be read.
type ClientFrame = Result<Frame<Bytes>, hyper::Error>;

/// A request body being read, and how long the handler may wait for it.
struct ClientBody {
    body: RequestBody,
    /// When the client must have sent the next frame.
    deadline: Pin<Box<Sleep>>,
    /// Whether the handler is waiting for a frame (the deadline runs).
    waiting: bool,
}

impl ClientBody {
    fn new(body: RequestBody) -> Self {
        Self {
            body,
            deadline: Box::pin(tokio::time::sleep(BODY_READ_TIMEOUT)),
            waiting: false,
        }
    }

    /// The next frame, or `Err(())` once the client has sent nothing for
    /// [`BODY_READ_TIMEOUT`] while the handler waited.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<ClientFrame>, ()>> {
        if !self.waiting {
            self.waiting = true;
            let deadline = tokio::time::Instant::now() + BODY_READ_TIMEOUT;
            self.deadline.as_mut().reset(deadline);
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            self.waiting = false;
            return Poll::Ready(Ok(frame));
        }
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(Err(()))
    }
}

impl Body for IncomingBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some(inner) = &mut this.inner else {
            return Poll::Ready(None);
        };
        let frame = match ready!(inner.poll_next(cx)) {
            Ok(frame) => frame,
            Err(()) => {
                this.inner = None;
                this.watch.timed_out.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionReadTimeout)));
            }
        };
        match frame {
            Some(Ok(frame)) => {
                let len = frame.data_ref().map_or(0, |data| data.len() as u64);
                if len > this.remaining {
                    this.inner = None;
                    this.watch.too_large.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpRequestBodySize(
                        None,
                    ))));
                }
                this.remaining -= len;
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                this.inner = None;
                Poll::Ready(Some(Err(error.into())))
            }
            None => {
                this.inner = None;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| inner.body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or(SizeHint::with_exact(0), |inner| inner.body.size_hint())
    }
}

/// The handler's response body with the handler itself: reading the body
/// drives the instance. Cut at `max-output`; if the handler fails (the
/// stock body would just end when the store drops it unfinished), the body
/// ends in an error so the client sees an incomplete response.
struct HandlerBody {
    guest: Option<Guest>,
    ending: Option<Ending>,
    inner: HyperOutgoingBody,
    budget: OutputBudget,
    /// Set when the body is to end in an error.
    failing: Option<FailingBody>,
    done: bool,
    request_id: Arc<str>,
    /// Counts the handler as work in flight for graceful shutdown, also
    /// when it runs on past its response in a task of its own.
    in_flight: Option<InFlight>,
}

impl HandlerBody {
    /// Stops the handler and ends the body in the error `why`.
    fn fail(
        &mut self,
        why: &'static str,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.guest = None;
        self.failing = Some(FailingBody::new(why));
        self.poll_failing(cx)
    }

    fn poll_failing(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(failing) = &mut self.failing else {
            return Poll::Ready(None);
        };
        let poll = flush_then_fail(failing, cx);
        self.done = poll.is_ready();
        poll
    }

    /// Passes `data` on, cut to what `max-output` still allows.
    fn take(
        &mut self,
        data: Bytes,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let data = match self.budget.spend(data) {
            Ok(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
            Err(allowed) => allowed,
        };
        tracing::warn!(request_id = %self.request_id, "handler output over max-output; response cut and instance stopped");
        if data.is_empty() {
            return self.fail("handler output over max-output", cx);
        }
        // The allowed part goes out first; the error comes after it.
        self.guest = None;
        self.failing = Some(FailingBody::new("handler output over max-output"));
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl Body for HandlerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.failing.is_some() {
            return this.poll_failing(cx);
        }
        if let Some(guest) = &mut this.guest
            && let Poll::Ready(ending) = guest.as_mut().poll(cx)
        {
            this.guest = None;
            this.ending = Some(ending);
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => this.take(data, cx),
                Err(trailers) => Poll::Ready(Some(Ok(trailers))),
            },
            Some(Err(error)) => {
                tracing::warn!(request_id = %this.request_id, "handler response body failed: {error}");
                this.fail("the handler's response body failed", cx)
            }
            None => match &this.ending {
                Some(Some(exit)) if exit.is_success() => {
                    this.done = true;
                    Poll::Ready(None)
                }
                Some(_) => this.fail("the handler failed after the response had started", cx),
                // The body is complete and the handler still runs (work
                // after the response): let it finish in its own task, still
                // holding its instance slot and its deadline.
                None => {
                    this.done = true;
                    if let Some(guest) = this.guest.take() {
                        let in_flight = this.in_flight.take();
                        tokio::spawn(async move {
                            guest.await;
                            drop(in_flight);
                        });
                    }
                    Poll::Ready(None)
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
