//! Framing: decompressed bytes → the byte ranges of individual records.
//!
//! One buffer may hold, in any mix, the framings CloudTrail reaches users in:
//! NDJSON (one record per line), CloudTrail delivery objects `{"Records":[…]}` (one per
//! line, pretty-printed, or glued together without newlines as `zcat *.json.gz` writes
//! them), JSON arrays of records, CloudWatch Logs payloads, digest files and other JSON.
//!
//! The buffer's [`Mode`] is decided once from its first value ([`detect_mode`]):
//! - [`Mode::Lines`]: the first value ends on its first line. Every line is then framed on
//!   its own, so a broken line costs that line only and the next line starts clean.
//! - [`Mode::Document`]: the first value spans lines (pretty-printed JSON). Values are
//!   delimited by the structural scanner and may span lines.
//!
//! The fast path is a line holding one record: it goes to
//! [`FrameHandler::candidate`] without a scan; only when simd-json rejects it does the
//! scanner look for several values on the line. Objects that are not records
//! (CloudWatch payloads, digests) are told apart by the handler, which has parsed them.

use std::ops::Range;

use super::scan::{self, ValueEnd};

/// How a buffer is split into values, see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One or more values per line; no value spans a newline.
    Lines,
    /// Values may span lines.
    Document,
}

/// Where a value starts, in the decompressed stream of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Byte offset from the start of the decompressed stream.
    pub offset: u64,
    /// Line number (1-based) in the decompressed stream.
    pub line: u64,
}

/// What the handler made of a top-level object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// A record, a skipped document or a CloudWatch payload: fully dealt with.
    Handled,
    /// Not valid JSON; the reason names the position.
    NotJson(String),
    /// An object with a `Records` array that is not its first key: the framer walks it.
    Envelope,
}

/// Receives what framing finds.
pub trait FrameHandler {
    /// A top-level object, which may be a record or a document.
    fn candidate(&mut self, bytes: &[u8], pos: Position) -> Candidate;
    /// An element of a `Records` array or of a top-level array: a record by position.
    fn element(&mut self, bytes: &[u8], pos: Position);
    /// Bytes that cannot be framed or parsed, with the reason.
    fn dead_letter(&mut self, bytes: &[u8], pos: Position, reason: String);
}

/// Decides the [`Mode`] of a whole input (a file, an object, a message) from its
/// first value.
pub fn detect_mode(buf: &[u8]) -> Mode {
    let start = scan::skip_ws(buf, 0);
    // An array or a delivery object (a CloudTrail object, usually one line) is walked
    // element by element the same way in either mode as long as no newline falls inside
    // it; with none before the trailing whitespace of the input, it need not be scanned
    // to its end here (that scan cost as much as framing the object).
    let walked =
        buf.get(start) == Some(&b'[') || scan::records_array_start(&buf[start..]).is_some();
    if walked {
        let end = buf.len() - buf.iter().rev().take_while(|&&b| scan::is_ws(b)).count();
        if memchr::memchr(b'\n', &buf[start..end.max(start)]).is_none() {
            return Mode::Lines;
        }
    }
    detect_mode_partial(buf)
}

/// Decides the [`Mode`] from the first value of a buffer that may be only the start of
/// its input (a stream's first bytes).
pub fn detect_mode_partial(buf: &[u8]) -> Mode {
    let start = scan::skip_ws(buf, 0);
    let line_end = memchr::memchr(b'\n', &buf[start..]).map(|i| start + i);
    match buf.get(start) {
        Some(b'{' | b'[') => match scan::value_end(buf, start, false) {
            ValueEnd::Complete(end) => match line_end {
                Some(nl) if nl < end => Mode::Document,
                _ => Mode::Lines,
            },
            // A truncated stream: a newline inside the unfinished value means the value
            // was pretty-printed.
            ValueEnd::Incomplete if line_end.is_some() => Mode::Document,
            _ => Mode::Lines,
        },
        _ => Mode::Lines,
    }
}

/// Frames `buf` and reports every record, document and bad value to `handler`.
///
/// `base` is the position of `buf[0]` in its input's decompressed stream; values longer
/// than `max_record_bytes` are dead-lettered unparsed.
pub fn frame<H: FrameHandler>(
    buf: &[u8],
    mode: Mode,
    base: Position,
    max_record_bytes: usize,
    handler: &mut H,
) {
    let mut f = Framer {
        buf,
        base,
        mode,
        max: max_record_bytes,
        handler,
        cursor_at: 0,
        cursor_line: base.line,
        fixed_line: false,
    };
    match mode {
        Mode::Lines => f.lines(),
        Mode::Document => f.values(0, buf.len()),
    }
}

/// Frames one queue message (decompressed): like [`frame`] with the mode detected from
/// the message, but every value's `line` is `line`, the message's offset in its
/// partition, and `offset` counts bytes from the start of the message.
pub fn frame_message<H: FrameHandler>(
    buf: &[u8],
    line: u64,
    max_record_bytes: usize,
    handler: &mut H,
) {
    let mode = detect_mode(buf);
    let mut f = Framer {
        buf,
        base: Position { offset: 0, line },
        mode,
        max: max_record_bytes,
        handler,
        cursor_at: 0,
        cursor_line: line,
        fixed_line: true,
    };
    match mode {
        Mode::Lines => f.lines(),
        Mode::Document => f.values(0, buf.len()),
    }
}

struct Framer<'a, H> {
    buf: &'a [u8],
    base: Position,
    mode: Mode,
    max: usize,
    handler: &'a mut H,
    cursor_at: usize,
    cursor_line: u64,
    /// Every position has the base's line (a message's offset), see [`frame_message`].
    fixed_line: bool,
}

impl<H: FrameHandler> Framer<'_, H> {
    fn line_mode(&self) -> bool {
        self.mode == Mode::Lines
    }

    /// Position of `buf[i]`; line numbers are counted forward from the last query.
    fn pos(&mut self, i: usize) -> Position {
        if self.fixed_line {
            return Position {
                offset: self.base.offset + i as u64,
                line: self.base.line,
            };
        }
        if i < self.cursor_at {
            self.cursor_at = 0;
            self.cursor_line = self.base.line;
        }
        self.cursor_line += memchr::memchr_iter(b'\n', &self.buf[self.cursor_at..i]).count() as u64;
        self.cursor_at = i;
        Position {
            offset: self.base.offset + i as u64,
            line: self.cursor_line,
        }
    }

    fn dead(&mut self, r: Range<usize>, reason: String) {
        let pos = self.pos(r.start);
        self.handler.dead_letter(&self.buf[r], pos, reason);
    }

    fn lines(&mut self) {
        let buf = self.buf;
        let mut start = 0;
        let mut line = self.base.line;
        while start < buf.len() {
            let nl = memchr::memchr(b'\n', &buf[start..]).map_or(buf.len(), |i| start + i);
            let s = scan::skip_ws(&buf[..nl], start);
            let mut e = nl;
            while e > s && scan::is_ws(buf[e - 1]) {
                e -= 1;
            }
            if s < e {
                // Lines are known exactly here; keep the cursor in step so `pos` is O(1).
                self.cursor_at = s;
                self.cursor_line = line;
                self.line(s, e);
            }
            start = nl + 1;
            if !self.fixed_line {
                line += 1;
            }
        }
    }

    /// One non-blank line `buf[s..e]`.
    fn line(&mut self, s: usize, e: usize) {
        let text = &self.buf[s..e];
        match text[0] {
            b'[' => return self.values(s, e),
            b'{' if scan::records_array_start(text).is_some() => return self.values(s, e),
            b'{' => {}
            _ => return self.dead(s..e, "not a JSON object or array".into()),
        }
        if e - s > self.max {
            return self.too_large(s, e);
        }
        let pos = self.pos(s);
        match self.handler.candidate(text, pos) {
            Candidate::Handled => {}
            Candidate::Envelope => self.member_envelope(s, e),
            Candidate::NotJson(reason) => match scan::value_end(&self.buf[..e], s, true) {
                // Several values glued on one line: frame each on its own.
                ValueEnd::Complete(ve) if scan::skip_ws(&self.buf[..e], ve) < e => {
                    self.values(s, e)
                }
                _ => self.dead(s..e, reason),
            },
        }
    }

    /// Every top-level value in `buf[s..e]`.
    ///
    /// Arrays and delivery objects are walked element by element without first looking
    /// for their end, so a stream cut inside one (a truncated gzip object) still yields
    /// every complete record before the cut.
    fn values(&mut self, s: usize, e: usize) {
        let lm = self.line_mode();
        let mut i = s;
        loop {
            i = scan::skip_ws(&self.buf[..e], i);
            if i >= e {
                return;
            }
            let next = match self.buf[i] {
                b'[' => self.array(i, e),
                b'{' => match scan::records_array_start(&self.buf[i..e]) {
                    Some(open) => self
                        .array(i + open, e)
                        .and_then(|after| self.rest_of_object(after, e)),
                    None => match scan::value_end(&self.buf[..e], i, lm) {
                        ValueEnd::Complete(ve) => {
                            self.object(i, ve);
                            Some(ve)
                        }
                        ValueEnd::Incomplete => {
                            self.dead(i..e, "input ends inside a JSON value".into());
                            None
                        }
                        ValueEnd::Invalid { at, reason } => {
                            let msg = format!("{reason} at byte {}", self.base.offset + at as u64);
                            self.dead(i..e, msg);
                            None
                        }
                    },
                },
                _ => {
                    self.dead(i..e, "not a JSON object or array".into());
                    None
                }
            };
            match next {
                Some(n) => i = n,
                None => return,
            }
        }
    }

    /// One complete top-level object `buf[s..e]` that is not a delivery object.
    fn object(&mut self, s: usize, e: usize) {
        if e - s > self.max {
            return self.too_large(s, e);
        }
        let pos = self.pos(s);
        match self.handler.candidate(&self.buf[s..e], pos) {
            Candidate::Handled => {}
            Candidate::Envelope => self.member_envelope(s, e),
            Candidate::NotJson(reason) => self.dead(s..e, reason),
        }
    }

    /// After the `Records` array of a delivery object (ending at `after`): skips any
    /// further members and the closing brace. Returns the position after the object, or
    /// `None` (with the rest dead-lettered) when it is malformed.
    fn rest_of_object(&mut self, after: usize, e: usize) -> Option<usize> {
        let buf = &self.buf[..e];
        let mut j = scan::skip_ws(buf, after);
        loop {
            match buf.get(j) {
                Some(b'}') => return Some(j + 1),
                Some(b',') => {
                    // `, "key": value`
                    j = scan::skip_ws(buf, j + 1);
                    let key_end = match scan::value_end(buf, j, false) {
                        ValueEnd::Complete(k) if buf[j] == b'"' => k,
                        _ => break,
                    };
                    j = scan::skip_ws(buf, key_end);
                    if buf.get(j) != Some(&b':') {
                        break;
                    }
                    j = scan::skip_ws(buf, j + 1);
                    match scan::value_end(buf, j, self.line_mode()) {
                        ValueEnd::Complete(v) => j = scan::skip_ws(buf, v),
                        _ => break,
                    }
                }
                _ => break,
            }
        }
        let from = skip_sep(self.buf, after, e);
        if from < e {
            let msg = format!(
                "malformed end of a Records object at byte {}",
                self.base.offset + j as u64
            );
            self.dead(from..e, msg);
        }
        None
    }

    /// The elements of the array at `open`, within `buf[..e]`. Returns the position
    /// after the closing `]`, or `None` when the array is cut or malformed (the bytes
    /// from the first bad element on are dead-lettered).
    fn array(&mut self, open: usize, e: usize) -> Option<usize> {
        let lm = self.line_mode();
        let buf = self.buf;
        let mut elems = scan::Elements::new(&buf[..e], open, lm);
        let mut last_ok = open + 1;
        for item in elems.by_ref() {
            match item {
                Ok(r) => {
                    last_ok = r.end;
                    self.element(r);
                }
                Err(err) => {
                    let from = skip_sep(buf, last_ok, e);
                    let msg = format!(
                        "{} at byte {}",
                        err.reason,
                        self.base.offset + err.at as u64
                    );
                    self.dead(from..e, msg);
                    return None;
                }
            }
        }
        Some(elems.end())
    }

    fn element(&mut self, r: Range<usize>) {
        if r.len() > self.max {
            return self.too_large(r.start, r.end);
        }
        let pos = self.pos(r.start);
        self.handler.element(&self.buf[r], pos);
    }

    /// An object whose `Records` array is not the first key.
    fn member_envelope(&mut self, s: usize, e: usize) {
        match scan::find_member(&self.buf[..e], s, b"Records") {
            Ok((Some(r), _)) if self.buf[r.start] == b'[' => {
                self.array(r.start, r.end);
            }
            Ok(_) => self.dead(s..e, "object has no Records array".into()),
            Err(err) => {
                let msg = format!(
                    "{} at byte {}",
                    err.reason,
                    self.base.offset + err.at as u64
                );
                self.dead(s..e, msg)
            }
        }
    }

    fn too_large(&mut self, s: usize, e: usize) {
        let msg = format!(
            "record of {} bytes exceeds max_record_bytes ({})",
            e - s,
            self.max
        );
        self.dead(s..e, msg);
    }
}

/// Skips whitespace and one separating comma from `i`.
fn skip_sep(buf: &[u8], i: usize, e: usize) -> usize {
    let j = scan::skip_ws(&buf[..e], i);
    if buf.get(j) == Some(&b',') {
        scan::skip_ws(&buf[..e], j + 1)
    } else {
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        out: Vec<(String, String, u64, u64)>,
    }

    impl FrameHandler for Collect {
        fn candidate(&mut self, bytes: &[u8], pos: Position) -> Candidate {
            let s = String::from_utf8_lossy(bytes).to_string();
            if serde_json::from_slice::<serde_json::Value>(bytes).is_err() {
                return Candidate::NotJson("bad".into());
            }
            if s.contains("\"Records\"") {
                return Candidate::Envelope;
            }
            self.out.push(("cand".into(), s, pos.offset, pos.line));
            Candidate::Handled
        }
        fn element(&mut self, bytes: &[u8], pos: Position) {
            let s = String::from_utf8_lossy(bytes).to_string();
            self.out.push(("elem".into(), s, pos.offset, pos.line));
        }
        fn dead_letter(&mut self, bytes: &[u8], pos: Position, reason: String) {
            let s = String::from_utf8_lossy(bytes).to_string();
            self.out
                .push((format!("dead:{reason}"), s, pos.offset, pos.line));
        }
    }

    fn run(input: &str) -> Vec<(String, String, u64, u64)> {
        let mut c = Collect::default();
        let b = input.as_bytes();
        frame(
            b,
            detect_mode(b),
            Position { offset: 0, line: 1 },
            1 << 20,
            &mut c,
        );
        c.out
    }

    fn kinds(v: &[(String, String, u64, u64)]) -> Vec<(&str, &str)> {
        v.iter()
            .map(|(k, s, _, _)| (k.split(':').next().unwrap_or(""), s.as_str()))
            .collect()
    }

    #[test]
    fn ndjson_with_blank_and_broken_lines() {
        let out = run("{\"a\":1}\n\n  {\"b\":2}\r\n{\"c\":\n{\"d\":4}\n");
        assert_eq!(
            kinds(&out),
            [
                ("cand", "{\"a\":1}"),
                ("cand", "{\"b\":2}"),
                ("dead", "{\"c\":"),
                ("cand", "{\"d\":4}")
            ]
        );
        assert_eq!((out[1].2, out[1].3), (11, 3));
        assert_eq!(out[3].3, 5);
    }

    #[test]
    fn mode_of_whole_inputs_and_of_stream_starts() {
        let one = b"{\"Records\":[{\"eventID\":\"a\"},{\"eventID\":\"b\"}]}";
        assert_eq!(detect_mode(one), Mode::Lines);
        let mut nl = one.to_vec();
        nl.extend_from_slice(b"\n\n");
        assert_eq!(detect_mode(&nl), Mode::Lines);
        assert_eq!(
            detect_mode(b"{\"Records\":[\n{\"eventID\":\"a\"}]}"),
            Mode::Document
        );
        assert_eq!(
            detect_mode(b"[\n  {\"eventID\": \"a\"}\n]\n"),
            Mode::Document
        );
        // The first bytes of a pretty stream: the rest has not arrived yet.
        assert_eq!(detect_mode_partial(b"[\n"), Mode::Document);
        assert_eq!(detect_mode_partial(b"{\"eventID\":\"a\"}\n"), Mode::Lines);
    }

    #[test]
    fn delivery_objects_glued_and_pretty() {
        let out = run(r#"{"Records":[{"a":1},{"a":2}]}{"Records":[{"a":3}]}"#);
        assert_eq!(
            kinds(&out),
            [
                ("elem", r#"{"a":1}"#),
                ("elem", r#"{"a":2}"#),
                ("elem", r#"{"a":3}"#)
            ]
        );
        let pretty = "{\n  \"Records\": [\n    {\"a\": 1},\n    {\"a\": 2}\n  ]\n}\n";
        assert_eq!(detect_mode(pretty.as_bytes()), Mode::Document);
        let out = run(pretty);
        assert_eq!(
            kinds(&out),
            [("elem", "{\"a\": 1}"), ("elem", "{\"a\": 2}")]
        );
        assert_eq!(out[1].3, 4);
    }

    #[test]
    fn arrays_and_member_envelopes() {
        let out = run("[{\"a\":1}, {\"a\":2}]\n{\"x\":1,\"Records\":[{\"a\":3}]}");
        assert_eq!(
            kinds(&out),
            [
                ("elem", "{\"a\":1}"),
                ("elem", "{\"a\":2}"),
                ("elem", "{\"a\":3}")
            ]
        );
    }

    #[test]
    fn garbage_and_truncation() {
        let out = run("hello world\n42\n{\"Records\":[{\"a\":1},{\"a\":");
        assert_eq!(
            kinds(&out),
            [
                ("dead", "hello world"),
                ("dead", "42"),
                ("elem", "{\"a\":1}"),
                ("dead", "{\"a\":")
            ]
        );
    }

    #[test]
    fn too_large_values_are_dead_lettered() {
        let mut c = Collect::default();
        let b = b"{\"a\":\"0123456789\"}\n{\"b\":1}";
        frame(b, Mode::Lines, Position { offset: 0, line: 1 }, 10, &mut c);
        assert!(c.out[0].0.contains("exceeds max_record_bytes"));
        assert_eq!(c.out[1].0, "cand");
    }
}
