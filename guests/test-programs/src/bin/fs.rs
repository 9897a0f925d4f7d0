//! File access through granted directories: `read PATH` prints a file,
//! `write PATH TEXT` writes one. Errors go to stderr with exit code 1.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("read"), Some(path)) => std::fs::read_to_string(path).map(|text| print!("{text}")),
        (Some("write"), Some(path)) => std::fs::write(path, args.get(3).map_or("", String::as_str)),
        _ => {
            eprintln!("usage: fs read PATH | fs write PATH TEXT");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fs: {error}");
            ExitCode::FAILURE
        }
    }
}
