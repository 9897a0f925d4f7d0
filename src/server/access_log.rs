//! The access log and request metrics: one line per request, written when
//! its response body has been sent (or abandoned), so it carries the bytes
//! actually sent and the full duration, even for streamed responses.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::Method;
use http_body::{Body, Frame, SizeHint};

use super::bodies::{BoxError, ResponseBody};
use super::drain::InFlight;
use super::metrics::Metrics;
use super::watchdog::Armed;

/// The module that answered a request, and the configured route that led
/// to it (`None`: the `/cgi-bin/wasm-run.cgi/` folder URL).
#[derive(Debug, Clone)]
pub struct AnsweredBy {
    /// The module's file name.
    pub module: Arc<str>,
    /// The script it ran, if it is an interpreter.
    pub script: Option<Arc<str>>,
    /// The route's path pattern, e.g. `/api/...`.
    pub route: Option<String>,
    /// When its guest is over at the latest.
    pub deadline: tokio::time::Instant,
}

/// What the access line says about a request, gathered as it is handled.
#[derive(Debug)]
pub struct RequestRecord {
    /// The request method.
    pub method: Method,
    /// The request path (without the query).
    pub path: String,
    /// The request id.
    pub request_id: Arc<str>,
    /// The client's address.
    pub client: IpAddr,
    /// When the request arrived.
    pub started: Instant,
    /// The response status.
    pub status: u16,
    /// What answered it, if a module did.
    pub answered_by: Option<AnsweredBy>,
}

/// A response body that counts what it sends and, when it is done or
/// dropped, writes the access line and records the request's metrics.
pub struct LoggedBody {
    inner: ResponseBody,
    record: RequestRecord,
    metrics: Arc<Metrics>,
    bytes: u64,
    outcome: &'static str,
    _in_flight: Option<InFlight>,
    _armed: Option<Armed>,
}

impl LoggedBody {
    /// Wraps `inner`; `in_flight` keeps the request counted and `armed`
    /// its deadline armed until the end.
    pub fn new(
        inner: ResponseBody,
        record: RequestRecord,
        metrics: Arc<Metrics>,
        in_flight: Option<InFlight>,
        armed: Option<Armed>,
    ) -> Self {
        Self {
            inner,
            record,
            metrics,
            bytes: 0,
            outcome: "abandoned",
            _in_flight: in_flight,
            _armed: armed,
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Some(Err(error)) => {
                tracing::warn!(request_id = %self.record.request_id, "response cut: {error}");
                self.outcome = "cut";
            }
            None => self.outcome = "complete",
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // A body hyper never polled (HEAD, or an empty one) is complete.
        if self.outcome == "abandoned" && self.inner.is_end_stream() {
            self.outcome = "complete";
        }
        let record = &self.record;
        let elapsed = record.started.elapsed();
        let module = record.answered_by.as_ref().map_or("-", |by| &by.module);
        let script = record
            .answered_by
            .as_ref()
            .and_then(|by| by.script.as_deref());
        let route = record
            .answered_by
            .as_ref()
            .and_then(|by| by.route.as_deref());
        tracing::info!(
            target: "wasm_cgi::access",
            method = %record.method,
            path = %record.path,
            module,
            script,
            route,
            status = record.status,
            bytes = self.bytes,
            body = self.outcome,
            duration_us = elapsed.as_micros() as u64,
            request_id = %record.request_id,
            client = %record.client,
        );
        // Metrics name the script when there is one: its interpreter runs
        // many, and they fail each in its own way.
        self.metrics.request_done(
            script.unwrap_or(module),
            record.status,
            elapsed.as_secs_f64(),
        );
    }
}
