//! Outbound HTTP from guests (`wasi:http/outgoing-handler`): denied unless
//! the route lists the host in `allowed_hosts`. A denied request fails in the
//! guest with `error-code.HTTP-request-denied`, before any DNS lookup or
//! connection. Allowed requests go out through wasmtime-wasi-http's client
//! (plain HTTP or TLS), with its timeouts capped by the request's own.

use std::sync::Arc;
use std::time::Duration;

use http::uri::{Scheme, Uri};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The hosts a guest may send requests to. Empty: none (the default).
///
/// Each entry is `HOST` (its scheme's default port: 80 for `http`, 443 for
/// `https`), `HOST:PORT` (that port, either scheme), `*.DOMAIN` or
/// `*.DOMAIN:PORT` (any name under `DOMAIN`), or `*` (anywhere). Names
/// compare without case. The check is on the name as the guest wrote it: a
/// name resolves to whatever DNS says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    patterns: Vec<HostPattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPattern {
    host: HostMatch,
    /// `None`: the scheme's default port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.com`: stored as `.example.com`.
    Suffix(String),
}

impl AllowedHosts {
    /// Parses the entries of an `allowed_hosts` list; the error names the
    /// first bad entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let patterns = entries
            .iter()
            .map(|entry| HostPattern::parse(entry.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// Whether no host at all is allowed.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether a request to `uri` (absolute: scheme and authority) may go out.
    pub fn allows(&self, uri: &Uri) -> bool {
        let Some(authority) = uri.authority() else {
            return false;
        };
        // The client connects to the authority as written: with user info,
        // or a port that isn't one, it would not be the host checked here.
        let port_text = authority
            .as_str()
            .rsplit_once(':')
            .filter(|(_, port)| !port.contains(']'));
        let port_is_valid = port_text.is_none() || authority.port_u16().is_some_and(|p| p > 0);
        if authority.as_str().contains('@') || !port_is_valid {
            return false;
        }
        let default_port = match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTPS => 443,
            Some(scheme) if *scheme == Scheme::HTTP => 80,
            _ => return false,
        };
        let host = authority.host().to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(default_port);
        self.patterns.iter().any(|pattern| {
            pattern.port.unwrap_or(default_port) == port
                && match &pattern.host {
                    HostMatch::Any => true,
                    HostMatch::Exact(name) => *name == host,
                    HostMatch::Suffix(suffix) => host.ends_with(suffix.as_str()),
                }
        })
    }
}

impl HostPattern {
    fn parse(entry: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("allowed_hosts entry {entry:?} {why}");
        if entry.contains("://") || entry.contains('/') {
            return Err(bad("must be HOST or HOST:PORT, without a scheme or a path"));
        }
        let (host, port) = match entry.rsplit_once(':') {
            // An IPv6 literal is bracketed: `[::1]:8080`.
            Some((host, port)) if !port.contains(']') => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| bad("has a port that is not a number from 0 to 65535"))?;
                (host, Some(port))
            }
            _ => (entry, None),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            valid_name(domain)
                .then(|| HostMatch::Suffix(format!(".{domain}")))
                .ok_or_else(|| bad("is not a valid host name"))?
        } else {
            valid_name(&host)
                .then_some(HostMatch::Exact(host))
                .ok_or_else(|| bad("is not a valid host name"))?
        };
        Ok(Self { host, port })
    }
}

/// A DNS name, an IPv4 address, or a bracketed IPv6 address.
fn valid_name(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// The outbound policy of one instance: the route's allowed hosts, and the
/// longest any outbound request may wait on the network.
pub struct OutboundPolicy {
    allowed: Arc<AllowedHosts>,
    max_wait: Duration,
}

impl OutboundPolicy {
    /// A policy allowing `allowed`, no wait longer than `max_wait` (the
    /// request's timeout: the instance is gone by then anyway).
    pub fn new(allowed: Arc<AllowedHosts>, max_wait: Duration) -> Self {
        Self { allowed, max_wait }
    }

    /// The guest's timeouts, each capped at `max_wait`.
    fn capped(&self, options: Option<RequestOptions>) -> RequestOptions {
        let options = options.unwrap_or_default();
        let cap =
            |wait: Option<Duration>| Some(wait.map_or(self.max_wait, |w| w.min(self.max_wait)));
        RequestOptions {
            connect_timeout: cap(options.connect_timeout),
            first_byte_timeout: cap(options.first_byte_timeout),
            between_bytes_timeout: cap(options.between_bytes_timeout),
        }
    }
}

/// What `send_request` gives back: the response and the connection's future.
type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        if !self.allowed.allows(request.uri()) {
            tracing::debug!(uri = %request.uri(), "outbound request denied: host not in allowed_hosts");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let options = self.capped(options);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, connection) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(connection) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entries: &[&str], uri: &str) -> bool {
        AllowedHosts::parse(entries)
            .unwrap()
            .allows(&uri.parse().unwrap())
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        assert!(!allows(&[], "http://example.com/"));
        assert!(AllowedHosts::default().is_empty());
    }

    #[test]
    fn a_bare_host_means_its_default_port() {
        assert!(allows(&["api.example.com"], "https://api.example.com/v1"));
        assert!(allows(&["api.example.com"], "http://API.example.com/"));
        assert!(allows(&["api.example.com"], "https://api.example.com:443/"));
        assert!(!allows(
            &["api.example.com"],
            "https://api.example.com:8443/"
        ));
        assert!(!allows(&["api.example.com"], "https://example.com/"));
        assert!(!allows(
            &["api.example.com"],
            "https://api.example.com.evil.net/"
        ));
    }

    #[test]
    fn a_port_matches_exactly() {
        assert!(allows(&["127.0.0.1:8081"], "http://127.0.0.1:8081/x"));
        assert!(!allows(&["127.0.0.1:8081"], "http://127.0.0.1:8082/x"));
        assert!(!allows(&["127.0.0.1:8081"], "http://127.0.0.1/x"));
        assert!(allows(&["[::1]:8081"], "http://[::1]:8081/"));
        assert!(allows(&["my_api:8080"], "http://my_api:8080/"));
    }

    #[test]
    fn user_info_and_bogus_ports_are_denied() {
        assert!(!allows(&["api.example.com"], "http://x@api.example.com/"));
        assert!(!allows(&["*"], "http://api.example.com:0/"));
        assert!(!allows(&["*"], "http://api.example.com:99999/"));
        assert!(allows(&["*"], "http://[::1]/"));
    }

    #[test]
    fn wildcards_match_names_under_a_domain_or_anything() {
        assert!(allows(&["*.example.com"], "https://a.b.example.com/"));
        assert!(!allows(&["*.example.com"], "https://example.com/"));
        assert!(!allows(&["*.example.com"], "https://badexample.com/"));
        assert!(allows(&["*"], "https://anything.net/"));
        assert!(allows(&["*:8080"], "http://anything.net:8080/"));
        assert!(!allows(&["*"], "http://anything.net:8080/"));
    }

    #[test]
    fn bad_entries_are_named() {
        for entry in [
            "http://x.com",
            "x.com/path",
            "x.com:http",
            "",
            "a..b",
            "*.",
            "[zz]:80",
        ] {
            let error = AllowedHosts::parse(&[entry]).unwrap_err();
            assert!(error.contains(&format!("{entry:?}")), "{error}");
        }
    }
}
