//! A CGI program's output as an HTTP response (RFC 3875 section 6): the
//! header block, `Status`, `Location` and redirects. Guest output is
//! untrusted input, so every malformed case is an error value, never a panic.

use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// Largest header block accepted from a module.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Headers a module may not set: they describe one connection hop, and the
/// server frames the body itself.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "x-request-id",
];

/// Where the header block ends: the header bytes and the offset where the
/// body starts. `None` while no empty line has been seen. An output that
/// starts with an empty line has an empty header block.
pub fn find_header_end(output: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    for (i, &byte) in output.iter().enumerate() {
        if byte == b'\n' {
            let line = &output[line_start..i];
            if line.is_empty() || line == b"\r" {
                return Some((line_start, i + 1));
            }
            line_start = i + 1;
        }
    }
    None
}

/// What a module's header block asks the server to do.
#[derive(Debug, PartialEq, Eq)]
pub enum CgiResponse {
    /// Send this status and these headers, then the module's body.
    Document {
        /// From `Status`, 302 for an absolute `Location`, else 200.
        status: StatusCode,
        /// Every header the module printed, in order, repeats kept.
        headers: HeaderMap,
    },
    /// Serve this local path (and query) instead, as a GET.
    LocalRedirect(String),
}

/// Why a header block is not a valid CGI response; sent to the client as 502.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidResponse(pub String);

impl std::fmt::Display for InvalidResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a header block (without its terminating empty line).
pub fn parse_header_block(block: &[u8]) -> Result<CgiResponse, InvalidResponse> {
    let invalid = |message: String| Err(InvalidResponse(message));
    let mut status = None;
    let mut location: Option<String> = None;
    let mut headers = HeaderMap::new();

    for raw in block.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return invalid(format!("header line without a colon: {}", preview(line)));
        };
        let Ok(name) = HeaderName::from_bytes(&line[..colon]) else {
            return invalid(format!("invalid header name: {}", preview(&line[..colon])));
        };
        let value = line[colon + 1..].trim_ascii();
        if name == "status" {
            match parse_status(value) {
                Some(code) => status = Some(code),
                None => return invalid(format!("unparseable Status header: {}", preview(value))),
            }
            continue;
        }
        let Ok(header_value) = HeaderValue::from_bytes(value) else {
            return invalid(format!("invalid value for header {name}"));
        };
        if name == LOCATION {
            location = Some(String::from_utf8_lossy(value).into_owned());
        }
        if !HOP_BY_HOP.contains(&name.as_str()) {
            headers.append(name, header_value);
        }
    }

    match location {
        Some(target) if is_local_path(&target) && status.is_none() => {
            Ok(CgiResponse::LocalRedirect(target))
        }
        Some(target) if is_local_path(&target) || is_absolute_uri(&target) => {
            Ok(CgiResponse::Document {
                status: status.unwrap_or(StatusCode::FOUND),
                headers,
            })
        }
        Some(target) => invalid(format!(
            "Location must be an absolute URL or a path starting with /: {}",
            preview(target.as_bytes())
        )),
        None if !headers.contains_key(CONTENT_TYPE) => {
            invalid("the module's output has no Content-Type header".to_owned())
        }
        None => Ok(CgiResponse::Document {
            status: status.unwrap_or(StatusCode::OK),
            headers,
        }),
    }
}

/// `Status: 404 Not Found` → 404. The reason phrase is not used.
fn parse_status(value: &[u8]) -> Option<StatusCode> {
    let code = value.split(|&b| b == b' ').next()?;
    if code.len() != 3 {
        return None;
    }
    StatusCode::from_bytes(code)
        .ok()
        .filter(|s| (100..=599).contains(&s.as_u16()))
}

fn is_local_path(target: &str) -> bool {
    target.starts_with('/') && !target.starts_with("//")
}

/// `scheme:...` per RFC 3986: a letter, then letters, digits, `+`, `-`, `.`.
fn is_absolute_uri(target: &str) -> bool {
    match target.split_once(':') {
        Some((scheme, rest)) => {
            !rest.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// The start of an offending line, safe to log and to show.
fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]);
    text.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(block: &str) -> (StatusCode, HeaderMap) {
        match parse_header_block(block.as_bytes()) {
            Ok(CgiResponse::Document { status, headers }) => (status, headers),
            other => panic!("expected a document, got {other:?}"),
        }
    }

    #[test]
    fn header_end_is_found_with_lf_and_crlf() {
        assert_eq!(find_header_end(b"A: b\n\nbody"), Some((5, 6)));
        assert_eq!(find_header_end(b"A: b\r\n\r\nbody"), Some((6, 8)));
        assert_eq!(find_header_end(b"\nbody"), Some((0, 1)));
        assert_eq!(find_header_end(b"A: b\nC: d"), None);
    }

    #[test]
    fn status_sets_the_code() {
        let (status, headers) = document("Status: 404 Not Found\nContent-Type: text/plain");
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!headers.contains_key("status"));
    }

    #[test]
    fn repeated_headers_are_kept() {
        let (_, headers) = document("Content-Type: text/plain\nSet-Cookie: a=1\nSet-Cookie: b=2");
        assert_eq!(headers.get_all("set-cookie").iter().count(), 2);
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let (_, headers) = document(
            "Content-Type: text/plain\nConnection: close\nTransfer-Encoding: chunked\nContent-Length: 5",
        );
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn absolute_location_redirects_with_302_unless_status_is_given() {
        let (status, headers) = document("Location: https://example.com/");
        assert_eq!(status, StatusCode::FOUND);
        assert_eq!(headers[LOCATION], "https://example.com/");
        let (status, _) = document("Status: 301 Moved\nLocation: https://example.com/");
        assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    }

    #[test]
    fn local_location_is_an_internal_redirect() {
        assert_eq!(
            parse_header_block(b"Location: /other?x=1"),
            Ok(CgiResponse::LocalRedirect("/other?x=1".into()))
        );
    }

    #[test]
    fn malformed_blocks_are_errors() {
        for block in [
            "Content-Type text/plain",
            "Status: abc\nContent-Type: text/plain",
            "Status: 99 Low\nContent-Type: text/plain",
            "Status: 600 High\nContent-Type: text/plain",
            "X-Only: header",
            "Location: relative/path",
            "Bad Name: x\nContent-Type: text/plain",
            "Content-Type: a\u{7f}b",
        ] {
            assert!(
                parse_header_block(block.as_bytes()).is_err(),
                "{block:?} was accepted"
            );
        }
    }
}
