//! `py-cgi SCRIPT [ARGS...]`: runs a Python CGI script with RustPython, the
//! way a CGI interpreter runs one: the script's path in argv, the CGI
//! meta-variables in the environment (`os.environ`), the request body on
//! stdin, the response on stdout. An uncaught exception prints its traceback
//! on stderr and exits with code 1; `sys.exit(N)` exits with N.
//!
//! Starting RustPython is most of a small script's cost: creating the
//! interpreter builds every built-in type and module and runs the importlib
//! bootstrap, and then each standard-library module a script imports is
//! unmarshalled and run. So the module exports `wizer.initialize`, which
//! does that once: it creates the interpreter, with the standard library
//! frozen into the module (nothing is read from disk), and imports the
//! modules CGI scripts commonly use ([`PRELOAD`]). A server that
//! pre-initializes (wasm-cgi does on load) starts every request from the
//! snapshot; a request only gives the interpreter its argv and environment
//! ([`REQUEST_PRELUDE`]) and runs the script. Run as it is, `main` creates
//! the interpreter itself and the script imports what it uses.
//!
//! The initializer runs without argv, environment or preopened folders (a
//! snapshot would freeze their empty answers into every request, so the host
//! refuses the calls): the interpreter's settings are explicit, its paths
//! come from the settings alone (the vendored `rustpython-vm` is patched for
//! that, see `guests/vendor/README.md`), `sys.path` is empty, and the
//! environment reads as empty ([`hide_environment`]) until `main` puts it
//! back. What the snapshot still freezes: the hash seed (every request
//! shares it), and whatever else the preloaded modules computed at import.

use std::cell::RefCell;

use rustpython_vm::{Interpreter, PyObjectRef, PyResult, Settings, VirtualMachine};

thread_local! {
    /// The interpreter and its per-request prelude, once built: by the
    /// initializer in a snapshot, else by `main`. (wasm32-wasip1 is
    /// single-threaded: a thread-local is a plain global.)
    static PYTHON: RefCell<Option<Python>> = const { RefCell::new(None) };
}

/// An interpreter ready for a request.
struct Python {
    interpreter: Interpreter,
    /// [`REQUEST_PRELUDE`]'s `start(argv, environ)`.
    start: PyObjectRef,
}

/// The standard-library modules the initializer imports: what CGI scripts
/// commonly use, and what a traceback needs. (`email.utils` imports
/// `random`, whose seed [`REQUEST_PRELUDE`] renews per request.)
pub const PRELOAD: &[&str] = &[
    "sys",
    "os",
    "io",
    "string",
    "re",
    "json",
    "html",
    "urllib.parse",
    "base64",
    "collections",
    "functools",
    "itertools",
    "datetime",
    "time",
    "math",
    "textwrap",
    "hashlib",
    "hmac",
    "email.utils",
    "http.cookies",
    "typing",
    "traceback",
    "linecache",
];

/// Python run in the interpreter once, defining `start(argv, environ)`,
/// which each request calls before its script: it gives `sys` the request's
/// argv and puts the script's folder on `sys.path`; if `os` was imported
/// before the environment could be read (in the initializer), it fills
/// `os.environ` in place (its `_data` is `posix.environ`, so `os.environb`
/// and `os.getenv` see it too; no `putenv`); and if `random` was, it seeds
/// it afresh, or every request would draw the same numbers.
const REQUEST_PRELUDE: &str = r#"
import sys

def start(argv, environ):
    sys.argv = argv[1:]
    sys.orig_argv = argv
    sys.executable = argv[0] if argv else ""
    if len(argv) > 1:
        sys.path.insert(0, argv[1].rpartition("/")[0] or ".")
    os = sys.modules.get("os")
    if os is not None:
        data = os.environ._data
        data.clear()
        for name, value in environ:
            data[os.environ.encodekey(name)] = os.environ.encodevalue(value)
    random = sys.modules.get("random")
    if random is not None:
        random.seed()
"#;

/// The interpreter's settings: explicit, so that creating it reads nothing
/// from the process (no `PYTHONPATH`, `PYTHONHOME` or `site`).
fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.import_site = false;
    settings.ignore_environment = true;
    settings.user_site_directory = false;
    settings.write_bytecode = false;
    settings.install_signal_handlers = false;
    settings
}

/// Creates the interpreter with the frozen standard library, and defines
/// [`REQUEST_PRELUDE`]'s `start`.
fn create() -> Python {
    let builder = Interpreter::builder(settings());
    let native = rustpython_stdlib::stdlib_module_defs(&builder.ctx);
    let interpreter = builder
        .add_native_modules(&native)
        .add_frozen_modules(rustpython_pylib::FROZEN_STDLIB)
        .build();
    let start = interpreter.enter(|vm| {
        let scope = vm.new_scope_with_builtins();
        let defined = vm.run_string(scope.clone(), REQUEST_PRELUDE, "<py-cgi>".to_owned());
        expect(
            vm,
            defined.and_then(|_| scope.globals.get_item("start", vm)),
        )
    });
    Python { interpreter, start }
}

/// The value, or the exception's traceback on stderr and a panic: for what
/// only a broken build can fail.
fn expect<T>(vm: &VirtualMachine, result: PyResult<T>) -> T {
    result.unwrap_or_else(|exception| {
        vm.print_exception(exception);
        panic!("py-cgi: the interpreter failed to start");
    })
}

unsafe extern "C" {
    /// wasi-libc's environment (`environ`), read lazily: `(char **)-1`
    /// until the first lookup asks WASI for it.
    static mut __wasilibc_environ: *mut *mut core::ffi::c_char;
    /// Forgets the environment read so far, so the next lookup asks WASI
    /// again.
    fn __wasilibc_deinitialize_environ();
}

/// An empty `environ`: a null-terminated array of no strings.
static mut NO_ENVIRONMENT: [*mut core::ffi::c_char; 1] = [core::ptr::null_mut()];

/// Makes the environment read as empty without asking WASI (which the host
/// refuses during initialization): creating the interpreter and importing
/// `os` read it. [`restore_environment`] undoes it.
fn hide_environment() {
    // SAFETY: single-threaded, and nothing holds a pointer into the
    // environment yet; wasi-libc only reads the array (`setenv` copies it).
    unsafe { __wasilibc_environ = (&raw mut NO_ENVIRONMENT).cast() };
}

/// Makes the next environment lookup ask WASI: in a snapshot, for the
/// request's environment instead of the initializer's empty one; without
/// one, a no-op (nothing was read yet).
fn restore_environment() {
    // SAFETY: single-threaded; it frees what `setenv` may have added and
    // resets the array to "not read yet".
    unsafe { __wasilibc_deinitialize_environ() };
}

/// Wizer's initializer: create the interpreter and import [`PRELOAD`] now,
/// so a snapshot holds them.
#[unsafe(export_name = "wizer.initialize")]
pub extern "C" fn initialize() {
    hide_environment();
    let python = create();
    python.interpreter.enter(|vm| {
        for module in PRELOAD {
            expect(vm, vm.import(*module, 0));
        }
    });
    PYTHON.with(|slot| *slot.borrow_mut() = Some(python));
}

/// Runs the script at `path` as `__main__`: `Ok` if it ran to the end.
fn run_script(vm: &VirtualMachine, start: &PyObjectRef, path: &str, source: &str) -> PyResult<()> {
    let argv: Vec<PyObjectRef> = std::env::args()
        .map(|arg| vm.ctx.new_str(arg).into())
        .collect();
    let environ: Vec<PyObjectRef> = std::env::vars_os()
        .map(|(name, value)| {
            let name = vm.ctx.new_str(name.to_string_lossy().into_owned());
            let value = vm.ctx.new_str(value.to_string_lossy().into_owned());
            vm.ctx.new_tuple(vec![name.into(), value.into()]).into()
        })
        .collect();
    start.call((vm.ctx.new_list(argv), vm.ctx.new_list(environ)), vm)?;
    let scope = vm.new_scope_with_main()?;
    scope
        .globals
        .set_item("__file__", vm.ctx.new_str(path).into(), vm)?;
    vm.run_string(scope, source, path.to_owned())?;
    Ok(())
}

/// Flushes `sys.stdout` and `sys.stderr` (the script's output is buffered
/// in them), as the interpreter does at exit.
fn flush(vm: &VirtualMachine) {
    for name in ["stdout", "stderr"] {
        if let Ok(stream) = vm.sys_module.get_attr(name, vm) {
            let _ = vm.call_method(&stream, "flush", ());
        }
    }
}

fn main() {
    restore_environment();
    let Some(script) = std::env::args().nth(1) else {
        eprintln!("usage: py-cgi SCRIPT [ARGS...]");
        std::process::exit(2);
    };
    let source = match std::fs::read_to_string(&script) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("py-cgi: cannot read {script}: {error}");
            std::process::exit(1);
        }
    };
    let python = PYTHON
        .with(|python| python.borrow_mut().take())
        .unwrap_or_else(create);
    let code = python.interpreter.enter(|vm| {
        let code = match run_script(vm, &python.start, &script, &source) {
            Ok(()) => 0,
            // SystemExit gives its code; any other exception its traceback
            // on stderr, and 1.
            Err(exception) => vm.handle_exit_exception(exception),
        };
        flush(vm);
        code
    });
    // The instance ends with the request: tearing the interpreter down
    // object by object would only touch (and copy) every page of its heap.
    std::mem::forget(python);
    std::process::exit(code as i32);
}
