//! Stage 4 of the pipeline: rule matching.
//!
//! Previous module: [`crate::event`] gives a parsed record (a simd-json tape value).
//! Next module: [`crate::finding`] turns each hit into the JSON users see.
//!
//! **Boundary.** [`RulePack`] is compiled once, immutable and shared by every worker
//! (`Arc`). [`RulePack::evaluate`] fills a caller-owned `Vec` with the indices of the
//! rules that match, in rule order.
//!
//! **Invariant.** The [`index::RuleIndex`] may offer a rule that then does not match,
//! but never withholds one that would: `tests/rules_index.rs` runs every record of the
//! real samples through the indexed and the full scan and requires identical hits.
//!
//! **Decision.** Rules are indexed by the literal `eventName` values their condition
//! requires, because nearly every CloudTrail rule names the API calls it is about: a
//! record is tested only against the rules for its own `eventName` plus the few rules
//! that name none, so cost grows with the rules that *could* match, not with the pack.

pub mod builtin;
pub mod collection;
pub mod correlation;
pub mod explain;
pub mod fieldmap;
pub mod index;
pub mod lint;
pub mod live;
pub mod metric;
pub mod selftest;
pub mod sigma;
pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};

use simd_json::tape::Value;

use crate::event::path::{self, RootCache};

use self::sigma::compile::Detection;
pub use self::sigma::field::CompileContext;
use self::sigma::parse::{Parsed, parse_document};
use self::yaml::Mark;

/// Severity, ordered from `informational` to `critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// `informational`
    Informational,
    /// `low`
    Low,
    /// `medium`
    Medium,
    /// `high`
    High,
    /// `critical`
    Critical,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 5] = [
        Level::Informational,
        Level::Low,
        Level::Medium,
        Level::High,
        Level::Critical,
    ];

    /// Parses a Sigma level name (case-insensitive).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "informational" => Level::Informational,
            "low" => Level::Low,
            "medium" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => return None,
        })
    }

    /// The Sigma spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rule came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The pack compiled into the binary; the file name inside `rules/`.
    Builtin(String),
    /// A file given by the user.
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin(name) => write!(f, "builtin:{name}"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Rule metadata, as written in the rule (Sigma keys).
#[derive(Debug, Clone)]
pub struct RuleMeta {
    /// `id` (derived from file and title when absent).
    pub id: String,
    /// `name`, by which correlations may refer to the rule.
    pub name: Option<String>,
    /// `title`
    pub title: String,
    /// `level` (`medium` when absent).
    pub level: Level,
    /// `status`
    pub status: Option<String>,
    /// `description`
    pub description: Option<String>,
    /// `author`
    pub author: Option<String>,
    /// `date`
    pub date: Option<String>,
    /// `modified`
    pub modified: Option<String>,
    /// `tags`
    pub tags: Vec<String>,
    /// `references`
    pub references: Vec<String>,
    /// `falsepositives`
    pub falsepositives: Vec<String>,
    /// `fields`
    pub fields: Vec<String>,
    /// `related:` entries.
    pub related: Vec<Related>,
    /// The file the rule is in.
    pub origin: Origin,
    /// The line its document starts on.
    pub line: usize,
}

impl RuleMeta {
    /// Whether `key` names this rule (its id or its `name`).
    pub fn is_named(&self, key: &str) -> bool {
        self.id == key || self.name.as_deref() == Some(key)
    }

    /// Ids this rule supersedes (`related` of type `obsolete`, or `obsoletes`).
    pub fn obsoletes(&self) -> impl Iterator<Item = &str> {
        self.related
            .iter()
            .filter(|r| r.kind == "obsolete" || r.kind == "obsoletes")
            .map(|r| r.id.as_str())
    }
}

/// One `related:` entry of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// The other rule's id.
    pub id: String,
    /// `derived`, `obsolete` (or `obsoletes`), `merged`, `renamed` or `similar`.
    pub kind: String,
}

/// A Sigma filter document: a detection whose condition is AND-ed to the condition of
/// the rules it names (Sigma Filters specification; `condition: not selection` is an
/// exclusion).
#[derive(Debug, Clone)]
pub struct FilterDoc {
    /// Its title, id and the rest (level and tags are unused).
    pub meta: RuleMeta,
    /// The ids (or names) of the rules it applies to, with their positions; `None`
    /// (`rules: any`, empty or omitted) for every single-record rule.
    pub rules: Option<Vec<(String, Mark)>>,
    /// Its selections and condition.
    pub detection: Detection,
}

/// A filter applied to a rule.
#[derive(Debug, Clone)]
pub struct AppliedFilter {
    /// The filter's id.
    pub id: String,
    /// The filter's title.
    pub title: String,
    /// Where the filter is.
    pub origin: Origin,
    /// What it matches.
    pub detection: Detection,
}

/// What a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// A Sigma rule: one record at a time.
    Sigma,
    /// A Sigma correlation rule over other rules' matches.
    Correlation,
    /// A CloudWatch Logs metric-filter pattern (with an optional alarm).
    MetricFilter,
}

impl RuleKind {
    /// The finding's `rule.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Sigma => "sigma",
            RuleKind::Correlation => "correlation",
            RuleKind::MetricFilter => "metric_filter",
        }
    }
}

/// How a rule tests a single record.
#[derive(Debug)]
pub enum Matcher {
    /// A Sigma detection.
    Detection(Detection),
    /// A metric-filter pattern.
    Pattern(metric::MetricPattern),
    /// Never matches a record by itself (correlation rules).
    Never,
}

/// A rule ready to run.
#[derive(Debug)]
pub struct CompiledRule {
    /// Its metadata.
    pub meta: RuleMeta,
    /// What it is.
    pub kind: RuleKind,
    matcher: Matcher,
    /// The finding's `rule` object, serialised once.
    rule_json: Box<str>,
    /// The rule's `fields:`, compiled (names that are not valid paths are left out).
    field_paths: Vec<(String, crate::event::FieldPath)>,
    /// A metric-filter rule's alarm.
    pub alarm: Option<correlation::AlarmSpec>,
    /// `suppress:`
    pub suppress: Option<correlation::Suppress>,
    /// A correlation rule's spec (resolved by [`correlation::link`]).
    pub correlation: Option<correlation::CorrelationSpec>,
    /// Sigma filters that apply: the rule matches a record only if every one of them
    /// does too (each filter's condition is AND-ed to the rule's).
    filters: Vec<AppliedFilter>,
    /// Kept only because a selected correlation reads it: it feeds, never reports.
    pulled_in: bool,
}

impl CompiledRule {
    /// A rule from its parts.
    pub fn new(meta: RuleMeta, matcher: Matcher, kind: RuleKind) -> Self {
        let origin = match &meta.origin {
            Origin::Builtin(_) => "builtin".to_string(),
            Origin::File(p) => p.display().to_string(),
        };
        let rule_json = serde_json::json!({
            "id": meta.id,
            "title": meta.title,
            "level": meta.level.as_str(),
            "tags": meta.tags,
            "kind": kind.as_str(),
            "origin": origin,
        })
        .to_string()
        .into_boxed_str();
        let field_paths = meta
            .fields
            .iter()
            .filter_map(|f| fieldmap::path(f).ok().map(|p| (f.clone(), p)))
            .collect();
        CompiledRule {
            meta,
            kind,
            matcher,
            rule_json,
            field_paths,
            alarm: None,
            suppress: None,
            correlation: None,
            filters: Vec::new(),
            pulled_in: false,
        }
    }

    /// The Sigma filters applied to this rule.
    pub fn filters(&self) -> &[AppliedFilter] {
        &self.filters
    }

    /// Sets `suppress:`.
    pub fn set_suppress(&mut self, s: Option<correlation::Suppress>) {
        self.suppress = s;
    }

    /// Whether `record` matches this rule.
    pub fn matches(&self, record: Value<'_, '_>) -> bool {
        self.matches_cached(&RootCache::new(record))
    }

    /// Whether the record behind `rec` matches this rule, sharing its lookups.
    #[inline]
    pub fn matches_cached(&self, rec: &RootCache<'_, '_>) -> bool {
        let hit = match &self.matcher {
            Matcher::Detection(d) => d.matches(rec),
            Matcher::Pattern(p) => p.matches(rec),
            Matcher::Never => false,
        };
        hit && self.filters.iter().all(|f| f.detection.matches(rec))
    }

    /// The finding's `rule` object as JSON.
    pub fn rule_json(&self) -> &str {
        &self.rule_json
    }

    /// The `fields:` to copy into a finding.
    pub fn field_paths(&self) -> &[(String, crate::event::FieldPath)] {
        &self.field_paths
    }

    /// How the rule tests a record, for the index.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    fn paths_mut(&mut self, f: &mut dyn FnMut(&mut crate::event::FieldPath)) {
        match &mut self.matcher {
            Matcher::Detection(d) => d.paths_mut(f),
            Matcher::Pattern(p) => p.paths_mut(f),
            Matcher::Never => {}
        }
        for flt in &mut self.filters {
            flt.detection.paths_mut(f);
        }
    }
}

/// What is wrong with a rule, without the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleErrorKind {
    /// Not well-formed YAML.
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// A required key is missing.
    #[error("missing required key '{0}'")]
    MissingKey(&'static str),
    /// A value has the wrong type.
    #[error("'{field}' must be {expected}, found {found}")]
    TypeMismatch {
        /// The key or field.
        field: String,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
    /// An unknown value modifier.
    #[error(
        "unknown modifier '{modifier}' on field '{field}'{}",
        modifier_hint(modifier)
    )]
    UnknownModifier {
        /// The modifier as written.
        modifier: String,
        /// The field it is on.
        field: String,
    },
    /// Two of contains/startswith/endswith on one field.
    #[error("field '{field}' has more than one of contains, startswith, endswith")]
    ConflictingModifiers {
        /// The field.
        field: String,
    },
    /// `exists` or `fieldref` on a key with no field name.
    #[error("exists and fieldref need a field name")]
    KeywordModifiersInMap,
    /// The condition names a selection that does not exist.
    #[error("condition refers to '{0}', which is not a selection of this rule")]
    UndefinedIdentifier(String),
    /// The condition does not parse.
    #[error("invalid condition: {0}")]
    Condition(String),
    /// A field path does not parse.
    #[error("invalid field path: {0}")]
    BadPath(String),
    /// A value does not compile.
    #[error("invalid value: {0}")]
    BadValue(String),
    /// `level` is not one of the Sigma levels.
    #[error("unknown level '{0}' (expected informational, low, medium, high or critical)")]
    BadLevel(String),
    /// A feature not supported yet.
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// `detection.timeframe` of a single-record rule (a warning: it is ignored).
    #[error(
        "timeframe is ignored in a single-record rule; count over a window with a correlation rule"
    )]
    IgnoredTimeframe,
    /// A metric-filter pattern does not parse.
    #[error("invalid metric-filter pattern: {0}")]
    Pattern(String),
    /// A correlation rule is malformed or cannot be linked.
    #[error("correlation: {0}")]
    Correlation(String),
    /// A top-level key that Sigma does not define (a warning unless strict).
    #[error("unknown top-level key '{0}'")]
    UnknownKey(String),
    /// Another rule already has this id.
    #[error("duplicate rule id '{0}' (first defined in {1})")]
    DuplicateId(String, String),
    /// The file cannot be read.
    #[error("cannot read rule file: {0}")]
    Io(String),
    /// `schemas/rule.schema.json` rejects the document.
    #[error("schema: {0}")]
    Schema(String),
    /// A tag of a known namespace has the wrong format.
    #[error("tag '{tag}': {why}")]
    BadTag {
        /// The tag as written.
        tag: String,
        /// What the namespace expects.
        why: String,
    },
    /// A tag namespace the Sigma tags appendix does not define (a warning).
    #[error(
        "tag '{0}' is in a namespace Sigma does not define (attack, car, cve, d3fend, detection, stp, tlp)"
    )]
    UnknownTagNamespace(String),
    /// The same tag twice in one rule.
    #[error("tag '{0}' is listed twice")]
    DuplicateTag(String),
    /// A selection the condition never refers to: it can never affect a match.
    #[error("selection '{0}' is not used by the condition, so it never affects a match")]
    UnusedSelection(String),
    /// A `related` entry or filter names a rule that is not loaded (a warning).
    #[error("{0}")]
    Unresolved(String),
}

impl RuleErrorKind {
    /// Whether `rules validate` reports this as a warning (an error under `--strict`);
    /// everything else is an error. Warnings never stop a rule from loading.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            RuleErrorKind::UnknownKey(_)
                | RuleErrorKind::UnknownTagNamespace(_)
                | RuleErrorKind::IgnoredTimeframe
                | RuleErrorKind::Unresolved(_)
        )
    }

    /// A stable short name of the check, for JSON and SARIF output (`ruleId`).
    pub fn code(&self) -> &'static str {
        match self {
            RuleErrorKind::Yaml(_) => "yaml",
            RuleErrorKind::MissingKey(_) => "missing-key",
            RuleErrorKind::TypeMismatch { .. } => "type",
            RuleErrorKind::UnknownModifier { .. } => "unknown-modifier",
            RuleErrorKind::ConflictingModifiers { .. } | RuleErrorKind::KeywordModifiersInMap => {
                "modifier-conflict"
            }
            RuleErrorKind::UndefinedIdentifier(_) => "undefined-selection",
            RuleErrorKind::Condition(_) => "condition",
            RuleErrorKind::BadPath(_) => "field-path",
            RuleErrorKind::BadValue(v) if v.starts_with("bad regular expression") => "regex",
            RuleErrorKind::BadValue(_) => "value",
            RuleErrorKind::BadLevel(_) => "level",
            RuleErrorKind::Unsupported(_) => "unsupported",
            RuleErrorKind::IgnoredTimeframe => "ignored-timeframe",
            RuleErrorKind::Pattern(_) => "metric-filter-pattern",
            RuleErrorKind::Correlation(_) => "correlation",
            RuleErrorKind::UnknownKey(_) => "unknown-key",
            RuleErrorKind::DuplicateId(..) => "duplicate-id",
            RuleErrorKind::Io(_) => "io",
            RuleErrorKind::Schema(_) => "schema",
            RuleErrorKind::BadTag { .. } => "tag",
            RuleErrorKind::UnknownTagNamespace(_) => "tag-namespace",
            RuleErrorKind::DuplicateTag(_) => "duplicate-tag",
            RuleErrorKind::UnusedSelection(_) => "unused-selection",
            RuleErrorKind::Unresolved(_) => "unresolved-reference",
        }
    }
}

fn modifier_hint(m: &str) -> &'static str {
    match m {
        "not" => " ('not' is not a modifier: negate the selection in the condition)",
        "minute" | "hour" | "day" | "week" | "month" | "year" => {
            " (a Sigma 2.1 time modifier this version does not support yet)"
        }
        "i" | "m" | "s" => " (regex flags follow re: field|re|i)",
        _ => " (docs/rules.md lists the modifiers)",
    }
}

/// A [`RuleErrorKind`] at a position in a file being loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Line and column.
    pub mark: Mark,
    /// What is wrong.
    pub kind: RuleErrorKind,
}

/// A rule error: file, line, column and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {kind}")]
pub struct RuleError {
    /// The rule file (`builtin:<name>` for the embedded pack).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub kind: RuleErrorKind,
}

impl RuleError {
    fn at(origin: &Origin, l: Located) -> Self {
        RuleError {
            file: origin.to_string(),
            line: l.mark.line,
            col: l.mark.col,
            kind: l.kind,
        }
    }
}

/// Which loaded rules run: `--rule`, `--exclude-rule`, `--tags`, `--min-level` and the
/// config's `rules.enable` / `rules.disable` / `rules.tags` / `rules.min_level`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these rules (id or `name`); empty = all.
    pub only: Vec<String>,
    /// Never these (id or `name`).
    pub exclude: Vec<String>,
    /// Only rules with one of these tags (case-insensitive; a trailing `*` matches a
    /// prefix: `attack.t1078*`); empty = all.
    pub tags: Vec<String>,
    /// Only rules at or above this level.
    pub min_level: Option<Level>,
}

impl Selection {
    fn is_empty(&self) -> bool {
        self.only.is_empty()
            && self.exclude.is_empty()
            && self.tags.is_empty()
            && self.min_level.is_none()
    }

    /// Whether a rule passes `only`, `tags` and `min_level` (not `exclude`).
    pub fn keeps(&self, m: &RuleMeta) -> bool {
        (self.only.is_empty() || self.only.iter().any(|k| m.is_named(k)))
            && (self.tags.is_empty()
                || self
                    .tags
                    .iter()
                    .any(|want| m.tags.iter().any(|t| tag_matches(want, t))))
            && self.min_level.is_none_or(|min| m.level >= min)
    }
}

/// `attack.t1078*` matches `attack.t1078.004`; otherwise equal, ignoring case.
fn tag_matches(want: &str, tag: &str) -> bool {
    match want.strip_suffix('*') {
        Some(prefix) => tag
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix)),
        None => tag.eq_ignore_ascii_case(want),
    }
}

/// Which rules to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Include the built-in pack.
    pub builtin: bool,
    /// Rule files and directories (searched recursively for `*.yml`/`*.yaml`,
    /// `*.tests.yml` excluded).
    pub paths: Vec<PathBuf>,
}

/// What loading found besides the rules.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Rules that failed to load (skipped).
    pub errors: Vec<RuleError>,
    /// Warnings (unknown keys).
    pub warnings: Vec<RuleError>,
    /// Documents that do not apply to CloudTrail or are not supported: (file, reason).
    pub skipped: Vec<(String, String)>,
    /// Rule files read.
    pub files: usize,
    /// Every rule file read, in load order (as `Origin` displays it).
    pub sources: Vec<String>,
    /// Sigma filter documents loaded.
    pub filters: usize,
    /// Rules left out because a loaded rule obsoletes them: (id, file, superseding id).
    pub superseded: Vec<(String, String, String)>,
}

/// A rule file given on the command line that cannot be found.
#[derive(Debug, thiserror::Error)]
#[error("rule path {path}: {source}")]
pub struct RulePathError {
    /// The path.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// The compiled, immutable rule set shared by all workers.
#[derive(Debug)]
pub struct RulePack {
    rules: Vec<CompiledRule>,
    index: index::RuleIndex,
    linked: correlation::Linked,
}

/// Gives every distinct first path segment of the pack a [`RootCache`] slot, so the
/// rules (and the index, which copies their paths) share the record's top-level
/// lookups. Segments beyond [`path::ROOT_SLOTS`] go uncached.
fn assign_slots(rules: &mut [CompiledRule]) {
    let mut slots: Vec<String> = Vec::new();
    for r in rules.iter_mut() {
        r.paths_mut(&mut |p| {
            let Some(key) = p.first_key() else { return };
            let slot = match slots.iter().position(|k| k == key) {
                Some(i) => i,
                None if slots.len() < path::ROOT_SLOTS => {
                    slots.push(key.to_string());
                    slots.len() - 1
                }
                None => return,
            };
            p.set_slot(slot as u8);
        });
    }
}

/// The index of the top-level entry of `doc` that `m` falls in (entries are in
/// document order, so it is the last one starting at or before `m`).
fn top_level_key_at(doc: &yaml::Yaml, m: Mark) -> usize {
    doc.as_map().map_or(0, |entries| {
        entries
            .iter()
            .rposition(|(k, _)| (k.mark.line, k.mark.col) <= (m.line, m.col))
            .unwrap_or(0)
    })
}

/// Attaches each filter to the rules it names (by id or `name`); a name that matches no
/// loaded rule, or only a correlation, is a warning.
fn apply_filters(rules: &mut [CompiledRule], filters: Vec<FilterDoc>, report: &mut LoadReport) {
    report.filters += filters.len();
    for f in filters {
        let applied = || AppliedFilter {
            id: f.meta.id.clone(),
            title: f.meta.title.clone(),
            origin: f.meta.origin.clone(),
            detection: f.detection.clone(),
        };
        let Some(names) = &f.rules else {
            for r in rules.iter_mut().filter(|r| r.kind != RuleKind::Correlation) {
                r.filters.push(applied());
            }
            continue;
        };
        for (name, mark) in names {
            let warn = |report: &mut LoadReport, why: String| {
                report.warnings.push(RuleError {
                    file: f.meta.origin.to_string(),
                    line: mark.line,
                    col: mark.col,
                    kind: RuleErrorKind::Unresolved(format!("filter '{}' {why}", f.meta.title)),
                });
            };
            let mut found = false;
            for r in rules.iter_mut().filter(|r| r.meta.is_named(name)) {
                found = true;
                if r.kind == RuleKind::Correlation {
                    warn(
                        report,
                        format!(
                            "names correlation rule '{name}'; filters apply to single-record rules (filter the rules it correlates)"
                        ),
                    );
                } else {
                    r.filters.push(applied());
                }
            }
            if !found {
                warn(report, format!("names rule '{name}', which is not loaded"));
            }
        }
    }
}

/// Leaves out every rule that a loaded rule obsoletes (`related: [{id, type: obsolete}]`),
/// so loading SigmaHQ's rules beside the built-in pack runs the newer rule once.
fn drop_superseded(rules: &mut Vec<CompiledRule>, report: &mut LoadReport) {
    let mut gone: Vec<(String, String)> = Vec::new();
    for r in rules.iter() {
        for old in r.meta.obsoletes() {
            if old != r.meta.id && rules.iter().any(|o| o.meta.id == old) {
                gone.push((old.to_string(), r.meta.id.clone()));
            }
        }
    }
    if gone.is_empty() {
        return;
    }
    rules.retain(|r| match gone.iter().find(|(old, _)| *old == r.meta.id) {
        Some((old, by)) => {
            report
                .superseded
                .push((old.clone(), r.meta.origin.to_string(), by.clone()));
            false
        }
        None => true,
    });
}

/// Whether a path is a rule file (and not a test sidecar).
pub fn is_rule_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    (name.ends_with(".yml") || name.ends_with(".yaml"))
        && !name.ends_with(".tests.yml")
        && !name.ends_with(".tests.yaml")
}

impl RulePack {
    /// Loads and compiles rules. Bad rules are reported in the [`LoadReport`] and
    /// skipped; only a path that cannot be read at all is an error.
    pub fn load(opts: &LoadOptions) -> Result<(RulePack, LoadReport), RulePathError> {
        Self::load_with(opts, &CompileContext::default())
    }

    /// [`RulePack::load`] with `expand` placeholders.
    pub fn load_with(
        opts: &LoadOptions,
        ctx: &CompileContext,
    ) -> Result<(RulePack, LoadReport), RulePathError> {
        let mut sources: Vec<(Origin, String)> = Vec::new();
        if opts.builtin {
            for (name, text) in builtin::FILES {
                if is_rule_file(Path::new(name)) {
                    sources.push((Origin::Builtin((*name).to_string()), (*text).to_string()));
                }
            }
        }
        let mut report = LoadReport::default();
        for root in &opts.paths {
            let files = crate::fswalk::files_under(root, &is_rule_file).map_err(|source| {
                RulePathError {
                    path: root.clone(),
                    source,
                }
            })?;
            for f in files {
                match std::fs::read_to_string(&f) {
                    Ok(text) => sources.push((Origin::File(f), text)),
                    Err(e) => report.errors.push(RuleError {
                        file: f.display().to_string(),
                        line: 0,
                        col: 0,
                        kind: RuleErrorKind::Io(e.to_string()),
                    }),
                }
            }
        }
        let pack = Self::from_sources_with(&sources, &mut report, ctx);
        Ok((pack, report))
    }

    /// Compiles rules from in-memory texts.
    pub fn from_sources(sources: &[(Origin, String)], report: &mut LoadReport) -> RulePack {
        Self::from_sources_with(sources, report, &CompileContext::default())
    }

    /// [`RulePack::from_sources`] with `expand` placeholders.
    pub fn from_sources_with(
        sources: &[(Origin, String)],
        report: &mut LoadReport,
        ctx: &CompileContext,
    ) -> RulePack {
        let mut rules: Vec<CompiledRule> = Vec::new();
        let mut filters: Vec<FilterDoc> = Vec::new();
        for (origin, text) in sources {
            report.files += 1;
            report.sources.push(origin.to_string());
            let docs = match yaml::load_documents(text) {
                Ok(d) => d,
                Err(e) => {
                    report.errors.push(RuleError::at(
                        origin,
                        Located {
                            mark: e.mark,
                            kind: RuleErrorKind::Yaml(e.message),
                        },
                    ));
                    continue;
                }
            };
            let docs = match collection::resolve(docs) {
                Ok(d) => d,
                Err(l) => {
                    report.errors.push(RuleError::at(origin, l));
                    continue;
                }
            };
            for doc in &docs {
                let mut warns = Vec::new();
                let parsed = parse_document(doc, origin, &mut warns, ctx);
                // The schema often restates what compiling found (a bad level, a
                // selection of the wrong type): when compiling failed, the schema's
                // findings under the same top-level key are left out.
                let failed_in = match &parsed {
                    Err(l) => Some(top_level_key_at(doc, l.mark)),
                    _ => None,
                };
                warns.extend(
                    lint::schema_problems(doc)
                        .into_iter()
                        .filter(|l| Some(top_level_key_at(doc, l.mark)) != failed_in),
                );
                report
                    .warnings
                    .extend(warns.into_iter().map(|w| RuleError::at(origin, w)));
                match parsed {
                    Ok(Parsed::Rule(rule)) => {
                        if let Some(first) = rules.iter().find(|r| r.meta.id == rule.meta.id) {
                            report.errors.push(RuleError {
                                file: origin.to_string(),
                                line: rule.meta.line,
                                col: 1,
                                kind: RuleErrorKind::DuplicateId(
                                    rule.meta.id.clone(),
                                    first.meta.origin.to_string(),
                                ),
                            });
                        } else {
                            rules.push(*rule);
                        }
                    }
                    Ok(Parsed::Correlation(boxed)) => {
                        let (meta, spec) = *boxed;
                        if let Some(first) = rules.iter().find(|r| r.meta.id == meta.id) {
                            report.errors.push(RuleError {
                                file: origin.to_string(),
                                line: meta.line,
                                col: 1,
                                kind: RuleErrorKind::DuplicateId(
                                    meta.id.clone(),
                                    first.meta.origin.to_string(),
                                ),
                            });
                        } else {
                            let mut rule =
                                CompiledRule::new(meta, Matcher::Never, RuleKind::Correlation);
                            rule.correlation = Some(spec);
                            rules.push(rule);
                        }
                    }
                    Ok(Parsed::Filter(f)) => filters.push(*f),
                    Ok(Parsed::Skipped(reason)) => {
                        report.skipped.push((origin.to_string(), reason));
                    }
                    Err(l) => report.errors.push(RuleError::at(origin, l)),
                }
            }
        }
        apply_filters(&mut rules, filters, report);
        drop_superseded(&mut rules, report);
        Self::build(rules, Some(report))
    }

    /// Links correlations, assigns cache slots and indexes `rules`. Correlations that
    /// fail to link are reported and dropped (with the correlations built on them).
    fn build(mut rules: Vec<CompiledRule>, mut report: Option<&mut LoadReport>) -> RulePack {
        loop {
            let specs: Vec<(u32, &correlation::CorrelationSpec)> = rules
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.correlation.as_ref().map(|s| (i as u32, s)))
                .collect();
            let mut linked = correlation::link(&rules, &specs);
            if linked.failed.is_empty() {
                for (i, r) in rules.iter().enumerate() {
                    linked.silent[i] |= r.pulled_in;
                }
                assign_slots(&mut rules);
                let index = index::RuleIndex::build(&rules);
                return RulePack {
                    rules,
                    index,
                    linked,
                };
            }
            let mut drop: Vec<u32> = linked.failed.iter().map(|(r, _)| *r).collect();
            drop.sort_unstable();
            drop.dedup();
            if let Some(rep) = report.as_deref_mut() {
                for (r, l) in &linked.failed {
                    let rule = &rules[*r as usize];
                    rep.errors.push(RuleError::at(&rule.meta.origin, l.clone()));
                }
            }
            let mut i = 0u32;
            rules.retain(|_| {
                let keep = drop.binary_search(&i).is_err();
                i += 1;
                keep
            });
        }
    }

    /// The rules, in load order.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// The rule index.
    pub fn index(&self) -> &index::RuleIndex {
        &self.index
    }

    /// Correlation and alarm definitions.
    pub fn correlations(&self) -> &[correlation::CorrelationDef] {
        &self.linked.defs
    }

    /// The (definition, input) pairs rule `i`'s matches feed.
    #[inline]
    pub fn feeds(&self, i: u32) -> &[(u32, u16)] {
        &self.linked.feeds[i as usize]
    }

    /// Whether rule `i`'s matches produce no findings of their own (they only feed
    /// correlations or an alarm).
    #[inline]
    pub fn is_silent(&self, i: u32) -> bool {
        self.linked.silent[i as usize]
    }

    /// Whether any rule needs the stateful stage (correlations, alarms, suppression).
    pub fn is_stateful(&self) -> bool {
        !self.linked.defs.is_empty() || self.rules.iter().any(|r| r.suppress.is_some())
    }

    /// Applies a [`Selection`]: keeps the rules it selects and what kept correlations
    /// read, then leaves out the excluded ones (and the correlations that need them).
    /// Names in `only`/`exclude` that match no loaded rule are returned, so the caller
    /// can refuse a typo instead of silently running nothing.
    pub fn select(self, sel: &Selection) -> (RulePack, Vec<String>) {
        let unknown: Vec<String> = sel
            .only
            .iter()
            .chain(&sel.exclude)
            .filter(|k| !self.rules.iter().any(|r| r.meta.is_named(k)))
            .cloned()
            .collect();
        if sel.is_empty() {
            return (self, unknown);
        }
        let keep: Vec<bool> = self.rules.iter().map(|r| sel.keeps(&r.meta)).collect();
        let kept = self.retain(keep);
        let keep: Vec<bool> = kept
            .rules
            .iter()
            .map(|r| !sel.exclude.iter().any(|k| r.meta.is_named(k)))
            .collect();
        (kept.retain_exact(keep), unknown)
    }

    /// Keeps the `keep` rules plus what kept correlations and alarms read.
    fn retain(mut self, mut keep: Vec<bool>) -> RulePack {
        let chosen = keep.clone();
        // Pull in the inputs of kept correlations, transitively.
        loop {
            let mut changed = false;
            for def in &self.linked.defs {
                if !keep[def.rule as usize] {
                    continue;
                }
                for input in &def.inputs {
                    let r = match input.source {
                        correlation::Source::Rule(r) => r,
                        correlation::Source::Correlation(c) => self.linked.defs[c as usize].rule,
                    };
                    if !keep[r as usize] {
                        keep[r as usize] = true;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        for (r, (k, c)) in self.rules.iter_mut().zip(keep.iter().zip(&chosen)) {
            r.pulled_in |= *k && !*c;
        }
        self.retain_exact(keep)
    }

    fn retain_exact(self, keep: Vec<bool>) -> RulePack {
        let rules: Vec<_> = self
            .rules
            .into_iter()
            .zip(keep)
            .filter_map(|(r, k)| k.then_some(r))
            .collect();
        Self::build(rules, None)
    }

    /// Indices of the rules matching `record`, ascending, into `hits` (cleared first; it
    /// holds the index's candidates on the way). `scratch` is a reusable buffer.
    #[inline]
    pub fn evaluate(&self, record: Value<'_, '_>, scratch: &mut Vec<u8>, hits: &mut Vec<u32>) {
        let rec = RootCache::new(record);
        self.index.candidates(&rec, scratch, hits);
        hits.retain(|&i| self.rules[i as usize].matches_cached(&rec));
    }

    /// The same as [`RulePack::evaluate`] without the index: every rule is tested.
    /// Used by the differential test and by `rules explain`.
    pub fn evaluate_unindexed(&self, record: Value<'_, '_>, hits: &mut Vec<u32>) {
        hits.clear();
        for (i, r) in self.rules.iter().enumerate() {
            if r.matches(record) {
                hits.push(i as u32);
            }
        }
    }
}
