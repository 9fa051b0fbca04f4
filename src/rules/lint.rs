//! Checks a rule document gets beyond "does it compile": the JSON Schema of
//! `schemas/rule.schema.json` and the Sigma tag format.
//!
//! **Boundary.** Both work on the positioned [`Yaml`] tree, so every problem carries the
//! line and column of the node it is about. They never stop a rule from loading: the
//! loader files what they find in [`super::LoadReport::warnings`], and
//! [`super::RuleErrorKind::is_warning`] decides which of those `rules validate` counts as
//! errors.
//!
//! **Decision.** Tags are checked by format per namespace (the Sigma tags appendix), never
//! against a frozen list of ATT&CK techniques or tactics: ATT&CK adds and renames both
//! every release, and a validator that lags behind it would fail good rules.

use std::sync::OnceLock;

use super::yaml::{Kind, Mark, Yaml};
use super::{Located, RuleErrorKind};

/// The rule schema, as shipped in `schemas/`.
pub const RULE_SCHEMA: &str = include_str!("../../schemas/rule.schema.json");

fn validator() -> Option<&'static jsonschema::Validator> {
    static V: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        let schema: serde_json::Value = serde_json::from_str(RULE_SCHEMA).ok()?;
        jsonschema::validator_for(&schema).ok()
    })
    .as_ref()
}

/// The document as JSON, for the schema: numbers that JSON can hold become numbers,
/// other YAML numbers (hex, octal) stay strings, mapping keys are their text.
pub fn to_json(y: &Yaml) -> serde_json::Value {
    use serde_json::Value;
    match &y.kind {
        Kind::Null => Value::Null,
        Kind::Bool(b) => Value::Bool(*b),
        Kind::Number(n) => serde_json::from_str::<serde_json::Number>(n)
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(n.clone())),
        Kind::Str(s) => Value::String(s.clone()),
        Kind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Kind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_scalar_text().unwrap_or_default().to_string(),
                        to_json(v),
                    )
                })
                .collect(),
        ),
    }
}

/// The node a JSON pointer names (the deepest one that exists), or its key when the
/// pointer ends at a mapping entry: an error about a value points at the value.
fn node_at<'a>(
    root: &'a Yaml,
    path: impl Iterator<Item = jsonschema::paths::LocationSegment<'a>>,
) -> Mark {
    use jsonschema::paths::LocationSegment;
    let mut node = root;
    for seg in path {
        let next = match (&node.kind, seg) {
            (Kind::Map(entries), LocationSegment::Property(p)) => entries
                .iter()
                .find(|(k, _)| k.as_scalar_text() == Some(p.as_ref()))
                .map(|(_, v)| v),
            (Kind::Seq(items), LocationSegment::Index(i)) => items.get(i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    node.mark
}

/// Everything the JSON Schema rejects in one document, each at the node it is about.
pub fn schema_problems(doc: &Yaml) -> Vec<Located> {
    let Some(v) = validator() else {
        return Vec::new();
    };
    let json = to_json(doc);
    let mut out: Vec<Located> = Vec::new();
    for e in v.iter_errors(&json) {
        let path = e.instance_path();
        let mark = node_at(doc, path.iter());
        let at = path.as_str();
        use jsonschema::error::ValidationErrorKind as K;
        let what = match e.kind() {
            // The default text repeats the whole value; name the forms instead.
            K::AnyOf { .. } | K::OneOfNotValid { .. } => {
                "does not have any of the forms the schema allows here".to_string()
            }
            K::Type { .. } | K::Enum { .. } | K::Pattern { .. } => {
                let text = e.to_string();
                match text.char_indices().nth(120) {
                    Some((cut, _)) => format!("{}…", &text[..cut]),
                    None => text,
                }
            }
            _ => e.to_string(),
        };
        let message = if at.is_empty() {
            what
        } else {
            format!("{}: {what}", pointer_to_dotted(at))
        };
        let l = Located {
            mark,
            kind: RuleErrorKind::Schema(message),
        };
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// `/detection/sel/0` → `detection.sel[0]` (how rule authors name keys).
fn pointer_to_dotted(p: &str) -> String {
    let mut out = String::new();
    for seg in p.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&seg);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

/// What is wrong with one tag, if anything: `Err((error, is_warning))`.
pub fn check_tag(tag: &str) -> Result<(), RuleErrorKind> {
    let bad = |why: String| {
        Err(RuleErrorKind::BadTag {
            tag: tag.to_string(),
            why,
        })
    };
    let Some((ns, value)) = tag.split_once('.') else {
        return bad("a tag is namespace.value, e.g. attack.t1078.004 or attack.persistence".into());
    };
    if value.is_empty() {
        return bad(format!("nothing follows the namespace '{ns}.'"));
    }
    let lower_ns = ns.to_ascii_lowercase();
    if lower_ns != ns {
        return bad(format!(
            "namespaces are lowercase: write '{lower_ns}.{value}'"
        ));
    }
    let ok = match ns {
        "attack" => attack_value(value),
        "car" => digits_pattern(value, &[4, 2, 3]),
        "cve" => cve_value(value),
        "d3fend" => d3fend_value(value),
        "detection" => word_list(value),
        "stp" => stp_value(value),
        "tlp" => matches!(
            value,
            "red" | "amber" | "amber-strict" | "green" | "clear" | "white"
        ),
        _ => return Err(RuleErrorKind::UnknownTagNamespace(tag.to_string())),
    };
    if ok {
        return Ok(());
    }
    let lower = value.to_ascii_lowercase();
    if ns != "d3fend" && lower != value && check_tag(&format!("{ns}.{lower}")).is_ok() {
        return bad(format!("tags are lowercase: write '{ns}.{lower}'"));
    }
    bad(match ns {
        "attack" => "an ATT&CK tag is a technique (t1078, t1078.004), a group (g0016), software (s0154), a data source (ds0010), a mitigation (m1032), an asset (a0001), or a tactic in lowercase words joined by '-' (initial-access)".into(),
        "car" => "a CAR tag is the analytic number without 'CAR-', e.g. car.2016-04-005".into(),
        "cve" => "a CVE tag is the year and number separated by '-', e.g. cve.2021-44228".into(),
        "d3fend" => "a D3FEND tag is a technique (d3-am), an artifact (d3f-WindowsNtOpenFile) or a tactic (harden)".into(),
        "detection" => "a detection tag is a lowercase word list joined by '-', e.g. detection.threat-hunting".into(),
        "stp" => "an stp tag is an analytic robustness 1-5, optionally with the event robustness a, u or k (stp.3k)".into(),
        _ => "TLP levels are red, amber, amber-strict, green and clear".into(),
    })
}

/// `t1234`, `t1234.123`, `g1234`, `s1234`, `ds1234`, `m1234`, `a1234`, or a tactic.
fn attack_value(v: &str) -> bool {
    let numbered = |prefix: &str| {
        v.strip_prefix(prefix)
            .is_some_and(|d| d.len() == 4 && d.bytes().all(|b| b.is_ascii_digit()))
    };
    if let Some(rest) = v.strip_prefix('t') {
        let (tech, sub) = match rest.split_once('.') {
            Some((t, s)) => (t, Some(s)),
            None => (rest, None),
        };
        if tech.len() == 4 && tech.bytes().all(|b| b.is_ascii_digit()) {
            return sub.is_none_or(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()));
        }
    }
    numbered("g")
        || numbered("s")
        || numbered("ds")
        || numbered("m")
        || numbered("a")
        || (word_list(v) && !v.bytes().any(|b| b.is_ascii_digit()))
}

/// Lowercase words (letters and digits) joined by single `-`.
fn word_list(v: &str) -> bool {
    !v.is_empty()
        && v.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Digit groups of the given lengths joined by `-`.
fn digits_pattern(v: &str, lens: &[usize]) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() == lens.len()
        && parts
            .iter()
            .zip(lens)
            .all(|(p, n)| p.len() == *n && p.bytes().all(|b| b.is_ascii_digit()))
}

fn cve_value(v: &str) -> bool {
    match v.split_once('-') {
        Some((y, n)) => {
            y.len() == 4
                && y.bytes().all(|b| b.is_ascii_digit())
                && n.len() >= 4
                && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

fn d3fend_value(v: &str) -> bool {
    let ident = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if let Some(rest) = v.strip_prefix("d3f-").or_else(|| v.strip_prefix("d3-")) {
        return ident(rest);
    }
    word_list(v)
}

fn stp_value(v: &str) -> bool {
    let b = v.as_bytes();
    match b {
        [d] => (b'1'..=b'5').contains(d),
        [d, e] => (b'1'..=b'5').contains(d) && matches!(e, b'a' | b'u' | b'k'),
        _ => false,
    }
}

/// Checks every entry of `tags:`, each at its own position.
pub fn tag_problems(doc: &Yaml) -> Vec<Located> {
    let Some(Kind::Seq(items)) = doc.get("tags").map(|t| &t.kind) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for item in items {
        let Some(tag) = item.as_scalar_text() else {
            continue;
        };
        if let Err(kind) = check_tag(tag) {
            out.push(Located {
                mark: item.mark,
                kind,
            });
        } else if seen.contains(&tag) {
            out.push(Located {
                mark: item.mark,
                kind: RuleErrorKind::DuplicateTag(tag.to_string()),
            });
        }
        seen.push(tag);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::yaml::load_documents;

    #[test]
    fn tags_by_namespace_format() {
        for good in [
            "attack.t1078",
            "attack.t1078.004",
            "attack.initial-access",
            "attack.defense-impairment",
            "attack.g0016",
            "attack.s0154",
            "attack.ds0010",
            "attack.m1032",
            "car.2016-04-005",
            "cve.2021-44228",
            "d3fend.d3f-WindowsNtOpenFile",
            "d3fend.d3-am",
            "d3fend.harden",
            "detection.threat-hunting",
            "stp.3k",
            "stp.4",
            "tlp.amber-strict",
        ] {
            assert_eq!(check_tag(good), Ok(()), "{good}");
        }
        for bad in [
            "attack.T1078",
            "Attack.t1078",
            "attack.t1078.4",
            "attack.t107",
            "attack.initial_access",
            "attack.",
            "t1078",
            "car.2016-4-005",
            "cve.2021",
            "stp.6",
            "tlp.blue",
            "detection.Threat",
        ] {
            assert!(
                matches!(check_tag(bad), Err(RuleErrorKind::BadTag { .. })),
                "{bad}: {:?}",
                check_tag(bad)
            );
        }
        assert!(matches!(
            check_tag("acme.team-red"),
            Err(RuleErrorKind::UnknownTagNamespace(_))
        ));
        let Err(RuleErrorKind::BadTag { why, .. }) = check_tag("attack.T1078.004") else {
            panic!("not a bad tag")
        };
        assert!(why.contains("'attack.t1078.004'"), "{why}");
    }

    #[test]
    fn schema_errors_point_at_the_node() {
        let docs = load_documents(
            "title: x\nstatus: production\nlogsource:\n  product: aws\ndetection:\n  sel:\n    a: {b: c}\n  condition: sel\nlevel: severe\n",
        )
        .expect("yaml");
        let p = schema_problems(&docs[0]);
        let at: Vec<(usize, usize)> = p.iter().map(|l| (l.mark.line, l.mark.col)).collect();
        assert!(at.contains(&(2, 9)), "{p:?}");
        assert!(at.contains(&(7, 5)), "{p:?}");
        assert!(at.contains(&(9, 8)), "{p:?}");
        assert!(
            p.iter()
                .any(|l| l.kind.to_string().contains("detection.sel")),
            "{p:?}"
        );
        let ok = load_documents(
            "title: x\nlogsource: {product: aws}\ndetection:\n  sel: {a: 1}\n  condition: sel\n",
        )
        .expect("yaml");
        assert!(schema_problems(&ok[0]).is_empty());
        let missing = load_documents("title: x\nlogsource: {product: aws}\n").expect("yaml");
        let p = schema_problems(&missing[0]);
        assert!(
            p.iter().any(|l| l.kind.to_string().contains("detection")),
            "{p:?}"
        );
    }
}
