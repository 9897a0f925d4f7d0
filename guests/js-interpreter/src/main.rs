//! `js-cgi SCRIPT [ARGS...]`: runs a JavaScript CGI script with the Boa
//! engine, the way a CGI interpreter runs one: the script's path in argv,
//! the CGI meta-variables in the environment, the request body on stdin,
//! the response on stdout. A script error goes to stderr with exit code 1.
//!
//! Starting a JavaScript engine is most of a small script's cost: Boa builds
//! every built-in object (the realm), and then the prelude below is parsed
//! and run. So the module exports `wizer.initialize`, which does exactly
//! that once; a server that pre-initializes (wasm-cgi does on load) starts
//! every request from the snapshot, with the engine ready. Run as it is,
//! `main` builds the engine itself.
//!
//! What scripts get besides the language: `write(TEXT)` (stdout, no
//! newline), `print(TEXT)` (with one), `env(NAME)` (`""` if unset),
//! `args()` (argv after the script), `stdin()` (the whole body), and the
//! prelude's `html(TEXT)` (escapes `&<>"'`), `query(TEXT)` (an object of
//! decoded `name=value` pairs) and `header(NAME, VALUE)`.

use std::cell::RefCell;
use std::io::{Read, Write};

use boa_engine::object::ObjectInitializer;
use boa_engine::property::Attribute;
use boa_engine::{Context, JsResult, JsString, JsValue, NativeFunction, Source, js_string};

thread_local! {
    /// The engine, once built: by the initializer in a snapshot, else by
    /// `main`. (wasm32-wasip1 is single-threaded: a thread-local is a
    /// plain global.)
    static ENGINE: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// Functions every script gets, written in JavaScript: the interpreter's
/// standard library, loaded with the engine.
const PRELUDE: &str = r#"
const HTML_SPECIAL = /[&<>"']/g;
const HTML_ENTITY = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const PLUS = /\+/g;
function html(text) {
  return String(text).replace(HTML_SPECIAL, c => HTML_ENTITY[c]);
}
function query(text) {
  const out = {};
  const decode = s => decodeURIComponent(s.replace(PLUS, " "));
  for (const pair of String(text).split("&")) {
    if (pair === "") continue;
    const at = pair.indexOf("=");
    out[decode(at < 0 ? pair : pair.slice(0, at))] = decode(at < 0 ? "" : pair.slice(at + 1));
  }
  return out;
}
function header(name, value) { write(name + ": " + value + "\n"); }
"#;

/// Builds the engine with the host functions and runs the prelude.
fn build_engine() -> Context {
    let mut context = Context::default();
    let functions: [(&str, usize, NativeFunction); 5] = [
        ("write", 1, NativeFunction::from_fn_ptr(write)),
        ("print", 1, NativeFunction::from_fn_ptr(print)),
        ("env", 1, NativeFunction::from_fn_ptr(env)),
        ("args", 0, NativeFunction::from_fn_ptr(args)),
        ("stdin", 0, NativeFunction::from_fn_ptr(stdin)),
    ];
    for (name, length, function) in functions {
        context
            .register_global_builtin_callable(JsString::from(name), length, function)
            .expect("a fresh global object takes every function");
    }
    let interpreter = ObjectInitializer::new(&mut context)
        .property(js_string!("name"), js_string!("js-cgi"), Attribute::all())
        .build();
    context
        .register_global_property(js_string!("interpreter"), interpreter, Attribute::all())
        .expect("a fresh global object takes every property");
    context
        .eval(Source::from_bytes(PRELUDE))
        .expect("the prelude is valid JavaScript");
    context
}

/// Wizer's initializer: build the engine now, so a snapshot holds it.
#[unsafe(export_name = "wizer.initialize")]
pub extern "C" fn initialize() {
    let engine = build_engine();
    ENGINE.with(|slot| *slot.borrow_mut() = Some(engine));
}

fn text(args: &[JsValue], context: &mut Context) -> JsResult<String> {
    match args.first() {
        Some(value) => Ok(value.to_string(context)?.to_std_string_escaped()),
        None => Ok(String::new()),
    }
}

fn write(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text(args, context)?.as_bytes());
    let _ = out.flush();
    Ok(JsValue::undefined())
}

fn print(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", text(args, context)?);
    let _ = out.flush();
    Ok(JsValue::undefined())
}

fn env(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let value = std::env::var(text(args, context)?).unwrap_or_default();
    Ok(JsString::from(value.as_str()).into())
}

fn args(_: &JsValue, _: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let rest: Vec<JsValue> = std::env::args()
        .skip(2)
        .map(|arg| JsString::from(arg.as_str()).into())
        .collect();
    Ok(boa_engine::object::builtins::JsArray::from_iter(rest, context).into())
}

fn stdin(_: &JsValue, _: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    let mut body = String::new();
    let _ = std::io::stdin().read_to_string(&mut body);
    Ok(JsString::from(body.as_str()).into())
}

fn main() {
    let Some(script) = std::env::args().nth(1) else {
        eprintln!("usage: js-cgi SCRIPT [ARGS...]");
        std::process::exit(2);
    };
    let source = match std::fs::read(&script) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("js-cgi: cannot read {script}: {error}");
            std::process::exit(1);
        }
    };
    let mut context = ENGINE
        .with(|engine| engine.borrow_mut().take())
        .unwrap_or_else(build_engine);
    if let Err(error) = context.eval(Source::from_bytes(&source)) {
        eprintln!("js-cgi: {script}: {error}");
        std::process::exit(1);
    }
    // The instance ends with the request: tearing the engine down object
    // by object would only touch (and copy) every page of its heap.
    std::mem::forget(context);
}
