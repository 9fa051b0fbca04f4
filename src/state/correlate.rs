//! The correlation engine: Sigma correlations and metric-filter alarms in event time.
//!
//! **Windows.** A correlation with `timespan: T` asks whether some half-open window
//! `[s, s + T)` of one group holds enough events. Each group keeps its contributions
//! sorted by event time. When a contribution at time `t` arrives, the windows that
//! contain it start at the group's event times in `(t − T, t]`: in order (the usual
//! case) the earliest such start is the best one, since it holds a superset of the
//! others; a contribution that arrives late (older than the group's newest) tries up to
//! [`LATE_STARTS`] starts, so a shuffled burst is found as if it had come in order.
//! When a window satisfies the condition, one finding is emitted and the window's
//! contributions are *consumed*: each event counts toward at most one finding of a
//! correlation.
//!
//! Conditions with an upper bound (`lt`, `lte`, `eq`, `neq`) cannot be decided while
//! events may still arrive; they are judged when the window closes: windows then tumble
//! from a group's first event, and close when the watermark passes their end plus the
//! allowed lateness (or at the end of the input).
//!
//! **Time.** The watermark is the newest event time seen by the stage. A contribution
//! older than `watermark − allowed_lateness` is too late: counted in
//! `correlation_late_events`, not used (its record was still matched, archived and
//! reported by single-record rules). State older than `watermark − T − lateness` is
//! dropped, so memory follows the window, not the input.
//!
//! **Bounds.** At most `max_groups` groups per correlation (the group idle longest is
//! evicted first, counted in `correlation_groups_evicted`) and at most
//! `max_events_per_group` contributions per group (the oldest go, counted in
//! `correlation_events_evicted`).
//!
//! **Chains.** A finding of a correlation is a contribution to the correlations that
//! name it: its time is its newest event's, its group values are read from its own
//! group, and its events carry over into the parent's `event_ids`.
//!
//! **Alarms.** A metric-filter alarm counts matching records per `period`, aligned to
//! the epoch as CloudWatch aligns periods. It fires once when the alarm enters ALARM:
//! when `datapoints_to_alarm` of the last `evaluation_periods` periods breach the
//! threshold and the period before did not already have the alarm in ALARM. `>`/`>=`
//! thresholds are judged as records arrive; `<`/`<=` when a period closes.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Emit, GROUP_SEP, KeyHasher, LastEvent, NULL_VALUE, micros_rfc3339};
use crate::rules::RulePack;
use crate::rules::correlation::{
    AlarmSpec, CorrType, CorrelationDef, DefKind, GroupSource, num_json,
};

/// Window starts tried for a contribution that arrives out of order.
pub const LATE_STARTS: usize = 64;

/// Event ids kept per finding.
pub const MAX_EVENT_IDS: usize = 100;

/// Limits of the engine.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How far behind the watermark a contribution may be, in microseconds.
    pub allowed_lateness: i64,
    /// Groups per correlation.
    pub max_groups: usize,
    /// Contributions per group.
    pub max_events_per_group: usize,
    /// Contributions held by the whole engine; past it, idle groups are evicted.
    pub max_state_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            allowed_lateness: 5 * 60_000_000,
            max_groups: 1_000_000,
            max_events_per_group: 10_000,
            max_state_events: 2_000_000,
        }
    }
}

/// Counters of the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Contributions older than the allowed lateness.
    pub late_events: u64,
    /// Groups evicted by `max_groups`.
    pub groups_evicted: u64,
    /// Contributions evicted by `max_events_per_group`.
    pub events_evicted: u64,
    /// Groups held at the end (or now).
    pub groups: u64,
    /// Most groups held at once, over all correlations.
    pub peak_groups: u64,
}

/// The events behind a contribution.
#[derive(Debug, Clone)]
pub enum Ids {
    /// One record's `eventID` in canonical lowercase UUID form, as 16 bytes.
    Uuid([u8; 16]),
    /// One record's `eventID`, any other form.
    One(Box<str>),
    /// A child correlation's events: the first ids and the total.
    Many(Arc<(Vec<Box<str>>, u64)>),
}

impl Ids {
    /// The ids of one record's `eventID`, compact when it is a lowercase UUID.
    pub fn of(event_id: &str) -> Ids {
        match uuid_bytes(event_id) {
            Some(b) => Ids::Uuid(b),
            None => Ids::One(event_id.into()),
        }
    }

    fn count(&self) -> u64 {
        match self {
            Ids::Uuid(_) | Ids::One(_) => 1,
            Ids::Many(m) => m.1,
        }
    }

    fn push_into(&self, out: &mut Vec<Box<str>>) {
        match self {
            Ids::Uuid(b) => {
                if out.len() < MAX_EVENT_IDS {
                    out.push(uuid_text(b).into());
                }
            }
            Ids::One(id) => {
                if out.len() < MAX_EVENT_IDS {
                    out.push(id.clone());
                }
            }
            Ids::Many(m) => {
                for id in &m.0 {
                    if out.len() >= MAX_EVENT_IDS {
                        break;
                    }
                    out.push(id.clone());
                }
            }
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex digit → its value; anything else → 0xff.
const NIBBLE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Where the 16 bytes of a UUID start in its text (the dashes are skipped).
const UUID_BYTE_AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lowercase hex → 16 bytes.
fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let b: &[u8; 36] = s.as_bytes().try_into().ok()?;
    if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let mut out = [0u8; 16];
    let mut bad = 0u8;
    for (o, &at) in out.iter_mut().zip(UUID_BYTE_AT.iter()) {
        let (hi, lo) = (NIBBLE[b[at] as usize], NIBBLE[b[at + 1] as usize]);
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 15);
    }
    // A valid digit is at most 15: any 0xff sets the high bits.
    (bad & 0xf0 == 0).then_some(out)
}

fn uuid_text(b: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[(byte >> 4) as usize] as char);
        s.push(HEX[(byte & 15) as usize] as char);
    }
    s
}

/// One contribution to a correlation. Its strings borrow from the unit's buffers; a
/// group copies its key only when the contribution creates it.
#[derive(Debug, Clone)]
pub struct Contribution<'a> {
    /// The definition.
    pub def: u32,
    /// The position of the source in `correlation.rules`.
    pub input: u16,
    /// Event time, microseconds since the epoch.
    pub time: i64,
    /// Group values joined by [`GROUP_SEP`] (missing: [`NULL_VALUE`]).
    pub group: Cow<'a, str>,
    /// [`KeyHasher::group_key`] of `group` (computed by the worker, in parallel).
    pub group_hash: u64,
    /// The `field` value (value_count, value_sum, value_avg).
    pub value: Option<Cow<'a, str>>,
    /// [`KeyHasher::value_key`] of `value`.
    pub value_hash: u64,
    /// The events.
    pub ids: Ids,
    /// The newest record, for the finding's `event` and `input`.
    pub last: Arc<LastEvent>,
}

/// One contribution held by a group (48 bytes; a UUID eventID needs no allocation).
#[derive(Debug, Clone)]
struct Entry {
    time: i64,
    /// The distinct-value hash or input position; the number's bits for sums.
    aux: u64,
    ids: Ids,
    /// value_count / temporal: earlier events with the same value, folded into this
    /// entry (a group keeps each distinct value once, at its newest event).
    extra: u32,
}

impl Entry {
    fn num(&self) -> f64 {
        f64::from_bits(self.aux)
    }
}

#[derive(Debug)]
struct Group {
    key: Box<str>,
    hash: u64,
    entries: VecDeque<Entry>,
    newest: i64,
    /// Close mode: start of the open window.
    anchor: Option<i64>,
    /// Close mode: the newest record, for the finding made when the window closes
    /// (windows judged on arrival use the arriving record instead).
    last: Option<Arc<LastEvent>>,
}

#[derive(Debug, Default)]
struct Bucket {
    count: u64,
    ids: Vec<Box<str>>,
}

#[derive(Debug)]
struct AlarmState {
    spec: AlarmSpec,
    buckets: BTreeMap<i64, Bucket>,
    fired: FxHashSet<i64>,
    /// `<`/`<=` alarms: the last period judged.
    closed_through: Option<i64>,
    last: Option<Arc<LastEvent>>,
}

#[derive(Debug)]
struct Runtime {
    def: CorrelationDef,
    rule_id: String,
    rule_json: Box<str>,
    /// Findings only feed parent correlations (`generate: false` of a parent).
    silent: bool,
    /// Some input is another correlation (entries may stand for many events).
    chained: bool,
    close_mode: bool,
    index: FxHashMap<u64, u32>,
    slots: Vec<Option<Group>>,
    free: Vec<u32>,
    /// (expiry time, slot): one item per live group, never later than its real expiry.
    expiry: BinaryHeap<Reverse<(i64, u32)>>,
    /// Close mode: (window end, slot, anchor).
    closing: BinaryHeap<Reverse<(i64, u32, i64)>>,
    alarm: Option<AlarmState>,
}

/// The engine of one run.
#[derive(Debug)]
pub struct Engine {
    rts: Vec<Runtime>,
    limits: Limits,
    hasher: KeyHasher,
    watermark: i64,
    live_groups: u64,
    live_events: u64,
    stats: EngineStats,
}

/// What identifies a correlation across a reload: its rule's id and metadata, its
/// correlation spec (or alarm spec and pattern) as written, and the ids of its inputs.
pub fn fingerprint(pack: &RulePack, def: u32) -> String {
    use std::fmt::Write as _;
    let Some(d) = pack.correlations().get(def as usize) else {
        return String::new();
    };
    let Some(rule) = pack.rules().get(d.rule as usize) else {
        return String::new();
    };
    let mut s = format!(
        "{}\u{0}{}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
        rule.meta.id,
        rule.rule_json(),
        rule.correlation,
        rule.alarm,
        d.timespan
    );
    if let crate::rules::Matcher::Pattern(p) = rule.matcher() {
        s.push_str(p.as_str());
    }
    for input in &d.inputs {
        let id = match input.source {
            crate::rules::correlation::Source::Rule(r) => {
                pack.rules().get(r as usize).map(|r| r.meta.id.as_str())
            }
            crate::rules::correlation::Source::Correlation(c) => pack
                .correlations()
                .get(c as usize)
                .and_then(|c| pack.rules().get(c.rule as usize))
                .map(|r| r.meta.id.as_str()),
        };
        let _ = write!(s, "\u{0}{}", id.unwrap_or(""));
    }
    s
}

/// A finding before rendering.
struct Fired {
    def: u32,
    group_key: Box<str>,
    start: i64,
    end: i64,
    newest: i64,
    value: f64,
    ids: Vec<Box<str>>,
    count: u64,
    last: Arc<LastEvent>,
}

impl Engine {
    /// An engine for the pack's correlations.
    pub fn new(pack: &RulePack, limits: Limits, hasher: KeyHasher) -> Self {
        let rts = pack
            .correlations()
            .iter()
            .map(|def| {
                let rule = &pack.rules()[def.rule as usize];
                let (close_mode, alarm) = match &def.kind {
                    DefKind::Sigma(_) => (def.condition.needs_close(), None),
                    DefKind::Alarm(spec) => (
                        false,
                        Some(AlarmState {
                            spec: spec.clone(),
                            buckets: BTreeMap::new(),
                            fired: FxHashSet::default(),
                            closed_through: None,
                            last: None,
                        }),
                    ),
                };
                Runtime {
                    def: def.clone(),
                    rule_id: rule.meta.id.clone(),
                    rule_json: rule.rule_json().into(),
                    silent: matches!(def.kind, DefKind::Sigma(_)) && pack.is_silent(def.rule),
                    chained: def.inputs.iter().any(|i| {
                        matches!(i.source, crate::rules::correlation::Source::Correlation(_))
                    }),
                    close_mode,
                    index: FxHashMap::default(),
                    slots: Vec::new(),
                    free: Vec::new(),
                    expiry: BinaryHeap::new(),
                    closing: BinaryHeap::new(),
                    alarm,
                }
            })
            .collect();
        Engine {
            rts,
            limits,
            hasher,
            watermark: i64::MIN,
            live_groups: 0,
            live_events: 0,
            stats: EngineStats::default(),
        }
    }

    /// Whether there is anything to run.
    pub fn is_empty(&self) -> bool {
        self.rts.is_empty()
    }

    /// Takes `pack`'s correlations (a rule reload). A definition whose rule did not
    /// change ([`fingerprint`]: same id, metadata, correlation or alarm spec and
    /// pattern, same input rules) keeps its open groups, windows and alarm periods,
    /// re-keyed for its new position; the others start empty, and the state of
    /// correlations that are gone is dropped. Returns (kept, started afresh).
    pub fn rebind(&mut self, old_pack: &RulePack, pack: &RulePack) -> (usize, usize) {
        let mut fresh = Engine::new(pack, self.limits, self.hasher.clone());
        let mut old: FxHashMap<String, Runtime> = std::mem::take(&mut self.rts)
            .into_iter()
            .enumerate()
            .map(|(i, rt)| (fingerprint(old_pack, i as u32), rt))
            .collect();
        let (mut kept, mut started) = (0, 0);
        let (mut groups, mut events) = (0u64, 0u64);
        for (j, rt) in fresh.rts.iter_mut().enumerate() {
            let Some(mut prev) = old.remove(&fingerprint(pack, j as u32)) else {
                started += 1;
                continue;
            };
            kept += 1;
            rt.index.clear();
            for (slot, g) in prev.slots.iter_mut().enumerate() {
                if let Some(g) = g {
                    g.hash = self.hasher.group_key(j as u32, &g.key);
                    rt.index.insert(g.hash, slot as u32);
                    groups += 1;
                    events += g.entries.len() as u64;
                }
            }
            rt.slots = prev.slots;
            rt.free = prev.free;
            rt.expiry = prev.expiry;
            rt.closing = prev.closing;
            if let (Some(a), Some(b)) = (rt.alarm.as_mut(), prev.alarm.take()) {
                a.buckets = b.buckets;
                a.fired = b.fired;
                a.closed_through = b.closed_through;
                a.last = b.last;
            }
        }
        self.rts = fresh.rts;
        self.live_groups = groups;
        self.live_events = events;
        (kept, started)
    }

    /// The counters so far.
    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats.clone();
        s.groups = self.live_groups;
        s
    }

    /// The newest event time seen in the current input.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Moves the watermark (every record's event time counts, not only contributions).
    pub fn observe(&mut self, time: i64) {
        self.watermark = self.watermark.max(time);
    }

    /// A new input begins: its records are in their own time order (one account and
    /// region's files, one stream), so lateness is measured from its own newest event,
    /// not from the inputs before it. State already held is kept.
    pub fn new_input(&mut self) {
        self.watermark = i64::MIN;
    }

    /// Adds a contribution; findings (and the contributions they make to parent
    /// correlations, processed at once) go to `out`.
    pub fn push(&mut self, c: Contribution<'_>, out: &mut Emit, detected_at: &str) {
        // Parents' contributions queue up only when a finding feeds one (no allocation
        // otherwise).
        let mut queue = Vec::new();
        let mut next = Some(c);
        while let Some(c) = next.take().or_else(|| queue.pop()) {
            self.observe(c.time);
            if c.time < self.watermark.saturating_sub(self.limits.allowed_lateness) {
                self.stats.late_events += 1;
                continue;
            }
            let mut fired = Vec::new();
            if self.rts[c.def as usize].alarm.is_some() {
                self.push_alarm(c, &mut fired);
            } else {
                self.push_sigma(c, &mut fired);
            }
            for f in fired {
                self.emit(f, out, detected_at, &mut queue);
            }
        }
    }

    fn new_group(&mut self, d: usize, hash: u64, key: Box<str>) -> u32 {
        let group_hash = hash;
        if self.rts[d].index.len() >= self.limits.max_groups {
            self.evict_oldest(d);
        }
        let rt = &mut self.rts[d];
        let g = Group {
            key,
            hash: group_hash,
            // Most groups hold one or two events: grow from one, not from four.
            entries: VecDeque::with_capacity(1),
            newest: i64::MIN,
            anchor: None,
            last: None,
        };
        let slot = match rt.free.pop() {
            Some(s) => {
                rt.slots[s as usize] = Some(g);
                s
            }
            None => {
                rt.slots.push(Some(g));
                (rt.slots.len() - 1) as u32
            }
        };
        rt.index.insert(hash, slot);
        rt.expiry.push(Reverse((i64::MIN, slot)));
        self.live_groups += 1;
        self.stats.peak_groups = self.stats.peak_groups.max(self.live_groups);
        slot
    }

    fn remove_group(&mut self, d: usize, slot: u32) {
        let rt = &mut self.rts[d];
        if let Some(g) = rt.slots[slot as usize].take() {
            rt.index.remove(&g.hash);
            rt.free.push(slot);
            self.live_groups -= 1;
            self.live_events -= g.entries.len() as u64;
        }
    }

    fn expiry_of(&self, g: &Group, d: usize) -> i64 {
        g.newest
            .saturating_add(self.rts[d].def.timespan)
            .saturating_add(self.limits.allowed_lateness)
    }

    /// Evicts the group of correlation `d` idle longest; false if it has none.
    fn evict_oldest(&mut self, d: usize) -> bool {
        self.evict_idlest(d, None)
    }

    fn push_sigma(&mut self, c: Contribution<'_>, fired: &mut Vec<Fired>) {
        let d = c.def as usize;
        let DefKind::Sigma(kind) = self.rts[d].def.kind else {
            return;
        };
        let aux = match kind {
            CorrType::ValueCount => match &c.value {
                Some(_) => c.value_hash,
                None => return,
            },
            CorrType::Temporal | CorrType::TemporalOrdered => u64::from(c.input),
            CorrType::ValueSum | CorrType::ValueAvg => {
                match c
                    .value
                    .as_deref()
                    .and_then(|v| v.trim().parse::<f64>().ok())
                {
                    Some(n) if n.is_finite() => n.to_bits(),
                    _ => return,
                }
            }
            CorrType::EventCount => 0,
        };
        let hash = c.group_hash;
        let slot = match self.rts[d].index.get(&hash) {
            Some(&s) => s,
            None => self.new_group(d, hash, c.group.as_ref().into()),
        };
        // The engine-wide bound on held contributions: make room in this correlation.
        while self.live_events >= self.limits.max_state_events as u64 {
            let own = self.rts[d].slots[slot as usize]
                .as_ref()
                .map_or(0, |g| g.entries.len());
            if own as u64 >= self.live_events || !self.evict_other(d, slot) {
                break;
            }
        }
        let horizon = self
            .watermark
            .saturating_sub(self.rts[d].def.timespan)
            .saturating_sub(self.limits.allowed_lateness);
        let max_events = self.limits.max_events_per_group.max(1);
        let timespan = self.rts[d].def.timespan;
        let close_mode = self.rts[d].close_mode;
        let (mut added, mut evicted) = (1u64, 0u64);
        let (in_order, new_anchor) = {
            let Some(g) = self.rts[d].slots[slot as usize].as_mut() else {
                return;
            };
            let in_order = c.time >= g.newest;
            if close_mode && in_order {
                g.last = Some(LastEvent::kept(&c.last));
            }
            g.newest = g.newest.max(c.time);
            let mut e = Entry {
                time: c.time,
                aux,
                ids: c.ids.clone(),
                extra: 0,
            };
            // Distinct counts keep each value once, at its newest event: the window's
            // count is then its length, and a group holds at most its distinct values.
            let mut insert = true;
            if matches!(kind, CorrType::ValueCount | CorrType::Temporal)
                && let Some(j) = g.entries.iter().rposition(|x| x.aux == aux)
            {
                if g.entries[j].time <= e.time {
                    if let Some(old) = g.entries.remove(j) {
                        e.extra = old.extra.saturating_add(1);
                        added = added.wrapping_sub(1);
                    }
                } else {
                    g.entries[j].extra = g.entries[j].extra.saturating_add(1);
                    insert = false;
                    added = added.wrapping_sub(1);
                }
            }
            if !insert {
            } else if g.entries.back().is_none_or(|b| b.time <= e.time) {
                g.entries.push_back(e);
            } else {
                let at = g.entries.partition_point(|x| x.time <= e.time);
                g.entries.insert(at, e);
            }
            // Close mode keeps everything of the open window.
            let keep_from = match (close_mode, g.anchor) {
                (true, Some(a)) => horizon.min(a),
                _ => horizon,
            };
            while g.entries.front().is_some_and(|f| f.time < keep_from) {
                g.entries.pop_front();
                added = added.wrapping_sub(1);
            }
            while g.entries.len() > max_events {
                g.entries.pop_front();
                added = added.wrapping_sub(1);
                evicted += 1;
            }
            let mut new_anchor = None;
            if close_mode && g.anchor.is_none_or(|a| c.time < a) {
                // The first event opens the window; a late one opens it earlier.
                g.anchor = Some(c.time);
                new_anchor = Some(c.time);
            }
            (in_order, new_anchor)
        };
        self.live_events = self.live_events.wrapping_add(added);
        self.stats.events_evicted += evicted;
        if close_mode {
            if let Some(a) = new_anchor {
                self.rts[d]
                    .closing
                    .push(Reverse((a.saturating_add(timespan), slot, a)));
            }
            return;
        }
        self.evaluate_at(d, slot, c.time, in_order, kind, &c.last, fired);
    }

    /// Evicts the idlest group of correlation `d` other than `keep`.
    fn evict_other(&mut self, d: usize, keep: u32) -> bool {
        self.evict_idlest(d, Some(keep))
    }

    /// Evicts the group idle longest (by its expiry), sparing `keep`.
    fn evict_idlest(&mut self, d: usize, keep: Option<u32>) -> bool {
        let mut held = None;
        let mut done = false;
        while let Some(Reverse((t, slot))) = self.rts[d].expiry.pop() {
            if Some(slot) == keep {
                held = Some(Reverse((t, slot)));
                continue;
            }
            let Some(g) = self.rts[d].slots[slot as usize].as_ref() else {
                continue;
            };
            let real = self.expiry_of(g, d);
            if real > t {
                self.rts[d].expiry.push(Reverse((real, slot)));
                continue;
            }
            self.stats.groups_evicted += 1;
            self.remove_group(d, slot);
            done = true;
            break;
        }
        if let Some(h) = held {
            self.rts[d].expiry.push(h);
        }
        done
    }

    /// Tries the windows containing `t`; fires (and consumes) the first that holds.
    #[allow(clippy::too_many_arguments)]
    fn evaluate_at(
        &mut self,
        d: usize,
        slot: u32,
        t: i64,
        in_order: bool,
        kind: CorrType,
        last: &Arc<LastEvent>,
        fired: &mut Vec<Fired>,
    ) {
        let timespan = self.rts[d].def.timespan;
        let n_inputs = self.rts[d].def.inputs.len();
        let chained = self.rts[d].chained;
        let Some(g) = self.rts[d].slots[slot as usize].as_ref() else {
            return;
        };
        let first = g
            .entries
            .partition_point(|e| e.time <= t.saturating_sub(timespan));
        let last_start = g.entries.partition_point(|e| e.time <= t);
        let limit = if in_order { 1 } else { LATE_STARTS };
        let cond = &self.rts[d].def.condition;
        let mut hit = None;
        let mut tried = 0;
        let mut prev_start = None;
        for lo in first..last_start {
            let e = &g.entries[lo];
            if kind == CorrType::TemporalOrdered && e.aux != 0 {
                continue;
            }
            if prev_start == Some(e.time) {
                continue;
            }
            prev_start = Some(e.time);
            tried += 1;
            if tried > limit {
                break;
            }
            let s = e.time;
            let hi = g
                .entries
                .partition_point(|x| x.time < s.saturating_add(timespan));
            let (value, upto) = aggregate(kind, g, lo, hi, n_inputs, chained);
            if cond.holds(value) {
                hit = Some((lo, upto, value));
                break;
            }
        }
        let Some((lo, hi, value)) = hit else { return };
        let Some(g) = self.rts[d].slots[slot as usize].as_mut() else {
            return;
        };
        let f = consume(d as u32, g, lo, hi, value, timespan, last.clone());
        self.live_events -= (hi - lo) as u64;
        fired.push(f);
    }

    fn push_alarm(&mut self, c: Contribution<'_>, fired: &mut Vec<Fired>) {
        let d = c.def as usize;
        let lateness = self.limits.allowed_lateness;
        let watermark = self.watermark;
        let rt = &mut self.rts[d];
        let Some(a) = rt.alarm.as_mut() else { return };
        let period = a.spec.period;
        let b = c.time.div_euclid(period);
        let bucket = a.buckets.entry(b).or_default();
        bucket.count += 1;
        c.ids.push_into(&mut bucket.ids);
        a.last = Some(LastEvent::kept(&c.last));
        let keep_from = watermark
            .saturating_sub(lateness)
            .div_euclid(period)
            .saturating_sub(i64::from(a.spec.evaluation_periods) + 1);
        while let Some((&first, _)) = a.buckets.first_key_value() {
            if first >= keep_from || first >= b {
                break;
            }
            a.buckets.remove(&first);
        }
        a.fired.retain(|&x| x >= keep_from);
        if a.spec.eager() && alarm_enters(a, b) && a.fired.insert(b) {
            fired.push(alarm_fired(c.def, a, b));
        }
    }

    /// Closes what the watermark has passed: upper-bound windows, `<` alarm periods,
    /// idle groups.
    pub fn advance(&mut self, out: &mut Emit, detected_at: &str) {
        let limit = self.watermark.saturating_sub(self.limits.allowed_lateness);
        self.close_through(limit, out, detected_at);
    }

    /// Closes every window: the end of the input.
    pub fn finish(&mut self, out: &mut Emit, detected_at: &str) {
        self.close_through(i64::MAX, out, detected_at);
    }

    fn close_through(&mut self, limit: i64, out: &mut Emit, detected_at: &str) {
        let mut queue = Vec::new();
        for d in 0..self.rts.len() {
            let mut fired = Vec::new();
            self.close_windows(d, limit, &mut fired);
            self.close_alarm(d, limit, &mut fired);
            self.expire_groups(d);
            for f in fired {
                self.emit(f, out, detected_at, &mut queue);
            }
        }
        while let Some(c) = queue.pop() {
            self.push(c, out, detected_at);
        }
    }

    fn close_windows(&mut self, d: usize, limit: i64, fired: &mut Vec<Fired>) {
        let DefKind::Sigma(kind) = self.rts[d].def.kind else {
            return;
        };
        let timespan = self.rts[d].def.timespan;
        let n_inputs = self.rts[d].def.inputs.len();
        let chained = self.rts[d].chained;
        while let Some(&Reverse((end, slot, anchor))) = self.rts[d].closing.peek() {
            if end > limit {
                break;
            }
            self.rts[d].closing.pop();
            let rt = &mut self.rts[d];
            let Some(g) = rt.slots[slot as usize].as_mut() else {
                continue;
            };
            if g.anchor != Some(anchor) {
                continue;
            }
            let lo = g.entries.partition_point(|e| e.time < anchor);
            let hi = g.entries.partition_point(|e| e.time < end);
            if hi > lo {
                let (value, upto) = aggregate(kind, g, lo, hi, n_inputs, chained);
                if rt.def.condition.holds(value) {
                    let last = g.last.clone().unwrap_or_default();
                    fired.push(consume(d as u32, g, lo, upto, value, timespan, last));
                }
                // The window is judged: its events are done with.
                let rest_lo = g.entries.partition_point(|e| e.time < anchor);
                let rest_hi = g.entries.partition_point(|e| e.time < end);
                g.entries.drain(rest_lo..rest_hi);
                self.live_events -= (hi - lo) as u64;
            }
            g.anchor = g.entries.front().map(|e| e.time);
            if let Some(a) = g.anchor {
                rt.closing
                    .push(Reverse((a.saturating_add(timespan), slot, a)));
            }
        }
    }

    fn close_alarm(&mut self, d: usize, limit: i64, fired: &mut Vec<Fired>) {
        let def = d as u32;
        let Some(a) = self.rts[d].alarm.as_mut() else {
            return;
        };
        if a.spec.eager() {
            return;
        }
        let period = a.spec.period;
        // Periods ending at or before `limit` are complete.
        let last_complete = if limit == i64::MAX {
            match a.buckets.last_key_value() {
                Some((&b, _)) => b,
                None => return,
            }
        } else {
            limit.div_euclid(period) - 1
        };
        let Some(&first_seen) = a.buckets.keys().next() else {
            return;
        };
        let from = a.closed_through.map_or(first_seen, |c| c + 1);
        // Quiet stretches are judged at most a day of periods at a time.
        let to = last_complete.min(from.saturating_add(86_400_000_000 / period.max(1)));
        let mut b = from;
        while b <= to {
            if alarm_enters(a, b) && a.fired.insert(b) {
                fired.push(alarm_fired(def, a, b));
            }
            b += 1;
        }
        if to >= from {
            a.closed_through = Some(to);
        }
    }

    fn expire_groups(&mut self, d: usize) {
        let wm = self.watermark;
        let timespan = self.rts[d].def.timespan.max(1);
        while let Some(&Reverse((t, slot))) = self.rts[d].expiry.peek() {
            if t > wm {
                break;
            }
            self.rts[d].expiry.pop();
            let Some(g) = self.rts[d].slots[slot as usize].as_ref() else {
                continue;
            };
            let real = self.expiry_of(g, d);
            if real <= wm && g.anchor.is_none() {
                self.remove_group(d, slot);
                continue;
            }
            // Alive, or a window still to be judged: look again later.
            let next = if real > wm {
                real
            } else {
                wm.saturating_add(timespan)
            };
            self.rts[d].expiry.push(Reverse((next, slot)));
        }
    }

    fn emit(
        &mut self,
        f: Fired,
        out: &mut Emit,
        detected_at: &str,
        queue: &mut Vec<Contribution<'_>>,
    ) {
        let rt = &self.rts[f.def as usize];
        let def = &rt.def;
        let mut group = serde_json::Map::new();
        let values: Vec<&str> = if def.group_names.is_empty() {
            Vec::new()
        } else {
            f.group_key.split(GROUP_SEP).collect()
        };
        for (i, name) in def.group_names.iter().enumerate() {
            let v = values.get(i).copied().unwrap_or(NULL_VALUE);
            group.insert(
                name.clone(),
                if v == NULL_VALUE {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String(v.to_string())
                },
            );
        }
        let mut corr = serde_json::Map::new();
        match &def.kind {
            DefKind::Sigma(kind) => {
                corr.insert("type".into(), kind.as_str().into());
                corr.insert("group".into(), group.into());
                corr.insert("timespan".into(), def.timespan_text.clone().into());
                corr.insert("condition".into(), def.condition.to_json());
            }
            DefKind::Alarm(spec) => {
                corr.insert("type".into(), "metric_alarm".into());
                corr.insert("group".into(), group.into());
                corr.insert("threshold".into(), spec.threshold_text.clone().into());
                corr.insert("period".into(), spec.period_text.clone().into());
                corr.insert("evaluation_periods".into(), spec.evaluation_periods.into());
                corr.insert("datapoints_to_alarm".into(), spec.datapoints.into());
            }
        }
        corr.insert("value".into(), num_json(f.value));
        corr.insert(
            "window".into(),
            serde_json::json!({"start": micros_rfc3339(f.start), "end": micros_rfc3339(f.end)}),
        );
        corr.insert(
            "event_ids".into(),
            f.ids
                .iter()
                .map(|i| serde_json::Value::String(i.to_string()))
                .collect::<Vec<_>>()
                .into(),
        );
        corr.insert("event_count".into(), f.count.into());
        let id_src = format!("{}\u{0}{}", f.group_key, f.start);
        let id = crate::finding::finding_id(&rt.rule_id, Some(&id_src), b"");
        let corr_json = serde_json::Value::Object(corr).to_string();
        if !rt.silent {
            out.finding(
                def.rule,
                &id,
                detected_at,
                &rt.rule_json,
                &f.last,
                &corr_json,
            );
        }
        for &(parent, pos) in &def.parents {
            let pdef = &self.rts[parent as usize].def;
            let Some(input) = pdef.inputs.get(pos as usize) else {
                continue;
            };
            let mut key = String::new();
            for (i, gs) in input.group.iter().enumerate() {
                if i > 0 {
                    key.push(GROUP_SEP);
                }
                match gs {
                    GroupSource::Child(at) => {
                        key.push_str(values.get(*at).copied().unwrap_or(NULL_VALUE))
                    }
                    GroupSource::Path(_) => key.push_str(NULL_VALUE),
                }
            }
            let group_hash = self.hasher.group_key(parent, &key);
            queue.push(Contribution {
                def: parent,
                input: pos,
                time: f.newest,
                group_hash,
                value_hash: 0,
                group: Cow::Owned(key),
                value: None,
                ids: Ids::Many(Arc::new((f.ids.clone(), f.count))),
                last: f.last.clone(),
            });
        }
    }
}

/// The window's aggregate and, for temporal_ordered, the end of the matched sequence.
fn aggregate(
    kind: CorrType,
    g: &Group,
    lo: usize,
    hi: usize,
    n_inputs: usize,
    chained: bool,
) -> (f64, usize) {
    let range = g.entries.range(lo..hi);
    match kind {
        // Entries from records count one each; a child correlation's count its events.
        CorrType::EventCount if !chained => ((hi - lo) as f64, hi),
        CorrType::EventCount => (range.map(|e| e.ids.count()).sum::<u64>() as f64, hi),
        // Values are unique per group (see `push_sigma`), so the distinct count is the
        // window's length.
        CorrType::ValueCount | CorrType::Temporal => ((hi - lo) as f64, hi),
        CorrType::TemporalOrdered => {
            let mut next = 0u64;
            for (i, e) in range.enumerate() {
                if e.aux == next {
                    next += 1;
                    if next as usize == n_inputs {
                        return (next as f64, lo + i + 1);
                    }
                }
            }
            (next as f64, hi)
        }
        CorrType::ValueSum => (range.map(Entry::num).sum(), hi),
        CorrType::ValueAvg => {
            let n = hi - lo;
            let s: f64 = range.map(Entry::num).sum();
            (if n == 0 { 0.0 } else { s / n as f64 }, hi)
        }
    }
}

/// Takes the window's entries out of the group and describes the finding.
fn consume(
    def: u32,
    g: &mut Group,
    lo: usize,
    hi: usize,
    value: f64,
    timespan: i64,
    last: Arc<LastEvent>,
) -> Fired {
    let taken: Vec<Entry> = g.entries.drain(lo..hi).collect();
    let start = taken.first().map_or(0, |e| e.time);
    let newest = taken.last().map_or(start, |e| e.time);
    let mut ids = Vec::new();
    let mut count = 0;
    for e in &taken {
        count += e.ids.count() + u64::from(e.extra);
        e.ids.push_into(&mut ids);
    }
    Fired {
        def,
        group_key: g.key.clone(),
        start,
        end: start.saturating_add(timespan),
        newest,
        value,
        ids,
        count,
        last,
    }
}

/// Whether the alarm is in ALARM at period `b` and was not at `b − 1`.
fn alarm_enters(a: &AlarmState, b: i64) -> bool {
    in_alarm(a, b) && !in_alarm(a, b - 1)
}

fn in_alarm(a: &AlarmState, b: i64) -> bool {
    let n = i64::from(a.spec.evaluation_periods);
    let breaching = (b - n + 1..=b)
        .filter(|p| {
            let count = a.buckets.get(p).map_or(0, |x| x.count);
            a.spec.breaches(count as f64)
        })
        .count();
    breaching >= a.spec.datapoints as usize
}

fn alarm_fired(def: u32, a: &AlarmState, b: i64) -> Fired {
    let period = a.spec.period;
    let n = i64::from(a.spec.evaluation_periods);
    let first = b - n + 1;
    let mut ids = Vec::new();
    let mut count = 0;
    for (_, bucket) in a.buckets.range(first..=b) {
        count += bucket.count;
        for id in &bucket.ids {
            if ids.len() < MAX_EVENT_IDS {
                ids.push(id.clone());
            }
        }
    }
    let value = a.buckets.get(&b).map_or(0, |x| x.count) as f64;
    Fired {
        def,
        group_key: "".into(),
        start: first.saturating_mul(period),
        end: (b + 1).saturating_mul(period),
        newest: (b + 1).saturating_mul(period) - 1,
        value,
        ids,
        count,
        last: a
            .last
            .clone()
            .unwrap_or_else(|| Arc::new(LastEvent::default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_event_ids_round_trip_and_others_stay_text() {
        let id = "16f16ef8-f15c-4e04-a806-f0ce2a111f1f";
        let b = uuid_bytes(id).expect("a lowercase UUID");
        assert_eq!(b[0], 0x16);
        assert_eq!(b[15], 0x1f);
        assert_eq!(uuid_text(&b), id);
        for other in [
            "16F16EF8-F15C-4E04-A806-F0CE2A111F1F",
            "16f16ef8-f15c-4e04-a806-f0ce2a111f1",
            "16f16ef8xf15c-4e04-a806-f0ce2a111f1f",
            "16f16ef8-f15c-4e04-a806-f0ce2a111f1g",
            "g6f16ef8-f15c-4e04-a806-f0ce2a111f1f",
            "",
        ] {
            assert!(uuid_bytes(other).is_none(), "{other}");
            assert!(matches!(Ids::of(other), Ids::One(_)), "{other}");
        }
    }
}
