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

impl std::fmt::Display for HandlerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandlerFailure::ErrorCode(code) => {
                write!(f, "the handler answered with an error code: {code:?}")
            }
            HandlerFailure::NoResponse(exit) => {
                write!(f, "the handler {exit} without sending a response")
            }
        }
    }
}

impl std::error::Error for HandlerFailure {}

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::{BodyExt, Full};

    use super::*;
    use crate::runtime::fake::{self, Flag};

    /// A response a fake handler sets: `text` as its body.
    fn response(text: &'static str) -> HandlerResponse {
        let body = Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync();
        Ok(http::Response::new(body))
    }

    #[tokio::test(start_paused = true)]
    async fn the_head_comes_while_the_handler_runs_and_its_body_drives_it_on() {
        let alive = Flag::default();
        let (set, response_rx) = oneshot::channel();
        let instance = fake::guest(
            &alive,
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let _ = set.send(response("hello"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            },
            Exit::Code(0),
        );
        let (ended, seen) = oneshot::channel();
        let call = HttpCall::new(response_rx, instance, 1 << 20)
            .on_end(move |outcome| drop(ended.send(outcome.exit.clone())));
        let reply = call.response().await.unwrap();
        assert!(alive.is_up(), "the handler runs on after its head");
        let body = reply.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "hello");
        assert_eq!(seen.await.unwrap(), Exit::Code(0));
    }

    #[tokio::test]
    async fn a_response_set_in_the_handlers_last_step_is_kept() {
        let alive = Flag::default();
        let (set, response_rx) = oneshot::channel();
        let instance = fake::guest(
            &alive,
            async move {
                let _ = set.send(response("last"));
            },
            Exit::Code(0),
        );
        let reply = HttpCall::new(response_rx, instance, 1 << 20)
            .response()
            .await
            .unwrap();
        let body = reply.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "last");
    }

    #[tokio::test]
    async fn a_handler_that_ends_without_a_response_says_how_it_ended() {
        for exit in [Exit::Code(0), Exit::TimedOut, Exit::Trap("boom".into())] {
            let alive = Flag::default();
            let (set, response_rx) = oneshot::channel::<HandlerResponse>();
            let instance = fake::guest(&alive, async move { drop(set) }, exit.clone());
            match HttpCall::new(response_rx, instance, 1 << 20)
                .response()
                .await
            {
                Err(HandlerFailure::NoResponse(ended)) => assert_eq!(ended, exit),
                other => panic!("expected no response, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn an_error_code_answer_stops_the_handler() {
        let alive = Flag::default();
        let (set, response_rx) = oneshot::channel();
        let instance = fake::guest(
            &alive,
            async move {
                let _ = set.send(Err(ErrorCode::HttpRequestDenied));
                std::future::pending::<()>().await;
            },
            Exit::Code(0),
        );
        match HttpCall::new(response_rx, instance, 1 << 20)
            .response()
            .await
        {
            Err(HandlerFailure::ErrorCode(ErrorCode::HttpRequestDenied)) => {}
            other => panic!("expected the error code, got {other:?}"),
        }
        assert!(!alive.is_up(), "the handler is stopped");
    }
}
