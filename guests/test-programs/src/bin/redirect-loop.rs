//! A CGI response that redirects to itself, to check the internal redirect
//! hop limit.

fn main() {
    let script = std::env::var("SCRIPT_NAME").unwrap_or_default();
    print!("Location: {script}\r\n\r\n");
}
