//! The CPU workload: a fixed, deterministic integer loop of about 1 ms of
//! work (calibrated roughly under Wasmtime/Cranelift on a 2-core x86_64
//! machine; see bench/README.md), then one line of output. The iteration
//! count may be overridden by argv[1] (`?ITERATIONS` in the URL) to recalibrate.
use std::hint::black_box;

const DEFAULT_ITERATIONS: u64 = 600_000;

fn main() {
    let iterations = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<u64>().ok())
        .unwrap_or(DEFAULT_ITERATIONS);
    // xorshift64: a dependency chain the optimizer can neither fold nor vectorize.
    let mut x: u64 = black_box(0x9E37_79B9_7F4A_7C15);
    for _ in 0..iterations {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    println!("cpu1ms done {:016x}", black_box(x));
}
