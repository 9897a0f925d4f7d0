//! A program with an expensive initializer, for pre-initialization tests.
//!
//! `wizer.initialize` builds a large table (about 200 ms of work: a few
//! million steps of a random-number generator, then sorted) and counts its
//! own runs. `_start` reports what it found, one `key=value` line each:
//!
//! - `state`: `snapshot` when the table was already there (the module was
//!   pre-initialized), `built-now` when `main` had to build it;
//! - `init`: which initializer built it (`wizer.initialize` or `other`);
//! - `init_runs`: how many times an initializer ran in this instance's past;
//! - `checksum`: a digest of the table made when it was built, and
//!   `median`, its middle word: the same however it was built;
//! - `seen`: the table's first word before this request, which then
//!   overwrites it with `QUERY_STRING` (so a request that saw another's
//!   write would say so).
//!
//! Other exports are initializers that misbehave, chosen by a route's
//! `init = "NAME"`: `trap-init` panics, `loop-init` never returns,
//! `env-init` reads the environment, `file-init` opens a file, `grow-init`
//! allocates 256 MiB.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// The table, its checksum and the initializer that built it.
static TABLE: Mutex<Option<Table>> = Mutex::new(None);

struct Table {
    words: Vec<u64>,
    checksum: u64,
    by: &'static str,
}
static INIT_RUNS: AtomicU32 = AtomicU32::new(0);

/// Words in the table and generator steps per word: about 200 ms in all.
const WORDS: usize = 1 << 20;
const STEPS_PER_WORD: usize = 24;

fn build_table(by: &'static str) {
    INIT_RUNS.fetch_add(1, Ordering::SeqCst);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut table = Vec::with_capacity(WORDS);
    for _ in 0..WORDS {
        for _ in 0..STEPS_PER_WORD {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
        }
        table.push(state);
    }
    table.sort_unstable();
    let checksum = table
        .iter()
        .step_by(4096)
        .fold(0u64, |sum, word| sum.rotate_left(5) ^ word);
    *TABLE.lock().unwrap() = Some(Table {
        words: table,
        checksum,
        by,
    });
}

#[unsafe(export_name = "wizer.initialize")]
pub extern "C" fn initialize() {
    build_table("wizer.initialize");
}

#[unsafe(export_name = "other")]
pub extern "C" fn other() {
    build_table("other");
}

#[unsafe(export_name = "trap-init")]
pub extern "C" fn trap_init() {
    panic!("the initializer failed on purpose");
}

#[unsafe(export_name = "loop-init")]
pub extern "C" fn loop_init() {
    let mut spins = 0u64;
    loop {
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
}

#[unsafe(export_name = "env-init")]
pub extern "C" fn env_init() {
    let greeting = std::env::var("GREETING").unwrap_or_default();
    std::hint::black_box(greeting);
    build_table("env-init");
}

#[unsafe(export_name = "file-init")]
pub extern "C" fn file_init() {
    let words = std::fs::read_to_string("/data/words.txt").unwrap_or_default();
    std::hint::black_box(words);
    build_table("file-init");
}

#[unsafe(export_name = "grow-init")]
pub extern "C" fn grow_init() {
    let hoard = vec![1u8; 256 << 20];
    std::hint::black_box(&hoard);
    std::mem::forget(hoard);
}

fn main() {
    let state = if TABLE.lock().unwrap().is_some() {
        "snapshot"
    } else {
        build_table("main");
        "built-now"
    };
    let mut guard = TABLE.lock().unwrap();
    let table = guard.as_mut().expect("built above");
    // A request touches a few pages of the table, as a lookup would.
    let seen = table.words[0];
    let query = std::env::var("QUERY_STRING").unwrap_or_default();
    table.words[0] = query
        .bytes()
        .fold(0u64, |sum, byte| sum.wrapping_mul(31) + u64::from(byte));
    print!("Content-Type: text/plain\r\n\r\n");
    println!("state={state}");
    println!("init={}", table.by);
    println!("init_runs={}", INIT_RUNS.load(Ordering::SeqCst));
    println!("checksum={:016x}", table.checksum);
    println!("median={:016x}", table.words[WORDS / 2]);
    println!("seen={seen:016x}");
}
