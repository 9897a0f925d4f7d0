//! Prints `COUNT` lines with `DELAY_MS` milliseconds between them (argv 1 and
//! 2, default 3 and 300), flushing each one, to test streaming.

use std::io::Write;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let delay: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(300);
    let mut out = std::io::stdout().lock();
    for line in 0..count {
        if line > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        writeln!(out, "line {line}").unwrap();
        out.flush().unwrap();
    }
}
