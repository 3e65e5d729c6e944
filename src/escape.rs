//! Escaping text for a terminal: what a platform, a file or a hand edit put
//! in a review id, an error message or a location name must not move the
//! cursor, recolour the screen, rewrite the current line, forge a log line or
//! reverse the text that follows it when a person reads the output.
//!
//! Every human-facing output goes through [`escape`] (or [`Escaped`]): the
//! `ledger` tables, `show`, `stats`, the `sync` summary, `check`, the error
//! lines on stderr, and the fields of text logs (`telemetry`). The ledger
//! keeps the platform's words as they came; only their display is escaped.
//!
//! What is escaped ([`needs_escape`]): C0 controls (tab, CR and LF included:
//! a value is shown on one line), DEL, C1 controls, the Unicode bidirectional
//! controls (U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069) and the
//! line and paragraph separators U+2028 and U+2029. Tab, LF and CR become
//! `\t`, `\n`, `\r`; the others `\uXXXX`. Both are JSON's own escapes, so
//! escaping JSON text yields JSON that decodes to the same value: machine
//! outputs (`--format json`, JSONL) are escaped with it and stay exact.
//! Backslashes are left alone: the escapes are for the eye, not a reversible
//! encoding of arbitrary text.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// Whether `c` is shown escaped (see the module doc).
pub fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}' | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// `s` with every character of [`needs_escape`] replaced by its escape;
/// borrowed when there is none (the usual case).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    // Writing to a String cannot fail.
    let _ = EscapingWriter { inner: &mut out }.write_str(s);
    Cow::Owned(out)
}

/// Text that keeps its line breaks (a pretty-printed JSON body): each line
/// escaped on its own, the `\n` between them kept.
pub fn escape_lines(s: &str) -> String {
    s.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

/// Displays `T` with its output escaped as by [`escape`], without building
/// the unescaped text first.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(pub T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Padding (`{:<20}`) is applied to the escaped text, so tables stay
        // aligned; it needs the text, so only padded uses pay for a String.
        if f.width().is_some() {
            let text = self.0.to_string();
            return f.pad(&escape(&text));
        }
        write!(EscapingWriter { inner: f }, "{}", self.0)
    }
}

/// Escapes what is written through it.
struct EscapingWriter<'a, W: Write + ?Sized> {
    inner: &'a mut W,
}

impl<W: Write + ?Sized> Write for EscapingWriter<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some((i, c)) = rest.char_indices().find(|(_, c)| needs_escape(*c)) {
            self.inner.write_str(&rest[..i])?;
            match c {
                '\t' => self.inner.write_str("\\t")?,
                '\n' => self.inner.write_str("\\n")?,
                '\r' => self.inner.write_str("\\r")?,
                other => write!(self.inner, "\\u{:04x}", u32::from(other))?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        self.inner.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["", "acme-google", "Très bien, 5 ★", "عربي", "a\\u001b"] {
            assert!(matches!(escape(s), Cow::Borrowed(t) if t == s), "{s}");
        }
    }

    #[test]
    fn terminal_controls_are_escaped() {
        assert_eq!(
            escape("\u{1b}[31mRED\u{1b}[0m\r\nFAKE LOG LINE"),
            "\\u001b[31mRED\\u001b[0m\\r\\nFAKE LOG LINE"
        );
        assert_eq!(escape("a\tb\u{7}\u{8}\u{0}"), "a\\tb\\u0007\\u0008\\u0000");
        assert_eq!(escape("del\u{7f} csi\u{9b}31m"), "del\\u007f csi\\u009b31m");
        assert_eq!(escape("x\u{85}y"), "x\\u0085y", "NEL (C1)");
    }

    #[test]
    fn bidi_controls_and_line_separators_are_escaped() {
        assert_eq!(escape("invoice\u{202e}fdp.exe"), "invoice\\u202efdp.exe");
        for c in [
            '\u{61c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
            '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{2028}', '\u{2029}',
        ] {
            assert!(needs_escape(c), "U+{:04X}", u32::from(c));
        }
        // Neighbours that are ordinary text.
        for c in [
            '\u{200d}', '\u{2030}', '\u{2065}', '\u{206a}', 'é', ' ', '~',
        ] {
            assert!(!needs_escape(c), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn escaped_json_text_decodes_to_the_same_value() {
        let value = serde_json::json!({
            "id": "a\u{202e}b\u{9b}c\u{7f}",
            "text": "line\r\nnext\u{1b}[2J\u{2028}",
        });
        let text = serde_json::to_string(&value).unwrap();
        let escaped = escape(&text);
        assert!(!escaped.chars().any(needs_escape), "{escaped}");
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, value);
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let lines = escape_lines(&pretty);
        assert_eq!(lines.lines().count(), pretty.lines().count());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&lines).unwrap(),
            value
        );
    }

    #[test]
    fn the_display_wrapper_escapes_and_pads_the_escaped_text() {
        assert_eq!(format!("{}", Escaped("a\u{1b}b")), "a\\u001bb");
        assert_eq!(format!("[{:<8}]", Escaped("a\rb")), "[a\\rb    ]");
        assert_eq!(format!("[{:>4}]", Escaped(7)), "[   7]");
        let err = std::io::Error::other("bad\u{1b}]0;title\u{7}");
        assert_eq!(format!("{}", Escaped(&err)), "bad\\u001b]0;title\\u0007");
    }
}
