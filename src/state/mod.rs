//! The stateful stage: dedup, suppression, correlations and alarms, in event time.
//!
//! ```text
//!  workers (parallel, stateless)                 sink thread (in input order)
//!  match → findings + a StateBatch ──Done──▶  Stage::dedup → suppression → correlations
//!          (keys, times, contributions)              → windows closed by the watermark
//! ```
//!
//! **Boundary.** Workers stay stateless: for every record they already parse they also
//! compute what the stage needs, cheaply and in parallel — the record's dedup key (a
//! keyed hash of `eventID` + `recipientAccountId`) and event time, each finding's
//! suppression key, and for each match of a rule that feeds a correlation one
//! [`correlate::Contribution`] (group values, the `field` value, the `eventID`). The
//! [`Stage`] runs on the sink thread, which sees units in input order, so state evolves
//! deterministically whatever the thread count.
//!
//! **Invariant.** A record dropped as a duplicate leaves no trace: its findings, its
//! contributions and its archive row go, and it moves from `records_kept` to
//! `records_deduplicated`, so `records_in` still adds up.
//!
//! **Decision.** Event time, not arrival time, drives every window: the watermark is the
//! newest event time seen; windows close when it has passed their end by the allowed
//! lateness. A replay of old logs therefore gives the same findings as the live run.

pub mod correlate;
pub mod dedup;
pub mod suppress;

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::decode::Position;
use crate::rules::RulePack;

pub use correlate::{Contribution, EngineStats, Ids, Limits};

/// The event time of a record that has none: the stage uses the newest event time
/// of the input so far instead.
pub const NO_TIME: i64 = i64::MIN;

/// Separates group values in a group key.
pub const GROUP_SEP: char = '\u{1f}';
/// Stands for a missing group value.
pub const NULL_VALUE: &str = "\u{0}";

/// How the stage is set up.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// Drop repeated `eventID`s within this window (microseconds); `None`: keep all.
    pub dedup_window: Option<i64>,
    /// Keys the dedup window holds at most.
    pub dedup_max_entries: usize,
    /// Correlation limits.
    pub limits: Limits,
}

impl LastEvent {
    /// This event for state kept past its unit: its record copied out of the unit's
    /// shared buffer (a group keeps only its own record alive, not its unit's).
    pub fn kept(this: &Arc<LastEvent>) -> Arc<LastEvent> {
        if !this.record.is_part() {
            return this.clone();
        }
        Arc::new(LastEvent {
            record: this.record.detached(),
            input_json: this.input_json.clone(),
            record_index: this.record_index,
            pos: this.pos,
        })
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dedup_window: Some(15 * 60_000_000),
            dedup_max_entries: 1_000_000,
            limits: Limits::default(),
        }
    }
}

/// A record's bytes as the stateful stage keeps them: a range of the buffer that holds
/// the contributing records of one unit (written once per record by the worker, shared by
/// all its contributions, never copied per contribution), or a buffer of its own.
#[derive(Debug, Clone, Default)]
pub struct RecordBytes {
    buf: Arc<Vec<u8>>,
    range: std::ops::Range<usize>,
}

impl RecordBytes {
    /// The record at `range` of a unit's shared buffer.
    pub fn shared(buf: &Arc<Vec<u8>>, range: std::ops::Range<usize>) -> Self {
        RecordBytes {
            buf: buf.clone(),
            range,
        }
    }

    /// The bytes (empty when the range is out of the buffer).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.range.clone()).unwrap_or_default()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// Whether the buffer holds more than this record (so keeping it would pin the rest).
    pub fn is_part(&self) -> bool {
        self.range.len() != self.buf.len()
    }

    /// A copy in a buffer of its own: for a record kept past its unit.
    pub fn detached(&self) -> Self {
        let bytes = self.as_bytes().to_vec();
        let range = 0..bytes.len();
        RecordBytes {
            buf: Arc::new(bytes),
            range,
        }
    }
}

/// The newest record of a group, for a stateful finding's `event` and `input`.
#[derive(Debug, Default)]
pub struct LastEvent {
    /// The record's bytes; its `event` object is rendered only if a finding names it.
    pub record: RecordBytes,
    /// The input's name, a JSON string.
    pub input_json: Arc<str>,
    /// Absolute record index in its input.
    pub record_index: u64,
    /// Position in the decompressed stream.
    pub pos: Position,
}

/// What a worker hands the stage for one record.
#[derive(Debug, Clone, Copy)]
pub struct RecordKey {
    /// Record index within the unit.
    pub rel: u64,
    /// Dedup key (0: the record has no `eventID` and is never a duplicate).
    pub key: u64,
    /// Event time, microseconds.
    pub time: i64,
}

/// What a worker hands the stage for one rendered finding.
#[derive(Debug, Clone)]
pub struct FindingMeta {
    /// Record index within the unit.
    pub rel: u64,
    /// The rule.
    pub rule: u32,
    /// Event time, microseconds.
    pub time: i64,
    /// Suppression key and the `by` values as a JSON object, for rules with `suppress`.
    pub suppress: Option<(u64, Box<str>)>,
}

/// A contribution as the worker sees it (record index relative to its unit).
#[derive(Debug, Clone)]
pub struct UnitContribution {
    /// Record index within the unit.
    pub rel: u64,
    /// Position of the record.
    pub pos: Position,
    /// The record's bytes in [`StateBatch::record_bytes`] (shared by its contributions).
    pub record: std::ops::Range<usize>,
    /// The contribution (its `last` is filled in by the stage).
    pub def: u32,
    /// Input position.
    pub input: u16,
    /// Event time.
    pub time: i64,
    /// The newest event time of the unit's records up to this one: the watermark
    /// moves record by record, whatever the unit boundaries.
    pub seen: i64,
    /// Group key, in [`StateBatch::text`].
    pub group: std::ops::Range<usize>,
    /// Its hash ([`KeyHasher::group_key`]).
    pub group_hash: u64,
    /// Field value, in [`StateBatch::text`].
    pub value: Option<std::ops::Range<usize>>,
    /// Its hash ([`KeyHasher::value_key`]), 0 without a value.
    pub value_hash: u64,
    /// `eventID` (or the record's hash when there is none), compact when a UUID.
    pub event_id: Ids,
}

/// A unit's state inputs, aligned with its findings.
#[derive(Debug, Default)]
pub struct StateBatch {
    /// One per record evaluated, in order.
    pub records: Vec<RecordKey>,
    /// One per rendered finding (when the stage is on).
    pub findings: Vec<FindingMeta>,
    /// Contributions to correlations.
    pub contributions: Vec<UnitContribution>,
    /// The bytes of the records that contribute, each once, back to back.
    pub record_bytes: Vec<u8>,
    /// The contributions' group keys and values, back to back.
    pub text: String,
    /// Newest event time of the unit.
    pub max_time: Option<i64>,
}

/// Findings produced by the stage, already rendered, and the rules they count for.
#[derive(Default)]
pub struct Emit {
    /// The lines.
    pub buf: Vec<u8>,
    /// The rule of each finding the stage itself made (correlations, alarms,
    /// suppression summaries), for counting.
    pub rules: Vec<u32>,
    /// Every line: its rule and where it ends in `buf`.
    ends: Vec<(u32, usize)>,
    parser: crate::event::RecordParser,
    known: crate::event::KnownPaths,
}

impl std::fmt::Debug for Emit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emit")
            .field("lines", &self.rules.len())
            .finish()
    }
}

impl Emit {
    /// Appends a finished line.
    pub fn raw(&mut self, rule: u32, line: &[u8]) {
        self.buf.extend_from_slice(line);
        self.rules.push(rule);
        self.mark(rule);
    }

    /// Ends a line written into `buf` directly (a finding passed through).
    pub fn mark(&mut self, rule: u32) {
        self.ends.push((rule, self.buf.len()));
    }

    /// Every line with its rule.
    pub fn lines(&self) -> impl Iterator<Item = (u32, &[u8])> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(rule, end)| {
            let line = &self.buf[start.min(end)..end];
            start = end;
            (rule, line)
        })
    }

    /// Renders a correlation or alarm finding.
    pub fn finding(
        &mut self,
        rule: u32,
        id: &[u8; 32],
        detected_at: &str,
        rule_json: &str,
        last: &LastEvent,
        correlation_json: &str,
    ) {
        let b = &mut self.buf;
        b.extend_from_slice(b"{\"schema\":\"trailhound.finding/1\",\"id\":\"");
        b.extend_from_slice(id);
        b.extend_from_slice(b"\",\"detected_at\":");
        b.extend_from_slice(detected_at.as_bytes());
        b.extend_from_slice(b",\"rule\":");
        b.extend_from_slice(rule_json.as_bytes());
        b.extend_from_slice(b",\"event\":");
        let mut rendered = false;
        if !last.record.is_empty() {
            let known = &self.known;
            self.parser.parse(last.record.as_bytes(), |root| {
                if let Ok(root) = root {
                    crate::finding::render_event(b, root, known);
                    rendered = true;
                }
            });
        }
        if !rendered {
            b.extend_from_slice(crate::finding::EMPTY_EVENT.as_bytes());
        }
        b.extend_from_slice(b",\"input\":{\"name\":");
        if last.input_json.is_empty() {
            b.extend_from_slice(b"\"\"");
        } else {
            b.extend_from_slice(last.input_json.as_bytes());
        }
        let mut n = itoa::Buffer::new();
        b.extend_from_slice(b",\"record_index\":");
        b.extend_from_slice(n.format(last.record_index).as_bytes());
        b.extend_from_slice(b",\"line\":");
        b.extend_from_slice(n.format(last.pos.line.max(1)).as_bytes());
        b.extend_from_slice(b",\"byte_offset\":");
        b.extend_from_slice(n.format(last.pos.offset).as_bytes());
        b.extend_from_slice(b"},\"fields\":{},\"correlation\":");
        b.extend_from_slice(correlation_json.as_bytes());
        b.extend_from_slice(b",\"suppressed\":0}\n");
        self.rules.push(rule);
        self.mark(rule);
    }

    /// Whether nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Empties the buffer for the next unit.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.rules.clear();
        self.ends.clear();
    }
}

/// Counters of the stage, for the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageStats {
    /// Correlation engine counters.
    pub engine: EngineStats,
    /// Findings counted into suppression summaries.
    pub findings_suppressed: u64,
    /// Dedup keys forgotten because of the size bound.
    pub dedup_evicted: u64,
}

/// The stage itself, owned by the sink thread.
#[derive(Debug)]
pub struct Stage {
    /// The input of the last unit.
    input: Option<u32>,
    /// The watermark at which windows are next looked at.
    next_advance: i64,
    /// Per rule: its id and suppression period, for rules with `suppress:`.
    suppress_rules: Vec<Option<(Box<str>, i64)>>,
    dedup: Option<dedup::Dedup>,
    engine: correlate::Engine,
    suppress: suppress::Suppressor,
    lateness: i64,
    detected_at: String,
}

impl Stage {
    /// A stage for `pack`, or `None` when nothing stateful is configured.
    pub fn new(pack: &RulePack, cfg: &StateConfig, hasher: KeyHasher) -> Option<Self> {
        if cfg.dedup_window.is_none() && !pack.is_stateful() {
            return None;
        }
        let engine = correlate::Engine::new(pack, cfg.limits, hasher);
        Some(Stage {
            input: None,
            next_advance: i64::MIN,
            dedup: cfg
                .dedup_window
                .map(|w| dedup::Dedup::new(w, cfg.dedup_max_entries)),
            engine,
            suppress: suppress::Suppressor::new(cfg.limits.max_groups),
            lateness: cfg.limits.allowed_lateness,
            detected_at: String::new(),
            suppress_rules: suppress_rules(pack),
        })
    }

    /// Takes a reloaded pack: open suppression periods end first (their summaries go
    /// to `out`, under the old pack's rule numbers — the caller writes them before it
    /// switches), then correlations are re-bound ([`correlate::Engine::rebind`]);
    /// dedup state is kept. Returns (correlations kept, started afresh).
    pub fn rebind(&mut self, old: &RulePack, pack: &RulePack, out: &mut Emit) -> (usize, usize) {
        self.suppress.finish(out);
        self.suppress_rules = suppress_rules(pack);
        self.engine.rebind(old, pack)
    }

    /// The newest event time seen in the current input (µs), if any.
    pub fn newest_event_time(&self) -> Option<i64> {
        let w = self.engine.watermark();
        (w != i64::MIN).then_some(w)
    }

    /// Whether workers should compute dedup keys.
    pub fn dedups(&self) -> bool {
        self.dedup.is_some()
    }

    fn stamp(&mut self) {
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now());
        self.detected_at = format!("\"{now}\"");
    }

    /// Runs a unit through the stage, record by record in input order: dedup, then
    /// the record's findings (suppression), then its contributions, with the watermark
    /// moving at every record — so the output is the same whatever the unit
    /// boundaries. The surviving findings and the stage's own go to `out`; returns the
    /// relative indices of duplicates (ascending) and the rules of findings that were
    /// dropped (to uncount).
    pub fn run_unit(
        &mut self,
        batch: &mut StateBatch,
        findings: &crate::sink::rendered::Rendered,
        input: (u32, &Arc<str>),
        base: u64,
        out: &mut Emit,
    ) -> (Vec<u64>, Vec<u32>) {
        let (input_id, input_json) = input;
        if self.input.is_some_and(|i| i != input_id) {
            self.engine.new_input();
            self.next_advance = i64::MIN;
        }
        self.input = Some(input_id);
        self.stamp();
        let mut dups = Vec::new();
        let mut dropped = Vec::new();
        let mut line = Vec::new();
        let mut fi = 0usize;
        let contributions = std::mem::take(&mut batch.contributions);
        let mut contributions = contributions.into_iter().peekable();
        let record_bytes = Arc::new(std::mem::take(&mut batch.record_bytes));
        let text = std::mem::take(&mut batch.text);
        let mut last: Option<(u64, Arc<LastEvent>)> = None;
        for r in &batch.records {
            let now = self.engine.watermark();
            let time = if r.time == NO_TIME { now } else { r.time };
            let dup = r.key != 0
                && time != NO_TIME
                && self
                    .dedup
                    .as_mut()
                    .is_some_and(|d| d.is_repeat(r.key, time));
            if dup {
                dups.push(r.rel);
            }
            self.engine.observe(time);
            self.advance(out);
            while let Some(meta) = batch.findings.get(fi).filter(|m| m.rel <= r.rel) {
                if dup && meta.rel == r.rel {
                    dropped.push(meta.rule);
                } else if meta.suppress.is_none() {
                    findings.line_into(fi, base, &mut out.buf);
                    out.mark(meta.rule);
                } else {
                    line.clear();
                    findings.line_into(fi, base, &mut line);
                    if self.admit(meta, time, &line, out) {
                        out.buf.extend_from_slice(&line);
                        out.mark(meta.rule);
                    } else {
                        dropped.push(meta.rule);
                    }
                }
                fi += 1;
            }
            while let Some(mut c) = contributions.next_if(|c| c.rel <= r.rel) {
                if dup && c.rel == r.rel {
                    continue;
                }
                if c.time == NO_TIME {
                    // Counted at the input's current time; before any timed record,
                    // at the record's own position in time is unknown: skipped.
                    if time == NO_TIME {
                        continue;
                    }
                    c.time = time;
                }
                let le = match &last {
                    Some((rel, le)) if *rel == c.rel => le.clone(),
                    _ => {
                        let le = Arc::new(LastEvent {
                            record: RecordBytes::shared(&record_bytes, c.record.clone()),
                            input_json: input_json.clone(),
                            record_index: base + c.rel,
                            pos: c.pos,
                        });
                        last = Some((c.rel, le.clone()));
                        le
                    }
                };
                self.engine.push(
                    Contribution {
                        def: c.def,
                        input: c.input,
                        time: c.time,
                        group: Cow::Borrowed(text.get(c.group).unwrap_or(NULL_VALUE)),
                        group_hash: c.group_hash,
                        value: c.value.and_then(|r| text.get(r)).map(Cow::Borrowed),
                        value_hash: c.value_hash,
                        ids: c.event_id,
                        last: le,
                    },
                    out,
                    &self.detected_at,
                );
            }
        }
        // Findings of records the stage was not told about (none are expected).
        while fi < batch.findings.len() {
            line.clear();
            findings.line_into(fi, base, &mut line);
            out.buf.extend_from_slice(&line);
            out.mark(findings.rule(fi));
            fi += 1;
        }
        (dups, dropped)
    }

    /// Decides whether a rendered finding is emitted (suppression); summaries of ended
    /// periods go to `out`.
    fn admit(&mut self, meta: &FindingMeta, time: i64, line: &[u8], out: &mut Emit) -> bool {
        let Some((key, by_json)) = &meta.suppress else {
            return true;
        };
        let Some(Some((rule_id, period))) = self.suppress_rules.get(meta.rule as usize) else {
            return true;
        };
        let time = if meta.time == NO_TIME {
            time
        } else {
            meta.time
        };
        self.suppress
            .offer(meta.rule, rule_id, *period, *key, by_json, time, line, out)
    }

    fn advance(&mut self, out: &mut Emit) {
        // Windows and periods are closed at most once per second of event time (the
        // resolution of CloudTrail's eventTime): a few heap peeks per record otherwise.
        let wm = self.engine.watermark();
        if wm < self.next_advance {
            return;
        }
        self.next_advance = wm.saturating_add(1_000_000);
        self.engine.advance(out, &self.detected_at);
        let limit = self.engine.watermark().saturating_sub(self.lateness);
        self.suppress.advance(limit, out);
    }

    /// Ends every window and period: the end of the run.
    pub fn finish(&mut self, out: &mut Emit) {
        self.stamp();
        self.engine.finish(out, &self.detected_at);
        self.suppress.finish(out);
    }

    /// Counters so far.
    pub fn stats(&self) -> StageStats {
        StageStats {
            engine: self.engine.stats(),
            findings_suppressed: self.suppress.suppressed,
            dedup_evicted: self.dedup.as_ref().map_or(0, |d| d.evicted),
        }
    }
}

/// Per rule: its id and suppression period, for rules with `suppress:`.
fn suppress_rules(pack: &RulePack) -> Vec<Option<(Box<str>, i64)>> {
    pack.rules()
        .iter()
        .map(|r| {
            r.suppress
                .as_ref()
                .map(|s| (r.meta.id.as_str().into(), s.period))
        })
        .collect()
}

/// Where a record is, for [`contribute`].
#[derive(Debug, Clone, Copy)]
pub struct At {
    /// Record index within the unit.
    pub rel: u64,
    /// Position in the decompressed stream.
    pub pos: Position,
    /// Event time.
    pub time: i64,
    /// The newest event time of the unit up to this record.
    pub seen: i64,
}

/// The contributions a match of rule `hit` makes to correlations and alarms, appended
/// to `out`. `record` caches the record's bytes between its hits.
#[allow(clippy::too_many_arguments)]
pub fn contribute(
    pack: &RulePack,
    hit: u32,
    root: simd_json::tape::Value<'_, '_>,
    raw: &[u8],
    known: &crate::event::KnownPaths,
    at: At,
    hasher: &KeyHasher,
    record: &mut Option<std::ops::Range<usize>>,
    out: &mut StateBatch,
) {
    use crate::event::path;
    use crate::rules::correlation::GroupSource;
    for &(def, input) in pack.feeds(hit) {
        let Some(spec) = pack
            .correlations()
            .get(def as usize)
            .and_then(|d| d.inputs.get(input as usize))
        else {
            continue;
        };
        let ev = record
            .get_or_insert_with(|| {
                let start = out.record_bytes.len();
                out.record_bytes.extend_from_slice(raw);
                start..out.record_bytes.len()
            })
            .clone();
        let text = &mut out.text;
        let start = text.len();
        for (i, g) in spec.group.iter().enumerate() {
            if i > 0 {
                text.push(GROUP_SEP);
            }
            match g {
                GroupSource::Path(p) => push_scalar(text, p.first(root)),
                GroupSource::Child(_) => text.push_str(NULL_VALUE),
            }
        }
        let group = start..text.len();
        let value = spec.value.as_ref().and_then(|p| {
            let start = text.len();
            push_scalar(text, p.first(root));
            if &text[start..] == NULL_VALUE {
                text.truncate(start);
                return None;
            }
            Some(start..text.len())
        });
        let event_id = match known.event_id.first(root).and_then(path::as_str) {
            Some(id) => Ids::of(id),
            None => {
                let id = crate::finding::finding_id("", None, raw);
                Ids::of(&String::from_utf8_lossy(&id))
            }
        };
        let value_hash = value.clone().map_or(0, |v| hasher.value_key(&text[v]));
        let group_hash = hasher.group_key(def, &text[group.clone()]);
        out.contributions.push(UnitContribution {
            rel: at.rel,
            pos: at.pos,
            record: ev,
            def,
            input,
            time: at.time,
            seen: at.seen,
            group_hash,
            group,
            value,
            value_hash,
            event_id,
        });
    }
}

/// Appends a value's scalar text (strings unquoted), compact JSON for objects and
/// arrays, or [`NULL_VALUE`] when missing or null.
fn push_scalar(out: &mut String, v: Option<simd_json::tape::Value<'_, '_>>) {
    use simd_json::prelude::Writable;
    let Some(v) = v else {
        out.push_str(NULL_VALUE);
        return;
    };
    if let Some(s) = crate::event::path::as_str(v) {
        out.push_str(s);
        return;
    }
    let mut buf = [0u8; 40];
    if let Some(s) = crate::rules::sigma::field::scalar_text(v, &mut buf) {
        out.push_str(s);
        return;
    }
    if v.as_object().is_some() || v.as_array().is_some() {
        let mut b = Vec::new();
        if v.write(&mut b).is_ok() {
            out.push_str(&String::from_utf8_lossy(&b));
            return;
        }
    }
    out.push_str(NULL_VALUE);
}

/// The keyed hasher workers use for dedup and suppression keys (one per run, shared).
#[derive(Debug, Clone, Default)]
pub struct KeyHasher(std::collections::hash_map::RandomState);

impl KeyHasher {
    /// A fresh random key.
    pub fn new() -> Self {
        KeyHasher(std::collections::hash_map::RandomState::new())
    }

    /// The dedup key of a record: never 0.
    pub fn record_key(&self, event_id: &str, account: Option<&str>) -> u64 {
        self.0.hash_one((event_id, account)).max(1)
    }

    /// The key of a correlation group.
    pub fn group_key(&self, def: u32, group: &str) -> u64 {
        self.0.hash_one((def, group))
    }

    /// The key of a distinct value.
    pub fn value_key(&self, value: &str) -> u64 {
        self.0.hash_one(value)
    }

    /// A suppression key over the `by` values.
    pub fn values_key(&self, rule: u32, values: &str) -> u64 {
        self.0.hash_one((rule, values))
    }
}

/// Event time of a CloudTrail timestamp in microseconds: the fixed
/// `YYYY-MM-DDTHH:MM:SSZ` form is read directly, anything else through RFC 3339.
pub fn parse_event_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
    {
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let mut v = 0i64;
            for &c in &b[r] {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + i64::from(c - b'0');
            }
            Some(v)
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if (1..=12).contains(&m) && (1..=31).contains(&d) && hh < 24 && mm < 60 && ss < 61 {
            let days = days_from_civil(y, m, d);
            return Some(((days * 86_400) + hh * 3600 + mm * 60 + ss) * 1_000_000);
        }
    }
    crate::archive::parse_time_micros(s)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 of microseconds since the epoch.
pub fn micros_rfc3339(us: i64) -> String {
    let t = if us >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_micros(us as u64)
    } else {
        std::time::UNIX_EPOCH
    };
    humantime::format_rfc3339(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_parse_fast_and_slow() {
        let fast = parse_event_time("2024-03-01T12:34:56Z");
        assert_eq!(
            fast,
            crate::archive::parse_time_micros("2024-03-01T12:34:56Z")
        );
        assert_eq!(
            parse_event_time("2024-03-01T12:34:56.5Z"),
            Some(fast.unwrap_or_default() + 500_000)
        );
        assert_eq!(parse_event_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_event_time("not a time"), None);
        assert_eq!(micros_rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
