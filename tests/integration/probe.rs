//! `wasm-cgi probe URL`, the container image's health check: exit code 0 on
//! a 2xx answer from the real server, 1 with a one-line reason on anything
//! else (an error status, a closed port, a peer that never answers).

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Server, run_in};

/// `wasm-cgi probe ARGS`: exit code, stdout, stderr.
fn probe(args: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["probe"];
    all.extend(args);
    run_in(dir.path(), &all)
}

#[test]
fn a_2xx_answer_is_healthy() {
    let server = Server::start(&[]);
    for path in ["/healthz", "/readyz", "/cgi-bin/wasm-run.cgi/sleep.wasm?0"] {
        let (code, stdout, stderr) = probe(&[&server.url(path)]);
        assert_eq!(code, Some(0), "{path}: {stderr}");
        assert_eq!(stdout.trim(), format!("200 {}", server.url(path)));
    }
}

#[test]
fn a_bare_path_is_probed_on_loopback_at_port() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wasm-cgi"))
        .args(["probe", "/healthz"])
        .current_dir(dir.path())
        .env("PORT", server.addr.port().to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
}

#[test]
fn a_404_is_unhealthy_with_its_status_in_one_line() {
    let server = Server::start(&[]);
    let (code, stdout, stderr) = probe(&[&server.url("/no-such-page")]);
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("unhealthy: "), "{stderr}");
    assert!(stderr.contains("404"), "{stderr}");
}

#[test]
fn a_closed_port_is_unhealthy() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (code, _, stderr) = probe(&[&format!("http://127.0.0.1:{port}/healthz")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

#[test]
fn a_peer_that_never_answers_is_unhealthy_after_the_timeout() {
    // Connections complete in the kernel's backlog; nobody ever reads them.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", listener.local_addr().unwrap());
    let began = Instant::now();
    let (code, _, stderr) = probe(&["--timeout", "300ms", &url]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no answer"), "{stderr}");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    drop(listener);
}

#[test]
fn a_url_that_cannot_be_probed_is_refused() {
    let (code, _, stderr) = probe(&["https://127.0.0.1/healthz"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("only http://"), "{stderr}");
}
