//! `wasm-cgi run`: one module or command component once from the shell,
//! like `wasmtime run`; a wasi:http handler is refused with a hint.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasm-cgi"))
        .arg("run")
        .args(args)
        .env(crate::support::HOST_SECRET.0, crate::support::HOST_SECRET.1)
        .env("WASMTIME_CACHE_DIR", crate::support::shared_cache_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn args_and_env_reach_the_module_and_nothing_else_of_the_host() {
    for program in [test_artifacts::ENV_DUMP, test_artifacts::P2_ENV_DUMP] {
        let output = run(&["--env", "GREETING=hi", program, "--", "a", "b c"], b"");
        assert!(
            output.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            stdout.contains("ARGV[0]=env-dump.wasm\nARGV[1]=a\nARGV[2]=b c\n"),
            "{program}: {stdout}"
        );
        assert!(stdout.contains("GREETING=hi\n"), "{program}: {stdout}");
        assert!(!stdout.contains(crate::support::HOST_SECRET.1), "{stdout}");
    }
}

#[test]
fn stdin_passes_through_and_the_exit_code_is_the_modules() {
    for program in [test_artifacts::CAT, test_artifacts::P2_CAT] {
        let output = run(&[program], b"piped \x00\xff bytes");
        assert!(output.status.success(), "{program}");
        assert_eq!(output.stdout, b"piped \x00\xff bytes", "{program}");
    }

    let output = run(&[test_artifacts::EXIT_CODE, "--", "7"], b"");
    assert_eq!(output.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&output.stderr).contains("leaving with 7"));
}

#[test]
fn stdin_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.bin");
    std::fs::write(&file, b"from a file").unwrap();
    let output = run(
        &["--stdin", file.to_str().unwrap(), test_artifacts::CAT],
        b"not this",
    );
    assert_eq!(output.stdout, b"from a file");
}

#[test]
fn granted_directories_are_readable_and_writable_unless_read_only() {
    for program in [test_artifacts::FS, test_artifacts::P2_FS] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.txt"), "data inside").unwrap();
        let host = dir.path().to_str().unwrap();
        let grant = format!("{host}::/data");
        let read_only = format!("{host}::/data:ro");

        let output = run(
            &["--dir", &grant, program, "--", "read", "/data/in.txt"],
            b"",
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "data inside",
            "{program}"
        );

        let output = run(
            &[
                "--dir",
                &grant,
                program,
                "--",
                "write",
                "/data/out.txt",
                "new",
            ],
            b"",
        );
        assert!(
            output.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
            "new"
        );

        let output = run(
            &[
                "--dir",
                &read_only,
                program,
                "--",
                "write",
                "/data/ro.txt",
                "no",
            ],
            b"",
        );
        assert_eq!(output.status.code(), Some(1), "{program}");
        assert!(!dir.path().join("ro.txt").exists(), "{program}");

        let output = run(&[program, "--", "read", "/etc/passwd"], b"");
        assert_eq!(
            output.status.code(),
            Some(1),
            "{program}: no directory is reachable without a grant"
        );
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn a_trap_exits_134_with_a_message() {
    for program in [test_artifacts::TRAP, test_artifacts::P2_TRAP] {
        let output = run(&[program], b"");
        assert_eq!(output.status.code(), Some(134), "{program}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("trapped"), "{program}: {stderr}");
    }
}

#[test]
fn an_invalid_module_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.wasm");
    std::fs::write(&file, b"not wasm").unwrap();
    let output = run(&[file.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: failed to load"));
}

#[test]
fn a_command_components_non_zero_exit_is_exit_code_1() {
    // `wasi:cli/exit.exit`, what Rust's std calls, carries only success or
    // failure: any code > 0 arrives as 1.
    let output = run(&[test_artifacts::P2_EXIT_CODE, "--", "7"], b"");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("leaving with 7"));

    // `exit-with-code` (WASI 0.2.12) keeps it, as `proc_exit` does.
    for program in [test_artifacts::EXIT_CODE, test_artifacts::P2_EXIT_CODE] {
        let output = run(&[program, "--", "7", "print", "with-code"], b"");
        assert_eq!(output.status.code(), Some(7), "{program}");
        assert_eq!(output.stdout, b"before exit\n", "{program}");
    }

    let output = run(&[test_artifacts::P2_EXIT_CODE, "--", "0", "print"], b"");
    assert!(output.status.success());
    assert_eq!(output.stdout, b"before exit\n");
}

#[test]
fn a_wasi_http_handler_is_not_run_but_pointed_to_serve() {
    let output = run(&[test_artifacts::HTTP_HANDLER], b"");
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is a wasi:http handler") && stderr.contains("wasm-cgi serve"),
        "{stderr}"
    );
}
