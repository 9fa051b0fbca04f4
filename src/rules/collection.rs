//! Sigma rule collections (Sigma 1.x, still read by pySigma): documents with
//! `action: global`, `action: reset` and `action: repeat` in one YAML file.
//!
//! - `global`: its keys are merged into every following rule document of the file
//!   (until `reset`); the document itself is not a rule.
//! - `reset`: forgets the global document.
//! - `repeat`: a new rule made of the previous rule document with this document's keys
//!   merged over it.
//!
//! Merging is recursive for mappings (nested mappings merge); where the global document
//! and a rule document set the same key, the global wins, as in pySigma and sigmac.

use super::yaml::{Kind, Yaml};
use super::{Located, RuleErrorKind};

fn merge(base: &Yaml, over: &Yaml) -> Yaml {
    match (&base.kind, &over.kind) {
        (Kind::Map(b), Kind::Map(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                match out
                    .iter_mut()
                    .find(|(bk, _)| bk.as_scalar_text() == k.as_scalar_text())
                {
                    Some((_, bv)) => *bv = merge(bv, v),
                    None => out.push((k.clone(), v.clone())),
                }
            }
            Yaml {
                mark: over.mark,
                kind: Kind::Map(out),
                quoted: false,
            }
        }
        _ => over.clone(),
    }
}

fn without_action(doc: &Yaml) -> Yaml {
    match &doc.kind {
        Kind::Map(m) => Yaml {
            mark: doc.mark,
            kind: Kind::Map(
                m.iter()
                    .filter(|(k, _)| k.as_scalar_text() != Some("action"))
                    .cloned()
                    .collect(),
            ),
            quoted: false,
        },
        _ => doc.clone(),
    }
}

/// Resolves the documents of one file into plain rule documents.
pub fn resolve(docs: Vec<Yaml>) -> Result<Vec<Yaml>, Located> {
    if !docs.iter().any(|d| d.get("action").is_some()) {
        return Ok(docs);
    }
    let mut out = Vec::new();
    let mut global: Option<Yaml> = None;
    let mut previous: Option<Yaml> = None;
    for doc in docs {
        let action = doc
            .get("action")
            .map(|a| (a.as_scalar_text().map(str::to_string), a.mark));
        match action {
            None => {
                // A key set in both: the global document wins (pySigma, sigmac).
                let rule = match &global {
                    Some(g) => merge(&doc, g),
                    None => doc,
                };
                previous = Some(rule.clone());
                out.push(rule);
            }
            Some((Some(a), _)) if a == "global" => global = Some(without_action(&doc)),
            Some((Some(a), _)) if a == "reset" => global = None,
            Some((Some(a), mark)) if a == "repeat" => {
                let base = previous.as_ref().ok_or(Located {
                    mark,
                    kind: RuleErrorKind::BadValue("action: repeat without a previous rule".into()),
                })?;
                let rule = merge(base, &without_action(&doc));
                previous = Some(rule.clone());
                out.push(rule);
            }
            Some((a, mark)) => {
                return Err(Located {
                    mark,
                    kind: RuleErrorKind::BadValue(format!(
                        "unknown action {:?} (expected global, reset or repeat)",
                        a.unwrap_or_default()
                    )),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::yaml::load_documents;

    #[test]
    fn global_repeat_reset() {
        let text = "action: global\ntitle: T\nlogsource: {product: aws}\ndetection:\n  condition: sel\n---\nid: a\ndetection:\n  sel: {eventName: A}\n---\naction: repeat\nid: b\ndetection:\n  sel: {eventName: B}\n---\naction: reset\n---\nid: c\ntitle: C\n";
        let docs = resolve(load_documents(text).expect("yaml")).expect("resolve");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].get("title").and_then(Yaml::as_str), Some("T"));
        let det = docs[0].get("detection").expect("detection");
        assert!(det.get("condition").is_some() && det.get("sel").is_some());
        assert_eq!(docs[1].get("id").and_then(Yaml::as_str), Some("b"));
        let sel = docs[1]
            .get("detection")
            .and_then(|d| d.get("sel"))
            .expect("sel");
        assert_eq!(sel.get("eventName").and_then(Yaml::as_str), Some("B"));
        assert_eq!(docs[2].get("title").and_then(Yaml::as_str), Some("C"));
        assert!(docs[2].get("logsource").is_none());
    }
}
