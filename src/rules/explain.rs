//! `trailhound rules explain`: why a rule did or did not match one record.
//!
//! **Boundary.** Takes a loaded [`RulePack`], a rule index and a parsed record; returns
//! an [`Explanation`] (serialisable, so `--format json` is the same data the text view
//! prints). It reuses the compiled matchers — the explanation is of the code that runs
//! in `detect`, not of a second interpreter — at the price of allocating, which is why
//! it lives here and not on the hot path.
//!
//! A correlation cannot be decided from one record: its explanation says what it counts
//! and explains each rule it reads on the record.

use serde::Serialize;
use simd_json::tape::Value;

use super::sigma::compile::DetectionTrace;
use super::{Matcher, RuleKind, RulePack};
use crate::event::path::RootCache;

/// One rule on one record.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The rule's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// `sigma`, `correlation` or `metric_filter`.
    pub kind: &'static str,
    /// Where it was loaded from.
    pub origin: String,
    /// Whether the record matches the rule as `detect` runs it (filters included). For a
    /// correlation: whether the record counts towards it.
    pub matched: bool,
    /// The Sigma detection, selection by selection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<DetectionTrace>,
    /// A metric-filter pattern, test by test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<PatternTrace>,
    /// A correlation: what it counts, and each rule it reads on this record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<CorrelationTrace>,
    /// Sigma filters applied to the rule, and whether each held (the rule matches only
    /// where every filter's condition holds).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<FilterTrace>,
    /// The rule only feeds a correlation or an alarm: a match here is no finding by itself.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub silent: bool,
}

/// A metric-filter pattern on a record.
#[derive(Debug, Clone, Serialize)]
pub struct PatternTrace {
    /// The pattern as written.
    pub pattern: String,
    /// Each comparison with whether it held.
    pub tests: Vec<PatternTest>,
    /// The alarm, when there is one: a match is one data point, not a finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm: Option<serde_json::Value>,
}

/// One comparison of a pattern.
#[derive(Debug, Clone, Serialize)]
pub struct PatternTest {
    /// As written.
    pub test: String,
    /// Whether it held.
    pub held: bool,
}

/// A correlation and the rules it reads.
#[derive(Debug, Clone, Serialize)]
pub struct CorrelationTrace {
    /// `event_count`, `value_count`, …
    pub kind: &'static str,
    /// `group-by` fields.
    pub group_by: Vec<String>,
    /// The window.
    pub timespan: String,
    /// The condition, as JSON.
    pub condition: serde_json::Value,
    /// Each rule it reads, explained on the record.
    pub inputs: Vec<Explanation>,
}

/// One filter on a record.
#[derive(Debug, Clone, Serialize)]
pub struct FilterTrace {
    /// The filter's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Whether its condition held (if not, the rule is silenced for this record).
    pub matched: bool,
    /// Its selections and condition.
    pub detection: DetectionTrace,
}

/// Explains rule `i` of `pack` on `record`.
pub fn explain(pack: &RulePack, i: usize, record: Value<'_, '_>) -> Explanation {
    explain_depth(pack, i, &RootCache::new(record), 0)
}

fn explain_depth(pack: &RulePack, i: usize, rec: &RootCache<'_, '_>, depth: usize) -> Explanation {
    let rule = &pack.rules()[i];
    let mut e = Explanation {
        id: rule.meta.id.clone(),
        title: rule.meta.title.clone(),
        kind: rule.kind.as_str(),
        origin: rule.meta.origin.to_string(),
        matched: false,
        detection: None,
        pattern: None,
        correlation: None,
        filters: rule
            .filters()
            .iter()
            .map(|f| {
                let detection = f.detection.explain(rec);
                FilterTrace {
                    id: f.id.clone(),
                    title: f.title.clone(),
                    matched: detection.matched,
                    detection,
                }
            })
            .collect(),
        silent: pack.is_silent(i as u32),
    };
    match rule.matcher() {
        Matcher::Detection(d) => e.detection = Some(d.explain(rec)),
        Matcher::Pattern(p) => {
            e.pattern = Some(PatternTrace {
                pattern: p.as_str().to_string(),
                tests: p
                    .explain(rec)
                    .into_iter()
                    .map(|(test, held)| PatternTest { test, held })
                    .collect(),
                alarm: rule.alarm.as_ref().map(|a| {
                    serde_json::json!({
                        "threshold": a.threshold_text,
                        "period": a.period_text,
                        "evaluation_periods": a.evaluation_periods,
                        "datapoints_to_alarm": a.datapoints,
                    })
                }),
            })
        }
        Matcher::Never => {}
    }
    if rule.kind == RuleKind::Correlation {
        if let Some(spec) = &rule.correlation {
            let inputs: Vec<Explanation> = if depth < 4 {
                spec.rules
                    .iter()
                    .filter_map(|(name, _)| pack.rules().iter().position(|r| r.meta.is_named(name)))
                    .map(|j| explain_depth(pack, j, rec, depth + 1))
                    .collect()
            } else {
                Vec::new()
            };
            e.matched = inputs.iter().any(|x| x.matched);
            e.correlation = Some(CorrelationTrace {
                kind: spec.kind.as_str(),
                group_by: spec.group_by.clone(),
                timespan: spec.timespan_text.clone(),
                condition: spec
                    .condition
                    .as_ref()
                    .map_or(serde_json::Value::Null, |c| c.to_json()),
                inputs,
            });
        }
    } else {
        e.matched = rule.matches_cached(rec);
    }
    e
}
