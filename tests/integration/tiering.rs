//! Tiered compilation: a module dropped into the folder is served by
//! Winch's code at once and switches to Cranelift's while requests run,
//! none failing; a module Winch refuses is served by Cranelift; both tiers
//! answer alike. (`scripts/test.sh` also runs the meta-variable and
//! streaming tests with `TIERING=baseline` and `TIERING=off`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{PROGRAMS, Server, client, get_text, parse_env, post_text};

/// A CGI module of `functions` small functions (about 35 bytes each) whose
/// `_start` calls some of them and prints `big`. Its size makes Cranelift
/// take a while, so the baseline tier is seen serving first.
fn big_module(functions: usize) -> Vec<u8> {
    let mut wat = String::from(
        r#"(module
 (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
 (memory (export "memory") 1)
 (data (i32.const 16) "big\n")
"#,
    );
    for i in 0..functions {
        wat.push_str(&format!(
            "(func $f{i} (param i32) (result i32) local.get 0 i32.const {i} i32.add i32.const 7 i32.mul i32.const 3 i32.xor local.get 0 i32.const {} i32.sub i32.mul i32.const 11 i32.rotl)\n",
            i * 3
        ));
    }
    wat.push_str(
        r#"(func (export "_start")
   (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 4))
"#,
    );
    for i in (0..functions).step_by(1000) {
        wat.push_str(&format!("i32.const {i} call $f{i} drop\n"));
    }
    wat.push_str(
        "(drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))",
    );
    wat::parse_str(wat).unwrap()
}

/// The value of `wasm_cgi_module_tier{module=NAME,tier=TIER}`.
async fn tier_sample(server: &Server, module: &str, tier: &str) -> Option<f64> {
    let metrics = get_text(&server.url("/metrics")).await;
    let prefix = format!("wasm_cgi_module_tier{{module=\"{module}\",tier=\"{tier}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.parse().unwrap())
}

#[tokio::test]
async fn a_dropped_module_switches_to_the_optimized_tier_while_requests_run() {
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start_in(
        tempfile::tempdir().unwrap(),
        &[
            "--tiering",
            "on",
            "--cache-dir",
            cache.path().join("c").to_str().unwrap(),
        ],
    );
    let wasm = big_module(40_000);
    let part = server.modules.path().join("big.wasm.part");
    std::fs::write(&part, &wasm).unwrap();
    std::fs::rename(&part, server.modules.path().join("big.wasm")).unwrap();

    // Wait for the first answer, from the baseline tier.
    let url = server.cgi("big.wasm");
    let deadline = Instant::now() + Duration::from_secs(60);
    while client().get(&url).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "never served:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first_tier = tier_sample(&server, "big.wasm", "winch").await;

    // Four clients ask all the time while the optimizer works.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop, served) = (url.clone(), stop.clone(), served.clone());
            tokio::spawn(async move {
                let client = client();
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let response = client.get(&url).send().await.unwrap();
                    let status = response.status();
                    let body = response.text().await.unwrap();
                    if status != 200 || body != "big\n" {
                        failures.push(format!("{status}: {body:?}"));
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while tier_sample(&server, "big.wasm", "cranelift").await != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "never optimized:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at_switch = served.load(Ordering::Relaxed);
    // Some requests on the optimized code too.
    while served.load(Ordering::Relaxed) < at_switch + 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for failures in futures_join(clients).await {
        assert!(failures.is_empty(), "failed requests: {failures:?}");
    }
    assert_eq!(
        first_tier,
        Some(1.0),
        "the first answer came from Winch's code:\n{}",
        server.log()
    );
    assert!(at_switch > 0, "requests ran while the optimizer worked");
    server.wait_for_line(&["module added", "module=big.wasm", "tier=winch"]);
    server.wait_for_line(&["module optimized", "module=big.wasm", "tier=cranelift"]);
    assert_eq!(
        tier_sample(&server, "big.wasm", "winch").await,
        Some(0.0),
        "one tier serves at a time"
    );
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<Vec<String>>>) -> Vec<Vec<String>> {
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test]
async fn a_module_winch_cannot_compile_is_served_by_cranelift() {
    // A tail call: a proposal Cranelift has and Winch lacks.
    let wasm = wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 16) "tail\n")
             (func $write (result i32)
               (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 5))
               (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
             (func $tail (result i32) return_call $write)
             (func (export "_start") (drop (call $tail))))"#,
    )
    .unwrap();
    let modules = tempfile::tempdir().unwrap();
    std::fs::write(modules.path().join("tail.wasm"), wasm).unwrap();
    let cache = tempfile::tempdir().unwrap();
    for tiering in ["on", "baseline"] {
        let server = Server::start_in(
            copy_of(modules.path()),
            &[
                "--tiering",
                tiering,
                "--cache-dir",
                cache.path().join(tiering).to_str().unwrap(),
            ],
        );
        assert_eq!(get_text(&server.cgi("tail.wasm")).await, "tail\n");
        assert_eq!(
            tier_sample(&server, "tail.wasm", "cranelift").await,
            Some(1.0)
        );
        let line = server.wait_for_line(&["module=tail.wasm", "Winch cannot compile it"]);
        assert!(line.contains("tail call"), "the reason is named: {line}");
        server.wait_for_line(&["module loaded", "module=tail.wasm", "tier=cranelift"]);
    }
}

fn copy_of(dir: &std::path::Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    copy
}

#[tokio::test]
async fn both_tiers_give_the_same_answers() {
    let cache = tempfile::tempdir().unwrap();
    let mut answers = Vec::new();
    for tiering in ["baseline", "off"] {
        let server = Server::start_with(
            PROGRAMS,
            &[
                "--tiering",
                tiering,
                "--cache-dir",
                cache.path().join(tiering).to_str().unwrap(),
            ],
        );
        let tier = if tiering == "baseline" {
            "winch"
        } else {
            "cranelift"
        };
        assert_eq!(tier_sample(&server, "env-dump.wasm", tier).await, Some(1.0));
        let mut env = parse_env(&get_text(&server.cgi("env-dump.wasm/a/b?x=1&y=%20")).await);
        for varying in [
            "SERVER_PORT",
            "REMOTE_PORT",
            "HTTP_HOST",
            "HTTP_X_REQUEST_ID",
        ] {
            env.remove(varying);
        }
        let counted = post_text(&server.cgi("wc.wasm"), "one two\nthree\n").await;
        let lines = get_text(&server.cgi("slow-lines.wasm?3+10")).await;
        answers.push((env, counted, lines));
    }
    assert_eq!(answers[0], answers[1]);
    assert!(answers[0].2.contains("line 2"), "{:?}", answers[0].2);
}
