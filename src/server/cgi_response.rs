//! A module's stdout as the HTTP response, in `simple` or `cgi` mode.
//!
//! The head waits for the first output (and, in `cgi` mode, the whole header
//! block). A guest that finishes within a short linger gets a complete
//! response with `Content-Length`; one still writing is streamed chunked, so
//! its first bytes reach the client while it runs. A failure before the head
//! is sent is an error status; after it, the body is cut short.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;

use super::error::{HttpError, full_body};
use super::guest::failure_status;
use super::{BoxError, ResponseBody};
use crate::cgi::Mode;
use crate::cgi::response::{CgiResponse, MAX_HEADER_BLOCK, find_header_end, parse_header_block};
use crate::runtime::{Data, Exit, GuestRun, OutputReceiver};

/// A command's stdout, as it is read.
type Stdout = GuestRun<OutputReceiver>;

/// How long to keep gathering output after the first bytes before streaming:
/// long enough that a quick module's whole output goes out in one complete
/// response, short enough that nobody notices on a streaming one.
const LINGER: Duration = Duration::from_millis(2);

/// Output gathered before the response switches to streaming anyway.
const GATHER_LIMIT: usize = 64 * 1024;

/// What the server does with a module's output.
pub enum Reply {
    /// Send this response.
    Response(Response<ResponseBody>),
    /// `cgi` mode, local `Location`: serve this path instead.
    Redirect(String),
}

/// How the response must be sent.
pub struct ResponsePlan {
    /// `simple` or `cgi`.
    pub mode: Mode,
    /// A HEAD request: the module runs to the end, its body is discarded.
    pub head_only: bool,
}

/// Turns `run`'s output into the reply.
pub async fn respond(mut run: Stdout, plan: ResponsePlan) -> Result<Reply, HttpError> {
    let mut output = BytesMut::new();
    let (status, headers) = match plan.mode {
        Mode::Simple => {
            if let Some(exit) = first_output(&mut run, &mut output).await {
                check(&exit)?;
            }
            let mut headers = HeaderMap::new();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            (StatusCode::OK, headers)
        }
        Mode::Cgi => match header_block(&mut run, &mut output).await? {
            CgiResponse::LocalRedirect(target) => return Ok(Reply::Redirect(target)),
            CgiResponse::Document { status, headers } => (status, headers),
        },
    };

    let mut response = Response::new(full_body(Bytes::new()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;

    if plan.head_only {
        let len = drain(&mut run, output.len()).await?;
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
        return Ok(Reply::Response(response));
    }

    let max_output = run.max_output();
    let finished = tokio::time::timeout(LINGER, gather(&mut run, &mut output, max_output)).await;
    match finished {
        Ok(Some(exit)) if output.len() as u64 <= max_output => {
            check(&exit)?;
            *response.body_mut() = full_body(output.freeze());
        }
        _ => {
            let body = run.into_body(output.freeze());
            *response.body_mut() = body.map_err(BoxError::from).boxed_unsync();
        }
    }
    Ok(Reply::Response(response))
}

/// Waits for the first bytes of output into `output`; `Some` if the guest
/// ended before writing any.
async fn first_output(run: &mut Stdout, output: &mut BytesMut) -> Option<Exit> {
    match run.next_data().await {
        Data::Bytes(chunk) => {
            output.extend_from_slice(&chunk);
            None
        }
        Data::Ended(exit) => Some(exit),
    }
}

/// Reads until the CGI header block is complete and parses it; `output` is
/// left holding the body bytes after it.
async fn header_block(run: &mut Stdout, output: &mut BytesMut) -> Result<CgiResponse, HttpError> {
    loop {
        if let Some(exit) = first_output(run, output).await {
            check(&exit)?;
            let why = if output.is_empty() {
                "the module wrote nothing"
            } else {
                "the output ended before the empty line that ends the header block"
            };
            return Err(HttpError::BadGateway(why.to_owned()));
        }
        if let Some((header_len, body_start)) = find_header_end(output) {
            let block = output.split_to(body_start);
            return parse_header_block(&block[..header_len])
                .map_err(|e| HttpError::BadGateway(e.0));
        }
        if output.len() > MAX_HEADER_BLOCK {
            return Err(HttpError::BadGateway(format!(
                "the header block is longer than {MAX_HEADER_BLOCK} bytes"
            )));
        }
    }
}

/// Gathers output until the guest ends (`Some`), or until `GATHER_LIMIT` or
/// `max_output` bytes are buffered (`None`: stream the rest).
async fn gather(run: &mut Stdout, output: &mut BytesMut, max_output: u64) -> Option<Exit> {
    while output.len() < GATHER_LIMIT && output.len() as u64 <= max_output {
        match run.next_data().await {
            Data::Bytes(chunk) => output.extend_from_slice(&chunk),
            Data::Ended(exit) => return Some(exit),
        }
    }
    None
}

/// Runs the guest to its end, counting and discarding its output; the body
/// length, or the error its ending calls for.
async fn drain(run: &mut Stdout, len: usize) -> Result<u64, HttpError> {
    let (rest, exit) = run.drain().await;
    check(&exit)?;
    Ok(len as u64 + rest)
}

/// The error status for a guest that ended before its response was sent.
fn check(exit: &Exit) -> Result<(), HttpError> {
    failure_status(exit).map_or(Ok(()), Err)
}
