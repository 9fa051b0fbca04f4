//! The built-in pack through the library: every rule loads cleanly, every rule file
//! has a tests file with both kinds of case, and every case passes.

use std::collections::BTreeMap;
use std::path::Path;

use trailhound::rules::selftest::{self, Expect, builtin_tests, run};
use trailhound::rules::{LoadOptions, Origin, RulePack, builtin, is_rule_file};

fn builtin_pack() -> RulePack {
    let (pack, report) = RulePack::load(&LoadOptions {
        builtin: true,
        paths: Vec::new(),
    })
    .expect("the built-in pack needs no file");
    let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    let warnings: Vec<String> = report.warnings.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "built-in rules with errors: {errors:#?}");
    assert!(
        warnings.is_empty(),
        "built-in rules with warnings: {warnings:#?}"
    );
    assert!(
        report.skipped.is_empty(),
        "built-in documents skipped: {:#?}",
        report.skipped
    );
    pack
}

fn rule_files() -> Vec<&'static str> {
    builtin::FILES
        .iter()
        .map(|(name, _)| *name)
        .filter(|n| is_rule_file(Path::new(n)))
        .collect()
}

#[test]
fn every_builtin_rule_loads_without_errors_or_warnings() {
    let pack = builtin_pack();
    let files = rule_files();
    assert!(!files.is_empty());
    // One rule per file (rules/README.md), ids unique; a correlation's file may also
    // hold the helper rules it names, which report nothing on their own.
    for f in &files {
        let in_file: Vec<(usize, &trailhound::rules::CompiledRule)> = pack
            .rules()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.meta.origin == Origin::Builtin((*f).to_string()))
            .collect();
        let correlations = in_file
            .iter()
            .filter(|(_, r)| r.kind == trailhound::rules::RuleKind::Correlation)
            .count();
        if correlations == 0 {
            assert_eq!(in_file.len(), 1, "{f} holds {} rules", in_file.len());
        } else {
            assert_eq!(correlations, 1, "{f}: one correlation per file");
            for (i, r) in &in_file {
                if r.kind != trailhound::rules::RuleKind::Correlation {
                    assert!(
                        pack.is_silent(*i as u32),
                        "{f}: helper {} is not silent",
                        r.meta.id
                    );
                }
            }
        }
    }
    let mut ids: Vec<&str> = pack.rules().iter().map(|r| r.meta.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), pack.rules().len(), "duplicate rule ids");
    let mut reporting = 0;
    for (i, r) in pack.rules().iter().enumerate() {
        assert!(!r.meta.title.is_empty(), "{} has no title", r.meta.id);
        if pack.is_silent(i as u32) {
            continue;
        }
        // Every rule that reports is documented and mapped to ATT&CK: a tactic and a
        // technique (attack.tNNNN or attack.tNNNN.NNN).
        let m = &r.meta;
        assert!(
            m.tags.iter().any(|t| t
                .strip_prefix("attack.t")
                .is_some_and(|n| n.as_bytes().first().is_some_and(u8::is_ascii_digit))),
            "{} has no ATT&CK technique tag",
            m.id
        );
        assert!(
            m.tags
                .iter()
                .any(|t| t.starts_with("attack.") && !t.starts_with("attack.t")),
            "{} has no ATT&CK tactic tag",
            m.id
        );
        assert!(m.description.is_some(), "{} has no description", m.id);
        assert!(!m.references.is_empty(), "{} has no references", m.id);
        assert!(
            !m.falsepositives.is_empty(),
            "{} has no falsepositives",
            m.id
        );
        assert!(m.status.is_some(), "{} has no status", m.id);
        reporting += 1;
    }
    assert!(
        reporting >= 60,
        "the pack has {reporting} reporting rules; it promises at least 60"
    );
    // The pack is also what the binary lists.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(["rules", "list", "--format", "json"])
        .output()
        .expect("rules list");
    assert!(out.status.success());
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), pack.rules().len());
    for (row, r) in listed.iter().zip(pack.rules()) {
        assert_eq!(row["id"], r.meta.id.as_str());
        assert_eq!(row["title"], r.meta.title.as_str());
        assert_eq!(row["level"], r.meta.level.as_str());
        assert_eq!(row["kind"], r.kind.as_str());
        assert_eq!(row["file"], r.meta.origin.to_string().as_str());
        assert_eq!(
            row["tags"].as_array().map(Vec::len),
            Some(r.meta.tags.len())
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(["rules", "list"])
        .output()
        .expect("rules list");
    let table = String::from_utf8_lossy(&out.stdout);
    let mut lines = table.lines();
    let head: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(head, ["ID", "LEVEL", "KIND", "TITLE", "TAGS", "FILE"]);
    assert_eq!(lines.count(), pack.rules().len());
}

#[test]
fn every_rule_file_has_match_and_no_match_cases() {
    let pack = builtin_pack();
    let tests = builtin_tests();
    let untested: Vec<String> = selftest::untested(&pack, &tests)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        untested.is_empty(),
        "rule files without tests: {untested:#?}"
    );
    assert_eq!(tests.len(), rule_files().len());
    let results = run(&pack, &tests);
    let mut kinds: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for t in &tests {
        kinds.insert(t.location.as_str(), (0, 0));
    }
    for r in &results {
        let e = kinds.entry(r.location.as_str()).or_default();
        match r.expect {
            Some(Expect::Match) => e.0 += 1,
            Some(Expect::NoMatch) => e.1 += 1,
            None => {}
        }
    }
    let lacking: Vec<_> = kinds
        .iter()
        .filter(|(_, (m, n))| *m == 0 || *n == 0)
        .collect();
    assert!(
        lacking.is_empty(),
        "tests files without a match and a no_match case (match, no_match): {lacking:#?}"
    );
}

#[test]
fn every_builtin_test_case_passes() {
    let pack = builtin_pack();
    let tests = builtin_tests();
    let results = run(&pack, &tests);
    assert!(!results.is_empty());
    let failures: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            let why = match (&r.error, r.expect) {
                (Some(e), _) => e.clone(),
                (None, Some(Expect::Match)) => "expected a match, got none".into(),
                (None, _) => format!("expected no match, matched {}", r.matched.join(", ")),
            };
            format!("{}: {}: {why}", r.location, r.name)
        })
        .collect();
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} built-in rule tests failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
    // `trailhound rules test` runs the same cases and agrees.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(["rules", "test"])
        .output()
        .expect("rules test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let summary = format!(
        "{} cases in {} files: {} passed, 0 failed",
        results.len(),
        tests.len(),
        results.len()
    );
    assert!(text.contains(&summary), "expected '{summary}' in:\n{text}");
}

#[test]
fn rules_validate_and_test_on_the_fixture_rules() {
    // A directory of user rules: validate is clean, test finds no tests files.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rules");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(["rules", "validate", "--strict", dir])
        .output()
        .expect("rules validate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("0 errors, 0 warnings"), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(["rules", "validate", "--strict", "/nonexistent/rules"])
        .output()
        .expect("rules validate");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn rules_readme_table_describes_the_pack() {
    // rules/README.md lists every rule with its title, level, status and number of
    // test cases; the table must say what the pack holds.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/README.md"))
        .expect("rules/README.md");
    let pack = builtin_pack();
    let results = run(&pack, &builtin_tests());
    let rows: Vec<Vec<String>> = readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), pack.rules().len(), "rows in the rules table");
    for row in &rows {
        let [file, title, level, status, _tags, cases] = &row[..] else {
            panic!("unexpected row {row:?}");
        };
        let rule = pack
            .rules()
            .iter()
            .find(|r| r.meta.origin == Origin::Builtin(file.clone()) && &r.meta.title == title)
            .unwrap_or_else(|| panic!("{file}: {title} is in the table but not in the pack"));
        assert_eq!(rule.meta.level.as_str(), level, "{file}: level");
        assert_eq!(
            rule.meta.status.as_deref().unwrap_or("—"),
            status.as_str(),
            "{file}: status"
        );
        let location = format!("builtin:{}", file.replace(".yml", ".tests.yml"));
        let n = results.iter().filter(|r| r.location == location).count();
        assert_eq!(n.to_string(), *cases, "{file}: number of tests");
    }
}

#[test]
fn threshold_versions_differ_in_level_from_their_per_event_rules() {
    // A CloudWatch alarm that names a single-record rule as `related` (the same events,
    // counted per period) and a correlation that reports beside the rule it counts
    // (`generate: true`) must not share that rule's level: a triage queue sorted by
    // level has to tell the burst from the single event.
    let pack = builtin_pack();
    let by_id = |id: &str| pack.rules().iter().find(|r| r.meta.id == id);
    let mut pairs = 0;
    for r in pack.rules() {
        let mut per_event: Vec<&trailhound::rules::CompiledRule> = Vec::new();
        if r.alarm.is_some() {
            per_event.extend(r.meta.related.iter().filter_map(|rel| by_id(&rel.id)));
        }
        if let Some(spec) = &r.correlation
            && spec.generate
        {
            per_event.extend(
                spec.rules
                    .iter()
                    .filter_map(|(name, _)| pack.rules().iter().find(|o| o.meta.is_named(name))),
            );
        }
        for e in per_event {
            assert_ne!(
                r.meta.level, e.meta.level,
                "{} and its per-event rule {} share a level",
                r.meta.id, e.meta.id
            );
            pairs += 1;
        }
    }
    assert!(pairs >= 4, "{pairs} threshold/per-event pairs");
}
