//! A CGI-mode demo: an HTML form that posts back to itself and a table of the
//! CGI meta-variables the request arrived with.

use std::io::{self, Read, Write};

fn main() -> io::Result<()> {
    let method = std::env::var("REQUEST_METHOD").unwrap_or_default();
    let script = std::env::var("SCRIPT_NAME").unwrap_or_default();
    let mut body = Vec::new();
    io::stdin().read_to_end(&mut body)?;

    let mut page = String::new();
    page.push_str("<!doctype html>\n<meta charset=\"utf-8\">\n<title>wasm-cgi form</title>\n");
    page.push_str(
        "<body style=\"font-family: system-ui; padding: 1rem\">\n<h1>wasm-cgi form demo</h1>\n",
    );
    page.push_str(&format!(
        "<form method=\"post\" action=\"{}\">\n<label>Name <input name=\"name\"></label>\n\
         <label>Message <input name=\"message\"></label>\n<button>Send</button>\n</form>\n",
        escape(&script)
    ));

    if method == "POST" {
        page.push_str("<h2>You sent</h2>\n<table>\n");
        for (key, value) in parse_form(&String::from_utf8_lossy(&body)) {
            page.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>\n",
                escape(&key),
                escape(&value)
            ));
        }
        page.push_str("</table>\n");
    }

    page.push_str("<h2>CGI variables</h2>\n<table>\n");
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (key, value) in vars {
        page.push_str(&format!(
            "<tr><th>{}</th><td><code>{}</code></td></tr>\n",
            escape(&key),
            escape(&value)
        ));
    }
    page.push_str("</table>\n</body>\n");

    let mut out = io::stdout().lock();
    write!(out, "Content-Type: text/html; charset=utf-8\r\n\r\n{page}")?;
    out.flush()
}

/// Splits an `application/x-www-form-urlencoded` body into decoded pairs.
fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// Decodes `+` and `%XX` escapes; invalid escapes are kept as they are.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|value| value as u8)
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
