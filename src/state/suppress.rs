//! Per-rule suppression: `suppress: {by: [userIdentity.arn], for: 1h}`.
//!
//! The first finding of a rule for a key (the values of the `by` fields) is emitted at
//! once and opens a period of `for` in event time; later findings of the same rule and
//! key within the period are counted, not emitted. When the period is over (the
//! watermark has passed its end plus the allowed lateness, a finding for the key
//! arrives after it, the entry is evicted by the size bound, or the input ends), one
//! summary finding is emitted: the first finding with a new `id`, `suppressed: N` and a
//! `suppression` object. A period with nothing suppressed ends silently.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::{Emit, micros_rfc3339};

#[derive(Debug)]
struct Entry {
    start: i64,
    period: i64,
    count: u64,
    line: Vec<u8>,
    by_json: Box<str>,
    rule_id: Box<str>,
}

/// Open suppression periods.
#[derive(Debug, Default)]
pub struct Suppressor {
    open: FxHashMap<(u32, u64), Entry>,
    ends: BinaryHeap<Reverse<(i64, u32, u64)>>,
    max_entries: usize,
    /// Findings counted into a summary instead of being emitted.
    pub suppressed: u64,
}

impl Suppressor {
    /// At most `max_entries` open periods.
    pub fn new(max_entries: usize) -> Self {
        Suppressor {
            max_entries: max_entries.max(1),
            ..Suppressor::default()
        }
    }

    /// Offers a finding of `rule` for `key` at `time`; returns whether to emit `line`
    /// (the rendered finding, record index included).
    #[allow(clippy::too_many_arguments)]
    pub fn offer(
        &mut self,
        rule: u32,
        rule_id: &str,
        period: i64,
        key: u64,
        by_json: &str,
        time: i64,
        line: &[u8],
        out: &mut Emit,
    ) -> bool {
        if let Some(e) = self.open.get_mut(&(rule, key)) {
            if time >= e.start && time < e.start.saturating_add(e.period) {
                e.count += 1;
                self.suppressed += 1;
                return false;
            }
            if let Some(old) = self.open.remove(&(rule, key)) {
                summary(rule, old, out);
            }
        }
        if self.open.len() >= self.max_entries {
            self.evict_one(out);
        }
        let end = time.saturating_add(period);
        self.open.insert(
            (rule, key),
            Entry {
                start: time,
                period,
                count: 0,
                line: line.to_vec(),
                by_json: by_json.into(),
                rule_id: rule_id.into(),
            },
        );
        self.ends.push(Reverse((end, rule, key)));
        true
    }

    fn evict_one(&mut self, out: &mut Emit) {
        while let Some(Reverse((end, rule, key))) = self.ends.pop() {
            if let Some(e) = self.open.get(&(rule, key))
                && e.start.saturating_add(e.period) == end
                && let Some(e) = self.open.remove(&(rule, key))
            {
                summary(rule, e, out);
                return;
            }
        }
    }

    /// Ends the periods that finish at or before `limit`.
    pub fn advance(&mut self, limit: i64, out: &mut Emit) {
        while let Some(&Reverse((end, rule, key))) = self.ends.peek() {
            if end > limit {
                break;
            }
            self.ends.pop();
            if let Some(e) = self.open.get(&(rule, key))
                && e.start.saturating_add(e.period) == end
                && let Some(e) = self.open.remove(&(rule, key))
            {
                summary(rule, e, out);
            }
        }
    }

    /// Ends every period.
    pub fn finish(&mut self, out: &mut Emit) {
        self.advance(i64::MAX, out);
    }

    /// Open periods.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no period is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// The first finding with `suppressed: N`, a new id and the period.
fn summary(rule: u32, e: Entry, out: &mut Emit) {
    if e.count == 0 {
        return;
    }
    let tail = b"\"suppressed\":0}\n";
    let Some(body) = e.line.strip_suffix(tail.as_slice()) else {
        return;
    };
    let mut line = body.to_vec();
    let id_src = format!("suppressed\u{0}{}\u{0}{}", e.by_json, e.start);
    let id = crate::finding::finding_id(&e.rule_id, Some(&id_src), b"");
    if let Some(at) = memchr::memmem::find(&line, b"\"id\":\"") {
        let s = at + 6;
        if line.len() >= s + 32 {
            line[s..s + 32].copy_from_slice(&id);
        }
    }
    let extra = serde_json::json!({
        "by": serde_json::from_str::<serde_json::Value>(&e.by_json).unwrap_or(serde_json::Value::Null),
        "window": {"start": micros_rfc3339(e.start), "end": micros_rfc3339(e.start.saturating_add(e.period))},
    });
    line.extend_from_slice(
        format!("\"suppressed\":{},\"suppression\":{}}}\n", e.count, extra).as_bytes(),
    );
    out.raw(rule, &line);
}
