//! The front door: HTTPS with certificates from a test CA made here
//! (rcgen), HTTP/2 over TLS (ALPN) and in clear text (h2c), the same CGI
//! matrix over every protocol, certificate reload, client certificates, a
//! stalled handshake, the plain-to-HTTPS redirect and connection limits.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::support::{Server, parse_env};

/// A certificate authority made for one test.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// A leaf certificate for `names` (DNS names or IPs), and its key, PEM.
    fn leaf(&self, names: &[&str], common_name: &str) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn certificate(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.pem.as_bytes()).unwrap()
    }
}

/// Writes a server certificate for localhost and 127.0.0.1 into `dir`.
fn server_files(ca: &TestCa, dir: &Path) -> (String, String) {
    let (cert, key) = ca.leaf(&["localhost", "127.0.0.1"], "localhost");
    let cert_file = dir.join("server.crt");
    let key_file = dir.join("server.key");
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    (
        cert_file.to_str().unwrap().to_owned(),
        key_file.to_str().unwrap().to_owned(),
    )
}

/// A client that trusts `ca` and reaches `localhost` at `addr`.
fn https_client(ca: &TestCa, addr: SocketAddr) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.certificate())
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(20))
}

fn https_url(server: &Server, path: &str) -> String {
    format!("https://localhost:{}{path}", server.addr.port())
}

/// The protocols every CGI rule is checked over.
#[derive(Debug, Clone, Copy)]
enum Protocol {
    Http1,
    H2c,
    H2Tls,
    Http1Tls,
}

#[tokio::test]
async fn the_cgi_matrix_holds_over_http2_and_https() {
    let ca = TestCa::new("matrix CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = server_files(&ca, dir.path());
    let common = ["--timeout", "2s", "--max-body", "1KiB"];
    let plain = Server::start(&[&common[..], &["--h2c"]].concat());
    let tls = Server::start(&[&common[..], &["--tls-cert", &cert, "--tls-key", &key]].concat());
    for protocol in [
        Protocol::Http1,
        Protocol::H2c,
        Protocol::H2Tls,
        Protocol::Http1Tls,
    ] {
        let (server, client, base, https, version) = match protocol {
            Protocol::Http1 => (
                &plain,
                reqwest::Client::builder().http1_only(),
                plain.url(""),
                false,
                "HTTP/1.1",
            ),
            Protocol::H2c => (
                &plain,
                reqwest::Client::builder().http2_prior_knowledge(),
                plain.url(""),
                false,
                "HTTP/2.0",
            ),
            Protocol::H2Tls => (
                &tls,
                https_client(&ca, tls.addr),
                https_url(&tls, ""),
                true,
                "HTTP/2.0",
            ),
            Protocol::Http1Tls => (
                &tls,
                https_client(&ca, tls.addr).http1_only(),
                https_url(&tls, ""),
                true,
                "HTTP/1.1",
            ),
        };
        let client = client.timeout(Duration::from_secs(20)).build().unwrap();
        let cgi = |path: &str| format!("{base}/cgi-bin/wasm-run.cgi/{path}");
        let label = format!("{protocol:?}");

        // Meta-variables.
        let response = client
            .get(cgi("env-dump.wasm/extra?a=1"))
            .header("X-Test", "one")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{label}");
        let env = parse_env(&response.text().await.unwrap());
        assert_eq!(env["SERVER_PROTOCOL"], version, "{label}");
        assert_eq!(
            env["REQUEST_SCHEME"],
            if https { "https" } else { "http" },
            "{label}"
        );
        assert_eq!(
            env.get("HTTPS").map(String::as_str),
            https.then_some("on"),
            "{label}"
        );
        assert_eq!(
            env["SERVER_PORT"],
            server.addr.port().to_string(),
            "{label}"
        );
        assert_eq!(env["PATH_INFO"], "/extra", "{label}");
        assert_eq!(env["QUERY_STRING"], "a=1", "{label}");
        assert_eq!(env["HTTP_X_TEST"], "one", "{label}");
        assert!(
            env["HTTP_HOST"].ends_with(&server.addr.port().to_string()),
            "{label}: {env:?}"
        );
        assert!(!env.contains_key("SSL_CLIENT_S_DN"), "{label}");

        // A request body on stdin.
        let body = client
            .post(cgi("wc.wasm"))
            .body("one two three")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains("13"), "{label}: {body}");

        // Statuses: too large, unknown, trap, timeout.
        for (request, status) in [
            (client.post(cgi("wc.wasm")).body(vec![b'x'; 4096]), 413),
            (client.get(cgi("missing.wasm")), 404),
            (client.get(cgi("trap.wasm")), 500),
            (client.get(cgi("sleep.wasm?5000")), 504),
        ] {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), status, "{label}");
        }

        // Streaming: the first line arrives before the guest is done.
        let started = Instant::now();
        let mut response = client
            .get(cgi("slow-lines.wasm?3+400"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{label}");
        let first = response.chunk().await.unwrap().unwrap();
        let first_at = started.elapsed();
        let mut rest = Vec::new();
        while let Some(chunk) = response.chunk().await.unwrap() {
            rest.extend_from_slice(&chunk);
        }
        let done_at = started.elapsed();
        assert!(!first.is_empty() && !rest.is_empty(), "{label}");
        assert!(
            done_at - first_at >= Duration::from_millis(600),
            "{label}: the first line came at {first_at:?}, the end at {done_at:?}"
        );
    }
}

#[tokio::test]
async fn client_certificates_reach_modules_and_others_are_refused() {
    let ca = TestCa::new("client CA");
    let other = TestCa::new("another CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = server_files(&ca, dir.path());
    let client_ca = dir.path().join("clients.pem");
    std::fs::write(&client_ca, &ca.pem).unwrap();
    let server = Server::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-client-ca",
        client_ca.to_str().unwrap(),
    ]);
    let identity = |ca: &TestCa| {
        let (cert, key) = ca.leaf(&["alice.example"], "alice");
        reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap()
    };
    let url = https_url(&server, "/cgi-bin/wasm-run.cgi/env-dump.wasm");
    let client = https_client(&ca, server.addr)
        .identity(identity(&ca))
        .build()
        .unwrap();
    let env = parse_env(&client.get(&url).send().await.unwrap().text().await.unwrap());
    assert_eq!(env["SSL_CLIENT_S_DN"], "CN=alice, O=Example");
    assert_eq!(env["AUTH_TYPE"], "Certificate");

    let anonymous = https_client(&ca, server.addr).build().unwrap();
    assert!(anonymous.get(&url).send().await.is_err(), "no certificate");
    let stranger = https_client(&ca, server.addr)
        .identity(identity(&other))
        .build()
        .unwrap();
    assert!(stranger.get(&url).send().await.is_err(), "another CA's");
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let first = TestCa::new("first CA");
    let second = TestCa::new("second CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = server_files(&first, dir.path());
    let server = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    let url = https_url(&server, "/healthz");
    let trusts = |ca: &TestCa| https_client(ca, server.addr).build().unwrap();
    assert_eq!(trusts(&first).get(&url).send().await.unwrap().status(), 200);
    assert!(trusts(&second).get(&url).send().await.is_err());

    // A broken replacement is refused; the first pair keeps serving.
    std::fs::write(&key, "not a key").unwrap();
    server.wait_for_line(&["TLS certificate not reloaded"]);
    assert_eq!(trusts(&first).get(&url).send().await.unwrap().status(), 200);

    server_files(&second, dir.path());
    server.wait_for_line(&["TLS certificate reloaded"]);
    assert_eq!(
        trusts(&second).get(&url).send().await.unwrap().status(),
        200
    );
    assert!(
        trusts(&first).get(&url).send().await.is_err(),
        "the old one is gone"
    );
}

#[test]
fn a_bad_key_is_refused_at_start_with_a_clear_error() {
    let ca = TestCa::new("CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = server_files(&ca, dir.path());
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let (code, _, stderr) = crate::support::run_in(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot serve HTTPS"), "{stderr}");
    assert!(stderr.contains("server.key"), "names the file: {stderr}");
}

#[test]
fn a_stalled_handshake_is_dropped() {
    let ca = TestCa::new("CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = server_files(&ca, dir.path());
    let server = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 64];
    // The server closes the connection: a read of 0 bytes (or a reset).
    let read = stream.read(&mut buffer);
    assert!(
        matches!(read, Ok(0) | Err(_)) && started.elapsed() < Duration::from_secs(25),
        "{read:?} after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "not before the header timeout"
    );
}

#[tokio::test]
async fn curl_speaks_http2_to_it() {
    let ca = TestCa::new("curl CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = server_files(&ca, dir.path());
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let server = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    let output = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--http2", "--cacert"])
        .arg(&ca_file)
        .args([
            "--resolve",
            &format!("localhost:{}:127.0.0.1", server.addr.port()),
        ])
        .args(["--write-out", "\n%{http_version} %{response_code}"])
        .arg(https_url(&server, "/cgi-bin/wasm-run.cgi/env-dump.wasm"))
        .output()
        .expect("curl is installed by scripts/test.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.ends_with("\n2 200"), "{stdout}");
    assert!(stdout.contains("SERVER_PROTOCOL=HTTP/2.0"), "{stdout}");
    assert!(stdout.contains("HTTPS=on"), "{stdout}");
}

#[tokio::test]
async fn plain_requests_are_redirected_to_https_but_probes_answer() {
    let ca = TestCa::new("CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = server_files(&ca, dir.path());
    let server = Server::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-listen",
        "127.0.0.1:0",
        "--redirect-http",
    ]);
    let line = server.wait_for_line(&["listening on https://"]);
    let tls: SocketAddr = line
        .rsplit("https://")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(server.cgi("env-dump.wasm?x=1"))
        .header("Host", "example.test:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!(
            "https://example.test:{}/cgi-bin/wasm-run.cgi/env-dump.wasm?x=1",
            tls.port()
        )
        .as_str()
    );
    assert_eq!(
        client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let secure = https_client(&ca, tls).build().unwrap();
    let url = format!(
        "https://localhost:{}/cgi-bin/wasm-run.cgi/env-dump.wasm",
        tls.port()
    );
    let env = parse_env(&secure.get(url).send().await.unwrap().text().await.unwrap());
    assert_eq!(env["HTTPS"], "on");
}

#[test]
fn connections_past_the_per_client_limit_are_closed() {
    let server = Server::start(&["--max-connections-per-client", "2"]);
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let open = |addr: SocketAddr| {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.write_all(request);
        let mut buffer = [0u8; 256];
        let answered = matches!(stream.read(&mut buffer), Ok(n) if n > 0);
        (stream, answered)
    };
    let (first, answered) = open(server.addr);
    assert!(answered);
    let (_second, answered) = open(server.addr);
    assert!(answered);
    let (_third, answered) = open(server.addr);
    assert!(
        !answered,
        "a third connection from the same address is closed"
    );
    drop(first);
    std::thread::sleep(Duration::from_millis(200));
    let metrics = server.raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(
        metrics.contains(
            "wasm_cgi_connections_refused_total{reason=\"max_connections_per_client\"} 1"
        ),
        "{metrics}"
    );
}
