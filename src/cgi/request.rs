//! An HTTP request as a CGI/1.1 program sees it (RFC 3875): the
//! meta-variables of section 4.1 and the search-word argv of section 4.4.

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, PROXY_AUTHORIZATION,
};
use http::{HeaderMap, Method, Uri, Version};
use percent_encoding::percent_decode_str;

/// The value of `SERVER_SOFTWARE`.
pub const SERVER_SOFTWARE: &str = concat!("wasm-cgi/", env!("CARGO_PKG_VERSION"));

/// The facts about one request that the meta-variables are made of.
#[derive(Debug, Clone)]
pub struct CgiRequest<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request target as it was sent.
    pub uri: &'a Uri,
    /// The HTTP version of the request.
    pub version: Version,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The client's address (`REMOTE_ADDR`): the peer's, or the one a
    /// trusted proxy gave.
    pub remote_ip: IpAddr,
    /// The client's port (`REMOTE_PORT`), when known.
    pub remote_port: Option<u16>,
    /// Whether the client's request is https (`HTTPS=on`,
    /// `REQUEST_SCHEME=https`).
    pub https: bool,
    /// The address the connection was accepted on.
    pub local_addr: SocketAddr,
    /// The part of the path that names the program, e.g.
    /// `/cgi-bin/wasm-run.cgi/hello.wasm`.
    pub script_name: &'a str,
    /// The rest of the path, already URL-decoded; empty when there is none.
    pub path_info: &'a str,
    /// The request body's length, or `None` when the request has no body.
    pub body_len: Option<usize>,
    /// Pass the `Authorization` header as `HTTP_AUTHORIZATION`, for modules
    /// that check credentials themselves.
    pub pass_authorization: bool,
    /// Set `REMOTE_USER` to the user name of Basic credentials, which the
    /// server does not verify: only for modules that know that (classic CGI
    /// programs take `REMOTE_USER` as authenticated).
    pub unverified_remote_user: bool,
    /// The subject of the client certificate the TLS handshake verified
    /// (`SSL_CLIENT_S_DN`, `AUTH_TYPE=Certificate`).
    pub client_certificate: Option<&'a str>,
}

impl CgiRequest<'_> {
    /// The CGI meta-variables: the guest's whole environment.
    pub fn meta_variables(&self) -> Vec<(String, String)> {
        let (server_name, server_port) = self.server_name_and_port();
        let remote_ip = self.remote_ip.to_string();
        let mut env = vec![
            ("GATEWAY_INTERFACE".to_owned(), "CGI/1.1".to_owned()),
            ("SERVER_SOFTWARE".to_owned(), SERVER_SOFTWARE.to_owned()),
            ("SERVER_NAME".to_owned(), server_name),
            ("SERVER_PORT".to_owned(), server_port),
            (
                "SERVER_PROTOCOL".to_owned(),
                protocol(self.version).to_owned(),
            ),
            ("REQUEST_METHOD".to_owned(), self.method.as_str().to_owned()),
            ("SCRIPT_NAME".to_owned(), self.script_name.to_owned()),
            ("PATH_INFO".to_owned(), self.path_info.to_owned()),
            (
                "QUERY_STRING".to_owned(),
                self.uri.query().unwrap_or("").to_owned(),
            ),
            ("REQUEST_URI".to_owned(), self.request_uri()),
            ("REMOTE_ADDR".to_owned(), remote_ip.clone()),
            // No reverse DNS lookup: RFC 3875 4.1.9 allows REMOTE_ADDR here.
            ("REMOTE_HOST".to_owned(), remote_ip),
            (
                "REQUEST_SCHEME".to_owned(),
                if self.https { "https" } else { "http" }.to_owned(),
            ),
        ];
        if let Some(port) = self.remote_port {
            env.push(("REMOTE_PORT".to_owned(), port.to_string()));
        }
        if self.https {
            env.push(("HTTPS".to_owned(), "on".to_owned()));
        }
        if let Some(len) = self.body_len {
            env.push(("CONTENT_LENGTH".to_owned(), len.to_string()));
            if let Some(content_type) = self.headers.get(CONTENT_TYPE) {
                env.push(("CONTENT_TYPE".to_owned(), lossy(content_type.as_bytes())));
            }
        }
        if let Some(subject) = self.client_certificate {
            // Verified by the handshake, so it wins over any header.
            env.push(("SSL_CLIENT_S_DN".to_owned(), subject.to_owned()));
            env.push(("AUTH_TYPE".to_owned(), "Certificate".to_owned()));
        } else if let Some((auth_type, user)) = self
            .headers
            .get(AUTHORIZATION)
            .map(|v| authorization(v.as_bytes()))
        {
            env.push(("AUTH_TYPE".to_owned(), auth_type));
            if let Some(user) = user.filter(|_| self.unverified_remote_user) {
                env.push(("REMOTE_USER".to_owned(), user));
            }
        }
        env.extend(self.header_variables());
        // HTTP/2 carries the host in the `:authority` pseudo-header, not
        // in `Host`: scripts read HTTP_HOST either way.
        if !self.headers.contains_key(HOST)
            && let Some(authority) = self.uri.authority()
        {
            env.push(("HTTP_HOST".to_owned(), authority.as_str().to_owned()));
        }
        env
    }

    /// Every request header as `HTTP_NAME`, repeated headers merged.
    fn header_variables(&self) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = Vec::new();
        for name in self.headers.keys() {
            let skip = name == CONTENT_TYPE
                || name == CONTENT_LENGTH
                || name == PROXY_AUTHORIZATION
                // httpoxy: a `Proxy` header would become HTTP_PROXY, which
                // HTTP clients inside the module take as their proxy.
                || name == "proxy"
                || (name == AUTHORIZATION && !self.pass_authorization)
                // `a_b` and `a-b` would both become HTTP_A_B; like Apache,
                // pass neither spelling that could be forged. And a name
                // with other token characters (`~`, `.`, `*`...) would make
                // no valid variable name at all.
                || !name.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if skip {
                continue;
            }
            let separator = if name == COOKIE { "; " } else { ", " };
            let value = self
                .headers
                .get_all(name)
                .iter()
                .map(|v| lossy(v.as_bytes()))
                .collect::<Vec<_>>()
                .join(separator);
            let var = format!(
                "HTTP_{}",
                name.as_str().to_ascii_uppercase().replace('-', "_")
            );
            vars.push((var, value));
        }
        vars
    }

    /// `SERVER_NAME` and `SERVER_PORT`: from the `Host` header (or an
    /// absolute request target) when present, else the bound address.
    fn server_name_and_port(&self) -> (String, String) {
        let local_port = self.local_addr.port().to_string();
        let authority = self
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                self.headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        match authority.as_deref().and_then(split_host_port) {
            Some((host, port)) => (host.to_owned(), port.map_or(local_port, str::to_owned)),
            None => (self.local_addr.ip().to_string(), local_port),
        }
    }

    /// The request target as sent, in origin form.
    fn request_uri(&self) -> String {
        self.uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned())
    }
}

/// Splits `host[:port]` (with `[v6]` literals); `None` if it is empty or malformed.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    let authority = authority.rsplit('@').next()?;
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = port.filter(|p| !p.is_empty());
    if host.is_empty() || port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return None;
    }
    Some((host, port))
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// `AUTH_TYPE` and, for Basic, the user name it carries (not verified).
fn authorization(value: &[u8]) -> (String, Option<String>) {
    let value = lossy(value);
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let user = scheme
        .eq_ignore_ascii_case("basic")
        .then(|| {
            base64::engine::general_purpose::STANDARD
                .decode(credentials.trim())
                .ok()
        })
        .flatten()
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .map(|pair| {
            pair.split_once(':')
                .map_or(pair.clone(), |(user, _)| user.to_owned())
        });
    (scheme.to_owned(), user)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The search words of a query string (RFC 3875 4.4): when the query has no
/// unencoded `=`, it is split on `+` and each word URL-decoded. Returns no
/// words when the query is not a search string, or when a word can't be
/// represented as an argument (not UTF-8, or holding a NUL).
pub fn search_words(query: &str) -> Vec<String> {
    if query.is_empty() || query.contains('=') {
        return Vec::new();
    }
    let words: Option<Vec<String>> = query
        .split('+')
        .map(|word| {
            let decoded = percent_decode_str(word).decode_utf8().ok()?;
            (!word.is_empty() && !decoded.contains('\0')).then(|| decoded.into_owned())
        })
        .collect();
    words.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_split_on_plus_and_decode() {
        assert_eq!(search_words("a+b%20c"), ["a", "b c"]);
        assert_eq!(search_words("caf%C3%A9"), ["café"]);
        assert_eq!(search_words("%3D"), ["="]);
    }

    #[test]
    fn queries_with_an_unencoded_equals_sign_give_no_words() {
        assert!(search_words("a=b").is_empty());
        assert!(search_words("x+a=b").is_empty());
        assert!(search_words("").is_empty());
    }

    #[test]
    fn unrepresentable_words_drop_every_argument() {
        assert!(search_words("ok+%FF").is_empty());
        assert!(search_words("ok+%00").is_empty());
        assert!(search_words("a++b").is_empty());
    }

    #[test]
    fn host_and_port_are_split_for_names_and_ipv6_literals() {
        assert_eq!(
            split_host_port("example.com:8080"),
            Some(("example.com", Some("8080")))
        );
        assert_eq!(split_host_port("example.com"), Some(("example.com", None)));
        assert_eq!(split_host_port("[::1]:81"), Some(("::1", Some("81"))));
        assert_eq!(split_host_port("host:notaport"), None);
        assert_eq!(split_host_port(""), None);
    }

    fn variables(headers: &[(&str, &str)], unverified_remote_user: bool) -> Vec<(String, String)> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let uri: Uri = "/x".parse().unwrap();
        CgiRequest {
            method: &Method::GET,
            uri: &uri,
            version: Version::HTTP_11,
            headers: &map,
            remote_ip: "127.0.0.1".parse().unwrap(),
            remote_port: Some(1000),
            https: false,
            local_addr: "127.0.0.1:80".parse().unwrap(),
            script_name: "/x",
            path_info: "",
            body_len: None,
            pass_authorization: false,
            unverified_remote_user,
            client_certificate: None,
        }
        .meta_variables()
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter()
            .find(|(var, _)| var == name)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn the_scheme_and_port_follow_what_is_known_of_the_client() {
        let uri: Uri = "/x".parse().unwrap();
        let headers = HeaderMap::new();
        let request = CgiRequest {
            method: &Method::GET,
            uri: &uri,
            version: Version::HTTP_11,
            headers: &headers,
            remote_ip: "203.0.113.7".parse().unwrap(),
            remote_port: None,
            https: true,
            local_addr: "127.0.0.1:80".parse().unwrap(),
            script_name: "/x",
            path_info: "",
            body_len: None,
            pass_authorization: false,
            unverified_remote_user: false,
            client_certificate: None,
        };
        let env = request.meta_variables();
        assert_eq!(get(&env, "REMOTE_ADDR"), Some("203.0.113.7"));
        assert_eq!(get(&env, "REMOTE_PORT"), None);
        assert_eq!(get(&env, "HTTPS"), Some("on"));
        assert_eq!(get(&env, "REQUEST_SCHEME"), Some("https"));
        let env = variables(&[], false);
        assert_eq!(get(&env, "REMOTE_PORT"), Some("1000"));
        assert_eq!(get(&env, "HTTPS"), None);
        assert_eq!(get(&env, "REQUEST_SCHEME"), Some("http"));
    }

    #[test]
    fn header_names_that_make_no_variable_name_are_not_passed() {
        // Found by the property test: `~` became HTTP_~.
        let env = variables(
            &[("x~y", "1"), ("a.b", "2"), ("x_y", "3"), ("ok-1", "4")],
            false,
        );
        let http: Vec<&str> = env
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| name.starts_with("HTTP_"))
            .collect();
        assert_eq!(http, ["HTTP_OK_1"]);
    }

    #[test]
    fn a_proxy_header_never_becomes_http_proxy() {
        // httpoxy: HTTP_PROXY would point the module's HTTP clients at the
        // attacker.
        let env = variables(
            &[("proxy", "http://evil.example:3128"), ("x-a", "1")],
            false,
        );
        assert_eq!(get(&env, "HTTP_PROXY"), None);
        assert_eq!(get(&env, "HTTP_X_A"), Some("1"));
    }

    #[test]
    fn remote_user_from_unverified_basic_credentials_is_opt_in() {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("pinky:brain")
        );
        let env = variables(&[("authorization", &basic)], false);
        assert_eq!(get(&env, "AUTH_TYPE"), Some("Basic"));
        assert_eq!(get(&env, "REMOTE_USER"), None);
        let env = variables(&[("authorization", &basic)], true);
        assert_eq!(get(&env, "REMOTE_USER"), Some("pinky"));
    }

    #[test]
    fn basic_authorization_gives_the_user_name() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("pinky:brain")
        );
        assert_eq!(
            authorization(header.as_bytes()),
            ("Basic".into(), Some("pinky".into()))
        );
        assert_eq!(authorization(b"Bearer abc"), ("Bearer".into(), None));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn every_variable_name_is_upper_case_and_no_value_holds_a_nul(
                headers in proptest::collection::vec(
                    ("[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}", proptest::collection::vec(any::<u8>(), 0..20)),
                    0..12,
                ),
                path_info in "\\PC{0,20}",
                query in "[ -~]{0,20}",
            ) {
                let mut map = HeaderMap::new();
                for (name, value) in &headers {
                    if let (Ok(name), Ok(value)) = (
                        http::HeaderName::from_bytes(name.as_bytes()),
                        http::HeaderValue::from_bytes(value),
                    ) {
                        map.append(name, value);
                    }
                }
                let uri: Option<Uri> = format!("/x?{}", query.replace(' ', "%20")).parse().ok();
                let uri = uri.unwrap_or_else(|| Uri::from_static("/x"));
                let path_info = path_info.replace('\0', "");
                let env = CgiRequest {
                    method: &Method::POST,
                    uri: &uri,
                    version: Version::HTTP_11,
                    headers: &map,
                    remote_ip: "127.0.0.1".parse().unwrap(),
                    remote_port: Some(1000),
                    https: true,
                    local_addr: "127.0.0.1:80".parse().unwrap(),
                    script_name: "/x",
                    path_info: &path_info,
                    body_len: Some(3),
                    pass_authorization: true,
                    unverified_remote_user: true,
                    client_certificate: Some("CN=client"),
                }
                .meta_variables();
                for (name, value) in &env {
                    prop_assert!(
                        !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                        "{name:?}"
                    );
                    prop_assert!(!value.contains('\0'), "{name}={value:?}");
                }
            }

            #[test]
            fn search_words_never_hold_a_nul(query in "[ -~]{0,40}") {
                for word in search_words(&query) {
                    prop_assert!(!word.contains('\0'));
                }
            }
        }
    }
}
