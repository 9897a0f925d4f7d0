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

use super::bodies::{BoxError, ResponseBody, full_body};
use super::error::HttpError;
use super::guest::failure_status;
use crate::cgi::Mode;
use crate::cgi::response::{
    CgiResponse, HeaderEnd, HeaderScanner, MAX_HEADER_BLOCK, parse_header_block,
};
use crate::runtime::{Data, Drained, Exit, GuestRun, OutputReceiver};

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
#[derive(Debug, Clone, Copy)]
pub struct ResponsePlan {
    /// `simple` or `cgi`.
    pub mode: Mode,
    /// A HEAD request: the module runs to the end, its body is discarded.
    pub head_only: bool,
}

/// Turns `run`'s output into the reply.
pub async fn respond(
    mut run: Stdout,
    plan: ResponsePlan,
    request_id: &str,
) -> Result<Reply, HttpError> {
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
        match run.drain(output.len() as u64).await {
            Drained::Ended { len, exit } => {
                check(&exit)?;
                response
                    .headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from(len));
            }
            // As a GET would be cut there: the head goes out without a
            // length, and the module is stopped.
            Drained::PastMaxOutput => {
                tracing::warn!(
                    request_id,
                    "module output over max-output while answering HEAD; instance stopped"
                );
            }
        }
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
    let mut scanner = HeaderScanner::default();
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
        match scanner.scan(output) {
            HeaderEnd::Found {
                header_len,
                body_start,
            } => {
                let block = output.split_to(body_start);
                return parse_header_block(&block[..header_len])
                    .map_err(|e| HttpError::BadGateway(e.0));
            }
            HeaderEnd::TooLong => {
                return Err(HttpError::BadGateway(format!(
                    "the header block is longer than {MAX_HEADER_BLOCK} bytes"
                )));
            }
            HeaderEnd::NotYet => {}
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
/// The error status for a guest that ended before its response was sent.
fn check(exit: &Exit) -> Result<(), HttpError> {
    failure_status(exit).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body::Body as _;
    use wasmtime_wasi::p2::{OutputStream as _, Pollable as _};

    use super::*;
    use crate::runtime::fake::{self, Flag};
    use crate::runtime::output_channel;

    /// What a fake module does, in order.
    enum Step {
        Write(&'static [u8]),
        Sleep(Duration),
    }
    use Step::{Sleep, Write};

    /// A module that follows `steps` through a real stdout channel (writing
    /// as WASI does, no more than `check_write` allows), then ends with
    /// `exit`.
    fn module(alive: &Flag, steps: Vec<Step>, exit: Exit) -> Stdout {
        let (mut stdout, receiver) = output_channel(16 * 1024);
        let instance = fake::guest(
            alive,
            async move {
                for step in steps {
                    match step {
                        Write(bytes) => {
                            let mut rest = Bytes::from_static(bytes);
                            while !rest.is_empty() {
                                stdout.ready().await;
                                let allowed = stdout.check_write().unwrap().min(rest.len());
                                stdout.write(rest.split_to(allowed)).unwrap();
                            }
                        }
                        Sleep(duration) => tokio::time::sleep(duration).await,
                    }
                }
            },
            exit,
        );
        GuestRun::new(instance, receiver, 1 << 20)
    }

    const CGI: ResponsePlan = ResponsePlan {
        mode: Mode::Cgi,
        head_only: false,
    };

    async fn response(
        run: Stdout,
        plan: ResponsePlan,
    ) -> Result<Response<ResponseBody>, HttpError> {
        match respond(run, plan, "test-id").await? {
            Reply::Response(response) => Ok(response),
            Reply::Redirect(target) => panic!("unexpected redirect to {target}"),
        }
    }

    async fn body_text(response: Response<ResponseBody>) -> Result<String, BoxError> {
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_header_block_split_across_writes_is_parsed_and_a_quick_body_sent_whole() {
        let alive = Flag::default();
        let steps = vec![
            Write(b"Content-Type: te"),
            Write(b"xt/plain\r"),
            Sleep(Duration::from_millis(50)),
            Write(b"\nStatus: 201 Created\n"),
            Write(b"\r\nbo"),
            Write(b"dy"),
        ];
        let response = response(module(&alive, steps, Exit::Code(0)), CGI)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/plain");
        assert_eq!(response.body().size_hint().exact(), Some(4), "sent whole");
        assert_eq!(body_text(response).await.unwrap(), "body");
    }

    #[tokio::test(start_paused = true)]
    async fn a_header_block_with_no_end_is_refused_past_its_cap_and_the_module_stopped() {
        let alive = Flag::default();
        let line: &'static [u8] = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
        let mut steps: Vec<Step> = (0..MAX_HEADER_BLOCK / line.len() + 2)
            .map(|_| Write(line))
            .collect();
        steps.push(Sleep(Duration::from_secs(3600)));
        let error = response(module(&alive, steps, Exit::Code(0)), CGI)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, HttpError::BadGateway(why) if why.contains("longer than")),
            "{error:?}"
        );
        assert!(!alive.is_up(), "the module is stopped");
    }

    #[tokio::test(start_paused = true)]
    async fn one_big_write_cannot_carry_a_header_block_past_the_cap() {
        // The empty line comes, but only after 150 KiB of header lines.
        let block: &'static [u8] = Box::leak(
            format!("{}\nbody", "X-Filler: aaaaaaaa\n".repeat(150 * 1024 / 19))
                .into_bytes()
                .into_boxed_slice(),
        );
        let error = response(
            module(&Flag::default(), vec![Write(block)], Exit::Code(0)),
            CGI,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&error, HttpError::BadGateway(why) if why.contains("longer than")),
            "{error:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_ending_before_the_head_maps_to_its_status() {
        let cases = [
            (
                vec![Write(b"Content-Type: text/plain\n")],
                Exit::Code(0),
                "ended before the empty line",
            ),
            (vec![], Exit::Code(0), "wrote nothing"),
        ];
        for (steps, exit, why) in cases {
            let error = response(module(&Flag::default(), steps, exit), CGI)
                .await
                .unwrap_err();
            assert!(
                matches!(&error, HttpError::BadGateway(text) if text.contains(why)),
                "{error:?}"
            );
        }
        let statuses = [
            (Exit::Trap("boom".into()), HttpError::ModuleFailed),
            (Exit::Code(3), HttpError::ModuleFailed),
            (Exit::TimedOut, HttpError::GatewayTimeout),
        ];
        for (exit, expected) in statuses {
            for mode in [Mode::Cgi, Mode::Simple] {
                let plan = ResponsePlan {
                    mode,
                    head_only: false,
                };
                let run = module(&Flag::default(), vec![], exit.clone());
                assert_eq!(response(run, plan).await.unwrap_err(), expected, "{exit}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_module_streams_its_first_bytes_before_it_ends() {
        let alive = Flag::default();
        let steps = vec![
            Write(b"Content-Type: text/plain\n\nfirst,"),
            Sleep(Duration::from_secs(10)),
            Write(b"second"),
        ];
        let response = response(module(&alive, steps, Exit::Code(0)), CGI)
            .await
            .unwrap();
        assert!(alive.is_up(), "the head is sent while the module runs");
        assert_eq!(response.body().size_hint().exact(), None, "streamed");
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "first,");
        assert!(alive.is_up());
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(second, "second");
        assert!(body.frame().await.is_none());
        assert!(!alive.is_up());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_after_the_head_cuts_the_body() {
        let steps = vec![
            Write(b"Content-Type: text/plain\n\npartial"),
            Sleep(Duration::from_secs(1)),
        ];
        let run = module(&Flag::default(), steps, Exit::Trap("late".into()));
        let response = response(run, CGI).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            body_text(response).await.is_err(),
            "the body ends in an error"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn head_runs_the_module_to_its_end_and_counts_its_body() {
        let steps = vec![
            Write(b"Content-Type: text/plain\n\n12345"),
            Sleep(Duration::from_secs(5)),
            Write(b"678"),
        ];
        let plan = ResponsePlan {
            mode: Mode::Cgi,
            head_only: true,
        };
        let alive = Flag::default();
        let response = response(module(&alive, steps, Exit::Code(0)), plan)
            .await
            .unwrap();
        assert!(!alive.is_up(), "ran to its end");
        assert_eq!(response.headers()[CONTENT_LENGTH], "8");
        assert_eq!(body_text(response).await.unwrap(), "");

        let steps = vec![Write(b"Content-Type: text/plain\n\nx")];
        let run = module(&Flag::default(), steps, Exit::TimedOut);
        let error = respond(run, plan, "test-id").await.err().unwrap();
        assert_eq!(error, HttpError::GatewayTimeout);
    }

    #[tokio::test(start_paused = true)]
    async fn head_stops_a_module_past_max_output() {
        // Regression: HEAD drained a module's output without end.
        let piece: &'static [u8] = Box::leak(vec![b'x'; 16 * 1024].into_boxed_slice());
        let mut steps = vec![Write(b"Content-Type: text/plain\n\n")];
        steps.extend((0..100).map(|_| Write(piece)));
        steps.push(Sleep(Duration::from_secs(3600)));
        let plan = ResponsePlan {
            mode: Mode::Cgi,
            head_only: true,
        };
        let alive = Flag::default();
        let response = response(module(&alive, steps, Exit::Code(0)), plan)
            .await
            .unwrap();
        assert!(!alive.is_up(), "stopped past max-output");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(!response.headers().contains_key(CONTENT_LENGTH));
    }

    #[tokio::test(start_paused = true)]
    async fn a_local_location_is_an_internal_redirect() {
        let steps = vec![Write(b"Location: /other?x=1\n\n")];
        match respond(
            module(&Flag::default(), steps, Exit::Code(0)),
            CGI,
            "test-id",
        )
        .await
        {
            Ok(Reply::Redirect(target)) => assert_eq!(target, "/other?x=1"),
            _ => panic!("expected a redirect"),
        }
    }
}
