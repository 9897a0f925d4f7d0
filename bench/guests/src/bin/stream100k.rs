//! The streamed-output workload: 100 KiB (102,400 bytes) written as 25
//! pieces of 4 KiB, each flushed on its own, so the server sees 25 writes.
use std::io::Write;

fn main() {
    let mut piece = [b'x'; 4096];
    piece[4095] = b'\n';
    let mut out = std::io::stdout().lock();
    for _ in 0..25 {
        out.write_all(&piece).expect("write");
        out.flush().expect("flush");
    }
}
