//! Hand-built records with the oddities real CloudTrail has (`tests/fixtures/`), run
//! through the binary with hand-built rules: each rule matches exactly the records
//! the documented lookup and comparison rules say it does (`src/event/path.rs`,
//! `rules/README.md`):
//!
//! - at each object level the exact key is looked up first, and among exactly
//!   repeated keys the first wins; only without an exact key is the first ASCII
//!   case-insensitive key taken;
//! - an array on the path fans out (any element may match); a numeric segment
//!   (`resources.0.ARN`, `resources[0].ARN`) selects one element;
//! - strings compare case-insensitively, numbers by their JSON spelling;
//! - a value is compared whole unless a modifier says otherwise.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::PathBuf;

use common::{detect, stat};
use serde_json::Value;

fn fixture() -> PathBuf {
    common::root().join("tests/fixtures/oddities.ndjson")
}

fn fixture_rules() -> PathBuf {
    common::root().join("tests/fixtures/rules")
}

/// The fixture's eventIDs end in 01..12, in line order.
fn ev(n: u32) -> String {
    format!("00000000-0000-4000-8000-0000000000{n:02}")
}

/// What each hand-built rule must match, by record number (see the fixture).
fn expected() -> BTreeSet<(String, String)> {
    let all: Vec<u32> = (1..=12).collect();
    let table: Vec<(&str, Vec<u32>)> = vec![
        // Exact key first: record 1 holds principalid and principalId.
        ("odd-principalid-exact", vec![1]),
        ("odd-principalid-shadowed", vec![]),
        ("odd-principalid-lowercase-path", vec![1]),
        // No exact PRINCIPALID: the first key equal ignoring ASCII case, in document
        // order, is principalid (record 1); record 2's PrincipalId holds another value.
        ("odd-principalid-uppercase-path", vec![1]),
        // Record 2 has only PrincipalId: found by principalId through case folding.
        ("odd-principalid-folded", vec![2]),
        // Exactly repeated keys: the first wins (records 3 and 12).
        ("odd-repeated-key-first", vec![3]),
        ("odd-repeated-key-second", vec![]),
        ("odd-eventname-repeated-first", vec![12]),
        ("odd-eventname-repeated-second", vec![]),
        // A non-ISO eventTime is a plain string, compared as written.
        ("odd-event-time-text", vec![4]),
        (
            "odd-event-time-iso",
            all.iter().copied().filter(|&n| n != 4).collect(),
        ),
        // 200 and "200" both spell 200.
        ("odd-errorcode-quoted", vec![5, 6]),
        ("odd-errorcode-number", vec![5, 6]),
        ("odd-errorcode-prefix", vec![5, 6]),
        // Two addresses in one value: the value is compared whole.
        ("odd-ip-exact-first", vec![]),
        ("odd-ip-startswith-first", vec![7]),
        ("odd-ip-contains-second", vec![7]),
        // A numeric eventName, through the rule index too.
        ("odd-eventname-number", vec![9]),
        ("odd-eventname-number-quoted", vec![9]),
        ("odd-eventname-number-prefix", vec![9]),
        // Partitions: 'arn:aws:' is not a prefix of 'arn:aws-us-gov:'.
        ("odd-govcloud-principal", vec![8, 11]),
        ("odd-govcloud-resource", vec![11]),
        (
            "odd-commercial-principal",
            all.iter().copied().filter(|&n| n != 8 && n != 11).collect(),
        ),
        // Arrays: fan-out, indices, |all across elements.
        ("odd-resources-any", vec![10]),
        ("odd-resources-index0", vec![]),
        ("odd-resources-index1", vec![10]),
        ("odd-resources-bracket", vec![10]),
        ("odd-resources-all-types", vec![10]),
        ("odd-resources-out-of-range", vec![]),
        ("odd-resources-not-first", vec![10]),
    ];
    table
        .into_iter()
        .flat_map(|(rule, recs)| recs.into_iter().map(move |n| (rule.to_string(), ev(n))))
        .collect()
}

fn run_fixture(extra: &[&OsStr]) -> common::Output {
    let rules = fixture_rules();
    let odd = fixture();
    let mut args: Vec<&OsStr> = vec!["--rules".as_ref(), rules.as_os_str(), "--strict".as_ref()];
    args.extend_from_slice(extra);
    args.push(odd.as_os_str());
    let out = detect(&args, b"");
    let st = out.stats();
    let n = common::lines(&std::fs::read(fixture()).expect("fixture")).len() as u64;
    assert_eq!(n, 12);
    assert_eq!(stat(&st, "records_in"), n, "{st}");
    assert_eq!(
        stat(&st, "records_kept"),
        n,
        "every odd record is processed: {st}"
    );
    assert_eq!(stat(&st, "records_without_event_time"), 0);
    out
}

fn finding<'a>(found: &'a [Value], rule: &str, n: u32) -> &'a Value {
    found
        .iter()
        .find(|f| f["rule"]["id"] == rule && f["event"]["eventID"] == ev(n).as_str())
        .unwrap_or_else(|| panic!("no finding of {rule} on record {n}"))
}

#[test]
fn every_rule_matches_exactly_the_documented_records() {
    let out = run_fixture(&["--no-builtin".as_ref()]);
    let got: BTreeSet<(String, String)> = out.keys().into_iter().collect();
    assert_eq!(
        out.keys().len(),
        got.len(),
        "a rule fired twice on one record"
    );
    let want = expected();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing: {missing:#?}\nunexpected: {extra:#?}"
    );
    // Every rule file loaded: 30 rules, as listed by `rules list`.
    assert_eq!(stat(&out.stats(), "rules_loaded"), 30);
}

#[test]
fn findings_report_odd_values_as_written() {
    let found = run_fixture(&["--no-builtin".as_ref()]).findings();
    let f = finding(&found, "odd-principalid-exact", 1);
    assert_eq!(
        f["fields"],
        serde_json::json!({
            "userIdentity.principalId": "AIDAEXAMPLEEXACTKEY1",
            "userIdentity.principalid": "AIDAEXAMPLELOWERCASE",
            "userIdentity.PRINCIPALID": "AIDAEXAMPLELOWERCASE",
        })
    );
    let f = finding(&found, "odd-event-time-text", 4);
    assert_eq!(f["event"]["eventTime"], "Jul 3, 2023 11:47:39 AM");
    assert_eq!(f["fields"]["eventTime"], "Jul 3, 2023 11:47:39 AM");
    // The number stays a number in the finding, the string a string.
    assert_eq!(
        finding(&found, "odd-errorcode-quoted", 5)["fields"]["errorCode"],
        200
    );
    assert_eq!(
        finding(&found, "odd-errorcode-quoted", 6)["fields"]["errorCode"],
        "200"
    );
    let f = finding(&found, "odd-ip-contains-second", 7);
    assert_eq!(f["event"]["sourceIPAddress"], "192.0.2.10, 198.51.100.20");
    let f = finding(&found, "odd-govcloud-principal", 8);
    assert_eq!(
        f["event"]["principal"]["arn"],
        "arn:aws-us-gov:iam::111122223333:root"
    );
    assert_eq!(f["event"]["awsRegion"], "us-gov-west-1");
    assert_eq!(
        finding(&found, "odd-eventname-number", 9)["event"]["eventName"],
        42
    );
    // `fields:` carries every value a path reaches: one as itself, several as a list.
    let f = finding(&found, "odd-resources-any", 10);
    assert_eq!(
        f["fields"],
        serde_json::json!({
            "resources.ARN": ["arn:aws:s3:::trailhound-first-bucket", "arn:aws:s3:::trailhound-second-bucket/key.txt"],
            "resources.1.ARN": "arn:aws:s3:::trailhound-second-bucket/key.txt",
            "resources[1].type": "AWS::S3::Object",
        })
    );
    let f = finding(&found, "odd-eventname-repeated-first", 12);
    assert_eq!(f["event"]["eventName"], "CreateUser");
    // `record` keeps both repeated keys: it is the line as read.
    let line = common::lines(&std::fs::read(fixture()).expect("fixture"))[11].to_vec();
    let raw = String::from_utf8(line).expect("utf-8");
    let out = run_fixture(&["--no-builtin".as_ref()]);
    let idx = out
        .findings()
        .iter()
        .position(|f| f["event"]["eventID"] == ev(12).as_str())
        .expect("finding on record 12");
    let written = common::raw_record(out.stdout_lines()[idx]).expect("record");
    assert_eq!(written, raw);
    assert!(written.contains(r#""eventName":"CreateUser","eventName":"DeleteUser""#));
}

#[test]
fn built_in_rules_on_odd_records() {
    // The built-in pack runs over every odd record without error, and its rules see the
    // same oddities: the root rule fires in the aws-us-gov partition, and the IAM user
    // rule reads the first of two eventName keys.
    let out = run_fixture(&[]);
    let st = out.stats();
    assert_eq!(stat(&st, "records_dead_lettered"), 0);
    let root = "ed33a4d8-2f6a-4c96-a7a8-ea65c5cbf8f4";
    let user_created = "55687c6b-9679-43d2-9484-3ef5cff63cd5";
    let keys = out.keys();
    let builtin: Vec<_> = keys
        .iter()
        .filter(|(r, _)| !r.starts_with("odd-"))
        .collect();
    assert!(builtin.contains(&&(root.to_string(), ev(8))), "{builtin:?}");
    assert!(
        builtin.contains(&&(user_created.to_string(), ev(12))),
        "{builtin:?}"
    );
    let only_odd: BTreeSet<_> = keys
        .iter()
        .filter(|(r, _)| r.starts_with("odd-"))
        .cloned()
        .collect();
    assert_eq!(
        only_odd,
        expected(),
        "the built-in pack changed the odd rules' hits"
    );
}

#[test]
fn odd_records_in_other_framings_give_the_same_hits() {
    // The same records inside a Records object and gzip'd on stdin.
    let data = std::fs::read(fixture()).expect("fixture");
    let recs: Vec<&[u8]> = common::lines(&data);
    let mut doc = b"{\"Records\":[".to_vec();
    doc.extend(recs.join(&b","[..]));
    doc.extend_from_slice(b"]}\n");
    let rules = fixture_rules();
    for input in [doc.clone(), common::gzip(&doc), common::gzip(&data)] {
        let out = detect(
            &[
                OsStr::new("--no-builtin"),
                "--rules".as_ref(),
                rules.as_os_str(),
            ],
            &input,
        );
        let got: BTreeSet<_> = out.keys().into_iter().collect();
        assert_eq!(got, expected());
    }
}

#[test]
fn numbers_compare_as_sigma_types() {
    // docs/records.md: a YAML number in a rule compares numerically (strings are cast);
    // a YAML string compares with the leaf's text, which for a JSON number is its
    // canonical text ("200" for 200.0).
    let t = tempfile::tempdir().expect("tempdir");
    let rule = |id: &str, v: &str| {
        format!(
            "title: {id}\nid: {id}\nlogsource: {{product: aws, service: cloudtrail}}\ndetection:\n    sel:\n        errorCode: {v}\n    condition: sel\nlevel: low\n"
        )
    };
    let rules: Vec<String> = [
        ("str-200", "'200'"),
        ("str-20-star", "'20*'"),
        ("str-200.0", "'200.0'"),
        ("num-200.0", "200.0"),
        ("num-2e2", "2e2"),
        ("num-200.5", "200.5"),
    ]
    .iter()
    .map(|(id, v)| rule(id, v))
    .collect();
    std::fs::write(t.path().join("n.yml"), rules.join("---\n")).expect("write rule");
    let rec = |code: &str| {
        format!(
            "{{\"eventVersion\":\"1.09\",\"eventTime\":\"2026-11-20T08:00:13Z\",\"eventSource\":\"s3.amazonaws.com\",\"eventName\":\"GetBucketAcl\",\"awsRegion\":\"us-east-1\",\"errorCode\":{code},\"eventID\":\"00000000-0000-4000-8000-000000000013\",\"recipientAccountId\":\"111122223333\"}}\n"
        )
    };
    let hits = |record: String| {
        let out = detect(
            &[
                OsStr::new("--no-builtin"),
                "--rules".as_ref(),
                t.path().as_os_str(),
            ],
            record.as_bytes(),
        );
        let mut hit: Vec<String> = out.keys().into_iter().map(|(r, _)| r).collect();
        hit.sort();
        hit
    };
    assert_eq!(
        hits(rec("200.0")),
        ["num-200.0", "num-2e2", "str-20-star", "str-200"],
        "rules that matched the JSON number 200.0"
    );
    assert_eq!(
        hits(rec("\"200.0\"")),
        ["num-200.0", "num-2e2", "str-20-star", "str-200.0"],
        "rules that matched the string \"200.0\""
    );
}

/// EventBridge delivers CloudTrail records wrapped in an envelope (`"detail-type": "AWS
/// API Call via CloudTrail"`, the record under `detail`); files and streams of such
/// envelopes give the same findings as the bare records.
#[test]
fn eventbridge_envelopes_are_read_as_their_detail() {
    let text = common::gunzip_file(&common::sample("stratus-red-team"));
    let recs: Vec<&[u8]> = common::lines(&text);
    let plain = detect(&[OsStr::new("--no-record")], &text);
    assert!(plain.findings().len() >= 10, "the sample yields findings");
    let envelope = |r: &[u8]| -> Vec<u8> {
        let detail: Value = serde_json::from_slice(r).expect("record");
        serde_json::to_vec(&serde_json::json!({
            "version": "0",
            "id": "00000000-0000-4000-8000-000000000000",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.cloudtrail",
            "account": detail["recipientAccountId"],
            "time": detail["eventTime"],
            "region": detail["awsRegion"],
            "resources": [],
            "detail": detail,
        }))
        .expect("json")
    };
    let mut ndjson = Vec::new();
    for r in &recs {
        ndjson.extend(envelope(r));
        ndjson.push(b'\n');
    }
    let pretty: Vec<u8> = recs
        .iter()
        .flat_map(|r| {
            let mut p = common::pretty(&envelope(r));
            p.push(b'\n');
            p
        })
        .collect();
    for (what, input) in [
        ("NDJSON", ndjson.clone()),
        ("pretty", pretty),
        ("gzip", common::gzip(&ndjson)),
    ] {
        let out = detect(&[OsStr::new("--no-record")], &input);
        assert_eq!(out.keys(), plain.keys(), "{what}");
        let stats = out.stats();
        assert_eq!(stats["records_in"], recs.len(), "{what}");
        assert_eq!(stats["documents_skipped"], 0, "{what}");
    }
}
