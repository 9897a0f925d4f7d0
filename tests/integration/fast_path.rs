//! The fast path: the compile cache (hits, misses, corruption, an unusable
//! folder), hot reload (add, replace, delete, half-written files, requests
//! in flight), precompiled `.cwasm` files, and no compilation per request;
//! for preview 1 modules and for components alike.

use std::time::{Duration, Instant};

use crate::support::{HANDLER, P2_PROGRAMS, PROGRAMS, Server, client, get_text, post_text};

/// The `wasm_cgi_compilations` gauge.
async fn compilations(server: &Server) -> u64 {
    let text = get_text(&server.url("/metrics")).await;
    text.lines()
        .find_map(|line| line.strip_prefix("wasm_cgi_compilations "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the compilations gauge")
}

/// A server over a copy of every test program, with its own compile cache.
fn server_with_cache(cache: &std::path::Path) -> Server {
    Server::start(&["--cache-dir", cache.to_str().unwrap()])
}

#[tokio::test]
async fn a_warm_cache_compiles_nothing_and_a_corrupt_one_is_rebuilt() {
    let cache = tempfile::tempdir().unwrap();
    let cold = server_with_cache(cache.path());
    assert_eq!(
        compilations(&cold).await,
        PROGRAMS.len() as u64,
        "a cold cache compiles every module"
    );
    drop(cold);

    let warm = server_with_cache(cache.path());
    assert_eq!(
        compilations(&warm).await,
        0,
        "a warm cache compiles nothing"
    );
    for _ in 0..20 {
        client()
            .post(warm.cgi("cat.wasm"))
            .body("x")
            .send()
            .await
            .unwrap();
    }
    assert_eq!(compilations(&warm).await, 0, "requests never compile");
    drop(warm);

    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"corrupt").unwrap();
    }
    let rebuilt = server_with_cache(cache.path());
    assert_eq!(compilations(&rebuilt).await, PROGRAMS.len() as u64);
    assert_eq!(
        post_text(&rebuilt.cgi("cat.wasm"), "still fine").await,
        "still fine"
    );
}

#[tokio::test]
async fn an_unwritable_cache_folder_is_a_warning_not_an_error() {
    let not_a_dir = tempfile::NamedTempFile::new().unwrap();
    let server = server_with_cache(&not_a_dir.path().join("cache"));
    assert_eq!(post_text(&server.cgi("cat.wasm"), "ok").await, "ok");
    assert!(
        server
            .wait_for_log("compile cache off")
            .contains("compile cache off")
    );
}

/// Polls `name` until `check` accepts its status and body, for at most `within`.
async fn eventually(
    server: &Server,
    name: &str,
    within: Duration,
    check: impl Fn(u16, &str) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let response = client()
            .post(server.cgi(name))
            .body("probe")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        if check(status, &body) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{name} still answers {status} {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn modules_added_replaced_and_deleted_take_effect_without_restart() {
    let server = Server::start(&[]);
    let dir = server.modules.path();
    std::fs::copy(test_artifacts::CAT, dir.join("new.wasm")).unwrap();
    let took = eventually(&server, "new.wasm", Duration::from_secs(2), |s, b| {
        s == 200 && b == "probe"
    })
    .await;
    assert!(took < Duration::from_secs(2), "added after {took:?}");

    std::fs::copy(test_artifacts::SLEEP, dir.join("new.wasm.tmp")).unwrap();
    std::fs::rename(dir.join("new.wasm.tmp"), dir.join("new.wasm")).unwrap();
    eventually(&server, "new.wasm", Duration::from_secs(2), |s, b| {
        s == 200 && b == "awake\n"
    })
    .await;

    std::fs::remove_file(dir.join("new.wasm")).unwrap();
    eventually(&server, "new.wasm", Duration::from_secs(2), |s, _| s == 404).await;
    server.wait_for_log("module removed");
}

/// `wasm` padded with a custom section to exactly `len` bytes.
fn padded(mut wasm: Vec<u8>, len: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                return;
            }
        }
    }
    // Section id, size, then a one-letter name and filler: find the filler
    // that makes the whole section fill the gap.
    let gap = len - wasm.len();
    for filler in (0..gap).rev() {
        let mut section = vec![0u8];
        let mut payload = vec![1u8, b'p'];
        payload.resize(2 + filler, 0);
        leb(payload.len(), &mut section);
        section.extend_from_slice(&payload);
        if section.len() == gap {
            wasm.extend_from_slice(&section);
            return wasm;
        }
    }
    panic!("no padding fits {gap} bytes");
}

#[tokio::test]
async fn a_same_size_replacement_with_its_old_mtime_is_still_reloaded() {
    // Regression: change detection looked at size and mtime only, so
    // `cp -p` of a same-size module went unnoticed.
    let server = Server::start(&[]);
    let path = server.modules.path().join("same.wasm");
    let cat = std::fs::read(test_artifacts::CAT).unwrap();
    let sleep = std::fs::read(test_artifacts::SLEEP).unwrap();
    let len = cat.len().max(sleep.len()) + 64;
    std::fs::write(&path, padded(cat, len)).unwrap();
    eventually(&server, "same.wasm", Duration::from_secs(3), |s, b| {
        s == 200 && b == "probe"
    })
    .await;
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, padded(sleep, len)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, len);
    eventually(&server, "same.wasm?0", Duration::from_secs(3), |s, b| {
        s == 200 && b == "awake\n"
    })
    .await;
}

#[tokio::test]
async fn a_replacement_its_routes_cannot_use_keeps_the_previous_version() {
    // Regression: a module replaced by a component left its `entrypoint`
    // route answering 500.
    let config = "modules = \"modules\"\n[[route]]\npath = \"/greet\"\nmodule = \"entrypoints.wasm\"\nentrypoint = \"greet\"\n";
    let server = Server::with_config_and(config, &[], &[]);
    let before = get_text(&server.url("/greet")).await;
    let dir = server.modules.path().join("modules");
    std::fs::copy(test_artifacts::P2_CAT, dir.join("entrypoints.tmp")).unwrap();
    std::fs::rename(dir.join("entrypoints.tmp"), dir.join("entrypoints.wasm")).unwrap();
    server.wait_for_line(&[
        "route /greet",
        "can't serve it",
        "previous version keeps serving",
    ]);
    assert_eq!(get_text(&server.url("/greet")).await, before);
}

#[tokio::test]
async fn a_half_written_file_is_never_loaded() {
    let server = Server::start(&[]);
    let bytes = std::fs::read(test_artifacts::CAT).unwrap();
    let path = server.modules.path().join("slowly.wasm");
    let (first, second) = bytes.split_at(bytes.len() / 2);
    std::fs::write(&path, first).unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut file, second).unwrap();
    drop(file);
    eventually(&server, "slowly.wasm", Duration::from_secs(3), |s, b| {
        s == 200 && b == "probe"
    })
    .await;
    assert!(!server.log().contains("module skipped"), "{}", server.log());
}

#[tokio::test]
async fn a_broken_replacement_keeps_the_previous_version() {
    let server = Server::start(&[]);
    std::fs::write(server.modules.path().join("cat.wasm"), b"\0asm broken").unwrap();
    server.wait_for_log("previous version keeps serving");
    assert_eq!(post_text(&server.cgi("cat.wasm"), "old").await, "old");
}

#[tokio::test]
async fn a_request_in_flight_finishes_on_the_version_it_started_with() {
    let server = Server::start(&[]);
    let dir = server.modules.path();
    std::fs::copy(test_artifacts::SLOW_LINES, dir.join("swap.wasm")).unwrap();
    eventually(&server, "swap.wasm?1+0", Duration::from_secs(2), |s, _| {
        s == 200
    })
    .await;

    let mut old = client()
        .get(server.cgi("swap.wasm?3+400"))
        .send()
        .await
        .unwrap();
    assert_eq!(&old.chunk().await.unwrap().unwrap()[..], b"line 0\n");
    std::fs::copy(test_artifacts::CAT, dir.join("swap.tmp")).unwrap();
    std::fs::rename(dir.join("swap.tmp"), dir.join("swap.wasm")).unwrap();
    eventually(&server, "swap.wasm", Duration::from_secs(2), |s, b| {
        s == 200 && b == "probe"
    })
    .await;

    let mut rest = Vec::new();
    while let Some(chunk) = old.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"line 1\nline 2\n");
}

#[tokio::test]
async fn precompiled_modules_are_served_only_when_allowed() {
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_wasm-cgi"))
        .args([
            "compile",
            "-o",
            out.path().to_str().unwrap(),
            test_artifacts::CAT,
        ])
        .env("WASMTIME_CACHE_DIR", crate::support::shared_cache_dir())
        .status()
        .unwrap();
    assert!(status.success());
    let cwasm = out.path().join("cat.cwasm");
    assert!(cwasm.is_file());

    let modules = tempfile::tempdir().unwrap();
    std::fs::copy(&cwasm, modules.path().join("cat.cwasm")).unwrap();
    let server = Server::start_in(modules, &["--allow-precompiled"]);
    assert_eq!(
        post_text(&server.cgi("cat.cwasm"), "native").await,
        "native"
    );
    assert_eq!(compilations(&server).await, 0);

    let modules = tempfile::tempdir().unwrap();
    std::fs::copy(&cwasm, modules.path().join("cat.cwasm")).unwrap();
    let server = Server::start_in(modules, &[]);
    assert_eq!(
        client()
            .post(server.cgi("cat.cwasm"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wasm-cgi"))
        .args(["run", cwasm.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--allow-precompiled"));
}

/// The command components and the handler.
fn components() -> Vec<(&'static str, &'static str)> {
    let mut all = P2_PROGRAMS.to_vec();
    all.push(HANDLER);
    all
}

#[tokio::test]
async fn components_are_compiled_once_then_loaded_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let args = ["--cache-dir", cache.path().to_str().unwrap()];
    let cold = Server::start_with(&components(), &args);
    assert_eq!(
        compilations(&cold).await,
        components().len() as u64,
        "a cold cache compiles every component"
    );
    drop(cold);

    let warm = Server::start_with(&components(), &args);
    assert_eq!(
        compilations(&warm).await,
        0,
        "a warm cache compiles nothing"
    );
    for _ in 0..10 {
        assert_eq!(post_text(&warm.cgi("cat-p2.wasm"), "x").await, "x");
        assert_eq!(
            post_text(&warm.cgi("handler.wasm/echo-body"), "y").await,
            "y"
        );
    }
    assert_eq!(compilations(&warm).await, 0, "requests never compile");
}

#[tokio::test]
async fn components_added_replaced_and_deleted_take_effect_without_restart() {
    let server = Server::start(&[]);
    let dir = server.modules.path();
    std::fs::copy(test_artifacts::P2_CAT, dir.join("new.wasm")).unwrap();
    eventually(&server, "new.wasm", Duration::from_secs(2), |s, b| {
        s == 200 && b == "probe"
    })
    .await;

    std::fs::copy(test_artifacts::HTTP_HANDLER, dir.join("new.wasm.tmp")).unwrap();
    std::fs::rename(dir.join("new.wasm.tmp"), dir.join("new.wasm")).unwrap();
    eventually(&server, "new.wasm", Duration::from_secs(2), |s, b| {
        s == 200 && b.contains("method: POST\n") && b.contains("body-bytes: 5\n")
    })
    .await;

    std::fs::copy(test_artifacts::SLEEP, dir.join("new.wasm.tmp")).unwrap();
    std::fs::rename(dir.join("new.wasm.tmp"), dir.join("new.wasm")).unwrap();
    eventually(&server, "new.wasm?0", Duration::from_secs(2), |s, b| {
        s == 200 && b == "awake\n"
    })
    .await;

    std::fs::copy(test_artifacts::HTTP_HANDLER, dir.join("new.wasm.tmp")).unwrap();
    std::fs::rename(dir.join("new.wasm.tmp"), dir.join("new.wasm")).unwrap();
    eventually(
        &server,
        "new.wasm/status/202",
        Duration::from_secs(2),
        |s, _| s == 202,
    )
    .await;
    std::fs::remove_file(dir.join("new.wasm")).unwrap();
    eventually(&server, "new.wasm", Duration::from_secs(2), |s, _| s == 404).await;
}

#[tokio::test]
async fn precompiled_components_are_served_only_when_allowed() {
    let out = tempfile::tempdir().unwrap();
    let sources = tempfile::tempdir().unwrap();
    let handler = sources.path().join("handler.wasm");
    let command = sources.path().join("cat-p2.wasm");
    std::fs::copy(test_artifacts::HTTP_HANDLER, &handler).unwrap();
    std::fs::copy(test_artifacts::P2_CAT, &command).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_wasm-cgi"))
        .args(["compile", "-o", out.path().to_str().unwrap()])
        .args([&handler, &command])
        .env("WASMTIME_CACHE_DIR", crate::support::shared_cache_dir())
        .status()
        .unwrap();
    assert!(status.success());
    let cwasms = ["handler.cwasm", "cat-p2.cwasm"].map(|name| out.path().join(name));
    for cwasm in &cwasms {
        assert!(cwasm.is_file(), "{} missing", cwasm.display());
    }

    let copy = || {
        let modules = tempfile::tempdir().unwrap();
        for cwasm in &cwasms {
            std::fs::copy(cwasm, modules.path().join(cwasm.file_name().unwrap())).unwrap();
        }
        modules
    };
    let server = Server::start_in(copy(), &["--allow-precompiled"]);
    assert_eq!(
        post_text(&server.cgi("handler.cwasm/echo-body"), "native handler").await,
        "native handler"
    );
    assert_eq!(
        post_text(&server.cgi("cat-p2.cwasm"), "native command").await,
        "native command"
    );
    assert_eq!(compilations(&server).await, 0);

    let server = Server::start_in(copy(), &[]);
    for name in ["handler.cwasm/echo", "cat-p2.cwasm"] {
        let response = client().post(server.cgi(name)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{name}");
    }
}
