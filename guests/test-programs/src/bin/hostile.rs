//! Misbehaviour on demand, picked by argv 1, to test that limits hold:
//! `spin` loops forever, `alloc` grows memory without end, `print` writes
//! stdout forever ignoring errors, `stderr` floods stderr, `read` keeps
//! reading stdin past its end, `header` writes an endless CGI header line,
//! `big-memory` touches argv 2 MiB once and then prints `ok`, `huge-write`
//! hands stdout 64 MiB in one call (a component calls `output-stream.write`
//! directly, without asking `check-write` first), `many-headers` writes
//! 30,000 CGI header lines in one call, `compute MS` spins for argv 2
//! milliseconds then prints `computed`, `compute-sleep MS SLEEP` spins for
//! MS milliseconds, then sleeps SLEEP milliseconds, then prints `slept`,
//! `open-files PATH` opens PATH again and again, keeping every handle, until
//! the host refuses (or stops it), then prints how many it got.

use std::hint::black_box;
use std::io::{Read, Write};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("spin") => {
            let mut counter = 0u64;
            loop {
                counter = black_box(counter.wrapping_add(1));
            }
        }
        Some("alloc") => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![0xA5; 1 << 20]);
                black_box(&hoard);
            }
        }
        Some("print") => {
            let chunk = vec![b'p'; 64 * 1024];
            let mut out = std::io::stdout().lock();
            loop {
                let _ = out.write_all(&chunk);
            }
        }
        Some("stderr") => {
            let line = "e".repeat(1000);
            loop {
                eprintln!("{line}");
            }
        }
        Some("read") => {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin();
            loop {
                let _ = black_box(stdin.read(&mut buf));
            }
        }
        Some("header") => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"X-Endless: ");
            loop {
                if out.write_all(&[b'h'; 4096]).is_err() {
                    return;
                }
            }
        }
        Some("big-memory") => {
            let mib: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
            let block = black_box(vec![1u8; mib << 20]);
            println!("ok {}", block.len() >> 20);
        }
        Some("compute") => {
            spin_for(millis(&args, 2));
            println!("computed");
        }
        Some("compute-sleep") => {
            spin_for(millis(&args, 2));
            std::thread::sleep(std::time::Duration::from_millis(millis(&args, 3)));
            println!("slept");
        }
        Some("open-files") => {
            let path = args.get(2).map_or("/data/data.txt", String::as_str);
            let mut open = Vec::new();
            while open.len() < 100_000 {
                match std::fs::File::open(path) {
                    Ok(file) => open.push(file),
                    Err(_) => break,
                }
            }
            println!("opened {}", open.len());
        }
        Some("huge-write") => {
            let chunk = vec![b'w'; 64 << 20];
            huge_write(&chunk);
        }
        Some("many-headers") => {
            let mut block = "Content-Type: text/plain\n".to_owned();
            block.push_str(&"X-Many: header\n".repeat(30_000));
            block.push_str("\nbody\n");
            huge_write(block.as_bytes());
        }
        _ => {
            eprintln!(
                "usage: hostile spin|alloc|print|stderr|read|header|big-memory MIB|huge-write|many-headers|compute MS|compute-sleep MS SLEEP"
            );
            std::process::exit(2);
        }
    }
}

/// argv `index` as milliseconds (0 if absent).
fn millis(args: &[String], index: usize) -> u64 {
    args.get(index).and_then(|a| a.parse().ok()).unwrap_or(0)
}

/// Computes, without a host call in the loop, until `ms` milliseconds of
/// wall time have passed.
fn spin_for(ms: u64) {
    let start = std::time::Instant::now();
    let mut counter = 0u64;
    while start.elapsed() < std::time::Duration::from_millis(ms) {
        for _ in 0..100_000 {
            counter = black_box(counter.wrapping_add(1));
        }
    }
}

/// All of `bytes` to stdout in one call: `output-stream.write` itself for a
/// component; a module's `fd_write` is cut into pieces by the host anyway.
#[cfg(target_env = "p2")]
fn huge_write(bytes: &[u8]) {
    let _ = wasip2::cli::stdout::get_stdout().write(bytes);
}

#[cfg(not(target_env = "p2"))]
fn huge_write(bytes: &[u8]) {
    let _ = std::io::stdout().lock().write_all(bytes);
}
