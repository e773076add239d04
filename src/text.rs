//! Small text helpers shared by the CLI and the app.
//!
//! [`shown`] is the one gate for text taken from a file (module, tensor and key names, pickle
//! strings, ONNX locations): such text may hold terminal escapes (`\x1b[2J` clears the screen) or
//! be megabytes long, so it is escaped and cut before it enters an error message or the output.

use std::fmt;

/// `1234567` -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count for people: `910.2 MB`, `3.1 GB`, `812 bytes` (decimal units, as file managers show).
pub fn bytes_human(n: u64) -> String {
    const UNITS: [(&str, f64); 4] = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    for (unit, scale) in UNITS {
        if n as f64 >= scale {
            return format!("{:.1} {unit}", n as f64 / scale);
        }
    }
    format!("{n} bytes")
}

/// Longest file-derived text shown, in characters; longer text is cut with an ellipsis and its
/// length.
pub const MAX_SHOWN_CHARS: usize = 200;

/// Longest error message shown, in characters: the backstop for messages that were built from
/// file-derived parts (each already cut to [`MAX_SHOWN_CHARS`]).
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// File-derived text made safe to print (see [`Shown`]).
pub fn shown(text: &str) -> Shown<'_> {
    Shown { text, max_chars: MAX_SHOWN_CHARS }
}

/// A whole message made safe to print: escaped like [`shown`], cut at [`MAX_MESSAGE_CHARS`].
pub fn shown_message(text: &str) -> Shown<'_> {
    Shown { text, max_chars: MAX_MESSAGE_CHARS }
}

/// Displays untrusted text: control characters (C0, DEL, C1) and bidirectional overrides are
/// written as escapes (`\x1b`, `\n`, `\u{202e}`), and text longer than [`MAX_SHOWN_CHARS`] is cut
/// to that many characters followed by `… (N chars)`. Writing it never allocates.
#[derive(Clone, Copy)]
pub struct Shown<'a> {
    text: &'a str,
    max_chars: usize,
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.text.chars().enumerate() {
            if i == self.max_chars {
                return write!(f, "… ({} chars)", thousands(self.text.chars().count() as u64));
            }
            write_escaped(f, c)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

fn write_escaped(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        c if c.is_control() && u32::from(c) < 0x100 => write!(f, "\\x{:02x}", u32::from(c)),
        // Bidirectional embeddings, overrides and isolates reorder what the terminal shows.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}' => {
            write!(f, "\\u{{{:x}}}", u32::from(c))
        }
        c => fmt::Write::write_char(f, c),
    }
}

/// [`shown`] as an owned string (for messages built before they are printed).
pub fn shown_string(text: &str) -> String {
    shown(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(bytes_human(812), "812 bytes");
        assert_eq!(bytes_human(1_500), "1.5 kB");
        assert_eq!(bytes_human(910_234_567), "910.2 MB");
        assert_eq!(bytes_human(3_100_000_000), "3.1 GB");
    }

    #[test]
    fn groups_digits_by_three() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(22_000_123), "22,000,123");
    }

    #[test]
    fn control_characters_and_bidi_overrides_are_escaped() {
        assert_eq!(shown("layer.0.weight").to_string(), "layer.0.weight");
        assert_eq!(shown("a\x1b[2Jb\nc\td\r\x7f\u{85}").to_string(), "a\\x1b[2Jb\\nc\\td\\r\\x7f\\x85");
        assert_eq!(shown("x\u{202e}y\u{2066}").to_string(), "x\\u{202e}y\\u{2066}");
        assert_eq!(shown("é ß 字").to_string(), "é ß 字", "printable text is kept");
    }

    #[test]
    fn long_text_is_cut_with_its_length() {
        let long = "ab".repeat(5_000_000);
        let s = shown(&long).to_string();
        assert!(s.ends_with("… (10,000,000 chars)"), "{}", &s[s.len() - 40..]);
        assert_eq!(s.chars().take_while(|&c| c != '…').count(), MAX_SHOWN_CHARS);
        assert_eq!(shown(&"x".repeat(MAX_SHOWN_CHARS)).to_string().len(), MAX_SHOWN_CHARS);
    }
}
