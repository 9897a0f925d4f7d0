//! A WAGI module as WAGI's docs write them (`writing_modules.md`): a CGI
//! program whose `main` and two more exported functions answer, with a
//! `_routes` export that maps `/hello` to `hello` and `/goodbye/...` to
//! `goodbye`, and `write_volume` for a route with a writable volume (not
//! `write`: that name would replace libc's, which std's stdout calls).
//! Every answer prints the entry point, argv and the whole environment.

use std::io::Write as _;

fn dump(entry: &str) {
    let mut out = std::io::stdout().lock();
    // Two of one header, which WAGI's HashMap of headers loses.
    writeln!(out, "Content-Type: text/plain").unwrap();
    writeln!(out, "Set-Cookie: a=1").unwrap();
    writeln!(out, "Set-Cookie: b=2").unwrap();
    writeln!(out).unwrap();
    writeln!(out, "ENTRY={entry}").unwrap();
    for (i, arg) in std::env::args().enumerate() {
        writeln!(out, "ARGV[{i}]={arg}").unwrap();
    }
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (key, value) in vars {
        writeln!(out, "{key}={value}").unwrap();
    }
}

fn main() {
    dump("main");
}

/// `/hello`, declared by `_routes`.
#[unsafe(no_mangle)]
pub extern "C" fn hello() {
    dump("hello");
}

/// `/goodbye/...`, declared by `_routes`.
#[unsafe(no_mangle)]
pub extern "C" fn goodbye() {
    dump("goodbye");
}

/// Writes `/data/written.txt` (a writable WAGI volume) and prints what
/// `/data/data.txt` holds.
#[unsafe(no_mangle)]
pub extern "C" fn write_volume() {
    let wrote = std::fs::write("/data/written.txt", "written by the guest\n").is_ok();
    let read = std::fs::read_to_string("/data/data.txt").unwrap_or_default();
    print!("Content-Type: text/plain\n\nwrote={wrote}\nread={read}");
}

/// WAGI's sub-route declaration: `SUBPATH FUNCTION` per line.
#[unsafe(no_mangle)]
pub extern "C" fn _routes() {
    println!("/hello hello");
    println!("/goodbye/... goodbye");
}
