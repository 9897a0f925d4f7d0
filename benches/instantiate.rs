//! The in-process cycle every request pays: build a WASI context, take an
//! instance from the pool, run `_start`, drop it all. `hello.wasm` (the
//! built-in example) with its output captured; no HTTP.
//!
//! `cargo bench --bench instantiate`

use criterion::{Criterion, criterion_main};
use wasm_cgi::runtime::{Invocation, ModuleCache, Sandbox, SandboxOptions};

const HELLO: &[u8] = include_bytes!(concat!(env!("WASM_CGI_EXAMPLES_DIR"), "/hello.wasm"));

/// Benchmarks one full request cycle of `hello.wasm`.
fn cycle(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sandbox = Sandbox::new(SandboxOptions {
        max_instances: Some(64),
        cache: ModuleCache::in_memory(),
        ..SandboxOptions::default()
    })
    .unwrap();
    let program = sandbox.load("hello.wasm", HELLO).unwrap();
    let invocation = Invocation {
        args: vec!["hello.wasm".into()],
        env: vec![("QUERY_STRING".into(), String::new())],
        ..Invocation::default()
    };
    c.bench_function("hello: context + instantiate + _start + drop", |b| {
        b.to_async(&tokio).iter(|| async {
            let run = program.run_captured(invocation.clone()).await.unwrap();
            assert!(run.outcome.exit.is_success());
            run
        })
    });
}

// The macro-generated group function has no doc comment to carry.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::cycle);
}
use group::benches;
criterion_main!(benches);
