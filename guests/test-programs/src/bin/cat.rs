//! Copies stdin to stdout byte for byte. In `cgi` mode a test posts the exact
//! CGI response it wants the module to produce.

use std::io::{self, Read, Write};

fn main() -> io::Result<()> {
    let mut input = Vec::new();
    io::stdin().read_to_end(&mut input)?;
    let mut out = io::stdout().lock();
    out.write_all(&input)?;
    out.flush()
}
