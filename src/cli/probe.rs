//! `wasm-cgi probe URL`: one HTTP GET, exit code 0 on a 2xx answer and 1
//! with a one-line reason otherwise. The container image has no shell and no
//! curl, so this is its `HEALTHCHECK`, and a Kubernetes exec probe.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::limits::parse_duration;

/// The port a bare path is probed on when `PORT` is not set: `serve`'s.
const DEFAULT_PORT: &str = "8080";

/// GET a URL once; succeed on a 2xx answer.
#[derive(clap::Args, Debug)]
pub struct ProbeCommand {
    /// The http:// URL to GET, e.g. http://127.0.0.1:8080/healthz. A bare
    /// path such as /healthz means http://127.0.0.1:$PORT/healthz (PORT as
    /// for `serve`, default 8080)
    #[arg(value_name = "URL")]
    pub url: String,
    /// Give up after this long, connecting and waiting for the answer
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pub timeout: Duration,
}

impl ProbeCommand {
    /// Prints `STATUS URL` on success; one `unhealthy: ...` line on stderr
    /// and exit code 1 on a non-2xx answer, no answer or no connection.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let port = std::env::var("PORT").ok();
        let target = Target::parse(&self.url, port.as_deref())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("failed to start the async runtime")?;
        let answer =
            runtime.block_on(async { tokio::time::timeout(self.timeout, get(&target)).await });
        let reason = match answer {
            Ok(Ok(status)) if status.is_success() => {
                println!("{} {target}", status.as_u16());
                return Ok(ExitCode::SUCCESS);
            }
            Ok(Ok(status)) => format!("{target} answered {status}"),
            Ok(Err(error)) => format!("{target}: {error:#}"),
            Err(_) => format!(
                "no answer from {target} within {}",
                humantime::format_duration(self.timeout)
            ),
        };
        eprintln!("unhealthy: {reason}");
        Ok(ExitCode::FAILURE)
    }
}

/// Where to connect and what to ask for.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port`, to connect to and to send as `Host`.
    authority: String,
    /// The request target: path and query.
    path: String,
}

impl Target {
    /// Reads `url`, or a bare path on 127.0.0.1 and `port` (else 8080).
    fn parse(url: &str, port: Option<&str>) -> anyhow::Result<Target> {
        if url.starts_with('/') {
            let port = port.filter(|p| !p.is_empty()).unwrap_or(DEFAULT_PORT);
            if port.parse::<u16>().is_err() {
                bail!("PORT={port:?} is not a port number");
            }
            let url = format!("http://127.0.0.1:{port}{url}");
            return Target::parse(&url, None);
        }
        let uri: Uri = url.parse().with_context(|| {
            format!("{url:?} is not a URL; write e.g. http://127.0.0.1:8080/healthz")
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("{url}: only http:// URLs can be probed, not {other}://"),
            None => bail!("{url:?} has no scheme; write e.g. http://127.0.0.1:8080/healthz"),
        }
        let Some(authority) = uri.authority() else {
            bail!("{url:?} names no host");
        };
        if authority.as_str().contains('@') {
            bail!("{url}: user names and passwords are not supported");
        }
        let port = authority.port_u16().unwrap_or(80);
        Ok(Target {
            authority: format!("{}:{port}", authority.host()),
            path: uri
                .path_and_query()
                .map_or("/".to_owned(), |p| p.as_str().to_owned()),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

/// One GET on a fresh connection; the status of the answer (its body is
/// not read).
async fn get(target: &Target) -> anyhow::Result<StatusCode> {
    let stream = TcpStream::connect(&target.authority)
        .await
        .context("cannot connect")?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake failed")?;
    // Drives the connection; its error, if any, also fails `send_request`.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::get(&target.path)
        .header(header::HOST, &target.authority)
        .header(header::USER_AGENT, "wasm-cgi-probe")
        .body(Empty::<Bytes>::new())
        .context("invalid request")?;
    let response = sender
        .send_request(request)
        .await
        .context("no HTTP answer")?;
    Ok(response.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(authority: &str, path: &str) -> Target {
        Target {
            authority: authority.to_owned(),
            path: path.to_owned(),
        }
    }

    #[test]
    fn a_url_gives_its_host_port_and_path() {
        let parse = |url| Target::parse(url, Some("9999")).unwrap();
        assert_eq!(
            parse("http://127.0.0.1:8080/healthz"),
            target("127.0.0.1:8080", "/healthz")
        );
        assert_eq!(
            parse("http://localhost/readyz?x=1"),
            target("localhost:80", "/readyz?x=1")
        );
        assert_eq!(parse("http://[::1]:81"), target("[::1]:81", "/"));
    }

    #[test]
    fn a_bare_path_is_probed_on_loopback_and_port() {
        assert_eq!(
            Target::parse("/healthz", Some("9090")).unwrap(),
            target("127.0.0.1:9090", "/healthz")
        );
        for unset in [None, Some("")] {
            assert_eq!(
                Target::parse("/healthz", unset).unwrap(),
                target("127.0.0.1:8080", "/healthz")
            );
        }
        let error = Target::parse("/healthz", Some("http")).unwrap_err();
        assert!(error.to_string().contains("PORT"), "{error}");
    }

    #[test]
    fn what_cannot_be_probed_is_refused_with_a_reason() {
        for (url, reason) in [
            ("https://127.0.0.1/healthz", "only http://"),
            ("127.0.0.1:8080/healthz", "not a URL"),
            ("localhost", "no scheme"),
            ("http://user:pw@127.0.0.1/", "user names"),
            ("not a url", "not a URL"),
        ] {
            let error = Target::parse(url, None).unwrap_err();
            assert!(error.to_string().contains(reason), "{url}: {error}");
        }
    }
}
