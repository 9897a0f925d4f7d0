//! Every CGI meta-variable of RFC 3875 section 4.1, one table row each, as
//! `env-dump.wasm` sees it (and, for a POST, its `-p2` command twin too).

use std::collections::HashMap;

use crate::support::{HOST_SECRET, Server, client, parse_env, twins};

async fn env_of(request: reqwest::RequestBuilder) -> HashMap<String, String> {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    parse_env(&response.text().await.unwrap())
}

#[tokio::test]
async fn a_post_with_headers_gets_every_meta_variable_right() {
    let server = Server::start_all(&[]);
    let port = server.addr.port().to_string();
    let mut envs = Vec::new();
    for name in twins("env-dump.wasm") {
        let script_name = format!("/cgi-bin/wasm-run.cgi/{name}");
        let request_uri = format!("{script_name}/extra/p%20ath?x=1&y=%20");
        let mut env = env_of(
            client()
                .post(server.url(&request_uri))
                .header("Content-Type", "application/json")
                .header("X-Custom", "first")
                .header("Accept-Language", "en")
                .header("Authorization", "Basic cGlua3k6YnJhaW4=")
                .header("Proxy-Authorization", "Basic c2VjcmV0")
                .body("{\"a\":1}"),
        )
        .await;

        let expected: &[(&str, Option<&str>)] = &[
            ("GATEWAY_INTERFACE", Some("CGI/1.1")),
            (
                "SERVER_SOFTWARE",
                Some(concat!("wasm-cgi/", env!("CARGO_PKG_VERSION"))),
            ),
            ("SERVER_NAME", Some("127.0.0.1")),
            ("SERVER_PORT", Some(&port)),
            ("SERVER_PROTOCOL", Some("HTTP/1.1")),
            ("REQUEST_METHOD", Some("POST")),
            ("SCRIPT_NAME", Some(&script_name)),
            ("PATH_INFO", Some("/extra/p ath")),
            ("PATH_TRANSLATED", None),
            ("QUERY_STRING", Some("x=1&y=%20")),
            ("REQUEST_URI", Some(&request_uri)),
            ("REMOTE_ADDR", Some("127.0.0.1")),
            ("REMOTE_HOST", Some("127.0.0.1")),
            ("REQUEST_SCHEME", Some("http")),
            ("HTTPS", None),
            ("CONTENT_TYPE", Some("application/json")),
            ("CONTENT_LENGTH", Some("7")),
            ("AUTH_TYPE", Some("Basic")),
            // Unverified Basic credentials: only where a route opts in.
            ("REMOTE_USER", None),
            ("HTTP_X_CUSTOM", Some("first")),
            ("HTTP_ACCEPT_LANGUAGE", Some("en")),
            ("HTTP_HOST", Some(&format!("127.0.0.1:{port}"))),
            ("HTTP_AUTHORIZATION", None),
            ("HTTP_PROXY_AUTHORIZATION", None),
            ("HTTP_CONTENT_TYPE", None),
            ("HTTP_CONTENT_LENGTH", None),
            (HOST_SECRET.0, None),
            ("PATH", None),
            ("HOME", None),
        ];
        for (variable, value) in expected {
            assert_eq!(
                env.get(*variable).map(String::as_str),
                *value,
                "{name}: {variable}"
            );
        }
        // Only the client's port, the request id and the program's own
        // name may differ.
        assert!(env.remove("REMOTE_PORT").is_some(), "{name}: {env:?}");
        assert!(env.remove("HTTP_X_REQUEST_ID").is_some(), "{name}: {env:?}");
        for value in env.values_mut() {
            *value = value.replace(&name, "PROGRAM");
        }
        envs.push(env);
    }
    assert_eq!(
        envs[0], envs[1],
        "a command gets exactly the meta-variables a module gets"
    );
}

#[tokio::test]
async fn a_get_without_body_has_no_content_variables_and_an_empty_query_and_path_info() {
    let server = Server::start(&[]);
    let env = env_of(client().get(server.cgi("env-dump.wasm"))).await;
    assert_eq!(env.get("QUERY_STRING").map(String::as_str), Some(""));
    assert_eq!(env.get("PATH_INFO").map(String::as_str), Some(""));
    assert_eq!(env.get("REQUEST_METHOD").map(String::as_str), Some("GET"));
    assert!(!env.contains_key("CONTENT_LENGTH"));
    assert!(!env.contains_key("CONTENT_TYPE"));
    assert!(!env.contains_key("AUTH_TYPE"));
}

#[tokio::test]
async fn repeated_headers_are_merged_and_underscored_names_dropped() {
    let server = Server::start(&[]);
    let response = server.raw(
        b"GET /cgi-bin/wasm-run.cgi/env-dump.wasm HTTP/1.1\r\nHost: example.com\r\n\
          X-Multi: a\r\nX-Multi: b\r\nX_Forged: evil\r\nCookie: c=1\r\nCookie: d=2\r\n\
          Connection: close\r\n\r\n",
    );
    let env = parse_env(&response);
    assert_eq!(env.get("HTTP_X_MULTI").map(String::as_str), Some("a, b"));
    assert_eq!(env.get("HTTP_COOKIE").map(String::as_str), Some("c=1; d=2"));
    assert!(!env.contains_key("HTTP_X_FORGED"), "{response}");
}

#[tokio::test]
async fn server_name_and_port_come_from_the_host_header() {
    let server = Server::start(&[]);
    let env = env_of(
        client()
            .get(server.cgi("env-dump.wasm"))
            .header("Host", "example.com:8443"),
    )
    .await;
    assert_eq!(
        env.get("SERVER_NAME").map(String::as_str),
        Some("example.com")
    );
    assert_eq!(env.get("SERVER_PORT").map(String::as_str), Some("8443"));

    let env = env_of(
        client()
            .get(server.cgi("env-dump.wasm"))
            .header("Host", "[::1]"),
    )
    .await;
    assert_eq!(env.get("SERVER_NAME").map(String::as_str), Some("::1"));
    assert_eq!(
        env.get("SERVER_PORT"),
        Some(&server.addr.port().to_string())
    );
}

#[tokio::test]
async fn without_a_host_header_the_bound_address_is_used() {
    let server = Server::start(&[]);
    let response = server.raw(b"GET /cgi-bin/wasm-run.cgi/env-dump.wasm HTTP/1.0\r\n\r\n");
    let env = parse_env(&response);
    assert_eq!(
        env.get("SERVER_NAME").map(String::as_str),
        Some("127.0.0.1")
    );
    assert_eq!(
        env.get("SERVER_PORT"),
        Some(&server.addr.port().to_string())
    );
    assert_eq!(
        env.get("SERVER_PROTOCOL").map(String::as_str),
        Some("HTTP/1.0")
    );
}

#[tokio::test]
async fn a_chunked_body_is_dechunked_and_its_length_given() {
    let server = Server::start(&[]);
    let response = server.raw(
        b"POST /cgi-bin/wasm-run.cgi/env-dump.wasm HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\
          Content-Type: text/plain\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    let env = parse_env(&response);
    assert_eq!(env.get("CONTENT_LENGTH").map(String::as_str), Some("11"));
    assert_eq!(
        env.get("CONTENT_TYPE").map(String::as_str),
        Some("text/plain")
    );
    assert!(
        !env.contains_key("HTTP_TRANSFER_ENCODING") || env["HTTP_TRANSFER_ENCODING"] == "chunked"
    );
}

#[tokio::test]
async fn the_authorization_scheme_is_given_without_the_credentials() {
    let server = Server::start(&[]);
    let env = env_of(
        client()
            .get(server.cgi("env-dump.wasm"))
            .header("Authorization", "Bearer tok3n"),
    )
    .await;
    assert_eq!(env.get("AUTH_TYPE").map(String::as_str), Some("Bearer"));
    assert!(!env.contains_key("REMOTE_USER"));
    assert!(!env.values().any(|v| v.contains("tok3n")));
}
