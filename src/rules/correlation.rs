//! Stateful rule definitions: Sigma correlation rules, metric-filter alarms and
//! per-rule suppression, parsed from YAML and linked to the rules they name.
//!
//! A correlation document (`correlation:`) is parsed into a [`CorrelationSpec`] that
//! still names its rules by `id` or `name`. Once every document of the pack is loaded,
//! [`link`] resolves the names, checks the chain for cycles, works out where each
//! `group-by` value comes from (a field of the matched record, through `aliases`, or a
//! group value of a child correlation) and produces [`CorrelationDef`]s, the immutable
//! description the stateful stage ([`crate::state`]) runs.
//!
//! Rules referred to by a correlation produce no findings of their own unless the
//! correlation says `generate: true` (Sigma's default); they are marked *silent* and
//! still feed the correlation. A metric-filter rule with an `alarm:` is linked the same
//! way: it feeds an alarm definition of its own and is silent itself.

use crate::event::FieldPath;
use crate::rules::yaml::{Kind, Mark, Yaml};
use crate::rules::{CompiledRule, Located, RuleErrorKind, fieldmap};

/// Keys of a correlation document besides the shared metadata keys.
pub const KNOWN_KEYS: &[&str] = &["correlation", "generate"];

/// The Sigma correlation types trailhound runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrType {
    /// Number of events per group in the window.
    EventCount,
    /// Number of distinct values of `field` per group in the window.
    ValueCount,
    /// Number of distinct referenced rules that matched per group in the window.
    Temporal,
    /// Like temporal, in the order the rules are listed.
    TemporalOrdered,
    /// Sum of the numeric `field`.
    ValueSum,
    /// Mean of the numeric `field`.
    ValueAvg,
}

impl CorrType {
    /// The Sigma spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CorrType::EventCount => "event_count",
            CorrType::ValueCount => "value_count",
            CorrType::Temporal => "temporal",
            CorrType::TemporalOrdered => "temporal_ordered",
            CorrType::ValueSum => "value_sum",
            CorrType::ValueAvg => "value_avg",
        }
    }
}

/// A correlation condition: every bound given must hold (`gt: 100, lte: 200` is a range).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Condition {
    /// `gt`
    pub gt: Option<f64>,
    /// `gte`
    pub gte: Option<f64>,
    /// `lt`
    pub lt: Option<f64>,
    /// `lte`
    pub lte: Option<f64>,
    /// `eq`
    pub eq: Option<f64>,
    /// `neq`
    pub neq: Option<f64>,
}

impl Condition {
    /// `gte: n`.
    pub fn at_least(n: f64) -> Self {
        Condition {
            gte: Some(n),
            ..Condition::default()
        }
    }

    /// Whether `x` satisfies every bound.
    pub fn holds(&self, x: f64) -> bool {
        self.gt.is_none_or(|v| x > v)
            && self.gte.is_none_or(|v| x >= v)
            && self.lt.is_none_or(|v| x < v)
            && self.lte.is_none_or(|v| x <= v)
            && self.eq.is_none_or(|v| x == v)
            && self.neq.is_none_or(|v| x != v)
    }

    /// Whether the condition can only be judged once a window is complete (an upper
    /// bound, equality or inequality): more events could still make it false.
    pub fn needs_close(&self) -> bool {
        self.lt.is_some() || self.lte.is_some() || self.eq.is_some() || self.neq.is_some()
    }

    /// The condition as JSON, for findings.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("gt", self.gt),
            ("gte", self.gte),
            ("lt", self.lt),
            ("lte", self.lte),
            ("eq", self.eq),
            ("neq", self.neq),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), num_json(v));
            }
        }
        serde_json::Value::Object(m)
    }
}

/// A number as JSON: integral values without a fraction.
pub fn num_json(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        serde_json::Value::from(v as i64)
    } else {
        serde_json::Value::from(v)
    }
}

/// A parsed correlation document, its references still unresolved.
#[derive(Debug, Clone)]
pub struct CorrelationSpec {
    /// `correlation.type`
    pub kind: CorrType,
    /// `correlation.rules`: ids or names, with their positions.
    pub rules: Vec<(String, Mark)>,
    /// `correlation.group-by`
    pub group_by: Vec<String>,
    /// `correlation.timespan`, in microseconds.
    pub timespan: i64,
    /// `correlation.timespan` as written.
    pub timespan_text: String,
    /// `correlation.condition` (defaults for temporal types: all rules).
    pub condition: Option<Condition>,
    /// `correlation.condition.field` (value_count, value_sum, value_avg).
    pub field: Option<String>,
    /// `correlation.aliases`: alias → (rule name → field).
    pub aliases: Vec<(String, Vec<(String, String)>)>,
    /// `generate` (top level or in `correlation:`).
    pub generate: bool,
    /// Where the `correlation:` key is.
    pub mark: Mark,
}

fn err(mark: Mark, kind: RuleErrorKind) -> Located {
    Located { mark, kind }
}

fn bad(node: &Yaml, msg: impl Into<String>) -> Located {
    err(node.mark, RuleErrorKind::Correlation(msg.into()))
}

/// Parses `Xs`, `Xm`, `Xh`, `Xd` (Sigma), or any humantime duration (`1h30m`), into
/// microseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let mult: i64 = match unit {
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => {
            let d = humantime::parse_duration(t).ok()?;
            return i64::try_from(d.as_micros()).ok().filter(|&v| v > 0);
        }
    };
    let n: i64 = num.parse().ok()?;
    n.checked_mul(mult).filter(|&v| v > 0)
}

fn duration_of(node: &Yaml, key: &str) -> Result<(i64, String), Located> {
    let text = node
        .as_scalar_text()
        .ok_or_else(|| bad(node, format!("{key} must be a duration such as 5m")))?;
    let us = parse_duration(text).ok_or_else(|| {
        bad(
            node,
            format!("{key} '{text}' is not a duration (number + s, m, h or d, e.g. 5m)"),
        )
    })?;
    Ok((us, text.to_string()))
}

fn number_of(node: &Yaml, key: &str) -> Result<f64, Located> {
    node.as_scalar_text()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .ok_or_else(|| bad(node, format!("condition '{key}' must be a number")))
}

fn names(node: &Yaml, what: &str) -> Result<Vec<(String, Mark)>, Located> {
    match &node.kind {
        Kind::Seq(items) => items
            .iter()
            .map(|i| {
                i.as_scalar_text()
                    .map(|s| (s.to_string(), i.mark))
                    .ok_or_else(|| bad(i, format!("{what} must be a list of strings")))
            })
            .collect(),
        Kind::Null => Ok(Vec::new()),
        _ => node
            .as_scalar_text()
            .map(|s| vec![(s.to_string(), node.mark)])
            .ok_or_else(|| bad(node, format!("{what} must be a list of strings"))),
    }
}

/// Parses the `correlation:` section of `doc`.
pub fn parse_spec(corr: &Yaml, doc: &Yaml) -> Result<CorrelationSpec, Located> {
    if corr.as_map().is_none() {
        return Err(bad(corr, "correlation must be a mapping"));
    }
    let missing = |k: &'static str| err(corr.mark, RuleErrorKind::MissingKey(k));
    let type_node = corr
        .get("type")
        .ok_or_else(|| missing("correlation.type"))?;
    let kind = match type_node.as_scalar_text().unwrap_or_default() {
        "event_count" => CorrType::EventCount,
        "value_count" => CorrType::ValueCount,
        "temporal" => CorrType::Temporal,
        "temporal_ordered" => CorrType::TemporalOrdered,
        "value_sum" => CorrType::ValueSum,
        "value_avg" => CorrType::ValueAvg,
        "value_percentile" => {
            return Err(err(
                type_node.mark,
                RuleErrorKind::Unsupported("correlation type value_percentile"),
            ));
        }
        other => {
            return Err(bad(
                type_node,
                format!(
                    "unknown correlation type '{other}' (event_count, value_count, temporal, temporal_ordered, value_sum, value_avg)"
                ),
            ));
        }
    };
    let rules = names(
        corr.get("rules")
            .ok_or_else(|| missing("correlation.rules"))?,
        "correlation.rules",
    )?;
    if rules.is_empty() {
        return Err(bad(corr, "correlation.rules names no rule"));
    }
    let group_by = match corr.get("group-by") {
        Some(g) => names(g, "group-by")?.into_iter().map(|(s, _)| s).collect(),
        None => Vec::new(),
    };
    let ts = corr
        .get("timespan")
        .or_else(|| corr.get("timeframe"))
        .ok_or_else(|| missing("correlation.timespan"))?;
    let (timespan, timespan_text) = duration_of(ts, "timespan")?;
    let mut condition = None;
    let mut field = None;
    if let Some(c) = corr.get("condition") {
        let Some(map) = c.as_map() else {
            return Err(bad(c, "condition must be a mapping such as {gte: 10}"));
        };
        let mut cond = Condition::default();
        let mut any = false;
        for (k, v) in map {
            let key = k.as_scalar_text().unwrap_or_default();
            let slot = match key {
                "gt" => &mut cond.gt,
                "gte" => &mut cond.gte,
                "lt" => &mut cond.lt,
                "lte" => &mut cond.lte,
                "eq" => &mut cond.eq,
                "neq" => &mut cond.neq,
                "field" => {
                    field = Some(match &v.kind {
                        Kind::Seq(items) if items.len() == 1 => items[0]
                            .as_scalar_text()
                            .map(str::to_string)
                            .ok_or_else(|| bad(v, "condition.field must be a field name"))?,
                        Kind::Seq(_) => {
                            return Err(err(
                                v.mark,
                                RuleErrorKind::Unsupported("value_count over several fields"),
                            ));
                        }
                        _ => v
                            .as_scalar_text()
                            .map(str::to_string)
                            .ok_or_else(|| bad(v, "condition.field must be a field name"))?,
                    });
                    continue;
                }
                other => {
                    return Err(bad(
                        k,
                        format!(
                            "unknown condition operator '{other}' (gt, gte, lt, lte, eq, neq, field)"
                        ),
                    ));
                }
            };
            *slot = Some(number_of(v, key)?);
            any = true;
        }
        if any {
            condition = Some(cond);
        }
    }
    match kind {
        CorrType::EventCount | CorrType::ValueCount | CorrType::ValueSum | CorrType::ValueAvg
            if condition.is_none() =>
        {
            return Err(missing("correlation.condition"));
        }
        CorrType::ValueCount | CorrType::ValueSum | CorrType::ValueAvg if field.is_none() => {
            return Err(missing("correlation.condition.field"));
        }
        _ => {}
    }
    let mut aliases = Vec::new();
    if let Some(a) = corr.get("aliases") {
        let Some(map) = a.as_map() else {
            return Err(bad(a, "aliases must be a mapping"));
        };
        for (alias, per_rule) in map {
            let Some(entries) = per_rule.as_map() else {
                return Err(bad(per_rule, "an alias maps rule names to field names"));
            };
            let mut list = Vec::new();
            for (rule, f) in entries {
                match (rule.as_scalar_text(), f.as_scalar_text()) {
                    (Some(r), Some(f)) => list.push((r.to_string(), f.to_string())),
                    _ => return Err(bad(rule, "an alias maps rule names to field names")),
                }
            }
            aliases.push((alias.as_scalar_text().unwrap_or_default().to_string(), list));
        }
    }
    let generate = match doc.get("generate").or_else(|| corr.get("generate")) {
        None => false,
        Some(g) => match g.kind {
            Kind::Bool(b) => b,
            _ => return Err(bad(g, "generate must be true or false")),
        },
    };
    Ok(CorrelationSpec {
        kind,
        rules,
        group_by,
        timespan,
        timespan_text,
        condition,
        field,
        aliases,
        generate,
        mark: corr.mark,
    })
}

/// Comparison of a metric-filter alarm's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmOp {
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
}

/// A metric-filter alarm: the count of matching records per `period` compared with
/// `threshold`, ALARM when `datapoints` of the last `evaluation_periods` periods breach.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    /// The comparison.
    pub op: AlarmOp,
    /// The threshold.
    pub threshold: f64,
    /// The period, in microseconds.
    pub period: i64,
    /// The period as written.
    pub period_text: String,
    /// Periods evaluated.
    pub evaluation_periods: u32,
    /// Breaching periods among them needed for ALARM (default: all).
    pub datapoints: u32,
    /// The threshold as written.
    pub threshold_text: String,
}

impl AlarmSpec {
    /// Whether a period's count breaches the threshold.
    pub fn breaches(&self, count: f64) -> bool {
        match self.op {
            AlarmOp::Gt => count > self.threshold,
            AlarmOp::Gte => count >= self.threshold,
            AlarmOp::Lt => count < self.threshold,
            AlarmOp::Lte => count <= self.threshold,
        }
    }

    /// Whether a breach can be decided before the period ends (more records only
    /// raise the count).
    pub fn eager(&self) -> bool {
        matches!(self.op, AlarmOp::Gt | AlarmOp::Gte)
    }
}

/// Parses `alarm: {threshold: ">= 3", period: 5m, evaluation_periods: 1}`.
pub fn parse_alarm(node: &Yaml) -> Result<AlarmSpec, Located> {
    if node.as_map().is_none() {
        return Err(bad(
            node,
            "alarm must be a mapping {threshold, period, evaluation_periods}",
        ));
    }
    let th = node
        .get("threshold")
        .ok_or_else(|| err(node.mark, RuleErrorKind::MissingKey("alarm.threshold")))?;
    let text = th.as_scalar_text().unwrap_or_default().trim().to_string();
    let (op, rest) = if let Some(r) = text.strip_prefix(">=") {
        (AlarmOp::Gte, r)
    } else if let Some(r) = text.strip_prefix("<=") {
        (AlarmOp::Lte, r)
    } else if let Some(r) = text.strip_prefix('>') {
        (AlarmOp::Gt, r)
    } else if let Some(r) = text.strip_prefix('<') {
        (AlarmOp::Lt, r)
    } else {
        (AlarmOp::Gte, text.as_str())
    };
    let threshold: f64 = rest
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| {
            bad(
                th,
                format!("alarm.threshold '{text}' must be a number with an optional >, >=, < or <= (e.g. \">= 3\")"),
            )
        })?;
    let (period, period_text) = match node.get("period") {
        Some(p) => duration_of(p, "alarm.period")?,
        None => (300_000_000, "5m".to_string()),
    };
    let count = |key: &str, default: u32| -> Result<u32, Located> {
        match node.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_scalar_text()
                .and_then(|t| t.parse::<u32>().ok())
                .filter(|&n| (1..=1440).contains(&n))
                .ok_or_else(|| {
                    bad(
                        v,
                        format!("alarm.{key} must be a whole number from 1 to 1440"),
                    )
                }),
        }
    };
    let evaluation_periods = count("evaluation_periods", 1)?;
    let datapoints = count("datapoints_to_alarm", evaluation_periods)?;
    if datapoints > evaluation_periods {
        return Err(bad(
            node,
            "alarm.datapoints_to_alarm cannot exceed evaluation_periods",
        ));
    }
    Ok(AlarmSpec {
        op,
        threshold,
        period,
        period_text,
        evaluation_periods,
        datapoints,
        threshold_text: text,
    })
}

/// Per-rule suppression: the first finding per `by` key is emitted, the rest within
/// `for` are counted into one summary finding.
#[derive(Debug, Clone)]
pub struct Suppress {
    /// The fields whose values form the key, as written and compiled, sorted by name.
    pub by: Vec<(String, FieldPath)>,
    /// The period, in microseconds.
    pub period: i64,
}

/// Parses a rule's optional `suppress: {by: [...], for: 1h}`.
pub fn parse_suppress(doc: &Yaml) -> Result<Option<Suppress>, Located> {
    let Some(node) = doc.get("suppress") else {
        return Ok(None);
    };
    if node.as_map().is_none() {
        return Err(bad(
            node,
            "suppress must be a mapping {by: [fields], for: 1h}",
        ));
    }
    let period_node = node
        .get("for")
        .ok_or_else(|| err(node.mark, RuleErrorKind::MissingKey("suppress.for")))?;
    let (period, _) = duration_of(period_node, "suppress.for")?;
    let mut by = Vec::new();
    if let Some(b) = node.get("by") {
        for (name, mark) in names(b, "suppress.by")? {
            let path = fieldmap::path(&name)
                .map_err(|e| err(mark, RuleErrorKind::BadPath(e.to_string())))?;
            by.push((name, path));
        }
    }
    // Sorted by name: the key and the summary's `by` object do not depend on the
    // order the rule lists them in.
    by.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Some(Suppress { by, period }))
}

/// Where a correlation gets its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Records matched by this rule (an index into the pack's rules).
    Rule(u32),
    /// Findings of this correlation (an index into the definitions).
    Correlation(u32),
}

/// Where one `group-by` value comes from for one input.
#[derive(Debug, Clone)]
pub enum GroupSource {
    /// A field of the matched record.
    Path(FieldPath),
    /// The child correlation's group value at this position.
    Child(usize),
}

/// One referenced rule of a correlation, resolved.
#[derive(Debug, Clone)]
pub struct CorrInput {
    /// The rule or correlation.
    pub source: Source,
    /// How to read each `group-by` value.
    pub group: Vec<GroupSource>,
    /// The `field` of value_count / value_sum / value_avg.
    pub value: Option<FieldPath>,
}

/// What a definition computes.
#[derive(Debug, Clone)]
pub enum DefKind {
    /// A Sigma correlation.
    Sigma(CorrType),
    /// A metric-filter alarm.
    Alarm(AlarmSpec),
}

/// A linked, runnable correlation (or alarm).
#[derive(Debug, Clone)]
pub struct CorrelationDef {
    /// The rule whose metadata its findings carry.
    pub rule: u32,
    /// What it computes.
    pub kind: DefKind,
    /// The window, in microseconds (the alarm's period).
    pub timespan: i64,
    /// The timespan as written.
    pub timespan_text: String,
    /// The condition (alarms: unused).
    pub condition: Condition,
    /// The `group-by` names, in order.
    pub group_names: Vec<String>,
    /// The inputs, in the order of `correlation.rules`.
    pub inputs: Vec<CorrInput>,
    /// Correlations fed by this one's findings: (definition, input position).
    pub parents: Vec<(u32, u16)>,
}

/// The result of [`link`].
#[derive(Debug, Default)]
pub struct Linked {
    /// The definitions.
    pub defs: Vec<CorrelationDef>,
    /// Per rule: the (definition, input position) pairs its matches feed.
    pub feeds: Vec<Vec<(u32, u16)>>,
    /// Per rule: matches produce no findings of their own.
    pub silent: Vec<bool>,
    /// Correlation rules (indices into rules) that failed to link, with the error.
    pub failed: Vec<(u32, Located)>,
}

/// Resolves correlation references over `rules`; `specs` pairs each correlation
/// rule's index in `rules` with its spec.
pub fn link(rules: &[CompiledRule], specs: &[(u32, &CorrelationSpec)]) -> Linked {
    let mut out = Linked {
        feeds: vec![Vec::new(); rules.len()],
        silent: vec![false; rules.len()],
        ..Linked::default()
    };
    let def_of_rule = |r: u32| specs.iter().position(|(i, _)| *i == r);
    let find = |name: &str| -> Option<u32> {
        rules
            .iter()
            .position(|r| r.meta.id == name)
            .or_else(|| {
                rules
                    .iter()
                    .position(|r| r.meta.name.as_deref() == Some(name))
            })
            .map(|i| i as u32)
    };
    // Sources of every spec, or the first error.
    let mut sources: Vec<Result<Vec<Source>, Located>> = Vec::new();
    for (_, spec) in specs {
        let mut list = Vec::new();
        let mut failed = None;
        for (name, mark) in &spec.rules {
            match find(name) {
                Some(i) => match def_of_rule(i) {
                    Some(d) => list.push(Source::Correlation(d as u32)),
                    None => list.push(Source::Rule(i)),
                },
                None => {
                    failed = Some(err(
                        *mark,
                        RuleErrorKind::Correlation(format!(
                            "refers to '{name}', which is no loaded rule's id or name"
                        )),
                    ));
                    break;
                }
            }
        }
        sources.push(match failed {
            Some(e) => Err(e),
            None => Ok(list),
        });
    }
    // A spec fails if it is in a cycle or depends on a failed spec.
    let n = specs.len();
    let mut state = vec![0u8; n]; // 0 new, 1 visiting, 2 ok, 3 failed
    fn visit(
        d: usize,
        sources: &mut [Result<Vec<Source>, Located>],
        state: &mut [u8],
        marks: &[Mark],
    ) -> bool {
        match state[d] {
            1 => return false,
            2 => return true,
            3 => return false,
            _ => {}
        }
        state[d] = 1;
        let children: Vec<u32> = match &sources[d] {
            Ok(list) => list
                .iter()
                .filter_map(|s| match s {
                    Source::Correlation(c) => Some(*c),
                    Source::Rule(_) => None,
                })
                .collect(),
            Err(_) => {
                state[d] = 3;
                return false;
            }
        };
        for c in children {
            if !visit(c as usize, sources, state, marks) {
                if sources[d].is_ok() {
                    sources[d] = Err(Located {
                        mark: marks[d],
                        kind: RuleErrorKind::Correlation(
                            "depends on a correlation that failed to load or on itself (a cycle)"
                                .into(),
                        ),
                    });
                }
                state[d] = 3;
                return false;
            }
        }
        state[d] = 2;
        true
    }
    let marks: Vec<Mark> = specs.iter().map(|(_, s)| s.mark).collect();
    for d in 0..n {
        visit(d, &mut sources, &mut state, &marks);
    }
    // Build definitions: failed ones become inert placeholders so indices stay put.
    for (d, (rule, spec)) in specs.iter().enumerate() {
        let def = match &sources[d] {
            Ok(list) => build_def(*rule, spec, list, rules, specs),
            Err(e) => Err(e.clone()),
        };
        match def {
            Ok(def) => out.defs.push(def),
            Err(e) => {
                out.failed.push((*rule, e));
                out.defs.push(CorrelationDef {
                    rule: *rule,
                    kind: DefKind::Sigma(spec.kind),
                    timespan: spec.timespan,
                    timespan_text: spec.timespan_text.clone(),
                    condition: Condition::default(),
                    group_names: Vec::new(),
                    inputs: Vec::new(),
                    parents: Vec::new(),
                });
            }
        }
    }
    // A definition that failed after linking poisons its parents too.
    loop {
        let failed: Vec<u32> = out.failed.iter().map(|(r, _)| *r).collect();
        let mut more = Vec::new();
        for (d, def) in out.defs.iter().enumerate() {
            if failed.contains(&def.rule) {
                continue;
            }
            let bad_child = def.inputs.iter().any(|i| match i.source {
                Source::Correlation(c) => failed.contains(&out.defs[c as usize].rule),
                Source::Rule(_) => false,
            });
            if bad_child {
                more.push((
                    def.rule,
                    Located {
                        mark: specs[d].1.mark,
                        kind: RuleErrorKind::Correlation(
                            "depends on a correlation that failed to load".into(),
                        ),
                    },
                ));
            }
        }
        if more.is_empty() {
            break;
        }
        out.failed.extend(more);
    }
    let failed: Vec<u32> = out.failed.iter().map(|(r, _)| *r).collect();
    for def in &mut out.defs {
        if failed.contains(&def.rule) {
            def.inputs.clear();
        }
    }
    // Alarms of metric-filter rules.
    for (i, r) in rules.iter().enumerate() {
        if let Some(alarm) = &r.alarm {
            out.defs.push(CorrelationDef {
                rule: i as u32,
                kind: DefKind::Alarm(alarm.clone()),
                timespan: alarm.period,
                timespan_text: alarm.period_text.clone(),
                condition: Condition::default(),
                group_names: Vec::new(),
                inputs: vec![CorrInput {
                    source: Source::Rule(i as u32),
                    group: Vec::new(),
                    value: None,
                }],
                parents: Vec::new(),
            });
        }
    }
    // Feeds, parents, silence.
    let mut generating = vec![false; rules.len()];
    let mut referenced = vec![false; rules.len()];
    let n_defs = out.defs.len();
    for d in 0..n_defs {
        let generate = match out.defs[d].kind {
            DefKind::Alarm(_) => false,
            DefKind::Sigma(_) => specs.get(d).is_some_and(|(_, s)| s.generate),
        };
        let inputs: Vec<Source> = out.defs[d].inputs.iter().map(|i| i.source).collect();
        for (pos, src) in inputs.into_iter().enumerate() {
            let target_rule = match src {
                Source::Rule(r) => {
                    out.feeds[r as usize].push((d as u32, pos as u16));
                    r
                }
                Source::Correlation(c) => {
                    out.defs[c as usize].parents.push((d as u32, pos as u16));
                    out.defs[c as usize].rule
                }
            };
            referenced[target_rule as usize] = true;
            generating[target_rule as usize] |= generate;
        }
    }
    for i in 0..rules.len() {
        out.silent[i] = referenced[i] && !generating[i];
    }
    out
}

fn build_def(
    rule: u32,
    spec: &CorrelationSpec,
    sources: &[Source],
    rules: &[CompiledRule],
    specs: &[(u32, &CorrelationSpec)],
) -> Result<CorrelationDef, Located> {
    let fail = |msg: String| err(spec.mark, RuleErrorKind::Correlation(msg));
    let mut inputs = Vec::new();
    for (pos, src) in sources.iter().enumerate() {
        let (ref_name, _) = &spec.rules[pos];
        let target = match src {
            Source::Rule(r) => &rules[*r as usize],
            Source::Correlation(c) => &rules[specs[*c as usize].0 as usize],
        };
        // An alias entry may name the rule by `name`, `id` or the reference as written.
        let alias_field = |alias: &str| -> Option<&str> {
            let (_, per) = spec.aliases.iter().find(|(a, _)| a == alias)?;
            per.iter()
                .find(|(r, _)| {
                    r == ref_name
                        || Some(r.as_str()) == target.meta.name.as_deref()
                        || *r == target.meta.id
                })
                .map(|(_, f)| f.as_str())
        };
        let mut group = Vec::new();
        for g in &spec.group_by {
            let is_alias = spec.aliases.iter().any(|(a, _)| a == g);
            let field = match alias_field(g) {
                Some(f) => f,
                None if is_alias => {
                    return Err(fail(format!(
                        "alias '{g}' has no field for rule '{ref_name}'"
                    )));
                }
                None => g.as_str(),
            };
            match src {
                Source::Rule(_) => {
                    let p = fieldmap::path(field)
                        .map_err(|e| fail(format!("group-by '{field}': {e}")))?;
                    group.push(GroupSource::Path(p));
                }
                Source::Correlation(c) => {
                    let child = specs[*c as usize].1;
                    let at = child
                        .group_by
                        .iter()
                        .position(|x| x == field)
                        .ok_or_else(|| {
                            fail(format!(
                                "groups by '{field}', which correlation '{ref_name}' does not group by"
                            ))
                        })?;
                    group.push(GroupSource::Child(at));
                }
            }
        }
        let value = match (&spec.field, src) {
            (Some(f), Source::Rule(_)) => {
                let f = alias_field(f).unwrap_or(f);
                Some(fieldmap::path(f).map_err(|e| fail(format!("condition.field '{f}': {e}")))?)
            }
            (Some(_), Source::Correlation(_)) => {
                return Err(fail(format!(
                    "{} over the findings of correlation '{ref_name}' has no field to read",
                    spec.kind.as_str()
                )));
            }
            (None, _) => None,
        };
        inputs.push(CorrInput {
            source: *src,
            group,
            value,
        });
    }
    let n = inputs.len() as f64;
    let condition = match (&spec.condition, spec.kind) {
        (Some(c), _) => c.clone(),
        (None, _) => Condition::at_least(n),
    };
    Ok(CorrelationDef {
        rule,
        kind: DefKind::Sigma(spec.kind),
        timespan: spec.timespan,
        timespan_text: spec.timespan_text.clone(),
        condition,
        group_names: spec.group_by.clone(),
        inputs,
        parents: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(300_000_000));
        assert_eq!(parse_duration("90s"), Some(90_000_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000));
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn conditions() {
        let c = Condition {
            gt: Some(100.0),
            lte: Some(200.0),
            ..Condition::default()
        };
        assert!(!c.holds(100.0) && c.holds(101.0) && c.holds(200.0) && !c.holds(201.0));
        assert!(c.needs_close());
        assert!(!Condition::at_least(3.0).needs_close());
    }
}
