//! Guest text made safe for a log line: what a guest writes to stderr and
//! what its traps say (function names come from its own name section) are
//! untrusted, and a raw escape sequence or line break in a text log could
//! forge lines or drive the operator's terminal.

use std::borrow::Cow;

/// `text` with every control character but tab written as an escape
/// (`\n`, `\u{1b}`), so it stays on one line and prints as it is.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

fn needs_escape(c: char) -> bool {
    c.is_control() && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(printable("plain text\twith tab"), "plain text\twith tab");
        assert_eq!(printable("héllo ✓"), "héllo ✓");
        assert_eq!(
            printable("red \u{1b}[31mfake\r\n2026-12-01 INFO forged"),
            "red \\u{1b}[31mfake\\r\\n2026-12-01 INFO forged"
        );
        assert_eq!(printable("\u{9b}c"), "\\u{9b}c", "C1 controls too");
    }
}
