//! Every error a client can get: one status and one short plain-text body
//! each. Internal details never reach the client; the body names the request
//! id so an operator can find them in the log.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};

use super::bodies::{ResponseBody, full_body};

/// A request that ends in an error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// 400: the request names no module, or a name that is not a plain file name.
    BadRequest(&'static str),
    /// 404: no such module, route or file.
    NotFound,
    /// 405: static files answer only GET and HEAD.
    MethodNotAllowed,
    /// 408: the request body did not arrive in time.
    RequestTimeout,
    /// 413: the request body is larger than `max-body`.
    PayloadTooLarge,
    /// 414: the request target is longer than the server accepts.
    UriTooLong,
    /// 500: the module trapped or exited non-zero before sending a response,
    /// or the server failed to set the run up.
    ModuleFailed,
    /// 500: internal redirects went round more than the hop limit.
    TooManyRedirects,
    /// 502: `cgi` mode and the module's output is not a valid CGI response.
    BadGateway(String),
    /// 500: a wasi:http handler ended without setting a response.
    NoResponse,
    /// 502: a wasi:http handler answered with an error code instead of a
    /// response. The code stays in the log: it may describe the network
    /// behind the server (a refused connection, a DNS failure).
    HandlerError,
    /// 502: a wasi:http handler's response can't be sent as it is (an
    /// informational status, 101 above all, is not a final response).
    InvalidHandlerResponse(&'static str),
    /// 429: the client is over its rate (`rate`, `burst`); a token comes
    /// back in `retry_after` seconds.
    RateLimited {
        /// Whole seconds until the client may try again, at least 1.
        retry_after: u64,
    },
    /// 503: every instance slot is busy and the queue is full.
    Overloaded,
    /// 503: the server is shutting down and takes no new work.
    ShuttingDown,
    /// 504: the module ran past its timeout.
    GatewayTimeout,
}

impl HttpError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            HttpError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::UriTooLong => StatusCode::URI_TOO_LONG,
            HttpError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            HttpError::ModuleFailed | HttpError::TooManyRedirects | HttpError::NoResponse => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            HttpError::BadGateway(_)
            | HttpError::HandlerError
            | HttpError::InvalidHandlerResponse(_) => StatusCode::BAD_GATEWAY,
            HttpError::Overloaded | HttpError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The response for this error, mentioning `request_id` where the
    /// details are in the log.
    pub fn into_response(self, request_id: &str) -> Response<ResponseBody> {
        let status = self.status();
        let retry_after = match self {
            HttpError::RateLimited { retry_after } => retry_after,
            _ => 1,
        };
        let text = match self {
            HttpError::BadRequest(why) => format!("bad request: {why}"),
            HttpError::NotFound => "not found".to_owned(),
            HttpError::MethodNotAllowed => "method not allowed".to_owned(),
            HttpError::RequestTimeout => "the request body did not arrive in time".to_owned(),
            HttpError::PayloadTooLarge => {
                "the request body is larger than this endpoint accepts".to_owned()
            }
            HttpError::UriTooLong => "the request target is too long".to_owned(),
            HttpError::RateLimited { retry_after } => {
                format!("too many requests from your address: retry in {retry_after} s")
            }
            HttpError::ModuleFailed => {
                format!("internal error: the module failed (request id {request_id})")
            }
            HttpError::TooManyRedirects => {
                format!("internal error: too many internal redirects (request id {request_id})")
            }
            HttpError::BadGateway(why) => {
                format!(
                    "bad gateway: the module's output is not a valid CGI response: {why} (request id {request_id})"
                )
            }
            HttpError::NoResponse => {
                format!(
                    "internal error: the handler ended without sending a response (request id {request_id})"
                )
            }
            HttpError::HandlerError => {
                format!("bad gateway: the handler answered with an error (request id {request_id})")
            }
            HttpError::InvalidHandlerResponse(why) => {
                format!(
                    "bad gateway: the handler's response is not valid: {why} (request id {request_id})"
                )
            }
            HttpError::ShuttingDown => "server shutting down, retry on another instance".to_owned(),
            HttpError::Overloaded => {
                "server busy: too many requests in flight, retry shortly".to_owned()
            }
            HttpError::GatewayTimeout => {
                format!(
                    "gateway timeout: the module ran past its time limit (request id {request_id})"
                )
            }
        };
        let mut response = plain_text(status, format!("{text}\n"));
        if matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

/// A complete `text/plain` response.
pub fn plain_text(status: StatusCode, text: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(full_body(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
