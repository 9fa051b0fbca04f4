//! The Sigma feature table: one rule file per feature group under tests/sigma_features/,
//! each with positive and negative cases beside it (`x.yml` tested by `x.tests.yml`).
//!
//! * Every rule loads, every case passes, and every rule file (and every rule of it) has
//!   at least one `match` and one `no_match` case.
//! * `trailhound_only_*` files rely on readings where trailhound deliberately differs from
//!   the reference oracle (docs/records.md); every other file is checked against the
//!   oracle by `tests/sigma_features/check_with_oracle.py`.
//! * `disputed_*` files hold the cases where trailhound and the oracle disagree; each says
//!   why at its top. `spec_*` files hold cases that follow the spec's text where an easy
//!   reading (or the engine, earlier) went wrong; each names the spec line. All must pass.
//! * `expand` needs placeholder values, so its cases are written here, as are the load
//!   errors (each with file, line, column and kind).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use trailhound::event::RecordParser;
use trailhound::rules::selftest::{self, CaseResult, TestFile};
use trailhound::rules::{
    CompileContext, LoadOptions, LoadReport, Origin, RuleError, RuleErrorKind, RulePack,
};

const BUG_PREFIX: &str = "spec_";

fn features_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sigma_features")
}

fn file_name(p: &str) -> &str {
    Path::new(p)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(p)
}

fn is_bug_file(p: &str) -> bool {
    file_name(p).starts_with(BUG_PREFIX)
}

fn load_features() -> (RulePack, LoadReport, Vec<TestFile>) {
    let dir = features_dir();
    let opts = LoadOptions {
        builtin: false,
        paths: vec![dir.clone()],
    };
    let (pack, report) = RulePack::load(&opts).expect("tests/sigma_features is readable");
    let files = selftest::tests_under(&[dir]).expect("tests files are readable");
    (pack, report, files)
}

fn describe(r: &CaseResult) -> String {
    match &r.error {
        Some(e) => format!("{}: {}: {e}", r.location, r.name),
        None => format!(
            "{}: {}: expected {:?}, matched {:?}",
            r.location, r.name, r.expect, r.matched
        ),
    }
}

/// `expect` and `rule` of every case of a tests file.
fn case_keys(text: &str, location: &str) -> Vec<(String, Option<String>)> {
    let cases: Vec<serde_yaml_ng::Value> =
        serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{location}: {e}"));
    cases
        .iter()
        .map(|c| {
            let expect = c
                .get("expect")
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| panic!("{location}: a case without expect"))
                .to_string();
            let rule = c.get("rule").and_then(|v| v.as_str()).map(str::to_string);
            (expect, rule)
        })
        .collect()
}

fn is_uuid4(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b.iter()
            .enumerate()
            .all(|(i, c)| [8, 13, 18, 23].contains(&i) || c.is_ascii_hexdigit())
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

#[test]
fn every_sigma_feature_matches_and_misses_as_its_cases_say() {
    let (pack, report, files) = load_features();

    // Load: only the known engine deviations may fail to load; nothing is skipped.
    let (bug_errors, errors): (Vec<&RuleError>, Vec<&RuleError>) =
        report.errors.iter().partition(|e| is_bug_file(&e.file));
    assert!(errors.is_empty(), "load errors: {errors:#?}");
    // The pattern cases leave a selection out of `1 of selection_*`, `all of …`,
    // `1 of them` (underscore names) and the like on purpose: that is what they test.
    // `rules validate` points each out as unused; nothing else may warn.
    let unused: Vec<String> = report
        .warnings
        .iter()
        .filter_map(|w| match &w.kind {
            trailhound::rules::RuleErrorKind::UnusedSelection(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        unused,
        [
            "filter",
            "other",
            "_helper",
            "_optional",
            "deletion_noise",
            "sel_admin_other",
            "_sel",
            "_opt"
        ],
        "warnings: {:#?}",
        report.warnings
    );
    assert_eq!(
        report.warnings.len(),
        unused.len(),
        "warnings: {:#?}",
        report.warnings
    );
    assert!(report.skipped.is_empty(), "skipped: {:#?}", report.skipped);
    for r in pack.rules() {
        assert!(
            is_uuid4(&r.meta.id),
            "{}: id {} is not a uuid4",
            r.meta.title,
            r.meta.id
        );
    }

    // Every rule file has its tests file, and every tests file its rule file.
    let rule_files =
        trailhound::fswalk::files_under(&features_dir(), &trailhound::rules::is_rule_file)
            .expect("list rule files");
    assert!(rule_files.len() >= 25, "{} rule files", rule_files.len());
    for f in &rule_files {
        assert!(
            files
                .iter()
                .any(|t| t.rule_origin == Origin::File(f.clone())),
            "{} has no tests file",
            f.display()
        );
    }
    let tests_files = std::fs::read_dir(features_dir())
        .expect("list tests files")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tests.yml"))
        .count();
    assert_eq!(
        tests_files,
        files.len(),
        "a tests file without its rule file"
    );

    // At least one match and one no_match case per rule file and per rule.
    for f in &files {
        let keys = case_keys(&f.text, &f.location);
        for want in ["match", "no_match"] {
            assert!(
                keys.iter().any(|(e, _)| e == want),
                "{}: no {want} case",
                f.location
            );
        }
        for r in pack
            .rules()
            .iter()
            .filter(|r| r.meta.origin == f.rule_origin)
        {
            for want in ["match", "no_match"] {
                assert!(
                    keys.iter()
                        .any(|(e, rule)| e == want
                            && rule.as_ref().is_none_or(|id| *id == r.meta.id)),
                    "{}: rule {} ({}) has no {want} case",
                    f.location,
                    r.meta.id,
                    r.meta.title
                );
            }
        }
        for (_, rule) in &keys {
            if let Some(id) = rule
                && !is_bug_file(&f.location)
            {
                assert!(
                    pack.rules()
                        .iter()
                        .any(|r| &r.meta.id == id && r.meta.origin == f.rule_origin),
                    "{}: case names rule {id}, which is not a rule of its file",
                    f.location
                );
            }
        }
    }

    // Every case passes (the spec_* files are reported on their own lines).
    let results = selftest::run(&pack, &files);
    let (bug_results, results): (Vec<&CaseResult>, Vec<&CaseResult>) =
        results.iter().partition(|r| is_bug_file(&r.location));
    let failures: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| describe(r))
        .collect();
    let mut per_file: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &results {
        *per_file.entry(file_name(&r.location)).or_default() += 1;
    }
    for (f, n) in &per_file {
        println!("{n:4} cases  {f}");
    }
    let bug_failing: Vec<String> = bug_results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| describe(r))
        .collect();
    println!(
        "{} cases in {} files pass ({} match, {} no_match), {} rules",
        results.len(),
        per_file.len(),
        results
            .iter()
            .filter(|r| r.expect == Some(selftest::Expect::Match))
            .count(),
        results
            .iter()
            .filter(|r| r.expect == Some(selftest::Expect::NoMatch))
            .count(),
        pack.rules().len()
    );
    println!(
        "cases that follow the spec's text ({BUG_PREFIX}*): {} cases, {} of them fail today, {} rules do not load",
        bug_results.len(),
        bug_failing.len(),
        bug_errors.len()
    );
    for e in &bug_errors {
        println!("  load error: {e}");
    }
    for f in &bug_failing {
        println!("  {f}");
    }
    assert!(
        bug_errors.is_empty() && bug_failing.is_empty(),
        "spec_* cases fail"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
    assert!(results.len() >= 400, "only {} cases", results.len());
}

/// The cases of the `spec_*` files expect what the spec says (each file's comment names
/// the input and the spec line).
#[test]
fn spec_cases_follow_the_spec() {
    let (pack, report, files) = load_features();
    let errors: Vec<String> = report
        .errors
        .iter()
        .filter(|e| is_bug_file(&e.file))
        .map(ToString::to_string)
        .collect();
    let files: Vec<TestFile> = files
        .into_iter()
        .filter(|f| is_bug_file(&f.location))
        .collect();
    assert!(!files.is_empty());
    let failures: Vec<String> = selftest::run(&pack, &files)
        .iter()
        .filter(|r| !r.passed())
        .map(describe)
        .collect();
    assert!(
        errors.is_empty() && failures.is_empty(),
        "load errors:\n{}\nfailing cases:\n{}",
        errors.join("\n"),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// expand: placeholders come from the CompileContext (the --placeholders file).
// ---------------------------------------------------------------------------------------

const EXPAND_RULES: &str = r#"title: Admin users
id: 5a0f4c1e-3b7d-4a59-9c1e-2f6d8b7a4c01
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    userIdentity.userName|expand: '%Administrators%'
  condition: selection
---
title: Calls from the organisation's accounts
id: 5a0f4c1e-3b7d-4a59-9c1e-2f6d8b7a4c02
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    userIdentity.arn|expand|startswith: 'arn:aws:iam::%accounts%:'
  condition: selection
---
title: Two placeholders in one value
id: 5a0f4c1e-3b7d-4a59-9c1e-2f6d8b7a4c03
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    requestParameters.bucketName|expand: '%env%-logs-%region%'
  condition: selection
---
title: Expand and contains
id: 5a0f4c1e-3b7d-4a59-9c1e-2f6d8b7a4c04
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    userAgent|expand|contains: '%tools%'
  condition: selection
---
title: Without expand a placeholder is literal text
id: 5a0f4c1e-3b7d-4a59-9c1e-2f6d8b7a4c05
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    requestParameters.note: '%Administrators%'
  condition: selection
"#;

fn placeholders(entries: &[(&str, &[&str])]) -> CompileContext {
    let mut ctx = CompileContext::default();
    for (name, values) in entries {
        ctx.placeholders.insert(
            (*name).to_string(),
            values.iter().map(|v| (*v).to_string()).collect(),
        );
    }
    ctx
}

fn expand_context() -> CompileContext {
    placeholders(&[
        ("Administrators", &["alice", "ops-*"]),
        ("accounts", &["111122223333", "444455556666"]),
        ("env", &["prod", "stage"]),
        ("region", &["eu", "us"]),
        ("tools", &["pacu", "stratus"]),
    ])
}

fn compile(text: &str, ctx: &CompileContext) -> (RulePack, LoadReport) {
    let mut report = LoadReport::default();
    let sources = [(
        Origin::File(PathBuf::from("mem/rule.yml")),
        text.to_string(),
    )];
    let pack = RulePack::from_sources_with(&sources, &mut report, ctx);
    (pack, report)
}

/// Ids of the rules of `pack` that match `record`.
fn matching(pack: &RulePack, record: &str) -> Vec<String> {
    let mut parser = RecordParser::new();
    parser.parse(record.as_bytes(), |root| {
        let root = root.expect("test record is valid JSON");
        pack.rules()
            .iter()
            .filter(|r| r.matches(root))
            .map(|r| r.meta.id.clone())
            .collect()
    })
}

fn rule_id(n: u8) -> String {
    format!("5a0f4c1e-3b7d-4a59-9c1e-2f6d8b7a4c{n:02}")
}

#[test]
fn expand_replaces_placeholders_with_their_values() {
    let (pack, report) = compile(EXPAND_RULES, &expand_context());
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    assert_eq!(pack.rules().len(), 5);
    let cases: &[(&str, &[u8])] = &[
        // one placeholder, each value; a wildcard in a value is a wildcard
        (
            r#"{"eventName":"CreateUser","userIdentity":{"userName":"Alice"}}"#,
            &[1],
        ),
        (
            r#"{"eventName":"CreateUser","userIdentity":{"userName":"ops-deploy"}}"#,
            &[1],
        ),
        (
            r#"{"eventName":"CreateUser","userIdentity":{"userName":"bob"}}"#,
            &[],
        ),
        (
            r#"{"eventName":"CreateUser","userIdentity":{"userName":"alice2"}}"#,
            &[],
        ),
        // placeholder inside text, with startswith
        (
            r#"{"eventName":"ListUsers","userIdentity":{"arn":"arn:aws:iam::444455556666:user/x"}}"#,
            &[2],
        ),
        (
            r#"{"eventName":"ListUsers","userIdentity":{"arn":"arn:aws:iam::999999999999:user/x"}}"#,
            &[],
        ),
        // two placeholders: every combination
        (
            r#"{"eventName":"CreateBucket","requestParameters":{"bucketName":"stage-logs-us"}}"#,
            &[3],
        ),
        (
            r#"{"eventName":"CreateBucket","requestParameters":{"bucketName":"prod-logs-eu"}}"#,
            &[3],
        ),
        (
            r#"{"eventName":"CreateBucket","requestParameters":{"bucketName":"dev-logs-eu"}}"#,
            &[],
        ),
        // expand then contains
        (
            r#"{"eventName":"ListBuckets","userAgent":"Boto3 Stratus-Red-Team"}"#,
            &[4],
        ),
        (
            r#"{"eventName":"ListBuckets","userAgent":"aws-cli/2"}"#,
            &[],
        ),
        // no expand: the placeholder text itself
        (
            r#"{"eventName":"X","requestParameters":{"note":"%administrators%"}}"#,
            &[5],
        ),
        (
            r#"{"eventName":"X","requestParameters":{"note":"alice"}}"#,
            &[],
        ),
    ];
    for (record, want) in cases {
        let want: Vec<String> = want.iter().map(|&n| rule_id(n)).collect();
        assert_eq!(matching(&pack, record), want, "{record}");
    }
    println!("{} expand cases", cases.len());
}

#[test]
fn expand_without_a_value_for_the_placeholder_is_a_load_error() {
    let (pack, report) = compile(EXPAND_RULES, &placeholders(&[("accounts", &["1"])]));
    // Rules 1, 3 and 4 name placeholders without values; 2 and 5 load.
    assert_eq!(pack.rules().len(), 2, "{:#?}", report.errors);
    let lines: Vec<(usize, usize)> = report.errors.iter().map(|e| (e.line, e.col)).collect();
    assert_eq!(lines, [(6, 35), (22, 42), (30, 32)], "{:#?}", report.errors);
    for e in &report.errors {
        assert_eq!(e.file, "mem/rule.yml");
        assert!(
            matches!(&e.kind, RuleErrorKind::BadValue(m) if m.contains("placeholder %")),
            "{e}"
        );
    }
    assert!(report.errors[0].to_string().contains("%Administrators%"));
}

/// Spec (sigma-rules-specification.md, "Placeholders"): "A plain percent character can be
/// used by escaping it with a backslash ... `field|expand: \%plain%name%` handles `%plain`
/// as plain value and `%name%` as placeholder."
#[test]
fn expand_escaped_percent_is_plain_text() {
    let rule = r#"title: Escaped percent
id: 5a0f4c1e-3b7d-4a59-9c1e-2f6d8b7a4c10
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    requestParameters.note|expand: '\%plain%name%'
  condition: selection
"#;
    let (pack, report) = compile(rule, &placeholders(&[("name", &["x", "y"])]));
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    let id = vec![rule_id(10)];
    assert_eq!(
        matching(&pack, r#"{"requestParameters":{"note":"%plainy"}}"#),
        id
    );
    assert!(matching(&pack, r#"{"requestParameters":{"note":"\\plainx"}}"#).is_empty());
    assert!(matching(&pack, r#"{"requestParameters":{"note":"%plain%name%"}}"#).is_empty());
}

// ---------------------------------------------------------------------------------------
// Load errors: file, line, column and kind.
// ---------------------------------------------------------------------------------------

const FILE: &str = "rules/broken.yml";

/// Loads one rule text; returns its errors (and checks that nothing else loaded).
fn errors_of(text: &str) -> Vec<RuleError> {
    let mut report = LoadReport::default();
    let sources = [(Origin::File(PathBuf::from(FILE)), text.to_string())];
    let pack = RulePack::from_sources(&sources, &mut report);
    assert!(pack.rules().is_empty(), "the broken rule loaded");
    assert_eq!(report.errors.len(), 1, "{:#?}", report.errors);
    report.errors
}

/// A rule whose `detection` is `body` (indented by four spaces), at line 5 onwards.
fn rule_with(body: &str) -> String {
    let mut s = String::from(
        "title: Broken\nid: 9d1f2e3c-4b5a-4c6d-8e7f-0a1b2c3d4e5f\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n",
    );
    for line in body.lines() {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

fn at(e: &RuleError) -> (String, usize, usize) {
    (e.file.clone(), e.line, e.col)
}

#[test]
fn unknown_modifier_names_file_line_column() {
    let e = &errors_of(&rule_with("sel:\n  eventName|base65: x\ncondition: sel"))[0];
    assert_eq!(at(e), (FILE.into(), 6, 7));
    assert!(
        matches!(&e.kind, RuleErrorKind::UnknownModifier { modifier, field } if modifier == "base65" && field == "eventName"),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("rules/broken.yml:6:7: unknown modifier 'base65'"),
        "{e}"
    );
}

#[test]
fn not_as_a_modifier_gets_a_hint() {
    let e = &errors_of(&rule_with(
        "sel:\n  eventName: x\n  errorCode|not: AccessDenied\ncondition: sel",
    ))[0];
    assert_eq!(at(e), (FILE.into(), 7, 7));
    assert!(
        matches!(&e.kind, RuleErrorKind::UnknownModifier { modifier, .. } if modifier == "not"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("'not' is not a modifier: negate the selection in the condition"),
        "{e}"
    );
}

#[test]
fn undefined_identifier_in_the_condition() {
    let e = &errors_of(&rule_with(
        "selection:\n  eventName: x\ncondition: selection and not filter",
    ))[0];
    // `filter` starts at column 34: 4 spaces + "condition: " (11) + "selection and not " (18) + 1
    assert_eq!(at(e), (FILE.into(), 7, 34));
    assert_eq!(e.kind, RuleErrorKind::UndefinedIdentifier("filter".into()));
    // a pattern that names no selection is undefined too
    let e = &errors_of(&rule_with(
        "selection:\n  eventName: x\ncondition: 1 of filter_*",
    ))[0];
    assert_eq!(at(e), (FILE.into(), 7, 16));
    assert_eq!(
        e.kind,
        RuleErrorKind::UndefinedIdentifier("filter_*".into())
    );
}

#[test]
fn bad_regular_expression() {
    let e = &errors_of(&rule_with(
        "sel:\n  userAgent|re: 'python-(requests'\ncondition: sel",
    ))[0];
    assert_eq!(at(e), (FILE.into(), 6, 21));
    assert!(
        matches!(&e.kind, RuleErrorKind::BadValue(m) if m.contains("bad regular expression")),
        "{e}"
    );
}

#[test]
fn type_mismatches() {
    // a map where a value is expected
    let e = &errors_of(&rule_with("sel:\n  eventName: {a: b}\ncondition: sel"))[0];
    assert_eq!(at(e), (FILE.into(), 6, 18));
    assert!(
        matches!(&e.kind, RuleErrorKind::TypeMismatch { field, found: "a mapping", .. } if field == "eventName"),
        "{e}"
    );
    // exists needs true or false
    let e = &errors_of(&rule_with(
        "sel:\n  errorCode|exists: 'yes'\ncondition: sel",
    ))[0];
    assert_eq!(at(e), (FILE.into(), 6, 25));
    assert!(
        matches!(
            &e.kind,
            RuleErrorKind::TypeMismatch {
                expected: "true or false for exists",
                found: "a string",
                ..
            }
        ),
        "{e}"
    );
    // gt needs a number
    let e = &errors_of(&rule_with(
        "sel:\n  requestParameters.n|gt: many\ncondition: sel",
    ))[0];
    assert_eq!(at(e), (FILE.into(), 6, 31));
    assert!(
        matches!(
            &e.kind,
            RuleErrorKind::TypeMismatch {
                expected: "a number for lt/lte/gt/gte",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn conflicting_modifiers() {
    let e = &errors_of(&rule_with(
        "sel:\n  eventName|contains|startswith: Delete\ncondition: sel",
    ))[0];
    assert_eq!(at(e), (FILE.into(), 6, 7));
    assert_eq!(
        e.kind,
        RuleErrorKind::ConflictingModifiers {
            field: "eventName".into()
        }
    );
}

#[test]
fn base64_of_a_value_with_wildcards() {
    let e = &errors_of(&rule_with(
        "sel:\n  requestParameters.userData|base64: 'curl *'\ncondition: sel",
    ))[0];
    assert_eq!(at(e), (FILE.into(), 6, 42));
    assert!(
        matches!(&e.kind, RuleErrorKind::BadValue(m) if m.contains("wildcards")),
        "{e}"
    );
}

#[test]
fn invalid_yaml() {
    // `a: b` after a plain value on the same line: the parser stops at the second colon.
    let e = &errors_of(&rule_with(
        "sel:\n  eventName: CreateUser: x\ncondition: sel",
    ))[0];
    assert_eq!(at(e), (FILE.into(), 6, 28), "{e}");
    assert!(
        matches!(&e.kind, RuleErrorKind::Yaml(m) if m.contains("mapping values")),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("rules/broken.yml:6:28: invalid YAML"),
        "{e}"
    );
}

#[test]
fn unknown_collection_action() {
    let text = "action: global\nlogsource: {product: aws}\n---\naction: merge\ntitle: X\n";
    let e = &errors_of(text)[0];
    assert_eq!(at(e), (FILE.into(), 4, 9));
    assert!(
        matches!(&e.kind, RuleErrorKind::BadValue(m) if m.contains("unknown action \"merge\"")),
        "{e}"
    );
}
