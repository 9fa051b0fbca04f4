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
//! when `expect` says so. A case may give `records: [...]` instead, a sequence in event
//! time, for correlation and alarm rules: it matches when the rule reports anything
//! over the sequence (the stateful stage runs as in `detect`, without dedup). The same runner serves `cargo test` (every built-in rule) and
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
    /// A sequence of records, for correlation and alarm rules: the case matches when
    /// the rule reports anything over the whole sequence (in event time).
    #[serde(default)]
    records: Option<Vec<serde_json::Value>>,
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

/// Runs a record sequence through the rules and the stateful stage (no dedup); returns
/// the ids among `ids` that reported anything, once each.
fn run_sequence(
    pack: &RulePack,
    records: &[serde_json::Value],
    ids: &[&str],
) -> Result<Vec<String>, String> {
    use crate::state::{self, At, Emit, RecordKey, Stage, StateBatch, StateConfig};
    let cfg = StateConfig {
        dedup_window: None,
        ..StateConfig::default()
    };
    let hasher = state::KeyHasher::new();
    let mut stage = Stage::new(pack, &cfg, hasher.clone());
    let known = crate::event::KnownPaths::new();
    let mut parser = RecordParser::new();
    let mut batch = StateBatch::default();
    let (mut scratch, mut hits) = (Vec::new(), Vec::new());
    let mut matched: Vec<String> = Vec::new();
    let note = |id: &str, matched: &mut Vec<String>| {
        if ids.contains(&id) && !matched.iter().any(|m| m == id) {
            matched.push(id.to_string());
        }
    };
    for (i, rec) in records.iter().enumerate() {
        let bytes = serde_json::to_vec(rec).map_err(|e| e.to_string())?;
        let mut err = None;
        parser.parse(&bytes, |root| {
            let root = match root {
                Ok(r) if r.as_object().is_some() => r,
                Ok(_) => {
                    err = Some(format!("record {i} is not a JSON object"));
                    return;
                }
                Err(e) => {
                    err = Some(e.to_string());
                    return;
                }
            };
            let time = known
                .event_time
                .first(root)
                .or_else(|| known.timestamp.first(root))
                .and_then(crate::event::path::as_str)
                .and_then(state::parse_event_time)
                .unwrap_or(state::NO_TIME);
            let rel = i as u64;
            batch.max_time = Some(batch.max_time.map_or(time, |m| m.max(time)));
            batch.records.push(RecordKey { rel, key: 0, time });
            pack.evaluate(root, &mut scratch, &mut hits);
            let mut event_json = None;
            for &h in &hits {
                let rule = &pack.rules()[h as usize];
                if !pack.is_silent(h) {
                    note(&rule.meta.id, &mut matched);
                }
                let at = At {
                    rel,
                    pos: crate::decode::Position {
                        offset: 0,
                        line: rel + 1,
                    },
                    time,
                    seen: batch.max_time.unwrap_or(time),
                };
                state::contribute(
                    pack,
                    h,
                    root,
                    &bytes,
                    &known,
                    at,
                    &hasher,
                    &mut event_json,
                    &mut batch,
                );
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
    }
    if let Some(stage) = stage.as_mut() {
        let mut emit = Emit::default();
        let input: std::sync::Arc<str> = "\"<test>\"".into();
        let rendered = crate::sink::rendered::Rendered::default();
        stage.run_unit(&mut batch, &rendered, (0, &input), 0, &mut emit);
        stage.finish(&mut emit);
        for r in emit.rules {
            if let Some(rule) = pack.rules().get(r as usize) {
                note(&rule.meta.id, &mut matched);
            }
        }
    }
    Ok(matched)
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
            if let Some(seq) = &case.records {
                if case.record.is_some() || case.record_file.is_some() {
                    res.error = Some("a case has one of record, record_file and records".into());
                } else {
                    let ids: Vec<&str> = selected.iter().map(|r| r.meta.id.as_str()).collect();
                    match run_sequence(pack, seq, &ids) {
                        Ok(m) => res.matched = m,
                        Err(e) => res.error = Some(e),
                    }
                }
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
