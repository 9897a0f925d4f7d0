//! A CGI program's output as an HTTP response (RFC 3875 section 6): the
//! header block, `Status`, `Location` and redirects. Guest output is
//! untrusted input, so every malformed case is an error value, never a panic.

use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// Largest header block accepted from a module, without the empty line
/// that ends it.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Most header lines accepted from a module (a `HeaderMap` holds at most
/// 32,768 entries, and no response needs a thousand).
pub const MAX_HEADERS: usize = 1000;

/// Headers a module may not set: the hop-by-hop headers of RFC 2616
/// section 13.5.1 (they describe one connection hop), the framing the
/// server does itself, and the request id the server sets.
const HOP_BY_HOP: [&str; 12] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "x-request-id",
];

/// Finds where a header block ends in output that arrives piece by piece.
/// Each call scans only the bytes added since the last one, so the work is
/// linear in the output however it is split, and only the first
/// [`MAX_HEADER_BLOCK`] bytes are ever looked at.
#[derive(Debug, Default, Clone)]
pub struct HeaderScanner {
    /// Where the line being scanned starts.
    line_start: usize,
    /// How far the output has been scanned.
    scanned: usize,
}

/// What [`HeaderScanner::scan`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderEnd {
    /// The block is `output[..header_len]`; the body starts at `body_start`.
    /// An output that starts with an empty line has an empty block.
    Found {
        /// Length of the header lines, without the empty line.
        header_len: usize,
        /// Offset of the first body byte.
        body_start: usize,
    },
    /// No empty line yet; more output is needed.
    NotYet,
    /// No empty line within [`MAX_HEADER_BLOCK`] bytes.
    TooLong,
}

impl HeaderScanner {
    /// Scans `output` (everything written so far; each call's `output`
    /// starts with the previous one's).
    pub fn scan(&mut self, output: &[u8]) -> HeaderEnd {
        // The empty line may start at MAX_HEADER_BLOCK at the latest, and
        // then ends at most two bytes later ("\r\n").
        let limit = output.len().min(MAX_HEADER_BLOCK + 2);
        while self.scanned < limit {
            let i = self.scanned;
            self.scanned += 1;
            if output[i] != b'\n' {
                continue;
            }
            let line = &output[self.line_start..i];
            if line.is_empty() || line == b"\r" {
                if self.line_start > MAX_HEADER_BLOCK {
                    return HeaderEnd::TooLong;
                }
                return HeaderEnd::Found {
                    header_len: self.line_start,
                    body_start: i + 1,
                };
            }
            self.line_start = i + 1;
        }
        if output.len() >= MAX_HEADER_BLOCK + 2 {
            HeaderEnd::TooLong
        } else {
            HeaderEnd::NotYet
        }
    }
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
            let kept =
                headers.len() < MAX_HEADERS && headers.try_append(name, header_value).is_ok();
            if !kept {
                return invalid(format!("more than {MAX_HEADERS} header lines"));
            }
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

/// `Status: 404 Not Found` → 404. The reason phrase is not used. A final
/// response is 200 to 599: a 1xx (101 above all) is not a response a CGI
/// program can give.
fn parse_status(value: &[u8]) -> Option<StatusCode> {
    let code = value.split(|&b| b == b' ').next()?;
    if code.len() != 3 {
        return None;
    }
    StatusCode::from_bytes(code)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
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

    fn end(output: &[u8]) -> HeaderEnd {
        HeaderScanner::default().scan(output)
    }

    fn found(header_len: usize, body_start: usize) -> HeaderEnd {
        HeaderEnd::Found {
            header_len,
            body_start,
        }
    }

    #[test]
    fn header_end_is_found_with_lf_and_crlf() {
        assert_eq!(end(b"A: b\n\nbody"), found(5, 6));
        assert_eq!(end(b"A: b\r\n\r\nbody"), found(6, 8));
        assert_eq!(end(b"\nbody"), found(0, 1));
        assert_eq!(end(b"A: b\nC: d"), HeaderEnd::NotYet);
    }

    #[test]
    fn the_scanner_resumes_where_it_stopped_whatever_the_split() {
        let output = b"Content-Type: text/plain\r\nX-A: 1\r\n\r\nbody";
        for split in 0..output.len() {
            let mut scanner = HeaderScanner::default();
            let first = scanner.scan(&output[..split]);
            let second = scanner.scan(output);
            let expected = found(34, 36);
            assert!(first == HeaderEnd::NotYet || first == expected, "{split}");
            if first == HeaderEnd::NotYet {
                assert_eq!(second, expected, "split at {split}");
            }
        }
        // One byte at a time: each byte is looked at once.
        let mut scanner = HeaderScanner::default();
        for len in 1..output.len() {
            if let HeaderEnd::Found { .. } = scanner.scan(&output[..len]) {
                assert_eq!(len, 36);
                break;
            }
        }
        assert_eq!(scanner.scanned, 36);
    }

    #[test]
    fn a_block_longer_than_the_cap_is_refused_even_when_its_end_comes_later() {
        // One big write can carry a header block far past the cap, with
        // its empty line after it: it is refused without looking further.
        let mut output = "X-Filler: aaaaaaaa\n"
            .repeat(MAX_HEADER_BLOCK / 10)
            .into_bytes();
        output.extend_from_slice(b"\nbody");
        assert_eq!(end(&output), HeaderEnd::TooLong);
        let exactly = format!("{}\n\n", "a".repeat(MAX_HEADER_BLOCK - 1));
        assert_eq!(
            end(exactly.as_bytes()),
            found(MAX_HEADER_BLOCK, MAX_HEADER_BLOCK + 1)
        );
        let over = format!("{}\n\n", "a".repeat(MAX_HEADER_BLOCK));
        assert_eq!(end(over.as_bytes()), HeaderEnd::TooLong);
    }

    #[test]
    fn more_header_lines_than_the_cap_are_refused() {
        let block = format!(
            "Content-Type: text/plain\n{}",
            "X-N: v\n".repeat(MAX_HEADERS)
        );
        let error = parse_header_block(block.as_bytes()).unwrap_err();
        assert!(error.0.contains("header lines"), "{error}");
        let block = format!(
            "Content-Type: text/plain\n{}",
            "X-N: v\n".repeat(MAX_HEADERS - 1)
        );
        assert!(parse_header_block(block.as_bytes()).is_ok());
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
            "Content-Type: text/plain\nConnection: close\nTransfer-Encoding: chunked\nContent-Length: 5\n\
             Keep-Alive: 5\nProxy-Authenticate: Basic\nProxy-Authorization: x\nTE: trailers\n\
             Trailer: X-Sum\nTrailers: X-Sum\nUpgrade: h2c\nX-Request-Id: forged",
        );
        assert_eq!(headers.len(), 1, "{headers:?}");
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
            "Status: 101 Switching Protocols\nContent-Type: text/plain",
            "Status: 100 Continue\nContent-Type: text/plain",
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

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Lines that look like CGI output: names, colons, values, stray
        /// controls and line ends.
        fn block() -> impl Strategy<Value = Vec<u8>> {
            let line = prop_oneof![
                "(Status|Location|Content-Type|X-[A-Za-z]{1,5}): [ -~]{0,20}",
                "[ -~]{0,30}",
                "Status: [0-9]{1,4}[ -~]{0,5}",
                "Location: (/|https?://|//)[ -~]{0,10}",
            ];
            (
                proptest::collection::vec(line, 0..20),
                proptest::collection::vec(any::<u8>(), 0..40),
            )
                .prop_map(|(lines, noise)| {
                    let mut block = lines.join("\n").into_bytes();
                    block.extend(noise);
                    block
                })
        }

        proptest! {
            #[test]
            fn parsing_never_panics_and_never_yields_a_control_in_a_value(block in block()) {
                if let Ok(CgiResponse::Document { headers, .. }) = parse_header_block(&block) {
                    for value in headers.values() {
                        prop_assert!(!value.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n' | 0)));
                    }
                }
            }

            #[test]
            fn scanning_in_pieces_finds_what_scanning_at_once_finds(
                output in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..300),
                cuts in proptest::collection::vec(0usize..300, 0..10),
            ) {
                let whole = HeaderScanner::default().scan(&output);
                let mut scanner = HeaderScanner::default();
                let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(output.len())).collect();
                cuts.sort_unstable();
                let mut found = HeaderEnd::NotYet;
                for cut in cuts.into_iter().chain([output.len()]) {
                    found = scanner.scan(&output[..cut]);
                    if found != HeaderEnd::NotYet {
                        break;
                    }
                }
                prop_assert_eq!(found, whole);
            }
        }
    }
}
