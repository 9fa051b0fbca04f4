//! Stateful detection end to end: Sigma correlations (every type, windows at their
//! boundary, out-of-order and late records, eviction), metric-filter alarms, dedup and
//! suppression. Each test builds a record sequence, runs the binary on it and checks
//! the findings and the stats.

mod common;

use std::path::Path;

use common::{detect, stat};
use serde_json::{Value, json};

const T0: &str = "2024-06-01T10:00:00Z";

/// Seconds after T0 as a CloudTrail eventTime.
fn at(secs: i64) -> String {
    let base = 1_717_236_000i64; // 2024-06-01T10:00:00Z
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs((base + secs) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A CloudTrail-like record.
fn rec(id: &str, secs: i64, name: &str, user: &str, extra: Value) -> String {
    let mut r = json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::111122223333:user/{user}"),
                          "accountId": "111122223333", "userName": user},
        "eventTime": at(secs),
        "eventSource": "signin.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "eventID": id,
        "eventType": "AwsConsoleSignIn",
        "recipientAccountId": "111122223333",
    });
    if let (Some(o), Some(e)) = (r.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    r.to_string()
}

fn failed(id: &str, secs: i64, user: &str) -> String {
    rec(
        id,
        secs,
        "ConsoleLogin",
        user,
        json!({"errorMessage": "Failed authentication", "responseElements": {"ConsoleLogin": "Failure"}}),
    )
}

fn success(id: &str, secs: i64, user: &str) -> String {
    rec(
        id,
        secs,
        "ConsoleLogin",
        user,
        json!({"responseElements": {"ConsoleLogin": "Success"}}),
    )
}

const BASE_RULES: &str = r#"
title: Failed console login
id: 10000000-0000-0000-0000-000000000001
name: failed_login
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventName: ConsoleLogin
    errorMessage: Failed authentication
  condition: sel
level: low
---
title: Successful console login
id: 10000000-0000-0000-0000-000000000002
name: successful_login
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventName: ConsoleLogin
    responseElements.ConsoleLogin: Success
  condition: sel
level: low
"#;

/// Runs the binary on `records` with `rules` (plus the two base rules) only.
fn run_rules(dir: &Path, rules: &str, records: &[String], extra: &[&str]) -> common::Output {
    let text = format!("{BASE_RULES}\n---\n{rules}");
    let path = common::write_file(dir, "rules/corr.yml", text.as_bytes());
    let input = records.join("\n") + "\n";
    let mut args: Vec<String> = vec![
        "--no-builtin".into(),
        "--no-record".into(),
        "--rules".into(),
        path.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = detect(&args, input.as_bytes());
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let st = out.stats();
    assert_eq!(st["accounting_ok"], true, "{st}");
    out
}

fn by_rule<'a>(f: &'a [Value], id: &str) -> Vec<&'a Value> {
    f.iter().filter(|x| x["rule"]["id"] == id).collect()
}

const COUNT3: &str = r#"
title: Three failed logins by one user in 5 minutes
id: 20000000-0000-0000-0000-000000000001
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [userIdentity.arn]
  timespan: 5m
  condition: {gte: 3}
level: high
"#;

#[test]
fn event_count_fires_once_per_window_per_group() {
    let dir = tempfile::tempdir().expect("tmp");
    let recs = vec![
        failed("a1", 0, "alice"),
        failed("b1", 10, "bob"),
        failed("a2", 60, "alice"),
        failed("b2", 70, "bob"),
        failed("a3", 120, "alice"),
        success("a4", 130, "alice"),
    ];
    let out = run_rules(dir.path(), COUNT3, &recs, &[]);
    let f = out.findings();
    let corr = by_rule(&f, "20000000-0000-0000-0000-000000000001");
    assert_eq!(corr.len(), 1, "{f:?}");
    let c = &corr[0]["correlation"];
    assert_eq!(c["type"], "event_count");
    assert_eq!(
        c["group"]["userIdentity.arn"],
        "arn:aws:iam::111122223333:user/alice"
    );
    assert_eq!(c["event_ids"], json!(["a1", "a2", "a3"]));
    assert_eq!(c["event_count"], 3);
    assert_eq!(c["window"]["start"], T0);
    assert_eq!(c["window"]["end"], at(300));
    assert_eq!(corr[0]["rule"]["kind"], "correlation");
    assert_eq!(corr[0]["event"]["eventID"], "a3");
    assert_eq!(corr[0]["input"]["record_index"], 4);
    // The referenced rule is silent (generate: false); the other base rule is not.
    assert!(by_rule(&f, "10000000-0000-0000-0000-000000000001").is_empty());
    assert_eq!(by_rule(&f, "10000000-0000-0000-0000-000000000002").len(), 1);
    let v = common::validator("finding.schema.json");
    for x in &f {
        common::assert_valid(&v, x, "correlation finding");
    }
}

#[test]
fn windows_are_half_open_at_the_boundary() {
    let dir = tempfile::tempdir().expect("tmp");
    // 0, 150 and exactly 300 s: [0, 300) holds two, [150, 450) holds two.
    let recs = vec![
        failed("x1", 0, "alice"),
        failed("x2", 150, "alice"),
        failed("x3", 300, "alice"),
    ];
    let out = run_rules(dir.path(), COUNT3, &recs, &[]);
    assert!(out.findings().is_empty(), "{:?}", out.findings());
    // One second earlier and the three share a window.
    let recs = vec![
        failed("y1", 0, "alice"),
        failed("y2", 150, "alice"),
        failed("y3", 299, "alice"),
    ];
    let out = run_rules(dir.path(), COUNT3, &recs, &[]);
    let f = out.findings();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["correlation"]["event_ids"], json!(["y1", "y2", "y3"]));
}

#[test]
fn out_of_order_records_within_the_lateness_are_counted() {
    let dir = tempfile::tempdir().expect("tmp");
    // A later record first, then two older ones that complete the window [0, 300).
    let recs = vec![
        failed("o3", 240, "alice"),
        failed("o1", 0, "alice"),
        failed("o2", 100, "alice"),
    ];
    let out = run_rules(dir.path(), COUNT3, &recs, &[]);
    let f = out.findings();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["correlation"]["window"]["start"], T0);
    assert_eq!(f[0]["correlation"]["event_count"], 3);
    // A shuffled burst where the newest record comes first and the window only
    // exists among the older ones.
    // [40, 340) holds 40, 60, 120; 340 arrives first (40 is just within the 5 min
    // lateness of it).
    let recs = vec![
        failed("s4", 340, "alice"),
        failed("s2", 60, "alice"),
        failed("s1", 40, "alice"),
        failed("s3", 120, "alice"),
    ];
    let out = run_rules(dir.path(), COUNT3, &recs, &[]);
    let f = out.findings();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["correlation"]["event_ids"], json!(["s1", "s2", "s3"]));
}

#[test]
fn records_later_than_the_allowed_lateness_are_counted_not_used() {
    let dir = tempfile::tempdir().expect("tmp");
    let recs = vec![
        failed("l1", 3600, "alice"),
        failed("l2", 3601, "alice"),
        // An hour behind the watermark, with 5 minutes allowed.
        failed("l3", 0, "alice"),
        failed("l4", 3602, "alice"),
    ];
    let out = run_rules(dir.path(), COUNT3, &recs, &[]);
    let f = out.findings();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["correlation"]["event_ids"], json!(["l1", "l2", "l4"]));
    let st = out.stats();
    assert_eq!(st["state"]["correlation_late_events"], 1, "{st}");
    assert_eq!(
        stat(&st, "records_kept"),
        4,
        "the late record is still kept"
    );
    // With a two-hour lateness the same record is used.
    let out = run_rules(dir.path(), COUNT3, &recs, &["--allowed-lateness", "2h"]);
    assert_eq!(out.stats()["state"]["correlation_late_events"], 0);
}

#[test]
fn group_count_limit_evicts_the_idlest_group_and_counts_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let recs = vec![
        failed("e1", 0, "alice"),
        failed("e2", 1, "alice"),
        failed("e3", 2, "bob"),
        failed("e4", 3, "carol"), // evicts alice (idle longest) with max 2 groups
        failed("e5", 4, "alice"),
    ];
    let out = run_rules(dir.path(), COUNT3, &recs, &["--max-groups", "2"]);
    assert!(out.findings().is_empty(), "{:?}", out.findings());
    let st = out.stats();
    assert!(
        st["state"]["correlation_groups_evicted"].as_u64() >= Some(1),
        "{st}"
    );
    assert!(st["state"]["correlation_groups_peak"].as_u64() <= Some(2));
    // Without the limit alice reaches three.
    let out = run_rules(dir.path(), COUNT3, &recs, &[]);
    assert_eq!(out.findings().len(), 1);
}

#[test]
fn value_count_counts_distinct_values() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = r#"
title: Any API call
id: 10000000-0000-0000-0000-000000000010
name: api_call
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    eventType: AwsApiCall
  condition: sel
---
title: One principal calls four distinct APIs in 5 minutes
id: 20000000-0000-0000-0000-000000000010
correlation:
  type: value_count
  rules: [api_call]
  group-by: [userIdentity.arn]
  timespan: 5m
  condition: {field: eventName, gte: 4}
"#;
    let api = |id: &str, s: i64, name: &str, user: &str| {
        rec(id, s, name, user, json!({"eventType": "AwsApiCall"}))
    };
    let recs = vec![
        api("v1", 0, "ListUsers", "alice"),
        api("v2", 5, "ListUsers", "alice"),
        api("v3", 10, "ListRoles", "alice"),
        api("v4", 15, "ListBuckets", "alice"),
        api("w1", 16, "ListPolicies", "bob"),
        api("v5", 20, "ListBuckets", "alice"),
    ];
    let out = run_rules(dir.path(), rules, &recs, &[]);
    assert!(
        out.findings().is_empty(),
        "three distinct: {:?}",
        out.findings()
    );
    let mut recs = recs;
    recs.push(api("v6", 25, "DescribeInstances", "alice"));
    let out = run_rules(dir.path(), rules, &recs, &[]);
    let f = out.findings();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["correlation"]["value"], 4);
    assert_eq!(f[0]["correlation"]["event_count"], 6);
}

const TEMPORAL: &str = r#"
title: Failed and successful login of one user within 10 minutes
id: 20000000-0000-0000-0000-000000000020
correlation:
  type: TYPE
  rules: [failed_login, successful_login]
  group-by: [userIdentity.userName]
  timespan: 10m
generate: true
"#;

#[test]
fn temporal_needs_every_rule_in_any_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = TEMPORAL.replace("TYPE", "temporal");
    let recs = vec![success("t1", 0, "alice"), failed("t2", 60, "alice")];
    let out = run_rules(dir.path(), &rules, &recs, &[]);
    let f = out.findings();
    let corr = by_rule(&f, "20000000-0000-0000-0000-000000000020");
    assert_eq!(corr.len(), 1, "{f:?}");
    // generate: true keeps the referenced rules' own findings.
    assert_eq!(f.len(), 3);
    let recs = vec![success("t1", 0, "alice"), failed("t2", 60, "bob")];
    let out = run_rules(dir.path(), &rules, &recs, &[]);
    assert!(by_rule(&out.findings(), "20000000-0000-0000-0000-000000000020").is_empty());
}

#[test]
fn temporal_ordered_needs_the_listed_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = TEMPORAL.replace("TYPE", "temporal_ordered");
    let id = "20000000-0000-0000-0000-000000000020";
    let recs = vec![failed("q1", 0, "alice"), success("q2", 60, "alice")];
    let out = run_rules(dir.path(), &rules, &recs, &[]);
    assert_eq!(by_rule(&out.findings(), id).len(), 1);
    let recs = vec![success("q1", 0, "alice"), failed("q2", 60, "alice")];
    let out = run_rules(dir.path(), &rules, &recs, &[]);
    assert!(by_rule(&out.findings(), id).is_empty(), "wrong order");
    // Out of order delivery of an in-order pair still counts.
    let recs = vec![success("q2", 60, "alice"), failed("q1", 0, "alice")];
    let out = run_rules(dir.path(), &rules, &recs, &[]);
    assert_eq!(by_rule(&out.findings(), id).len(), 1);
}

#[test]
fn correlation_of_a_correlation_follows_the_spec_example() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = r#"
title: Many failed logins followed by a successful login
id: 20000000-0000-0000-0000-000000000030
correlation:
  type: temporal_ordered
  rules: [multiple_failed_login, successful_login]
  group-by: [userIdentity.arn]
  timespan: 10m
level: critical
---
title: Multiple failed logins
id: 20000000-0000-0000-0000-000000000031
name: multiple_failed_login
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [userIdentity.arn]
  timespan: 10m
  condition: {gte: 3}
"#;
    let recs = vec![
        failed("c1", 0, "alice"),
        failed("c2", 30, "alice"),
        success("c0", 40, "bob"),
        failed("c3", 60, "alice"),
        success("c4", 120, "alice"),
    ];
    let out = run_rules(dir.path(), rules, &recs, &[]);
    let f = out.findings();
    // Only the outermost correlation speaks; bob's success is its own finding.
    assert_eq!(
        by_rule(&f, "20000000-0000-0000-0000-000000000030").len(),
        1,
        "{f:?}"
    );
    assert!(by_rule(&f, "20000000-0000-0000-0000-000000000031").is_empty());
    let top = by_rule(&f, "20000000-0000-0000-0000-000000000030")[0];
    assert_eq!(
        top["correlation"]["event_ids"],
        json!(["c1", "c2", "c3", "c4"])
    );
    assert_eq!(top["correlation"]["event_count"], 4);
    assert_eq!(top["rule"]["level"], "critical");
    // Success before the failures: nothing.
    let recs = vec![
        success("d0", 0, "alice"),
        failed("d1", 10, "alice"),
        failed("d2", 20, "alice"),
        failed("d3", 30, "alice"),
    ];
    let out = run_rules(dir.path(), rules, &recs, &[]);
    assert!(by_rule(&out.findings(), "20000000-0000-0000-0000-000000000030").is_empty());
}

#[test]
fn aliases_group_different_fields() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = r#"
title: Access key created
id: 10000000-0000-0000-0000-000000000040
name: key_created
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventName: CreateAccessKey}
  condition: sel
---
title: Access key created for a user, then that user acts within an hour
id: 20000000-0000-0000-0000-000000000040
correlation:
  type: temporal_ordered
  rules: [key_created, successful_login]
  group-by: [target_user]
  timespan: 1h
  aliases:
    target_user:
      key_created: requestParameters.userName
      successful_login: userIdentity.userName
"#;
    let key = |id: &str, s: i64, by: &str, target: &str| {
        rec(
            id,
            s,
            "CreateAccessKey",
            by,
            json!({"eventSource": "iam.amazonaws.com", "requestParameters": {"userName": target}}),
        )
    };
    let recs = vec![
        key("k1", 0, "admin", "mallory"),
        success("k2", 600, "mallory"),
    ];
    let out = run_rules(dir.path(), rules, &recs, &[]);
    let f = by_rule(&out.findings(), "20000000-0000-0000-0000-000000000040")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["correlation"]["group"]["target_user"], "mallory");
    let recs = vec![
        key("k1", 0, "admin", "mallory"),
        success("k2", 600, "admin"),
    ];
    let out = run_rules(dir.path(), rules, &recs, &[]);
    assert!(by_rule(&out.findings(), "20000000-0000-0000-0000-000000000040").is_empty());
}

#[test]
fn upper_bound_conditions_are_judged_when_the_window_closes() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = r#"
title: Between two and three failed logins in 5 minutes (range)
id: 20000000-0000-0000-0000-000000000050
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [userIdentity.arn]
  timespan: 5m
  condition: {gte: 2, lte: 3}
"#;
    let recs = vec![
        failed("r1", 0, "alice"),
        failed("r2", 10, "alice"),
        failed("r3", 20, "bob"),
        failed("r4", 21, "bob"),
        failed("r5", 22, "bob"),
        failed("r6", 23, "bob"),
        failed("r7", 30, "carol"),
        // Moves the watermark past every window end plus the lateness.
        success("r8", 3600, "dave"),
    ];
    let out = run_rules(dir.path(), rules, &recs, &[]);
    let f = by_rule(&out.findings(), "20000000-0000-0000-0000-000000000050")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        f[0]["correlation"]["group"]["userIdentity.arn"],
        "arn:aws:iam::111122223333:user/alice"
    );
    // The window closed on the watermark, before the last record's own findings.
    let all = out.findings();
    let pos = all
        .iter()
        .position(|x| x["rule"]["id"] == "20000000-0000-0000-0000-000000000050");
    let dave = all.iter().position(|x| x["event"]["eventID"] == "r8");
    assert!(pos.is_some() && dave.is_some());
}

#[test]
fn unknown_references_and_cycles_are_rule_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = r#"
title: Refers to nothing
id: 20000000-0000-0000-0000-000000000060
correlation:
  type: event_count
  rules: [no_such_rule]
  group-by: [userIdentity.arn]
  timespan: 5m
  condition: {gte: 3}
---
title: Cycle a
id: 20000000-0000-0000-0000-000000000061
name: cycle_a
correlation:
  type: temporal
  rules: [cycle_b, failed_login]
  group-by: [userIdentity.arn]
  timespan: 5m
---
title: Cycle b
id: 20000000-0000-0000-0000-000000000062
name: cycle_b
correlation:
  type: temporal
  rules: [cycle_a, failed_login]
  group-by: [userIdentity.arn]
  timespan: 5m
"#;
    let text = format!("{bad}---{BASE_RULES}");
    let path = common::write_file(dir.path(), "bad/corr.yml", text.as_bytes());
    let out = common::run(&["rules", "validate", &path.display().to_string()], b"");
    assert_eq!(out.code, 1, "{}", out.stderr);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), out.stderr);
    assert!(
        text.contains("corr.yml:6:11: error: correlation: refers to 'no_such_rule'"),
        "{text}"
    );
    assert!(text.contains("cycle"), "{text}");
}

#[test]
fn metric_filter_alarms_count_aligned_periods() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = r#"
title: Console sign-in failures, 3 in 5 minutes
id: 30000000-0000-0000-0000-000000000001
pattern: '{ ($.eventName = "ConsoleLogin") && ($.errorMessage = "Failed authentication") }'
alarm: {threshold: ">= 3", period: 5m, evaluation_periods: 1}
level: medium
"#;
    // 10:00:10, 10:01:00, 10:04:59: one period -> one alarm. Then 10:09, 10:10:30,
    // 10:11 straddle two periods -> none.
    let recs = vec![
        failed("m1", 10, "alice"),
        failed("m2", 60, "bob"),
        failed("m3", 299, "carol"),
        failed("m4", 540, "alice"),
        failed("m5", 630, "alice"),
        failed("m6", 660, "alice"),
    ];
    let out = run_rules(dir.path(), rules, &recs, &[]);
    let f = by_rule(&out.findings(), "30000000-0000-0000-0000-000000000001")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(f.len(), 1, "{f:?}");
    let c = &f[0]["correlation"];
    assert_eq!(c["type"], "metric_alarm");
    assert_eq!(c["event_ids"], json!(["m1", "m2", "m3"]));
    assert_eq!(c["window"]["start"], T0);
    assert_eq!(c["window"]["end"], at(300));
    // The matching records themselves are not findings of the alarm rule: the alarm is.
    assert_eq!(f[0]["rule"]["kind"], "metric_filter");
    assert!(f[0]["correlation"].is_object());
}

#[test]
fn alarms_fire_when_entering_alarm_not_while_in_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = r#"
title: Any failed login, 1 per minute
id: 30000000-0000-0000-0000-000000000002
pattern: '{ $.errorMessage = "Failed*" }'
alarm: {threshold: ">= 1", period: 1m}
---
title: Two of three minutes with failures
id: 30000000-0000-0000-0000-000000000003
pattern: '{ $.errorMessage = "Failed*" }'
alarm: {threshold: ">= 1", period: 1m, evaluation_periods: 3, datapoints_to_alarm: 2}
"#;
    // Minutes 0, 1, 2 in a row (one ALARM episode), nothing in 3, then 4 again.
    let recs = vec![
        failed("p1", 5, "alice"),
        failed("p2", 65, "alice"),
        failed("p3", 70, "alice"),
        failed("p4", 125, "alice"),
        failed("p5", 245, "alice"),
    ];
    let out = run_rules(dir.path(), rules, &recs, &[]);
    let f = out.findings();
    let one = by_rule(&f, "30000000-0000-0000-0000-000000000002");
    assert_eq!(one.len(), 2, "{one:?}");
    assert_eq!(one[0]["correlation"]["event_ids"], json!(["p1"]));
    assert_eq!(one[1]["correlation"]["event_ids"], json!(["p5"]));
    let m_of_n = by_rule(&f, "30000000-0000-0000-0000-000000000003");
    // Minutes 0+1 breach -> ALARM at minute 1; it stays in ALARM through minute 4
    // (minutes 2 and 4 of 2..4).
    assert_eq!(m_of_n.len(), 1, "{m_of_n:?}");
    assert_eq!(m_of_n[0]["correlation"]["window"]["start"], at(-60));
}

#[test]
fn metric_filter_without_alarm_reports_each_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = r#"
title: Console failures
id: 30000000-0000-0000-0000-000000000004
pattern: '{ ($.eventName = "ConsoleLogin") && ($.errorMessage = "Failed authentication") }'
"#;
    let recs = vec![
        failed("n1", 0, "a"),
        success("n2", 1, "a"),
        failed("n3", 2, "a"),
    ];
    let out = run_rules(dir.path(), rules, &recs, &[]);
    let f = by_rule(&out.findings(), "30000000-0000-0000-0000-000000000004")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0]["rule"]["kind"], "metric_filter");
    assert_eq!(f[1]["event"]["eventID"], "n3");
}

#[test]
fn bad_metric_filter_pattern_names_its_column() {
    let dir = tempfile::tempdir().expect("tmp");
    // The CloudTrail User Guide's security-group example, with its stray ')'.
    let bad = "title: Unbalanced\nid: 30000000-0000-0000-0000-000000000005\npattern: '{ ($.eventName = AuthorizeSecurityGroupIngress) || ($.eventName = AuthorizeSecurityGroupEgress) || ($.eventName = RevokeSecurityGroupIngress) || ($.eventName = RevokeSecurityGroupEgress) || ($.eventName = CreateSecurityGroup) || ($.eventName = DeleteSecurityGroup)) }'\n";
    let path = common::write_file(dir.path(), "bad/pattern.yml", bad.as_bytes());
    let out = common::run(&["rules", "validate", &path.display().to_string()], b"");
    assert_eq!(out.code, 1, "{}", out.stderr);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("pattern.yml:3:"))
        .unwrap_or_else(|| panic!("no positioned error: {text}"));
    // The stray ')' is character 290 of the pattern; the scalar starts at column 11.
    let col: usize = line
        .split("pattern.yml:3:")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let pattern_start = bad.lines().nth(2).map_or(0, |l| l.find('{').unwrap_or(0));
    let stray = bad
        .lines()
        .nth(2)
        .map_or(0, |l| l.rfind("))").unwrap_or(0) + 1);
    assert_eq!(
        col,
        stray + 1,
        "column points at the stray ')': {line} (pattern at {pattern_start})"
    );
}

#[test]
fn dedup_drops_repeated_event_ids_and_keeps_the_books() {
    let dir = tempfile::tempdir().expect("tmp");
    let recs = [
        success("u1", 0, "alice"),
        success("u1", 0, "alice"),
        success("u2", 1, "alice"),
        success("u1", 2, "alice"),
    ];
    let out = run_rules(dir.path(), "", &recs[..], &[]);
    let st = out.stats();
    assert_eq!(stat(&st, "records_in"), 4);
    assert_eq!(stat(&st, "records_deduplicated"), 2);
    assert_eq!(stat(&st, "records_kept"), 2);
    assert_eq!(out.findings().len(), 2);
    let out = run_rules(dir.path(), "", &recs[..], &["--no-dedup"]);
    assert_eq!(stat(&out.stats(), "records_deduplicated"), 0);
    assert_eq!(out.findings().len(), 4);
    // Outside the window a repeat is kept.
    let out = run_rules(dir.path(), "", &recs[..], &["--dedup-window", "1s"]);
    assert_eq!(stat(&out.stats(), "records_deduplicated"), 1);
}

#[test]
fn dedup_removes_repeats_from_the_archive_too() {
    let dir = tempfile::tempdir().expect("tmp");
    let recs = [success("z1", 0, "alice"), success("z1", 0, "alice")];
    let root = dir.path().join("archive");
    let out = run_rules(
        dir.path(),
        "",
        &recs,
        &["--archive", &root.display().to_string()],
    );
    let st = out.stats();
    assert_eq!(st["records_archived"], 1, "{st}");
    assert_eq!(stat(&st, "records_kept"), 1);
}

#[test]
fn suppression_emits_the_first_finding_and_a_summary() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = r#"
title: Failed login, suppressed per user for an hour
id: 40000000-0000-0000-0000-000000000001
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {errorMessage: Failed authentication}
  condition: sel
suppress: {by: [userIdentity.arn], for: 1h}
"#;
    let mut recs: Vec<String> = (0..5)
        .map(|i| failed(&format!("s{i}"), i * 60, "alice"))
        .collect();
    recs.push(failed("b0", 30, "bob"));
    recs.push(failed("s9", 7200, "alice"));
    let out = run_rules(dir.path(), rules, &recs, &[]);
    let f = by_rule(&out.findings(), "40000000-0000-0000-0000-000000000001")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    let ids: Vec<(String, u64)> = f
        .iter()
        .map(|x| {
            (
                x["event"]["eventID"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                x["suppressed"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    // alice's first, bob's first, alice's summary (4 suppressed, emitted when s9
    // opened a new period), alice's new first.
    assert_eq!(
        ids,
        vec![
            ("s0".to_string(), 0),
            ("b0".to_string(), 0),
            ("s0".to_string(), 4),
            ("s9".to_string(), 0)
        ],
        "{f:?}"
    );
    let summary = &f[2];
    assert_ne!(summary["id"], f[0]["id"]);
    assert_eq!(
        summary["suppression"]["by"]["userIdentity.arn"],
        "arn:aws:iam::111122223333:user/alice"
    );
    assert_eq!(out.stats()["state"]["findings_suppressed"], 4);
    let v = common::validator("finding.schema.json");
    for x in &f {
        common::assert_valid(&v, x, "suppression finding");
    }
}

#[test]
fn stateful_findings_do_not_depend_on_thread_count() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut recs = Vec::new();
    for i in 0..3000 {
        let user = format!("u{}", i % 37);
        recs.push(failed(&format!("id{i}"), i / 3, &user));
    }
    let strip = |out: &common::Output| -> Vec<Value> {
        out.findings()
            .into_iter()
            .map(|mut f| {
                if let Some(o) = f.as_object_mut() {
                    o.remove("detected_at");
                }
                f
            })
            .collect()
    };
    let one = run_rules(dir.path(), COUNT3, &recs, &["--threads", "1"]);
    let four = run_rules(dir.path(), COUNT3, &recs, &["--threads", "4"]);
    let (a, b) = (strip(&one), strip(&four));
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

#[test]
fn pre_storage_filter_counts_and_applies_to_archive_or_both() {
    let dir = tempfile::tempdir().expect("tmp");
    let kms = |id: &str, s: i64| {
        rec(
            id,
            s,
            "Decrypt",
            "svc",
            json!({"eventSource": "kms.amazonaws.com", "eventType": "AwsApiCall"}),
        )
    };
    let recs = vec![
        kms("f1", 0),
        success("f2", 1, "alice"),
        kms("f3", 2),
        failed("f4", 3, "bob"),
    ];
    let rules = r#"
title: Any KMS call
id: 70000000-0000-0000-0000-000000000001
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: kms.amazonaws.com}
  condition: sel
"#;
    let filter = "not (event_source = 'kms.amazonaws.com' and event_name = 'Decrypt')";
    let root = dir.path().join("archive");
    let root_s = root.display().to_string();
    // Default: the archive loses the filtered records, the rules still see them.
    let out = run_rules(
        dir.path(),
        rules,
        &recs,
        &["--filter", filter, "--archive", &root_s],
    );
    let st = out.stats();
    assert_eq!(stat(&st, "records_filtered"), 2, "{st}");
    assert_eq!(stat(&st, "records_kept"), 2);
    assert_eq!(st["records_archived"], 2);
    let f = out.findings();
    assert_eq!(by_rule(&f, "70000000-0000-0000-0000-000000000001").len(), 2);
    // both: neither archived nor matched.
    let root2 = dir.path().join("archive2").display().to_string();
    let out = run_rules(
        dir.path(),
        rules,
        &recs,
        &[
            "--filter",
            filter,
            "--filter-applies-to",
            "both",
            "--archive",
            &root2,
        ],
    );
    let st = out.stats();
    assert_eq!(stat(&st, "records_filtered"), 2);
    assert_eq!(st["records_archived"], 2);
    assert!(by_rule(&out.findings(), "70000000-0000-0000-0000-000000000001").is_empty());
    // Several filters are AND-ed.
    let out = run_rules(
        dir.path(),
        rules,
        &recs,
        &[
            "--filter",
            filter,
            "--filter",
            "user_identity.user_name <> 'bob'",
        ],
    );
    assert_eq!(stat(&out.stats(), "records_filtered"), 3);
}

#[test]
fn a_bad_filter_stops_the_run_before_it_starts() {
    let out = common::run(
        &["--filter", "event_name ~ 'x'", "--stats", "json"],
        b"{}\n",
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("filter 1"), "{}", out.stderr);
    let out = common::run(&["--filter", "no_such_column = 1"], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no_such_column"), "{}", out.stderr);
}

#[test]
fn config_file_sets_filter_dedup_and_correlation_limits() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = common::write_file(
        dir.path(),
        "trailhound.yaml",
        b"version: 1\nfilter: [\"event_name <> 'ConsoleLogin' or error_message is null\"]\ndedup: {enabled: false}\ncorrelation: {allowed_lateness: 1h, max_groups: 10}\n",
    );
    let recs = [
        failed("g1", 0, "alice"),
        failed("g1", 0, "alice"),
        success("g2", 5, "alice"),
    ];
    let out = run_rules(
        dir.path(),
        "",
        &recs,
        &["--config", &cfg.display().to_string()],
    );
    let st = out.stats();
    assert_eq!(stat(&st, "records_filtered"), 2, "{st}");
    assert_eq!(stat(&st, "records_deduplicated"), 0);
    let out = common::run(&["config", "check", &cfg.display().to_string()], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_record_without_event_time_does_not_move_the_watermark() {
    let dir = tempfile::tempdir().expect("tmp");
    let untimed = json!({"eventName": "ConsoleLogin", "eventID": "nt1",
        "errorMessage": "Failed authentication",
        "userIdentity": {"arn": "arn:aws:iam::111122223333:user/alice"}})
    .to_string();
    let recs = vec![
        failed("w1", 0, "alice"),
        untimed,
        failed("w2", 60, "alice"),
        failed("w3", 120, "alice"),
    ];
    let out = run_rules(dir.path(), COUNT3, &recs, &[]);
    let f = out.findings();
    assert_eq!(f.len(), 1, "{f:?}");
    // The untimed failure counts at the stream's time: the first three fire.
    assert_eq!(f[0]["correlation"]["event_ids"], json!(["w1", "nt1", "w2"]));
    let st = out.stats();
    assert_eq!(st["state"]["correlation_late_events"], 0, "{st}");
    assert_eq!(stat(&st, "records_without_event_time"), 1);
}

#[test]
fn value_sum_and_value_avg_aggregate_numbers() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = r#"
title: Any data transfer
id: 10000000-0000-0000-0000-000000000070
name: transfer
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventName: GetObject}
  condition: sel
---
title: More than 1000 bytes out by one user in 5 minutes
id: 20000000-0000-0000-0000-000000000070
correlation:
  type: value_sum
  rules: [transfer]
  group-by: [userIdentity.arn]
  timespan: 5m
  condition: {field: additionalEventData.bytesTransferredOut, gt: 1000}
---
title: Average transfer of at least 400 bytes by one user in 5 minutes
id: 20000000-0000-0000-0000-000000000071
correlation:
  type: value_avg
  rules: [transfer]
  group-by: [userIdentity.arn]
  timespan: 5m
  condition: {field: additionalEventData.bytesTransferredOut, gte: 400}
generate: true
"#;
    let get = |id: &str, s: i64, bytes: Value| {
        rec(
            id,
            s,
            "GetObject",
            "alice",
            json!({"eventSource": "s3.amazonaws.com", "additionalEventData": {"bytesTransferredOut": bytes}}),
        )
    };
    let recs = vec![
        get("b1", 0, json!(300)),
        get("b2", 10, json!("not a number")),
        get("b3", 20, json!(300.5)),
        get("b4", 30, json!(500)),
    ];
    let out = run_rules(dir.path(), rules, &recs, &[]);
    let f = out.findings();
    let sum = by_rule(&f, "20000000-0000-0000-0000-000000000070");
    assert_eq!(sum.len(), 1, "{f:?}");
    assert_eq!(sum[0]["correlation"]["value"], 1100.5);
    assert_eq!(
        sum[0]["correlation"]["event_ids"],
        json!(["b1", "b3", "b4"])
    );
    // The average never reaches 400: 300, then 300.25, then 366.8 (the text value is
    // not a number and does not count).
    assert!(by_rule(&f, "20000000-0000-0000-0000-000000000071").is_empty());
    // A big transfer lifts it to (300 + 300.5 + 500 + 900) / 4.
    let mut more = recs.clone();
    more.push(get("b5", 40, json!(900)));
    let out = run_rules(dir.path(), rules, &more, &[]);
    let avg = by_rule(&out.findings(), "20000000-0000-0000-0000-000000000071")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(avg.len(), 1);
    assert_eq!(avg[0]["correlation"]["value"], 500.125);
}

#[test]
fn eq_and_neq_conditions_are_judged_at_window_close() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = r#"
title: Exactly two failed logins in 5 minutes
id: 20000000-0000-0000-0000-000000000080
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [userIdentity.arn]
  timespan: 5m
  condition: {eq: 2}
"#;
    let recs = vec![
        failed("q1", 0, "alice"),
        failed("q2", 10, "alice"),
        failed("q3", 0, "bob"),
        failed("q4", 10, "bob"),
        failed("q5", 20, "bob"),
    ];
    let out = run_rules(dir.path(), rules, &recs, &[]);
    let f = by_rule(&out.findings(), "20000000-0000-0000-0000-000000000080")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["correlation"]["event_ids"], json!(["q1", "q2"]));
}

#[test]
fn malformed_correlations_are_errors_never_crashes() {
    use trailhound::rules::{LoadReport, Origin, RulePack};
    let base = "title: t\nid: 10000000-0000-0000-0000-0000000000aa\nname: base\nlogsource: {product: aws}\ndetection: {sel: {eventName: X}, condition: sel}\n---\n";
    let bodies = [
        "correlation: 5",
        "correlation: {}",
        "correlation: {type: event_count}",
        "correlation: {type: nope, rules: [base], timespan: 5m}",
        "correlation: {type: event_count, rules: [base], timespan: 5m}",
        "correlation: {type: event_count, rules: [base], timespan: soon, condition: {gte: 1}}",
        "correlation: {type: event_count, rules: [base], timespan: 0s, condition: {gte: 1}}",
        "correlation: {type: event_count, rules: [base], timespan: 5m, condition: {gte: many}}",
        "correlation: {type: event_count, rules: [base], timespan: 5m, condition: {about: 3}}",
        "correlation: {type: event_count, rules: [base], timespan: 5m, condition: [1]}",
        "correlation: {type: value_count, rules: [base], timespan: 5m, condition: {gte: 2}}",
        "correlation: {type: value_count, rules: [base], timespan: 5m, condition: {field: [a, b], gte: 2}}",
        "correlation: {type: value_percentile, rules: [base], timespan: 5m, condition: {field: a, lte: 1}}",
        "correlation: {type: temporal, rules: [], timespan: 5m}",
        "correlation: {type: temporal, rules: [base, base2], group-by: [g], timespan: 5m, aliases: {g: {base: a}}}",
        "correlation: {type: temporal, rules: base, group-by: [x], timespan: 5m, aliases: 3}",
        "correlation: {type: temporal, rules: [base], group-by: [x], timespan: 5m}\ngenerate: maybe",
        "correlation: {type: event_count, rules: [base], group-by: ['a..b'], timespan: 5m, condition: {gte: 1}}",
        "pattern: 42",
        "pattern: '{ $.a = 1 }'\nalarm: {threshold: lots}",
        "pattern: '{ $.a = 1 }'\nalarm: {threshold: '>= 1', evaluation_periods: 0}",
        "pattern: '{ $.a = 1 }'\nalarm: {threshold: '>= 1', evaluation_periods: 2, datapoints_to_alarm: 3}",
        "pattern: '{ $.a = 1 }'\nalarm: 7",
        "detection: {sel: {a: 1}, condition: sel}\nlogsource: {product: aws}\nsuppress: {by: [a]}",
        "detection: {sel: {a: 1}, condition: sel}\nlogsource: {product: aws}\nsuppress: {for: never}",
    ];
    for body in bodies {
        let text = format!("{base}title: c\nid: 20000000-0000-0000-0000-0000000000aa\n{body}\n");
        let mut report = LoadReport::default();
        let pack = RulePack::from_sources(&[(Origin::Builtin("x.yml".into()), text)], &mut report);
        assert!(
            !report.errors.is_empty(),
            "no error for {body:?}: {} rules",
            pack.rules().len()
        );
        let e = report.errors[0].to_string();
        assert!(e.starts_with("builtin:x.yml:"), "{e}");
        // The base rule still loads.
        assert!(
            pack.rules()
                .iter()
                .any(|r| r.meta.name.as_deref() == Some("base")),
            "{body}"
        );
    }
}
