//! The rule-CI commands end to end, through the binary: `rules validate` on one broken
//! fixture per check (each reported at its `file:line:col`), on the built-in pack and on
//! SigmaHQ's AWS rules (clean); SARIF and JUnit output; `rules test` failing on a wrong
//! expectation; `rules explain` on real records; rule selection (`--rule`,
//! `--exclude-rule`, `--tags`, `rules.enable/disable/tags`), Sigma filter documents and
//! `related: obsolete` in `detect`; the shipped pack against `schemas/rule.schema.json`
//! and the Sigma specification's own schemas.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{detect, root, run, sample};
use serde_json::Value;

fn broken_dir() -> PathBuf {
    root().join("tests/fixtures/broken_rules")
}

fn json_out(args: &[&str]) -> (i32, Value) {
    let out = run(args, b"");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            out.stderr
        )
    });
    (out.code, v)
}

/// (file, line, col, severity, check) from a fixture's `# expect:` line.
fn expectation(path: &Path) -> (usize, usize, String, String) {
    let text = std::fs::read_to_string(path).expect("fixture");
    let first = text.lines().next().unwrap_or_default();
    let spec = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{}: first line is not '# expect: …'", path.display()));
    let parts: Vec<&str> = spec.split_whitespace().collect();
    let [pos, severity, check] = parts[..] else {
        panic!("{}: bad expect line {spec:?}", path.display());
    };
    let (line, col) = pos.split_once(':').expect("LINE:COL");
    (
        line.parse().expect("line"),
        col.parse().expect("col"),
        severity.to_string(),
        check.to_string(),
    )
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(broken_dir())
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    v.sort();
    v
}

#[test]
fn each_broken_fixture_is_reported_at_its_line_and_column() {
    let mut checks = BTreeSet::new();
    for f in fixtures() {
        let (line, col, severity, check) = expectation(&f);
        let path = f.to_string_lossy().to_string();
        let (code, v) = json_out(&[
            "rules",
            "validate",
            "--no-builtin",
            "--format",
            "json",
            &path,
        ]);
        let diags = v["diagnostics"].as_array().expect("diagnostics");
        assert_eq!(diags.len(), 1, "{path}: exactly one problem: {diags:#?}");
        let d = &diags[0];
        assert_eq!(
            (
                d["line"].as_u64(),
                d["col"].as_u64(),
                d["severity"].as_str(),
                d["check"].as_str()
            ),
            (
                Some(line as u64),
                Some(col as u64),
                Some(severity.as_str()),
                Some(check.as_str())
            ),
            "{path}: {d}"
        );
        assert_eq!(d["file"], path.as_str());
        let want_code = if severity == "error" { 1 } else { 0 };
        assert_eq!(code, want_code, "{path}: exit code");
        // Text: file:line:col: severity: message [check].
        let out = run(&["rules", "validate", "--no-builtin", &path], b"");
        let text = String::from_utf8_lossy(&out.stdout);
        let prefix = format!("{path}:{line}:{col}: {severity}: ");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&prefix) && l.ends_with(&format!("[{check}]"))),
            "{path}: no line starting {prefix:?} in\n{text}"
        );
        // --strict turns a warning into an error.
        let strict = run(
            &["rules", "validate", "--no-builtin", "--strict", &path],
            b"",
        );
        assert_eq!(strict.code, 1, "{path} --strict");
        checks.insert(check);
    }
    assert!(
        checks.len() >= 20,
        "the fixtures cover {} checks: {checks:?}",
        checks.len()
    );
}

#[test]
fn the_builtin_pack_and_sigmahq_aws_rules_validate_clean() {
    let (code, v) = json_out(&["rules", "validate", "--strict", "--format", "json"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["errors"], 0);
    assert_eq!(v["warnings"], 0);
    assert!(v["rules"].as_u64().unwrap_or(0) >= 60, "{v}");
    let sigma = root().join("tests/sigmahq/rules");
    let (code, v) = json_out(&[
        "rules",
        "validate",
        "--strict",
        "--format",
        "json",
        &sigma.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(
        (v["errors"].as_u64(), v["warnings"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(v["rules"], 57, "{v}");
}

#[test]
fn sarif_lists_every_problem_with_its_region() {
    let dir = broken_dir().to_string_lossy().to_string();
    let (code, json) = json_out(&[
        "rules",
        "validate",
        "--no-builtin",
        "--format",
        "json",
        &dir,
    ]);
    assert_eq!(code, 1);
    let (code, sarif) = json_out(&[
        "rules",
        "validate",
        "--no-builtin",
        "--format",
        "sarif",
        &dir,
    ]);
    assert_eq!(code, 1);
    assert_eq!(sarif["version"], "2.1.0");
    let run0 = &sarif["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "trailhound");
    let rule_ids: BTreeSet<&str> = run0["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    let results = run0["results"].as_array().expect("results");
    let diags = json["diagnostics"].as_array().expect("diagnostics");
    assert_eq!(results.len(), diags.len());
    for (r, d) in results.iter().zip(diags) {
        let id = r["ruleId"].as_str().expect("ruleId");
        assert!(rule_ids.contains(id), "{id} is not described");
        assert_eq!(r["ruleId"], d["check"]);
        assert_eq!(r["level"], d["severity"]);
        let loc = &r["locations"][0]["physicalLocation"];
        let file = d["file"].as_str().expect("file");
        assert!(file.starts_with('/'), "{file}");
        assert_eq!(
            loc["artifactLocation"]["uri"],
            format!("file://{file}").as_str()
        );
        assert_eq!(loc["region"]["startLine"], d["line"]);
        assert_eq!(loc["region"]["startColumn"], d["col"]);
        assert!(!r["message"]["text"].as_str().unwrap_or("").is_empty());
    }
}

/// Parses XML and returns (element name, attributes) of every start or empty element;
/// panics unless the document is well-formed.
fn xml_elements(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut out = Vec::new();
    let mut depth = 0i32;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.expect("attribute");
                        (
                            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                            a.unescape_value().expect("value").into_owned(),
                        )
                    })
                    .collect();
                out.push((name, attrs));
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!(
                "not well-formed XML at {}: {e}\n{text}",
                reader.buffer_position()
            ),
        }
        depth += 1;
    }
    assert!(depth > 0);
    out
}

fn attr<'a>(attrs: &'a [(String, String)], k: &str) -> &'a str {
    attrs
        .iter()
        .find(|(n, _)| n == k)
        .map_or("", |(_, v)| v.as_str())
}

#[test]
fn junit_reports_of_validate_and_test() {
    let dir = broken_dir().to_string_lossy().to_string();
    let out = run(
        &[
            "rules",
            "validate",
            "--no-builtin",
            "--format",
            "junit",
            &dir,
        ],
        b"",
    );
    assert_eq!(out.code, 1);
    let el = xml_elements(&String::from_utf8_lossy(&out.stdout));
    let cases = el.iter().filter(|(n, _)| n == "testcase").count();
    let failures = el.iter().filter(|(n, _)| n == "failure").count();
    let files = fixtures().len();
    let with_errors = fixtures()
        .iter()
        .filter(|f| expectation(f).2 == "error")
        .count();
    assert_eq!(cases, files);
    assert_eq!(failures, with_errors);
    let suite = el.iter().find(|(n, _)| n == "testsuite").expect("suite");
    assert_eq!(attr(&suite.1, "failures"), with_errors.to_string());

    // rules test: one test case per case of the built-in pack, none failing.
    let (_, j) = json_out(&["rules", "test", "--format", "json"]);
    let out = run(&["rules", "test", "--format", "junit"], b"");
    assert_eq!(out.code, 0);
    let el = xml_elements(&String::from_utf8_lossy(&out.stdout));
    let cases = el.iter().filter(|(n, _)| n == "testcase").count();
    assert_eq!(Some(cases as u64), j["cases"].as_u64());
    assert!(cases >= 120, "{cases} cases");
    assert_eq!(el.iter().filter(|(n, _)| n == "failure").count(), 0);
}

/// A rule directory with one rule and a tests file whose second case is wrong.
fn rule_repo(dir: &Path) {
    let rule =
        std::fs::read_to_string(root().join("rules/aws_console_login_failure.yml")).expect("rule");
    std::fs::write(dir.join("console.yml"), rule).expect("write");
    let record = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":"111122223333","userName":"alice"},"eventTime":"2026-11-30T10:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","userAgent":"Mozilla/5.0","requestParameters":null,"responseElements":{"ConsoleLogin":"Failure"},"additionalEventData":{"MFAUsed":"No"},"errorMessage":"Failed authentication","eventID":"9b2f1c6e-1111-4a2b-8c3d-000000000001","eventType":"AwsConsoleSignIn","recipientAccountId":"111122223333"}"#;
    std::fs::write(
        dir.join("console.tests.yml"),
        format!(
            "- name: failed sign-in fires\n  expect: match\n  record: {record}\n- name: wrongly expected silent\n  expect: no_match\n  record: {record}\n"
        ),
    )
    .expect("write");
}

#[test]
fn rules_test_fails_when_an_expectation_does_not_hold() {
    let tmp = tempfile::tempdir().expect("tmp");
    rule_repo(tmp.path());
    let d = tmp.path().to_string_lossy().to_string();
    let out = run(&["rules", "test", &d], b"");
    assert_eq!(out.code, 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL") && text.contains("wrongly expected silent"),
        "{text}"
    );
    assert!(
        text.contains("2 cases in 1 files: 1 passed, 1 failed"),
        "{text}"
    );
    let (code, j) = json_out(&["rules", "test", "--format", "json", &d]);
    assert_eq!(code, 1);
    let results = j["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["passed"], true);
    assert_eq!(results[1]["passed"], false);
    assert!(
        results[1]["error"]
            .as_str()
            .unwrap_or("")
            .contains("expected no match")
    );
    // A rule file without tests is reported as skipped, not failed.
    let other =
        std::fs::read_to_string(root().join("rules/aws_root_account_usage.yml")).expect("rule");
    std::fs::write(tmp.path().join("lonely.yml"), other).expect("write");
    let out = run(&["rules", "test", "--format", "junit", &d], b"");
    assert_eq!(out.code, 1);
    let el = xml_elements(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(el.iter().filter(|(n, _)| n == "failure").count(), 1);
    assert_eq!(el.iter().filter(|(n, _)| n == "skipped").count(), 1);
    let top = el
        .iter()
        .find(|(n, _)| n == "testsuites")
        .expect("testsuites");
    assert_eq!(attr(&top.1, "tests"), "3");
    assert_eq!(attr(&top.1, "failures"), "1");
}

/// ConsoleLogin records of a real sample, as NDJSON.
fn console_logins(dir: &Path) -> (PathBuf, Vec<Value>) {
    let raw = common::gunzip_file(&sample("invictus-aws-dataset"));
    let recs: Vec<Value> = common::lines(&raw)
        .iter()
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter(|r| r["eventName"] == "ConsoleLogin")
        .collect();
    assert!(recs.len() >= 2, "the sample has console logins");
    let path = dir.join("logins.ndjson");
    let text: String = recs.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&path, text).expect("write");
    (path, recs)
}

#[test]
fn explain_shows_which_selections_held_on_real_records() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (path, recs) = console_logins(tmp.path());
    let p = path.to_string_lossy().to_string();
    let (code, v) = json_out(&[
        "rules",
        "explain",
        "aws_console_login_without_mfa",
        &p,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let list = v.as_array().expect("array");
    assert_eq!(list.len(), recs.len());
    for (x, rec) in list.iter().zip(&recs) {
        let without_mfa = rec["additionalEventData"]["MFAUsed"] == "No"
            && rec["responseElements"]["ConsoleLogin"] == "Success";
        assert_eq!(x["matched"], without_mfa, "{x:#}");
        assert_eq!(x["event"]["eventID"], rec["eventID"]);
        let sel = &x["detection"]["selections"][0];
        let mfa = sel["groups"][0]
            .as_array()
            .expect("tests")
            .iter()
            .find(|t| {
                t["test"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("additionalEventData.MFAUsed")
            })
            .expect("MFAUsed test");
        assert_eq!(mfa["held"], rec["additionalEventData"]["MFAUsed"] == "No");
        assert_eq!(
            mfa["value"].as_str(),
            Some(rec["additionalEventData"]["MFAUsed"].to_string().as_str())
        );
    }
    // Text: a verdict line per record and a mark per test.
    let out = run(
        &["rules", "explain", "aws_console_login_without_mfa", &p],
        b"",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(": MATCH: ") && text.contains(": no match: "),
        "{text}"
    );
    assert!(text.contains("✗ additionalEventData.MFAUsed"), "{text}");
    // A correlation explains the rules it counts.
    let brute =
        std::fs::read_to_string(root().join("rules/aws_console_brute_force.yml")).expect("rule");
    let id = brute
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("id")
        .trim()
        .to_string();
    let (_, v) = json_out(&["rules", "explain", &id, &p, "--format", "json"]);
    let first = &v[0];
    assert_eq!(first["kind"], "correlation");
    assert_eq!(first["correlation"]["kind"], "event_count");
    assert!(
        !first["correlation"]["inputs"]
            .as_array()
            .expect("inputs")
            .is_empty()
    );
    // Unknown rule: usage error.
    let out = run(&["rules", "explain", "no-such-rule", &p], b"");
    assert_eq!(out.code, 2);
}

/// Rule ids of the findings of a detect run.
fn rule_ids(out: &common::Output) -> Vec<String> {
    out.findings()
        .iter()
        .map(|f| f["rule"]["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn rule_selection_by_id_exclusion_tags_and_config() {
    let samples: Vec<String> = common::samples()
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    let mut args: Vec<&str> = vec!["--no-dedup"];
    args.extend(samples.iter().map(String::as_str));
    let all = detect(&args, b"");
    let ids = rule_ids(&all);
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for id in &ids {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    assert!(counts.len() >= 10, "{counts:?}");
    let (&busiest, &n) = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .expect("a rule fired");

    let mut only = vec!["--rule", busiest];
    only.extend(&args);
    let out = detect(&only, b"");
    let got = rule_ids(&out);
    assert_eq!(got.len(), n);
    assert!(got.iter().all(|i| i == busiest));

    let mut excl = vec!["--exclude-rule", busiest];
    excl.extend(&args);
    let out = detect(&excl, b"");
    let got = rule_ids(&out);
    assert_eq!(got.len(), ids.len() - n);
    assert!(!got.iter().any(|i| i == busiest));

    let mut tagged = vec!["--tags", "attack.t1078*"];
    tagged.extend(&args);
    let out = detect(&tagged, b"");
    let findings = out.findings();
    assert!(!findings.is_empty());
    for f in &findings {
        let tags = f["rule"]["tags"].as_array().expect("tags");
        assert!(
            tags.iter()
                .any(|t| t.as_str().unwrap_or("").starts_with("attack.t1078")),
            "{f}"
        );
    }

    // The same through the config file.
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(&cfg, format!("rules:\n  disable: [{busiest}]\n")).expect("write");
    let mut with_cfg = vec!["--config", cfg.to_str().expect("utf8")];
    with_cfg.extend(&args);
    assert_eq!(rule_ids(&detect(&with_cfg, b"")).len(), ids.len() - n);
    std::fs::write(&cfg, format!("rules:\n  enable: [{busiest}]\n")).expect("write");
    assert_eq!(rule_ids(&detect(&with_cfg, b"")).len(), n);

    // A typo in --rule is refused rather than running nothing.
    let out = run(&["--rule", "not-a-rule", &samples[0]], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("not-a-rule"), "{}", out.stderr);
}

#[test]
fn a_sigma_filter_silences_the_rules_it_names() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (path, recs) = console_logins(tmp.path());
    let p = path.to_string_lossy().to_string();
    let rule_id = std::fs::read_to_string(root().join("rules/aws_console_login_without_mfa.yml"))
        .expect("rule")
        .lines()
        .find_map(|l| l.strip_prefix("id: ").map(|s| s.trim().to_string()))
        .expect("id");
    let before = detect(&["--no-dedup", "--rule", &rule_id, &p], b"");
    let hits = before.findings();
    assert!(!hits.is_empty(), "the sample has a sign-in without MFA");
    let user = hits[0]["record"]["userIdentity"]["arn"]
        .as_str()
        .expect("arn")
        .to_string();
    let filters = tmp.path().join("filters");
    std::fs::create_dir(&filters).expect("dir");
    std::fs::write(
        filters.join("mf_break_glass.yml"),
        format!(
            "title: Break-glass user signs in without MFA by design\nid: 2b8e6a1c-4f3d-4e9a-9c70-5d1e8f2a6b34\nlogsource:\n    product: aws\n    service: cloudtrail\nfilter:\n    rules:\n        - {rule_id}\n    selection:\n        userIdentity.arn: '{user}'\n    condition: not selection\n"
        ),
    )
    .expect("write");
    let f = filters.to_string_lossy().to_string();
    let after = detect(
        &["--no-dedup", "--rule", &rule_id, "--filters", &f, &p],
        b"",
    );
    let left = after.findings();
    let expected = hits
        .iter()
        .filter(|h| h["record"]["userIdentity"]["arn"] != user.as_str())
        .count();
    assert_eq!(left.len(), expected);
    assert!(left.len() < hits.len());
    // A filter in a rules directory works the same.
    let via_rules = detect(&["--no-dedup", "--rule", &rule_id, "--rules", &f, &p], b"");
    assert_eq!(via_rules.findings().len(), expected);
    // explain shows the filter.
    let (_, v) = json_out(&[
        "rules", "explain", &rule_id, &p, "--rules", &f, "--format", "json",
    ]);
    let silenced: Vec<&Value> = v
        .as_array()
        .expect("array")
        .iter()
        .filter(|x| x["filters"][0]["matched"] == false)
        .collect();
    assert!(!silenced.is_empty());
    assert!(silenced.iter().all(|x| x["matched"] == false));
    assert!(recs.len() >= silenced.len());
    // `rules: any` (or no `rules:`) applies the filter to every rule.
    std::fs::write(
        filters.join("mf_break_glass.yml"),
        format!(
            "title: Break-glass user is expected everywhere\nid: 2b8e6a1c-4f3d-4e9a-9c70-5d1e8f2a6b34\nlogsource:\n    product: aws\nfilter:\n    rules: any\n    selection:\n        userIdentity.arn: '{user}'\n    condition: not selection\n"
        ),
    )
    .expect("write");
    let any = detect(&["--no-dedup", "--filters", &f, &p], b"");
    let everything = detect(&["--no-dedup", &p], b"");
    let by_user = |o: &common::Output| {
        o.findings()
            .iter()
            .filter(|h| h["record"]["userIdentity"]["arn"] == user.as_str())
            .count()
    };
    assert!(by_user(&everything) > 0);
    assert_eq!(by_user(&any), 0);
    assert!(any.findings().len() < everything.findings().len());
}

#[test]
fn a_rule_that_obsoletes_another_replaces_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let body = "logsource:\n    product: aws\n    service: cloudtrail\ndetection:\n    selection:\n        eventName: ConsoleLogin\n    condition: selection\n";
    std::fs::write(
        tmp.path().join("old.yml"),
        format!(
            "title: Old console login\nid: 11111111-1111-4111-8111-111111111111\nlevel: low\n{body}"
        ),
    )
    .expect("write");
    std::fs::write(
        tmp.path().join("new.yml"),
        format!("title: New console login\nid: 22222222-2222-4222-8222-222222222222\nrelated:\n    - id: 11111111-1111-4111-8111-111111111111\n      type: obsolete\nlevel: medium\n{body}"),
    )
    .expect("write");
    let (path, _) = console_logins(tmp.path());
    let d = tmp.path().to_string_lossy().to_string();
    let out = detect(
        &[
            "--no-builtin",
            "--no-dedup",
            "--rules",
            &d,
            &path.to_string_lossy(),
        ],
        b"",
    );
    let ids: BTreeSet<String> = rule_ids(&out).into_iter().collect();
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        ["22222222-2222-4222-8222-222222222222"]
    );
    let out = run(&["rules", "validate", &d], b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rule 11111111-1111-4111-8111-111111111111 is obsoleted by 22222222-2222-4222-8222-222222222222"),
        "{text}"
    );
    assert_eq!(out.code, 0, "{text}");
    // Built-in rules that supersede SigmaHQ rules: loading both runs only the pack's.
    let sigma = root()
        .join("tests/sigmahq/rules")
        .to_string_lossy()
        .to_string();
    let (_, with) = json_out(&["rules", "list", "--builtin", &sigma, "--format", "json"]);
    let (_, alone) = json_out(&["rules", "list", &sigma, "--format", "json"]);
    let ids = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .expect("array")
            .iter()
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect()
    };
    let (with, alone) = (ids(&with), ids(&alone));
    let obsoleted: Vec<&String> = alone.iter().filter(|i| !with.contains(*i)).collect();
    let pack = std::fs::read_dir(root().join("rules"))
        .expect("rules")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).unwrap_or_default())
        .collect::<String>();
    for id in &obsoleted {
        assert!(
            pack.contains(id.as_str()),
            "{id} left out but no built-in rule names it"
        );
    }
}

/// Every YAML document of a file, as JSON.
fn documents(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).expect("read");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            let v = serde_yaml_ng::Value::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_json::to_value(v).expect("json")
        })
        .collect()
}

fn rule_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if trailhound::rules::is_rule_file(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn rule_documents_match_the_rule_schema_and_the_sigma_schemas() {
    let ours = common::validator("rule.schema.json");
    let spec = |name: &str| {
        let p = root().join("tests/sigma_spec").join(name);
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(&p).expect("schema")).expect("json");
        jsonschema::validator_for(&v).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let detection = spec("sigma-detection-rule-schema.json");
    let correlation = spec("sigma-correlation-rules-schema.json");
    let mut n = 0;
    for f in rule_files(&root().join("rules")) {
        for doc in documents(&f) {
            common::assert_valid(&ours, &doc, &f.display().to_string());
            // Metric-filter rules are trailhound's own kind; Sigma documents must also
            // satisfy the specification's schema.
            if doc.get("correlation").is_some() {
                common::assert_valid(&correlation, &doc, &f.display().to_string());
            } else if doc.get("detection").is_some() {
                common::assert_valid(&detection, &doc, &f.display().to_string());
            }
            n += 1;
        }
    }
    assert!(n >= 65, "{n} documents");
    for f in rule_files(&root().join("tests/sigmahq/rules")) {
        for doc in documents(&f) {
            common::assert_valid(&ours, &doc, &f.display().to_string());
        }
    }
    // The schema rejects what validate reports as a schema error.
    let bad = documents(&broken_dir().join("schema_status.yml"));
    assert!(!ours.is_valid(&bad[0]));
    let filters = spec("sigma-filters-schema.json");
    let example = documents(
        &root().join("tests/sigma_spec/../fixtures/broken_rules/filter_unknown_rule.yml"),
    );
    common::assert_valid(&filters, &example[0], "filter fixture");
    common::assert_valid(&ours, &example[0], "filter fixture");
}
