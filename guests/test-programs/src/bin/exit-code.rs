//! Prints `before exit` (when argv 2 is `print`) and exits with the code in
//! argv 1, through `proc_exit` (preview 1) or `wasi:cli/exit.exit` (preview
//! 2, where Rust's std can only say success or failure). With the word
//! `with-code` among its arguments, a preview 2 build exits through
//! `wasi:cli/exit.exit-with-code` instead, which keeps the code.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code: i32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    if args.get(2).map(String::as_str) == Some("print") {
        println!("before exit");
    }
    eprintln!("exit-code: leaving with {code}");
    if args.iter().any(|arg| arg == "with-code") {
        exit_with_code(code);
    }
    std::process::exit(code);
}

#[cfg(target_env = "p2")]
fn exit_with_code(code: i32) {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    wasip2::cli::exit::exit_with_code(code.clamp(0, 255) as u8);
}

#[cfg(not(target_env = "p2"))]
fn exit_with_code(code: i32) {
    std::process::exit(code);
}
