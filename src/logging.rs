//! Log lines on stderr that stay one line each, whatever the input holds.
//!
//! Messages and fields carry text from the input: file names, S3 keys, rule titles and
//! keys, the character a malformed record stops at. Written raw, a newline in any of
//! them forges a log line of its own, a carriage return or an ANSI escape rewrites the
//! terminal. [`escaped_fields`] formats every field of the text log format (the message
//! included) through [`escape_controls`]; the JSON format escapes by itself.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// Whether `c` must not reach a log line raw: C0 controls (newline, carriage return
/// and tab included), DEL, C1 controls, and the Unicode line and paragraph separators.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Writes `c` escaped: `\n`, `\r`, `\t`, `\x1b` (other ASCII controls), `\u{85}` (the rest).
fn write_escaped(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

/// `s` with every control character escaped (see [`write_escaped`]); borrowed when
/// there is none.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let _ = Escaping(&mut out).write_str(s);
    Cow::Owned(out)
}

/// A writer that escapes control characters on their way to `W`.
struct Escaping<W>(W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some((i, c)) = rest.char_indices().find(|&(_, c)| is_unsafe(c)) {
            self.0.write_str(&rest[..i])?;
            write_escaped(&mut self.0, c)?;
            rest = &rest[i + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// A line of JSON text with every control character but its newline written as a
/// `\uXXXX` escape: the C1 controls, DEL and the Unicode line and paragraph separators,
/// which JSON allows raw inside strings (a JSON writer escapes only the C0 controls).
/// JSON text holds them only inside strings, where the escape means the same
/// character, so the line parses to the same value. Borrowed when there is none.
pub fn escape_json_controls(line: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c != '\n' && is_unsafe(c);
    if !line.chars().any(unsafe_char) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 12);
    for c in line.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The writer of the JSON log format: each formatted line (one `write` of UTF-8 JSON
/// text) goes to `W` through [`escape_json_controls`]; other bytes pass unchanged.
pub struct JsonControlEscaping<W>(pub W);

impl<W: std::io::Write> std::io::Write for JsonControlEscaping<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(s) => self.0.write_all(escape_json_controls(s).as_bytes())?,
            Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The field formatter of the text log format: `message key=value …` as the default
/// one writes them, with control characters escaped in the message and every value.
pub fn escaped_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(
        |w: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn fmt::Debug| {
            let mut out = Escaping(w);
            match field.name() {
                "message" => write!(out, "{value:?}"),
                name => write!(out, "{}={value:?}", name.trim_start_matches("r#")),
            }
        },
    )
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_text_is_kept() {
        assert!(matches!(escape_controls("plain é ✓"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\nb\r\tc\u{1b}[31m\u{7}\u{0}\u{7f}\u{85}\u{2028}d"),
            "a\\nb\\r\\tc\\x1b[31m\\x07\\x00\\x7f\\u{85}\\u{2028}d"
        );
    }

    #[test]
    fn a_log_line_stays_one_line() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = buf.clone();
        let make = move || Sink(sink.clone());
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(escaped_fields())
                .with_ansi(false)
                .with_target(false)
                .without_time()
                .with_writer(make),
        );
        let name = "evil\n2026-01-01T00:00:00Z ERROR forged\u{1b}[31m\r.json";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(input = %name, record_index = 3, kind = "files", "bad: {}", "x\ny");
        });
        let text = String::from_utf8(buf.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(
            text,
            " WARN bad: x\\ny input=evil\\n2026-01-01T00:00:00Z ERROR forged\\x1b[31m\\r.json record_index=3 kind=\"files\"\n"
        );
    }

    #[test]
    fn json_log_lines_escape_c1_controls_and_parse_to_the_same_text() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = buf.clone();
        let make = move || JsonControlEscaping(Sink(sink.clone()));
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_target(false)
                .without_time()
                .with_writer(make),
        );
        let name = "evil\u{9b}31m\u{85}\u{7f}\u{2028}\u{1b}[0m\n.json";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(input = %name, "bad: {}", "\u{9b}2J");
        });
        let text = String::from_utf8(buf.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(
            text,
            "{\"level\":\"WARN\",\"message\":\"bad: \\u009b2J\",\"input\":\
             \"evil\\u009b31m\\u0085\\u007f\\u2028\\u001b[0m\\n.json\"}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(v["input"], name);
        assert_eq!(
            escape_json_controls("{\"a\":\"\u{e9}\"}\n"),
            "{\"a\":\"\u{e9}\"}\n"
        );
    }

    /// A `MakeWriter` into a shared buffer.
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(b);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
