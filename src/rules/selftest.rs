//! Rule tests that sit beside their rule: `x.yml` is tested by `x.tests.yml`.
//!
//! A tests file is a YAML list of cases:
//!
//! ```yaml
//! - name: real failed console login (invictus sample)
//!   expect: match            # or no_match
//!   record: {"eventName": "ConsoleLogin", ...}   # or record_file: path/relative/to/tests/file.json
//!   rule: 3f1c…              # optional: test only this rule id of the file
//! ```
//!
//! A case passes when the rules of `x.yml` (or the named one) match the record exactly
//! when `expect` says so. The same runner serves `cargo test` (every built-in rule) and
//! `trailhound rules test`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Origin, RulePack};
use crate::event::RecordParser;

/// What a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// The rule fires.
    Match,
    /// The rule stays silent.
    NoMatch,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    expect: Expect,
    #[serde(default)]
    record: Option<serde_json::Value>,
    #[serde(default)]
    record_file: Option<String>,
    #[serde(default)]
    rule: Option<String>,
}

/// One tests file to run.
#[derive(Debug, Clone)]
pub struct TestFile {
    /// The rule file it tests (same origin form as the rules).
    pub rule_origin: Origin,
    /// Where the tests file is (for messages and `record_file`).
    pub location: String,
    /// Directory `record_file` paths are relative to (`None` for the built-in pack).
    pub base_dir: Option<PathBuf>,
    /// The YAML text.
    pub text: String,
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The tests file.
    pub location: String,
    /// The case name (or its index when the file did not parse).
    pub name: String,
    /// What was expected.
    pub expect: Option<Expect>,
    /// Ids of the rules that matched.
    pub matched: Vec<String>,
    /// Why the case could not run.
    pub error: Option<String>,
}

impl CaseResult {
    /// Whether the case ran and its expectation held.
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && match self.expect {
                Some(Expect::Match) => !self.matched.is_empty(),
                Some(Expect::NoMatch) => self.matched.is_empty(),
                None => false,
            }
    }
}

fn tests_name_for(rule: &str) -> Option<String> {
    for ext in [".yml", ".yaml"] {
        if let Some(stem) = rule.strip_suffix(ext) {
            return Some(format!("{stem}.tests{ext}"));
        }
    }
    None
}

/// The tests files of the built-in pack.
pub fn builtin_tests() -> Vec<TestFile> {
    let mut out = Vec::new();
    for (name, _) in super::builtin::FILES {
        if !super::is_rule_file(Path::new(name)) {
            continue;
        }
        let Some(tname) = tests_name_for(name) else {
            continue;
        };
        if let Some((_, text)) = super::builtin::FILES.iter().find(|(n, _)| *n == tname) {
            out.push(TestFile {
                rule_origin: Origin::Builtin((*name).to_string()),
                location: format!("builtin:{tname}"),
                base_dir: None,
                text: (*text).to_string(),
            });
        }
    }
    out
}

/// The tests files beside the rule files under `roots`.
pub fn tests_under(roots: &[PathBuf]) -> std::io::Result<Vec<TestFile>> {
    let mut out = Vec::new();
    for root in roots {
        for rule in crate::fswalk::files_under(root, &super::is_rule_file)? {
            let Some(tname) = tests_name_for(&rule.to_string_lossy()) else {
                continue;
            };
            let tpath = PathBuf::from(tname);
            if let Ok(text) = std::fs::read_to_string(&tpath) {
                out.push(TestFile {
                    rule_origin: Origin::File(rule.clone()),
                    location: tpath.display().to_string(),
                    base_dir: tpath.parent().map(Path::to_path_buf),
                    text,
                });
            }
        }
    }
    Ok(out)
}

/// Rule files (by origin) that have no tests file.
pub fn untested<'a>(pack: &'a RulePack, files: &[TestFile]) -> Vec<&'a Origin> {
    let mut out: Vec<&Origin> = Vec::new();
    for r in pack.rules() {
        if !files.iter().any(|f| f.rule_origin == r.meta.origin) && !out.contains(&&r.meta.origin) {
            out.push(&r.meta.origin);
        }
    }
    out
}

/// Runs every case of every file against `pack`.
pub fn run(pack: &RulePack, files: &[TestFile]) -> Vec<CaseResult> {
    let mut parser = RecordParser::new();
    let mut results = Vec::new();
    for f in files {
        let cases: Vec<Case> = match serde_yaml_ng::from_str(&f.text) {
            Ok(c) => c,
            Err(e) => {
                results.push(CaseResult {
                    location: f.location.clone(),
                    name: "<file>".into(),
                    expect: None,
                    matched: Vec::new(),
                    error: Some(format!("invalid tests file: {e}")),
                });
                continue;
            }
        };
        let rules: Vec<_> = pack
            .rules()
            .iter()
            .filter(|r| r.meta.origin == f.rule_origin)
            .collect();
        for case in cases {
            let mut res = CaseResult {
                location: f.location.clone(),
                name: case.name.clone(),
                expect: Some(case.expect),
                matched: Vec::new(),
                error: None,
            };
            let selected: Vec<_> = rules
                .iter()
                .filter(|r| case.rule.as_ref().is_none_or(|id| &r.meta.id == id))
                .collect();
            if selected.is_empty() {
                res.error = Some(format!("no loaded rule from {} to test", f.rule_origin));
                results.push(res);
                continue;
            }
            let bytes = match (&case.record, &case.record_file) {
                (Some(v), None) => serde_json::to_vec(v).map_err(|e| e.to_string()),
                (None, Some(p)) => match &f.base_dir {
                    Some(dir) => std::fs::read(dir.join(p)).map_err(|e| format!("{p}: {e}")),
                    None => Err("record_file is not available for built-in rules".into()),
                },
                _ => Err("a case needs exactly one of record and record_file".into()),
            };
            match bytes {
                Err(e) => res.error = Some(e),
                Ok(bytes) => parser.parse(&bytes, |root| match root {
                    Ok(root) if root.as_object().is_some() => {
                        res.matched = selected
                            .iter()
                            .filter(|r| r.matches(root))
                            .map(|r| r.meta.id.clone())
                            .collect();
                    }
                    Ok(_) => res.error = Some("record is not a JSON object".into()),
                    Err(e) => res.error = Some(e.to_string()),
                }),
            }
            results.push(res);
        }
    }
    results
}
