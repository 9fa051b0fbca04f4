//! Record accounting: one set of counter names, used in the run summary, the
//! `--stats json` object and (later) the metrics.
//!
//! The invariant, checked by [`RunSummary::accounting_holds`] and asserted by the tests:
//! `records_in = records_kept + records_filtered + records_deduplicated +
//! records_dead_lettered`. Documents that are not records (digests, CloudWatch control
//! messages, other JSON) are `documents_skipped`, never records.

use std::time::Duration;

use crate::rules::{Level, RulePack};

/// Counters of one batch, merged into the run total in input order.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Records read (every unit that claimed a record index, dead letters included).
    pub records_in: u64,
    /// Records that passed the filter and were evaluated.
    pub records_kept: u64,
    /// Records dropped by the pre-storage filter.
    pub records_filtered: u64,
    /// Records dropped as duplicates.
    pub records_deduplicated: u64,
    /// Records sent to the dead-letter output.
    pub records_dead_lettered: u64,
    /// JSON documents that are not records.
    pub documents_skipped: u64,
    /// Records with neither `eventTime` nor `@timestamp`.
    pub records_without_event_time: u64,
    /// Decompressed bytes.
    pub bytes_decoded: u64,
    /// Findings per rule index.
    pub findings_by_rule: Vec<u64>,
    /// Findings of rules a reload removed (in [`RunSummary::retired`] by rule).
    pub findings_retired: u64,
}

impl Counters {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Counters) {
        self.records_in += other.records_in;
        self.records_kept += other.records_kept;
        self.records_filtered += other.records_filtered;
        self.records_deduplicated += other.records_deduplicated;
        self.records_dead_lettered += other.records_dead_lettered;
        self.documents_skipped += other.documents_skipped;
        self.records_without_event_time += other.records_without_event_time;
        self.bytes_decoded += other.bytes_decoded;
        if self.findings_by_rule.len() < other.findings_by_rule.len() {
            self.findings_by_rule
                .resize(other.findings_by_rule.len(), 0);
        }
        for (a, b) in self
            .findings_by_rule
            .iter_mut()
            .zip(&other.findings_by_rule)
        {
            *a += b;
        }
    }

    /// Counts one finding of rule `i`.
    #[inline]
    pub fn add_finding(&mut self, rule: u32) {
        let i = rule as usize;
        if self.findings_by_rule.len() <= i {
            self.findings_by_rule.resize(i + 1, 0);
        }
        self.findings_by_rule[i] += 1;
    }

    /// Total findings.
    pub fn findings(&self) -> u64 {
        self.findings_by_rule.iter().sum::<u64>() + self.findings_retired
    }

    /// Moves the per-rule counts from `old`'s numbering to `new`'s (a reload): rules
    /// that are gone go to `retired` by id and level.
    pub fn renumber(
        &mut self,
        old: &RulePack,
        new: &RulePack,
        retired: &mut Vec<(String, Level, u64)>,
    ) {
        let counts = std::mem::take(&mut self.findings_by_rule);
        let mut next = vec![0u64; new.rules().len()];
        for (i, n) in counts.into_iter().enumerate() {
            let Some(r) = old.rules().get(i).filter(|_| n > 0) else {
                continue;
            };
            match new.rules().iter().position(|x| x.meta.id == r.meta.id) {
                Some(j) => next[j] += n,
                None => {
                    self.findings_retired += n;
                    match retired.iter_mut().find(|(id, _, _)| *id == r.meta.id) {
                        Some(e) => e.2 += n,
                        None => retired.push((r.meta.id.clone(), r.meta.level, n)),
                    }
                }
            }
        }
        self.findings_by_rule = next;
    }
}

/// The summary of a finished run.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Inputs opened (files, stdin).
    pub inputs: u64,
    /// Inputs that could not be opened or read to their end.
    pub inputs_failed: u64,
    /// Bytes read from inputs, before decompression.
    pub bytes_in: u64,
    /// Record counters.
    pub counters: Counters,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether the run was stopped by a signal or a closed stdout before the end.
    pub interrupted: bool,
    /// Rows in finished archive files (`None` without an archive).
    pub records_archived: Option<u64>,
    /// Archive files finished.
    pub archive_files: u64,
    /// Counters of the stateful stage, when it ran.
    pub state: Option<crate::state::StageStats>,
    /// What each live source did (`run`, `detect s3://…`).
    pub sources: Vec<crate::source::live::SourceReport>,
    /// What each findings sink delivered.
    pub sinks: Vec<crate::sink::SinkReport>,
    /// Record accounting per live source.
    pub by_source: std::collections::BTreeMap<std::sync::Arc<str>, SourceTotals>,
    /// Findings of rules a reload removed: (id, level, count).
    pub retired: Vec<(String, Level, u64)>,
}

/// The accounting of one live source: the same invariant as the run's,
/// `records_in = kept + filtered + deduplicated + dead_lettered`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceTotals {
    /// Inputs finished (objects, pages, files).
    pub inputs: u64,
    /// Inputs that failed.
    pub inputs_failed: u64,
    /// Bytes read, before decompression.
    pub bytes_in: u64,
    /// Records read.
    pub records_in: u64,
    /// Records kept.
    pub records_kept: u64,
    /// Records filtered.
    pub records_filtered: u64,
    /// Records deduplicated.
    pub records_deduplicated: u64,
    /// Records dead-lettered.
    pub records_dead_lettered: u64,
}

impl SourceTotals {
    /// Adds a unit's counters.
    pub fn add(&mut self, c: &Counters) {
        self.records_in += c.records_in;
        self.records_kept += c.records_kept;
        self.records_filtered += c.records_filtered;
        self.records_deduplicated += c.records_deduplicated;
        self.records_dead_lettered += c.records_dead_lettered;
    }

    /// Whether the invariant holds.
    pub fn accounting_holds(&self) -> bool {
        self.records_in
            == self.records_kept
                + self.records_filtered
                + self.records_deduplicated
                + self.records_dead_lettered
    }
}

impl RunSummary {
    /// Whether `records_in` equals the sum of its parts.
    pub fn accounting_holds(&self) -> bool {
        let c = &self.counters;
        c.records_in
            == c.records_kept
                + c.records_filtered
                + c.records_deduplicated
                + c.records_dead_lettered
    }

    /// Records per second of wall time.
    pub fn records_per_s(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.counters.records_in as f64 / s
        } else {
            0.0
        }
    }

    /// Findings per level.
    pub fn findings_by_level(&self, pack: &RulePack) -> [u64; 5] {
        let mut out = [0u64; 5];
        for (i, n) in self.counters.findings_by_rule.iter().enumerate() {
            if let Some(r) = pack.rules().get(i) {
                out[r.meta.level as usize] += n;
            }
        }
        for (_, level, n) in &self.retired {
            out[*level as usize] += n;
        }
        out
    }

    /// The `--stats json` object.
    pub fn to_json(&self, pack: &RulePack) -> serde_json::Value {
        let c = &self.counters;
        let by_level: serde_json::Map<String, serde_json::Value> = Level::ALL
            .iter()
            .zip(self.findings_by_level(pack))
            .map(|(l, n)| (l.as_str().to_string(), n.into()))
            .collect();
        let mut by_rule = serde_json::Map::new();
        for (i, n) in c.findings_by_rule.iter().enumerate() {
            if *n > 0
                && let Some(r) = pack.rules().get(i)
            {
                by_rule.insert(r.meta.id.clone(), (*n).into());
            }
        }
        for (id, _, n) in &self.retired {
            by_rule.entry(id.clone()).or_insert_with(|| 0u64.into());
            if let Some(v) = by_rule.get_mut(id) {
                *v = (v.as_u64().unwrap_or(0) + n).into();
            }
        }
        serde_json::json!({
            "schema": "trailhound.stats/1",
            "inputs": self.inputs,
            "inputs_failed": self.inputs_failed,
            "bytes_in": self.bytes_in,
            "bytes_decoded": c.bytes_decoded,
            "records_in": c.records_in,
            "records_kept": c.records_kept,
            "records_filtered": c.records_filtered,
            "records_deduplicated": c.records_deduplicated,
            "records_dead_lettered": c.records_dead_lettered,
            "documents_skipped": c.documents_skipped,
            "records_without_event_time": c.records_without_event_time,
            "findings": {"total": c.findings(), "by_level": by_level, "by_rule": by_rule},
            "rules_loaded": pack.rules().len(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "records_per_s": self.records_per_s(),
            "accounting_ok": self.accounting_holds(),
            "records_archived": self.records_archived,
            "archive_files": self.archive_files,
            "interrupted": self.interrupted,
            "sources": self.sources.iter().map(|r| {
                let t = self.by_source.get(r.name.as_str()).copied().unwrap_or_default();
                serde_json::json!({
                    "name": r.name,
                    "kind": r.kind,
                    "error": r.error,
                    "inputs": t.inputs,
                    "inputs_failed": t.inputs_failed,
                    "bytes_in": t.bytes_in,
                    "records_in": t.records_in,
                    "records_kept": t.records_kept,
                    "records_filtered": t.records_filtered,
                    "records_deduplicated": t.records_deduplicated,
                    "records_dead_lettered": t.records_dead_lettered,
                    "accounting_ok": t.accounting_holds(),
                    "counters": r.stats,
                })
            }).collect::<Vec<_>>(),
            "sinks": self.sinks.iter().map(|r| serde_json::json!({
                "name": r.name,
                "kind": r.kind,
                "findings": r.findings,
                "delivered": r.delivered,
                "error": r.error,
            })).collect::<Vec<_>>(),
            "state": self.state.as_ref().map(|s| serde_json::json!({
                "findings_suppressed": s.findings_suppressed,
                "dedup_evicted": s.dedup_evicted,
                "correlation_late_events": s.engine.late_events,
                "correlation_groups_evicted": s.engine.groups_evicted,
                "correlation_events_evicted": s.engine.events_evicted,
                "correlation_groups": s.engine.groups,
                "correlation_groups_peak": s.engine.peak_groups,
            })),
        })
    }

    /// The one-paragraph human summary for stderr.
    pub fn human(&self) -> String {
        let c = &self.counters;
        format!(
            "{} inputs ({} failed), {} bytes read, {} decoded; records_in={} = kept {} + filtered {} + deduplicated {} + dead-lettered {} ({}); documents skipped {}; findings {}; {:.3} s, {:.0} records/s",
            self.inputs,
            self.inputs_failed,
            self.bytes_in,
            c.bytes_decoded,
            c.records_in,
            c.records_kept,
            c.records_filtered,
            c.records_deduplicated,
            c.records_dead_lettered,
            if self.accounting_holds() {
                "adds up"
            } else {
                "DOES NOT ADD UP"
            },
            c.documents_skipped,
            c.findings(),
            self.elapsed.as_secs_f64(),
            self.records_per_s(),
        )
    }
}
