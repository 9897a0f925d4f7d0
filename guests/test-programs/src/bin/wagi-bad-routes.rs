//! A WAGI module whose `_routes` prints a line that is no `SUBPATH
//! FUNCTION` and names a function it does not export: the server must
//! refuse it, saying why.

fn main() {
    print!("Content-Type: text/plain\n\nnever served\n");
}

/// Declares sub-routes badly.
#[unsafe(no_mangle)]
pub extern "C" fn _routes() {
    println!("/fine _start");
    println!("/missing no_such_function");
}
