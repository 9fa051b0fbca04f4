//! A structural scanner: where does a JSON value end, without parsing it?
//!
//! Framing needs value boundaries before any record is parsed: the elements of a
//! `{"Records":[…]}` array, several objects written on one line (`zcat *.json.gz` glues
//! CloudTrail objects together without a newline), the top-level values of a
//! pretty-printed document. The scanner tracks only string state and nesting depth;
//! everything else is left to simd-json, which validates each value it is handed.
//!
//! Strings are skipped with `memchr` (they are most of CloudTrail's bytes), so the
//! per-byte loop runs only over punctuation, numbers and literals.

use std::ops::Range;

/// Where a value that starts at a given position ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueEnd {
    /// The value ends just before this position (exclusive end).
    Complete(usize),
    /// The buffer ended inside the value.
    Incomplete,
    /// The value cannot be valid JSON; `at` is the offending byte.
    Invalid {
        /// Position of the offending byte.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Is `b` JSON whitespace?
#[inline]
pub fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The first non-whitespace position at or after `i`.
#[inline]
pub fn skip_ws(buf: &[u8], mut i: usize) -> usize {
    while i < buf.len() && is_ws(buf[i]) {
        i += 1;
    }
    i
}

/// Skips a string whose opening quote is at `start - 1`; returns the position after the
/// closing quote. With `line_mode`, a raw newline inside the string is an error (JSON
/// forbids raw control characters in strings, and in NDJSON it means the line is cut).
#[inline]
fn string_end(buf: &[u8], start: usize, line_mode: bool) -> ValueEnd {
    let mut i = start;
    loop {
        if i >= buf.len() {
            return ValueEnd::Incomplete;
        }
        let hit = if line_mode {
            memchr::memchr3(b'"', b'\\', b'\n', &buf[i..])
        } else {
            memchr::memchr2(b'"', b'\\', &buf[i..])
        };
        let Some(off) = hit else {
            return ValueEnd::Incomplete;
        };
        let j = i + off;
        match buf[j] {
            b'"' => return ValueEnd::Complete(j + 1),
            b'\\' => {
                if j + 1 >= buf.len() {
                    return ValueEnd::Incomplete;
                }
                i = j + 2;
            }
            _ => {
                return ValueEnd::Invalid {
                    at: j,
                    reason: "line ends inside a string",
                };
            }
        }
    }
}

/// Finds the end of the JSON value whose first byte is `buf[start]`.
///
/// With `line_mode`, a newline anywhere inside the value makes it
/// [`ValueEnd::Invalid`]: in NDJSON every value ends on its own line.
pub fn value_end(buf: &[u8], start: usize, line_mode: bool) -> ValueEnd {
    let Some(&first) = buf.get(start) else {
        return ValueEnd::Incomplete;
    };
    match first {
        b'"' => string_end(buf, start + 1, line_mode),
        b'{' | b'[' => container_end(buf, start, line_mode),
        b'}' | b']' | b',' | b':' => ValueEnd::Invalid {
            at: start,
            reason: "unexpected structural character",
        },
        _ => {
            let mut i = start;
            while i < buf.len() {
                match buf[i] {
                    b if is_ws(b) => break,
                    b',' | b']' | b'}' | b'{' | b'[' | b'"' | b':' => break,
                    _ => i += 1,
                }
            }
            ValueEnd::Complete(i)
        }
    }
}

fn container_end(buf: &[u8], start: usize, line_mode: bool) -> ValueEnd {
    let mut depth: usize = 0;
    let mut i = start;
    while i < buf.len() {
        match buf[i] {
            b'"' => match string_end(buf, i + 1, line_mode) {
                ValueEnd::Complete(e) => {
                    i = e;
                    continue;
                }
                other => return other,
            },
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return ValueEnd::Complete(i + 1);
                }
            }
            b'\n' if line_mode => {
                return ValueEnd::Invalid {
                    at: i,
                    reason: "line ends inside an object or array",
                };
            }
            _ => {}
        }
        i += 1;
    }
    ValueEnd::Incomplete
}

/// If `text` (from its first byte) opens a CloudTrail delivery object whose first key is
/// `Records` holding an array, the position of that `[`.
pub fn records_array_start(text: &[u8]) -> Option<usize> {
    let mut i = skip_ws(text, 0);
    if text.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(text, i + 1);
    const KEY: &[u8] = b"\"Records\"";
    if !text[i..].starts_with(KEY) {
        return None;
    }
    i = skip_ws(text, i + KEY.len());
    if text.get(i) != Some(&b':') {
        return None;
    }
    i = skip_ws(text, i + 1);
    (text.get(i) == Some(&b'[')).then_some(i)
}

/// An error met while walking the members of an array or object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StructureError {
    /// Position of the problem.
    pub at: usize,
    /// What is wrong.
    pub reason: &'static str,
}

/// Iterates the element ranges of the array whose `[` is at `open`.
///
/// After the iterator is exhausted without error, [`Elements::end`] is the position
/// after the closing `]`.
pub struct Elements<'a> {
    buf: &'a [u8],
    pos: usize,
    line_mode: bool,
    state: ElemState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ElemState {
    First,
    Next,
    Done,
}

impl<'a> Elements<'a> {
    /// Starts at the `[` at `open`.
    pub fn new(buf: &'a [u8], open: usize, line_mode: bool) -> Self {
        Elements {
            buf,
            pos: open + 1,
            line_mode,
            state: ElemState::First,
        }
    }

    /// Position after the closing `]` once iteration finished; the current position
    /// (where an error was met) otherwise.
    pub fn end(&self) -> usize {
        self.pos
    }

    fn fail(
        &mut self,
        at: usize,
        reason: &'static str,
    ) -> Option<Result<Range<usize>, StructureError>> {
        self.state = ElemState::Done;
        self.pos = at;
        Some(Err(StructureError { at, reason }))
    }
}

impl Iterator for Elements<'_> {
    type Item = Result<Range<usize>, StructureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state == ElemState::Done {
            return None;
        }
        let mut i = skip_ws(self.buf, self.pos);
        match (self.state, self.buf.get(i)) {
            (_, None) => return self.fail(i, "input ends inside an array"),
            (_, Some(b']')) => {
                self.state = ElemState::Done;
                self.pos = i + 1;
                return None;
            }
            (ElemState::Next, Some(b',')) => i = skip_ws(self.buf, i + 1),
            (ElemState::Next, Some(_)) => return self.fail(i, "expected ',' or ']' in array"),
            _ => {}
        }
        match value_end(self.buf, i, self.line_mode) {
            ValueEnd::Complete(e) => {
                self.state = ElemState::Next;
                self.pos = e;
                Some(Ok(i..e))
            }
            ValueEnd::Incomplete => self.fail(i, "input ends inside an array element"),
            ValueEnd::Invalid { at, reason } => self.fail(at, reason),
        }
    }
}

/// Walks the members of the object whose `{` is at `open` and returns the value range
/// of the first member whose raw key equals `key`, plus the position after the closing
/// `}` (or where the walk stopped).
pub fn find_member(
    buf: &[u8],
    open: usize,
    key: &[u8],
) -> Result<(Option<Range<usize>>, usize), StructureError> {
    let mut i = open + 1;
    let mut found = None;
    let mut first = true;
    loop {
        i = skip_ws(buf, i);
        match buf.get(i) {
            None => {
                return Err(StructureError {
                    at: i,
                    reason: "input ends inside an object",
                });
            }
            Some(b'}') => return Ok((found, i + 1)),
            Some(b',') if !first => i = skip_ws(buf, i + 1),
            Some(_) if !first => {
                return Err(StructureError {
                    at: i,
                    reason: "expected ',' or '}' in object",
                });
            }
            _ => {}
        }
        first = false;
        if buf.get(i) != Some(&b'"') {
            return Err(StructureError {
                at: i,
                reason: "expected a key in object",
            });
        }
        let key_end = match string_end(buf, i + 1, false) {
            ValueEnd::Complete(e) => e,
            _ => {
                return Err(StructureError {
                    at: i,
                    reason: "unterminated key",
                });
            }
        };
        let this_key = &buf[i + 1..key_end - 1];
        i = skip_ws(buf, key_end);
        if buf.get(i) != Some(&b':') {
            return Err(StructureError {
                at: i,
                reason: "expected ':' after key",
            });
        }
        i = skip_ws(buf, i + 1);
        match value_end(buf, i, false) {
            ValueEnd::Complete(e) => {
                if found.is_none() && this_key == key {
                    found = Some(i..e);
                }
                i = e;
            }
            ValueEnd::Incomplete => {
                return Err(StructureError {
                    at: i,
                    reason: "input ends inside an object",
                });
            }
            ValueEnd::Invalid { at, reason } => return Err(StructureError { at, reason }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_ends() {
        let b = br#"{"a":"x}\"y","b":[1,{"c":2}]} tail"#;
        assert_eq!(value_end(b, 0, true), ValueEnd::Complete(29));
        assert_eq!(value_end(b"[1,2]x", 0, false), ValueEnd::Complete(5));
        assert_eq!(value_end(b"123 ", 0, false), ValueEnd::Complete(3));
        assert_eq!(value_end(br#"{"a":"#, 0, false), ValueEnd::Incomplete);
        assert_eq!(value_end(br#""abc\"#, 0, false), ValueEnd::Incomplete);
        assert!(matches!(
            value_end(b"{\"a\":\"x\ny\"}", 0, true),
            ValueEnd::Invalid { at: 7, .. }
        ));
        assert!(matches!(
            value_end(b"{\n}", 0, true),
            ValueEnd::Invalid { .. }
        ));
        assert_eq!(value_end(b"{\n}", 0, false), ValueEnd::Complete(3));
    }

    #[test]
    fn records_prefix() {
        assert_eq!(records_array_start(br#"{"Records":[{}]}"#), Some(11));
        assert_eq!(records_array_start(b"{ \"Records\" :\n [ ]}"), Some(15));
        assert_eq!(records_array_start(br#"{"Records":{}}"#), None);
        assert_eq!(records_array_start(br#"{"eventName":"x"}"#), None);
    }

    #[test]
    fn elements_of_arrays() {
        let b = br#"[ {"a":1} , {"b":[2]},3 ]"#;
        let mut it = Elements::new(b, 0, true);
        let got: Vec<_> = it.by_ref().map(|r| &b[r.expect("ok")]).collect();
        assert_eq!(got, [&br#"{"a":1}"#[..], br#"{"b":[2]}"#, b"3"]);
        assert_eq!(it.end(), b.len());
        let empty = b"[]";
        assert_eq!(Elements::new(empty, 0, true).count(), 0);
        let bad = br#"[{"a":1} {"b":2}]"#;
        let res: Vec<_> = Elements::new(bad, 0, true).collect();
        assert!(res[0].is_ok());
        assert!(res[1].is_err());
        assert_eq!(res.len(), 2);
        let cut = br#"[{"a":1},{"b":"#;
        let res: Vec<_> = Elements::new(cut, 0, true).collect();
        assert!(res[1].is_err());
    }

    #[test]
    fn members() {
        let b = br#"{"x":{"Records":1},"Records":[1,2],"y":3}"#;
        let (r, end) = find_member(b, 0, b"Records").expect("ok");
        assert_eq!(&b[r.expect("found")], b"[1,2]");
        assert_eq!(end, b.len());
        let (r, _) = find_member(br#"{}"#, 0, b"Records").expect("ok");
        assert!(r.is_none());
        assert!(find_member(br#"{"a" 1}"#, 0, b"a").is_err());
    }
}
