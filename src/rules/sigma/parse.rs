//! A YAML rule document → [`CompiledRule`] (metadata + compiled detection).
//!
//! All of Sigma's metadata keys are kept. `logsource` decides whether the rule applies
//! to CloudTrail: `product: aws` and/or `service: cloudtrail` (case-insensitive); a rule
//! naming another product or service is skipped with a notice, not an error.

use super::compile::compile_detection;
use super::field::CompileContext;
use crate::rules::yaml::{Kind, Yaml};
use crate::rules::{CompiledRule, Level, Located, Origin, RuleErrorKind, RuleMeta};

/// What one YAML document turned out to be.
#[derive(Debug)]
pub enum Parsed {
    /// A rule that applies to CloudTrail.
    Rule(Box<CompiledRule>),
    /// A valid document that does not apply here, with the reason.
    Skipped(String),
    /// A correlation rule, linked to the rules it names once every document is loaded.
    Correlation(Box<(RuleMeta, crate::rules::correlation::CorrelationSpec)>),
    /// A Sigma filter, applied to the rules it names once every document is loaded.
    Filter(Box<crate::rules::FilterDoc>),
}

/// Metadata keys every rule kind shares (Sigma's, plus `suppress`).
pub(crate) const META_KEYS: &[&str] = &[
    "title",
    "id",
    "name",
    "related",
    "status",
    "description",
    "license",
    "author",
    "references",
    "date",
    "modified",
    "fields",
    "falsepositives",
    "level",
    "tags",
    "scope",
    "taxonomy",
];

/// Keys of a Sigma rule besides [`META_KEYS`].
const KNOWN_KEYS: &[&str] = &["logsource", "detection", "suppress"];

pub(crate) fn string_list(doc: &Yaml, key: &str) -> Result<Vec<String>, Located> {
    match doc.get(key) {
        None => Ok(Vec::new()),
        Some(v) => match &v.kind {
            Kind::Null => Ok(Vec::new()),
            Kind::Seq(items) => items
                .iter()
                .map(|i| {
                    i.as_scalar_text()
                        .map(str::to_string)
                        .ok_or_else(|| type_err(i, key, "a list of strings"))
                })
                .collect(),
            _ => v
                .as_scalar_text()
                .map(|s| vec![s.to_string()])
                .ok_or_else(|| type_err(v, key, "a list of strings")),
        },
    }
}

pub(crate) fn type_err(v: &Yaml, key: &str, expected: &'static str) -> Located {
    Located {
        mark: v.mark,
        kind: RuleErrorKind::TypeMismatch {
            field: key.into(),
            expected,
            found: v.kind_name(),
        },
    }
}

pub(crate) fn opt_string(doc: &Yaml, key: &str) -> Result<Option<String>, Located> {
    match doc.get(key) {
        None => Ok(None),
        Some(v) if v.kind == Kind::Null => Ok(None),
        Some(v) => v
            .as_scalar_text()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| type_err(v, key, "a string")),
    }
}

/// Does the rule's `logsource` select CloudTrail? `Err(reason)` if not.
fn applies(doc: &Yaml) -> Result<Result<(), String>, Located> {
    let Some(ls) = doc.get("logsource") else {
        return Ok(Ok(()));
    };
    if ls.as_map().is_none() {
        return Err(type_err(ls, "logsource", "a mapping"));
    }
    let field = |k: &str| {
        ls.get(k)
            .and_then(Yaml::as_scalar_text)
            .map(str::to_ascii_lowercase)
    };
    let product = field("product");
    let service = field("service");
    if let Some(p) = &product
        && p != "aws"
    {
        return Ok(Err(format!("logsource product '{p}' is not aws")));
    }
    if let Some(s) = &service
        && s != "cloudtrail"
    {
        return Ok(Err(format!("logsource service '{s}' is not cloudtrail")));
    }
    if product.is_none() && service.is_none() {
        return Ok(Err(
            "logsource names neither product aws nor service cloudtrail".into(),
        ));
    }
    Ok(Ok(()))
}

/// Parses and compiles one rule document. Warnings (unknown keys) are pushed to `warn`.
pub fn parse_document(
    doc: &Yaml,
    origin: &Origin,
    warn: &mut Vec<Located>,
    ctx: &CompileContext,
) -> Result<Parsed, Located> {
    if doc.as_map().is_none() {
        return Err(type_err(doc, "<document>", "a mapping"));
    }
    if doc.get("action").is_some() {
        return Ok(Parsed::Skipped(
            "rule collections (action: global/reset/repeat) are not supported yet".into(),
        ));
    }
    if let Some(filter) = doc.get("filter")
        && doc.get("detection").is_none()
    {
        return parse_filter(doc, filter, origin, warn, ctx);
    }
    if let Some(corr) = doc.get("correlation") {
        let meta = parse_meta(doc, origin, warn, crate::rules::correlation::KNOWN_KEYS)?;
        let spec = crate::rules::correlation::parse_spec(corr, doc)?;
        return Ok(Parsed::Correlation(Box::new((meta, spec))));
    }
    if let Some(pattern) = doc.get("pattern")
        && doc.get("detection").is_none()
    {
        let meta = parse_meta(doc, origin, warn, METRIC_KEYS)?;
        if let Err(reason) = applies_or_default(doc)? {
            return Ok(Parsed::Skipped(reason));
        }
        let text = pattern
            .as_str()
            .ok_or_else(|| type_err(pattern, "pattern", "a string"))?;
        let compiled = crate::rules::metric::MetricPattern::parse(text).map_err(|e| Located {
            mark: pattern_mark(pattern, e.col),
            kind: RuleErrorKind::Pattern(e.message),
        })?;
        let alarm = match doc.get("alarm") {
            None => None,
            Some(a) => Some(crate::rules::correlation::parse_alarm(a)?),
        };
        let suppress = crate::rules::correlation::parse_suppress(doc)?;
        let mut rule = CompiledRule::new(
            meta,
            crate::rules::Matcher::Pattern(compiled),
            crate::rules::RuleKind::MetricFilter,
        );
        rule.alarm = alarm;
        rule.set_suppress(suppress);
        return Ok(Parsed::Rule(Box::new(rule)));
    }
    let detection = doc.get("detection").ok_or(Located {
        mark: doc.mark,
        kind: RuleErrorKind::MissingKey("detection"),
    })?;
    let meta = parse_meta(doc, origin, warn, KNOWN_KEYS)?;
    if let Err(reason) = applies(doc)? {
        return Ok(Parsed::Skipped(reason));
    }
    let suppress = crate::rules::correlation::parse_suppress(doc)?;
    let detection = compile_detection(detection, ctx, warn)?;
    let mut rule = CompiledRule::new(
        meta,
        crate::rules::Matcher::Detection(detection),
        crate::rules::RuleKind::Sigma,
    );
    rule.set_suppress(suppress);
    Ok(Parsed::Rule(Box::new(rule)))
}

/// Keys of a Sigma filter besides [`META_KEYS`].
const FILTER_KEYS: &[&str] = &["logsource", "filter"];

/// A Sigma filter document: `filter: {rules: [...], <selections>, condition}`. Its
/// selections and condition compile like a detection, and the condition is AND-ed to
/// the condition of each rule it names (Sigma Filters specification, as pySigma applies
/// it): an exclusion is written `condition: not selection`.
fn parse_filter(
    doc: &Yaml,
    filter: &Yaml,
    origin: &Origin,
    warn: &mut Vec<Located>,
    ctx: &CompileContext,
) -> Result<Parsed, Located> {
    let meta = parse_meta(doc, origin, warn, FILTER_KEYS)?;
    if let Err(reason) = applies_or_default(doc)? {
        return Ok(Parsed::Skipped(reason));
    }
    let Some(entries) = filter.as_map() else {
        return Err(type_err(filter, "filter", "a mapping"));
    };
    // `rules:` omitted, empty or `any`: the filter applies to every rule (pySigma).
    let rules: Option<Vec<(String, crate::rules::yaml::Mark)>> = match filter.get("rules") {
        None => None,
        Some(node) => match &node.kind {
            Kind::Null => None,
            Kind::Seq(items) if items.is_empty() => None,
            Kind::Seq(items) => Some(
                items
                    .iter()
                    .map(|i| {
                        i.as_scalar_text()
                            .map(|t| (t.to_string(), i.mark))
                            .ok_or_else(|| type_err(i, "filter.rules", "a list of rule ids"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => match node.as_scalar_text() {
                Some("any") => None,
                Some(t) => Some(vec![(t.to_string(), node.mark)]),
                None => return Err(type_err(node, "filter.rules", "a list of rule ids")),
            },
        },
    };
    let detection = Yaml {
        mark: filter.mark,
        kind: Kind::Map(
            entries
                .iter()
                .filter(|(k, _)| k.as_scalar_text() != Some("rules"))
                .cloned()
                .collect(),
        ),
        quoted: false,
    };
    let detection = compile_detection(&detection, ctx, warn)?;
    Ok(Parsed::Filter(Box::new(crate::rules::FilterDoc {
        meta,
        rules,
        detection,
    })))
}

/// Keys of a metric-filter rule besides [`META_KEYS`].
const METRIC_KEYS: &[&str] = &["logsource", "pattern", "alarm", "suppress"];

/// A metric-filter rule needs no `logsource` (it is CloudTrail by construction); one
/// that names another product is skipped like a Sigma rule.
fn applies_or_default(doc: &Yaml) -> Result<Result<(), String>, Located> {
    if doc.get("logsource").is_none() {
        return Ok(Ok(()));
    }
    applies(doc)
}

/// The position of character column `col` (1-based) of a pattern scalar: exact for a
/// one-line plain or quoted scalar, the scalar's start otherwise.
fn pattern_mark(node: &Yaml, col: usize) -> crate::rules::yaml::Mark {
    let mut m = node.mark;
    m.col += col.saturating_sub(1) + usize::from(node.quoted);
    m
}

/// The metadata every rule kind shares. Top-level keys in neither [`META_KEYS`] nor
/// `known` become warnings.
pub fn parse_meta(
    doc: &Yaml,
    origin: &Origin,
    warn: &mut Vec<Located>,
    known: &[&str],
) -> Result<RuleMeta, Located> {
    let title = opt_string(doc, "title")?.ok_or(Located {
        mark: doc.mark,
        kind: RuleErrorKind::MissingKey("title"),
    })?;
    for (k, _) in doc.as_map().unwrap_or_default() {
        if let Some(key) = k.as_scalar_text()
            && !known.contains(&key)
            && !META_KEYS.contains(&key)
        {
            warn.push(Located {
                mark: k.mark,
                kind: RuleErrorKind::UnknownKey(key.to_string()),
            });
        }
    }
    warn.extend(crate::rules::lint::tag_problems(doc));
    let level = match doc.get("level") {
        None => Level::Medium,
        Some(v) => {
            let text = v.as_scalar_text().unwrap_or_default();
            Level::parse(text).ok_or(Located {
                mark: v.mark,
                kind: RuleErrorKind::BadLevel(text.to_string()),
            })?
        }
    };
    let id = match opt_string(doc, "id")? {
        Some(id) => id,
        None => derived_id(origin, &title),
    };
    Ok(RuleMeta {
        related: related(doc)?,
        id,
        name: opt_string(doc, "name")?,
        title,
        level,
        status: opt_string(doc, "status")?,
        description: opt_string(doc, "description")?,
        author: opt_string(doc, "author")?,
        date: opt_string(doc, "date")?,
        modified: opt_string(doc, "modified")?,
        tags: string_list(doc, "tags")?,
        references: string_list(doc, "references")?,
        falsepositives: string_list(doc, "falsepositives")?,
        fields: string_list(doc, "fields")?,
        origin: origin.clone(),
        line: doc.mark.line,
    })
}

fn derived_id(origin: &Origin, title: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(origin.to_string().as_bytes());
    h.update([0]);
    h.update(title.as_bytes());
    let d = h.finalize();
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// `related: [{id, type}]`.
fn related(doc: &Yaml) -> Result<Vec<crate::rules::Related>, Located> {
    let Some(node) = doc.get("related") else {
        return Ok(Vec::new());
    };
    let Kind::Seq(items) = &node.kind else {
        return Err(type_err(node, "related", "a list of {id, type}"));
    };
    let mut out = Vec::new();
    for item in items {
        let id = opt_string(item, "id")?;
        let kind = opt_string(item, "type")?;
        match (id, kind) {
            (Some(id), Some(kind)) => out.push(crate::rules::Related { id, kind }),
            _ => return Err(type_err(item, "related", "a list of {id, type}")),
        }
    }
    Ok(out)
}
