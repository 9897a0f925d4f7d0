//! Writes a secret to stderr and then traps (`unreachable`), to check that a
//! trap is a 500 whose body never shows the module's stderr.

fn main() {
    eprintln!("secret-stderr-line: do not show this to clients");
    if std::env::args().nth(1).as_deref() == Some("after-output") {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&vec![b'x'; 128 * 1024]).unwrap();
        out.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::process::abort();
}
