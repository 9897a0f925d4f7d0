//! Reads stdin to its end in small pieces, keeping none of it, and prints
//! how many bytes it read: a module whose memory stays small however large
//! the request body.

use std::io::{self, Read};

fn main() -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    let mut total: u64 = 0;
    let mut stdin = io::stdin().lock();
    loop {
        match stdin.read(&mut buf)? {
            0 => break,
            n => total += n as u64,
        }
    }
    println!("{total}");
    Ok(())
}
