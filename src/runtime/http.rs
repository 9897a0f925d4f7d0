//! A wasi:http handler answering one request: the handler runs while the
//! caller waits for its response head, then as the caller reads the body,
//! so an embedder gets an ordinary [`http::Response`] whose body drives the
//! instance.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;

use tokio::sync::oneshot;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::guest_body::GuestBody;
use super::guest_run::GuestRun;
use super::instance::Instance;
use super::invocation::{Exit, Outcome};

/// The response a handler sets through its `response-outparam`.
pub(crate) type HandlerResponse = Result<http::Response<HyperOutgoingBody>, ErrorCode>;

/// A handler's response: its head, and a body that runs the handler as it
/// is read (see [`GuestBody`]).
pub type HandlerReply = http::Response<GuestBody<HyperOutgoingBody>>;

/// A wasi:http handler started on one request by
/// [`Program::handle_http`](super::Program::handle_http). Nothing runs until
/// [`HttpCall::response`] is awaited.
pub struct HttpCall {
    response: oneshot::Receiver<HandlerResponse>,
    instance: Instance,
    max_output: u64,
}

/// Why a handler gave no response.
#[derive(Debug)]
pub enum HandlerFailure {
    /// It answered with this error code instead of a response (the
    /// instance is stopped).
    ErrorCode(ErrorCode),
    /// It ended, like this, without setting a response.
    NoResponse(Exit),
}

impl HttpCall {
    pub(crate) fn new(
        response: oneshot::Receiver<HandlerResponse>,
        instance: Instance,
        max_output: u64,
    ) -> Self {
        Self {
            response,
            instance,
            max_output,
        }
    }

    /// Calls `ended` with the outcome when the handler ends, whenever that
    /// is (before its response, while its body streams, or after it); see
    /// [`Instance::on_end`].
    pub fn on_end(mut self, ended: impl FnOnce(&Outcome) + Send + 'static) -> Self {
        self.instance = self.instance.on_end(ended);
        self
    }

    /// Runs the handler until it sets its response, and returns it; its
    /// body carries on running the handler. A handler that fails or runs
    /// past its limits after the head ends the body in an error.
    pub async fn response(self) -> Result<HandlerReply, HandlerFailure> {
        let mut waiting = Waiting {
            response: self.response,
            closed: false,
            instance: self.instance,
        };
        let head = std::future::poll_fn(|cx| waiting.poll_head(cx)).await;
        let (response, run) = match head {
            Head::Set(response) => (response, None),
            Head::Ended(outcome, Some(response)) => (response, Some(outcome)),
            Head::Ended(outcome, None) => return Err(HandlerFailure::NoResponse(outcome.exit)),
        };
        let (parts, body) = response.map_err(HandlerFailure::ErrorCode)?.into_parts();
        let run = match run {
            None => GuestRun::new(waiting.instance, body, self.max_output),
            Some(outcome) => GuestRun::with_outcome(outcome, body, self.max_output),
        };
        Ok(http::Response::from_parts(
            parts,
            run.into_body(Bytes::new()),
        ))
    }
}

/// The handler while its caller waits for the response head.
struct Waiting {
    response: oneshot::Receiver<HandlerResponse>,
    /// The handler dropped its response-outparam unset.
    closed: bool,
    instance: Instance,
}

/// What waiting for the head led to.
enum Head {
    /// The handler set this, and runs on.
    Set(HandlerResponse),
    /// The handler ended like this, maybe setting a response in its very
    /// last step. Its instance is not to be polled again.
    Ended(Outcome, Option<HandlerResponse>),
}

impl Waiting {
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Head> {
        if !self.closed {
            match Pin::new(&mut self.response).poll(cx) {
                Poll::Ready(Ok(response)) => return Poll::Ready(Head::Set(response)),
                Poll::Ready(Err(_)) => self.closed = true,
                Poll::Pending => {}
            }
        }
        let outcome = ready!(Pin::new(&mut self.instance).poll(cx));
        let last = (!self.closed)
            .then(|| self.response.try_recv().ok())
            .flatten();
        Poll::Ready(Head::Ended(outcome, last))
    }
}
