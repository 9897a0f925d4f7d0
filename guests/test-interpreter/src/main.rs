//! `rhai-cgi SCRIPT [ARGS...]`: runs a Rhai script the way a CGI
//! interpreter runs one (CPython, php-cgi): the script's path in argv, the
//! CGI meta-variables in the environment, the request body on stdin, the
//! response on stdout. A script error is reported on stderr with exit code
//! 1, before any output, as a real interpreter does.
//!
//! Functions a script gets besides Rhai's own (`print` writes a line):
//! `env(NAME)` (empty if unset), `args()` (argv after the script),
//! `stdin()` (the whole body), `write(TEXT)` (no newline, flushed at once),
//! `sleep_ms(N)`, `read_file(PATH)`, `write_file(PATH, TEXT)` (a string
//! saying the error, if any), `grow(MIB)` (allocates and keeps MIB MiB).

use std::io::{Read, Write};
use std::sync::Mutex;

use rhai::{Dynamic, Engine};

static HOARD: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(script) = args.get(1) else {
        eprintln!("usage: rhai-cgi SCRIPT [ARGS...]");
        std::process::exit(2);
    };
    let source = match std::fs::read_to_string(script) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("rhai-cgi: cannot read {script}: {error}");
            std::process::exit(1);
        }
    };
    let rest: Vec<Dynamic> = args[2..].iter().cloned().map(Dynamic::from).collect();

    let mut engine = Engine::new();
    engine.on_print(|text| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    });
    engine.register_fn("env", |name: &str| std::env::var(name).unwrap_or_default());
    engine.register_fn("args", move || rest.clone());
    engine.register_fn("stdin", || {
        let mut body = String::new();
        let _ = std::io::stdin().read_to_string(&mut body);
        body
    });
    engine.register_fn("write", |text: &str| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    });
    engine.register_fn("sleep_ms", |ms: i64| {
        std::thread::sleep(std::time::Duration::from_millis(ms.max(0) as u64));
    });
    engine.register_fn("read_file", |path: &str| {
        std::fs::read_to_string(path).unwrap_or_else(|error| format!("error: {error}"))
    });
    engine.register_fn(
        "write_file",
        |path: &str, text: &str| match std::fs::write(path, text) {
            Ok(()) => "ok".to_owned(),
            Err(error) => format!("error: {error}"),
        },
    );
    engine.register_fn("grow", |mib: i64| {
        let block = vec![1u8; (mib.max(0) as usize) << 20];
        HOARD.lock().unwrap().push(block);
    });
    if let Err(error) = engine.run(&source) {
        eprintln!("rhai-cgi: {script}: {error}");
        std::process::exit(1);
    }
}
