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
}

/// Top-level keys of the Sigma rule format (plus the trailhound extensions).
const KNOWN_KEYS: &[&str] = &[
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
    "logsource",
    "detection",
    "fields",
    "falsepositives",
    "level",
    "tags",
    "scope",
    "taxonomy",
];

fn string_list(doc: &Yaml, key: &str) -> Result<Vec<String>, Located> {
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

fn type_err(v: &Yaml, key: &str, expected: &'static str) -> Located {
    Located {
        mark: v.mark,
        kind: RuleErrorKind::TypeMismatch {
            field: key.into(),
            expected,
            found: v.kind_name(),
        },
    }
}

fn opt_string(doc: &Yaml, key: &str) -> Result<Option<String>, Located> {
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
    let Some(map) = doc.as_map() else {
        return Err(type_err(doc, "<document>", "a mapping"));
    };
    if doc.get("action").is_some() {
        return Ok(Parsed::Skipped(
            "rule collections (action: global/reset/repeat) are not supported yet".into(),
        ));
    }
    if doc.get("correlation").is_some() {
        return Ok(Parsed::Skipped(
            "correlation rules are not supported yet".into(),
        ));
    }
    if doc.get("pattern").is_some() && doc.get("detection").is_none() {
        return Ok(Parsed::Skipped(
            "metric-filter rules are not supported yet".into(),
        ));
    }
    let detection = doc.get("detection").ok_or(Located {
        mark: doc.mark,
        kind: RuleErrorKind::MissingKey("detection"),
    })?;
    let title = opt_string(doc, "title")?.ok_or(Located {
        mark: doc.mark,
        kind: RuleErrorKind::MissingKey("title"),
    })?;
    for (k, _) in map {
        if let Some(key) = k.as_scalar_text()
            && !KNOWN_KEYS.contains(&key)
        {
            warn.push(Located {
                mark: k.mark,
                kind: RuleErrorKind::UnknownKey(key.to_string()),
            });
        }
    }
    if let Err(reason) = applies(doc)? {
        return Ok(Parsed::Skipped(reason));
    }
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
    let meta = RuleMeta {
        id,
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
    };
    let detection = compile_detection(detection, ctx, warn)?;
    Ok(Parsed::Rule(Box::new(CompiledRule::new(meta, detection))))
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
