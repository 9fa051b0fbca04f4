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
        let out = match res {
            Ok(()) => f(Ok(tape.as_value())),
            Err(e) => f(Err(ParseError {
                message: e.to_string(),
            })),
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
}
