//! Output lines rendered by a worker, waiting for their absolute record index.
//!
//! Workers render findings and dead letters in parallel, but only the in-order sink
//! knows how many records came before a batch. Each line is therefore stored as two
//! halves around the `record_index` value; the sink writes the first half, the number,
//! and the second half. No line is parsed or copied again.

use std::io::{self, Write};

use crate::decode::Position;

#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    split: usize,
    end: usize,
    rel_index: u64,
    rule: u32,
}

/// A batch of rendered lines in one buffer.
#[derive(Debug, Default)]
pub struct Rendered {
    buf: Vec<u8>,
    lines: Vec<Line>,
    open: Option<(usize, usize)>,
}

impl Rendered {
    /// The buffer to write the first half of a line into.
    pub fn begin(&mut self) -> &mut Vec<u8> {
        self.open = Some((self.buf.len(), usize::MAX));
        &mut self.buf
    }

    /// Marks where the record index goes; returns the buffer for the second half.
    pub fn split(&mut self) -> &mut Vec<u8> {
        if let Some((s, _)) = self.open {
            self.open = Some((s, self.buf.len()));
        }
        &mut self.buf
    }

    /// Writes `,"record_index":` + the split + `,"line":N,"byte_offset":N`: the
    /// position keys every line shares. Returns the buffer for the rest of the line.
    pub fn position(&mut self, pos: Position) -> &mut Vec<u8> {
        self.buf.extend_from_slice(b",\"record_index\":");
        let b = self.split();
        let mut num = itoa::Buffer::new();
        b.extend_from_slice(b",\"line\":");
        b.extend_from_slice(num.format(pos.line).as_bytes());
        b.extend_from_slice(b",\"byte_offset\":");
        b.extend_from_slice(num.format(pos.offset).as_bytes());
        b
    }

    /// Ends the line (the second half must end with `\n`).
    pub fn end(&mut self, rel_index: u64) {
        self.end_rule(rel_index, u32::MAX);
    }

    /// Ends a finding line of rule `rule` (its index in the pack).
    pub fn end_rule(&mut self, rel_index: u64, rule: u32) {
        if let Some((start, split)) = self.open.take() {
            let split = split.min(self.buf.len());
            self.lines.push(Line {
                start,
                split,
                end: self.buf.len(),
                rel_index,
                rule,
            });
        }
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// The rule of line `i` (`u32::MAX` for a line that is not a finding).
    pub fn rule(&self, i: usize) -> u32 {
        self.lines.get(i).map_or(u32::MAX, |l| l.rule)
    }

    /// Whether there are no lines.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Line `i` with `record_index = base + rel_index`, appended to `out`.
    pub fn line_into(&self, i: usize, base: u64, out: &mut Vec<u8>) {
        if let Some(l) = self.lines.get(i) {
            let mut num = itoa::Buffer::new();
            out.extend_from_slice(&self.buf[l.start..l.split]);
            out.extend_from_slice(num.format(base + l.rel_index).as_bytes());
            out.extend_from_slice(&self.buf[l.split..l.end]);
        }
    }

    /// Writes every line with `record_index = base + rel_index`.
    pub fn write_to(&self, w: &mut impl Write, base: u64) -> io::Result<()> {
        let mut num = itoa::Buffer::new();
        for l in &self.lines {
            w.write_all(&self.buf[l.start..l.split])?;
            w.write_all(num.format(base + l.rel_index).as_bytes())?;
            w.write_all(&self.buf[l.split..l.end])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_the_index() {
        let mut r = Rendered::default();
        r.begin().extend_from_slice(b"{\"i\":");
        r.split().extend_from_slice(b",\"x\":1}\n");
        r.end(2);
        r.begin().extend_from_slice(b"{\"i\":");
        r.split().extend_from_slice(b"}\n");
        r.end(5);
        let mut out = Vec::new();
        r.write_to(&mut out, 100).expect("write");
        assert_eq!(out, b"{\"i\":102,\"x\":1}\n{\"i\":105}\n");
        assert_eq!(r.len(), 2);
    }
}
