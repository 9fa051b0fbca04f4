//! Stage 3 of the pipeline: one record's bytes → a parsed view the rules can query.
//!
//! Previous module: [`crate::decode`] hands over the raw bytes of one record (an NDJSON
//! line, an element of a `{"Records":[…]}` array, a CloudWatch Logs message). Next
//! module: [`crate::rules`] evaluates a [`simd_json::tape::Value`] through compiled
//! [`FieldPath`]s.
//!
//! **Boundary type.** A record is parsed by simd-json into a *tape*: a flat array of
//! nodes in which every object and array knows how many nodes it spans, so a lookup skips
//! whole sub-objects in O(1). Nothing is built per field: no map, no `String`.
//!
//! **Invariant.** [`RecordParser::parse`] allocates nothing once its buffers have grown
//! to the largest record seen: the record is copied into a reusable, padded scratch
//! buffer (simd-json unescapes strings in place, and the original bytes must stay intact
//! for the finding's `record` and for dead letters), and the tape's node vector is reused
//! across records. `tests::parser_reuses_its_buffers` holds this.
//!
//! **Decision.** The tape, not simd-json's `BorrowedValue`: a borrowed value builds a
//! hash map per object, which costs more than the whole rule evaluation of a typical
//! record; CloudTrail objects have 10–30 keys, where a linear scan of the tape is faster
//! than hashing. Duplicate keys are kept as they appear (the tape does not dedupe), and
//! [`path`] fixes which one a lookup returns.

pub mod jsonpath;
pub mod path;

pub use path::{FieldPath, PathError, Segment};

use simd_json::tape::{Tape, Value};
use simd_json::{Buffers, INPUT_PADDING};

/// Why a record's bytes are not a JSON value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON: {message}")]
pub struct ParseError {
    /// simd-json's description, including the character position.
    pub message: String,
}

/// simd-json's message for `e`, with the character it stopped at read from `raw`:
/// simd-json takes the byte at that index for a character (`'â'` for the first byte
/// of U+2028); a byte that starts no UTF-8 character is given as `byte 0xNN`.
fn describe(e: &simd_json::Error, raw: &[u8]) -> String {
    let Some(c) = e.character().filter(|c| !c.is_ascii()) else {
        return e.to_string();
    };
    let at = e.index();
    let tail = raw.get(at..).unwrap_or_default();
    let real = (2..=tail.len().min(4))
        .find_map(|n| std::str::from_utf8(&tail[..n]).ok())
        .and_then(|s| s.chars().next());
    match real {
        Some(real) => format!("{:?} at character {at} ('{real}')", e.error()),
        None => format!(
            "{:?} at character {at} (byte 0x{:02x})",
            e.error(),
            c as u32
        ),
    }
}

/// A reusable simd-json parser for one worker thread.
pub struct RecordParser {
    scratch: Vec<u8>,
    buffers: Buffers,
    tape: Tape<'static>,
}

impl Default for RecordParser {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordParser {
    /// A parser with buffers sized for a typical CloudTrail record.
    pub fn new() -> Self {
        RecordParser {
            scratch: Vec::with_capacity(64 * 1024),
            buffers: Buffers::new(64 * 1024),
            tape: Tape(Vec::with_capacity(4096)),
        }
    }

    /// Parses `raw` and calls `f` with the root value, or with the parse error.
    ///
    /// JSON puts no bound on numbers; the tape holds 64-bit integers and finite
    /// doubles. A record with a number beyond them (`1e400`, a 30-digit integer) is
    /// parsed again with each such number read as a string of its text, so the record
    /// is still matched and archived: the number compares by its text (and
    /// numerically, as any string that spells a number does), and the finding's
    /// `record` keeps the original bytes.
    pub fn parse<R>(
        &mut self,
        raw: &[u8],
        f: impl FnOnce(Result<Value<'_, '_>, ParseError>) -> R,
    ) -> R {
        self.scratch.clear();
        self.scratch.extend_from_slice(raw);
        self.scratch.resize(raw.len() + INPUT_PADDING, b' ');
        let mut tape = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let res =
            simd_json::fill_tape_padded(&mut self.scratch, raw.len(), &mut self.buffers, &mut tape);
        match res {
            Ok(()) => {
                let out = f(Ok(tape.as_value()));
                self.tape = tape.reset();
                out
            }
            Err(e) => {
                let spare = tape.reset();
                self.parse_again(raw, &e, spare, f)
            }
        }
    }

    /// The path of a record simd-json rejected: numbers out of range are read as
    /// strings and the record parsed again; any other error is reported.
    fn parse_again<R>(
        &mut self,
        raw: &[u8],
        first: &simd_json::Error,
        tape: Tape<'static>,
        f: impl FnOnce(Result<Value<'_, '_>, ParseError>) -> R,
    ) -> R {
        let error = |e: &simd_json::Error| ParseError {
            message: match e.error() {
                // simd-json reports the position of the UTF-8 check, not of the bad byte.
                simd_json::ErrorType::InvalidUtf8 => {
                    let at = std::str::from_utf8(raw)
                        .err()
                        .map_or(0, |u| u.valid_up_to());
                    format!("invalid UTF-8 at byte {at} of the record")
                }
                _ => describe(e, raw),
            },
        };
        let mut widened = Vec::new();
        if *first.error() != simd_json::ErrorType::InvalidNumber
            || !quote_unrepresentable_numbers(raw, &mut widened)
        {
            self.tape = tape;
            return f(Err(error(first)));
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&widened);
        self.scratch.resize(widened.len() + INPUT_PADDING, b' ');
        let mut tape = tape.reset();
        let res = simd_json::fill_tape_padded(
            &mut self.scratch,
            widened.len(),
            &mut self.buffers,
            &mut tape,
        );
        let out = match res {
            Ok(()) => f(Ok(tape.as_value())),
            Err(_) => f(Err(error(first))),
        };
        self.tape = tape.reset();
        out
    }

    #[cfg(test)]
    fn capacities(&self) -> (usize, usize) {
        (self.scratch.capacity(), self.tape.0.capacity())
    }
}

/// The record fields every finding reports, compiled once.
#[derive(Debug, Clone)]
pub struct KnownPaths {
    /// `eventID`
    pub event_id: FieldPath,
    /// `eventTime`
    pub event_time: FieldPath,
    /// `@timestamp` (Logstash-shipped records carry only this)
    pub timestamp: FieldPath,
    /// `eventName`
    pub event_name: FieldPath,
    /// `eventSource`
    pub event_source: FieldPath,
    /// `awsRegion`
    pub aws_region: FieldPath,
    /// `recipientAccountId`
    pub recipient_account_id: FieldPath,
    /// `sourceIPAddress`
    pub source_ip: FieldPath,
    /// `userIdentity.arn`
    pub principal_arn: FieldPath,
    /// `userIdentity.type`
    pub principal_type: FieldPath,
    /// `userIdentity.accountId`
    pub principal_account: FieldPath,
}

impl Default for KnownPaths {
    fn default() -> Self {
        Self::new()
    }
}

impl KnownPaths {
    /// Compiles the fixed paths.
    pub fn new() -> Self {
        let p = |s: &str| FieldPath::parse(s).unwrap_or_else(|e| unreachable!("{e}"));
        KnownPaths {
            event_id: p("eventID"),
            event_time: p("eventTime"),
            timestamp: p("@timestamp"),
            event_name: p("eventName"),
            event_source: p("eventSource"),
            aws_region: p("awsRegion"),
            recipient_account_id: p("recipientAccountId"),
            source_ip: p("sourceIPAddress"),
            principal_arn: p("userIdentity.arn"),
            principal_type: p("userIdentity.type"),
            principal_account: p("userIdentity.accountId"),
        }
    }
}

/// Copies `raw` to `out`, writing every number that neither a 64-bit integer nor a
/// finite double holds as a string of its text (`1e400` → `"1e400"`); true if there
/// was one. Numbers are found outside strings; a token that is not a well-formed JSON
/// number is copied unchanged (the parser rejects it again).
fn quote_unrepresentable_numbers(raw: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    out.reserve(raw.len() + 16);
    let mut changed = false;
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < raw.len() {
                    match raw[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                out.extend_from_slice(&raw[start..i.min(raw.len())]);
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < raw.len()
                    && matches!(raw[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                let token = &raw[start..i];
                if is_json_number(token) && !representable(token) {
                    out.push(b'"');
                    out.extend_from_slice(token);
                    out.push(b'"');
                    changed = true;
                } else {
                    out.extend_from_slice(token);
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    changed
}

/// `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`, the whole token.
fn is_json_number(t: &[u8]) -> bool {
    let digits = |t: &[u8], i: usize| t[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut i = usize::from(t.first() == Some(&b'-'));
    match t.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i += digits(t, i),
        _ => return false,
    }
    if t.get(i) == Some(&b'.') {
        let n = digits(t, i + 1);
        if n == 0 {
            return false;
        }
        i += 1 + n;
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(t, i);
        if n == 0 {
            return false;
        }
        i += n;
    }
    i == t.len()
}

/// Whether the tape can hold a well-formed JSON number: an integer that fits 64 bits
/// (signed or not), or a number with a fraction or exponent that is a finite double.
fn representable(t: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(t) else {
        return false;
    };
    if t.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        s.parse::<f64>().is_ok_and(f64::is_finite)
    } else {
        s.parse::<i64>().is_ok() || s.parse::<u64>().is_ok()
    }
}

/// Top-level keys that make a JSON object a CloudTrail record. An object with none of
/// them (a digest file, a CloudWatch control message, any other JSON) is a document,
/// counted as `documents_skipped`.
pub const RECORD_MARKER_KEYS: [&str; 5] = [
    "eventVersion",
    "eventName",
    "eventSource",
    "eventID",
    "eventTime",
];

/// Whether `root` is an object with at least one of [`RECORD_MARKER_KEYS`].
pub fn looks_like_record(root: Value<'_, '_>) -> bool {
    match root.as_object() {
        Some(obj) => obj.keys().any(|k| RECORD_MARKER_KEYS.contains(&k)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_keeps_original_bytes() {
        let raw = br#"{"eventName":"A\u0042","n":1}"#;
        let mut p = RecordParser::new();
        let name = p.parse(raw, |r| {
            let v = r.expect("valid");
            path::as_str(KnownPaths::new().event_name.first(v).expect("present"))
                .map(str::to_string)
        });
        assert_eq!(name.as_deref(), Some("AB"));
        assert_eq!(raw, br#"{"eventName":"A\u0042","n":1}"#);
    }

    #[test]
    fn reports_invalid_json() {
        let mut p = RecordParser::new();
        let err = p.parse(br#"{"a": tru}"#, |r| r.err()).expect("error");
        assert!(err.to_string().starts_with("invalid JSON"), "{err}");
    }

    #[test]
    fn parser_reuses_its_buffers() {
        let mut p = RecordParser::new();
        let rec = br#"{"eventName":"ConsoleLogin","userIdentity":{"type":"Root"}}"#;
        p.parse(rec, |r| assert!(r.is_ok()));
        let caps = p.capacities();
        for _ in 0..1000 {
            p.parse(rec, |r| assert!(r.is_ok()));
        }
        assert_eq!(caps, p.capacities());
    }

    #[test]
    fn record_markers() {
        let mut p = RecordParser::new();
        assert!(p.parse(br#"{"eventSource":"s3.amazonaws.com"}"#, |r| {
            looks_like_record(r.expect("ok"))
        }));
        assert!(!p.parse(br#"{"digestStartTime":"x","logFiles":[]}"#, |r| {
            looks_like_record(r.expect("ok"))
        }));
        assert!(!p.parse(b"[1,2]", |r| looks_like_record(r.expect("ok"))));
    }

    #[test]
    fn numbers_beyond_the_tape_are_read_as_their_text() {
        let raw = br#"{"eventName":"1e400","a":1e400,"b":[123456789012345678901234567890,-1e999],"c":-0,"d":1e-400,"e":18446744073709551615,"s":"7e999"}"#;
        let mut p = RecordParser::new();
        let got = p.parse(raw, |r| {
            let v = r.expect("parsed");
            let text = |k: &str| {
                let leaf = crate::event::path::object_get(v, k).expect("present");
                let mut b = [0u8; 40];
                path::as_str(leaf).map(str::to_string).or_else(|| {
                    crate::rules::sigma::field::scalar_text(leaf, &mut b).map(str::to_string)
                })
            };
            let b = crate::event::path::object_get(v, "b").and_then(|b| b.as_array());
            let b: Vec<_> = b
                .expect("array")
                .iter()
                .map(|x| path::as_str(x).map(str::to_string))
                .collect();
            (text("a"), b, text("c"), text("d"), text("e"), text("s"))
        });
        assert_eq!(got.0.as_deref(), Some("1e400"));
        assert_eq!(
            got.1,
            [
                Some("123456789012345678901234567890".to_string()),
                Some("-1e999".to_string())
            ]
        );
        // What the tape holds stays a number.
        assert_eq!(got.2.as_deref(), Some("0"));
        assert_eq!(got.3.as_deref(), Some("0"));
        assert_eq!(got.4.as_deref(), Some("18446744073709551615"));
        assert_eq!(got.5.as_deref(), Some("7e999"));
        // The caller's bytes are untouched, and the parser is reusable.
        assert!(raw.starts_with(br#"{"eventName":"1e400","a":1e400"#));
        assert!(p.parse(br#"{"a":1}"#, |r| r.is_ok()));
    }

    #[test]
    fn malformed_numbers_and_bad_bytes_stay_errors() {
        let mut p = RecordParser::new();
        for bad in [
            &br#"{"a":01}"#[..],
            br#"{"a":1.}"#,
            br#"{"a":-}"#,
            br#"{"a":1e400x}"#,
        ] {
            let e = p.parse(bad, |r| r.err());
            assert!(e.is_some(), "{}", String::from_utf8_lossy(bad));
        }
        let e = p
            .parse(b"{\"eventName\":\"ab\xffcd\"}", |r| r.err())
            .expect("invalid UTF-8");
        assert_eq!(
            e.to_string(),
            "invalid JSON: invalid UTF-8 at byte 16 of the record"
        );
    }

    #[test]
    fn a_multibyte_character_where_parsing_stops_is_named_as_itself() {
        let mut p = RecordParser::new();
        for (bad, want) in [
            (
                "{\"eventName\":\"x\"\u{2028}}",
                "invalid JSON: ExpectedObjectContent at character 16 ('\u{2028}')",
            ),
            (
                "{\"eventName\":\"x\"\u{9b}}",
                "invalid JSON: ExpectedObjectContent at character 16 ('\u{9b}')",
            ),
            (
                "{\"eventName\":\"x\"\u{1b}}",
                "invalid JSON: ExpectedObjectContent at character 16 ('\u{1b}')",
            ),
        ] {
            let e = p.parse(bad.as_bytes(), |r| r.err()).expect("an error");
            assert_eq!(e.to_string(), want, "{bad:?}");
        }
    }

    #[test]
    fn number_tokens() {
        for ok in ["0", "-0", "12", "1.5", "1e5", "1E+5", "-2.5e-3"] {
            assert!(is_json_number(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "1e", "1e+", "--1", "1-2", "+1"] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
        assert!(representable(b"-9223372036854775808"));
        assert!(!representable(b"-9223372036854775809"));
        assert!(representable(b"1e308") && !representable(b"1e309"));
        assert!(representable(b"1e-400"));
    }
}
