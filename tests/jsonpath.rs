//! JSONPath selectors in native rules, on the real samples: a rule selecting
//! `$.requestParameters.ipPermissions.items[*].ipRanges.items[*].cidrIp` matches exactly
//! the records an independent walk over `serde_json` finds, and `fields:` carries what
//! the selectors select.

mod common;

use common::detect;
use serde_json::Value;

/// Every cidrIp under requestParameters.ipPermissions.items[*].ipRanges.items[*].
fn cidrs(rec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let items = rec
        .pointer("/requestParameters/ipPermissions/items")
        .and_then(Value::as_array);
    for item in items.into_iter().flatten() {
        let ranges = item.pointer("/ipRanges/items").and_then(Value::as_array);
        for r in ranges.into_iter().flatten() {
            if let Some(c) = r.get("cidrIp").and_then(Value::as_str) {
                out.push(c.to_string());
            }
        }
    }
    out
}

const RULE: &str = r#"
title: Ingress opened to the world
id: 50000000-0000-0000-0000-000000000001
logsource: {product: aws, service: cloudtrail}
detection:
  sel:
    $.requestParameters.ipPermissions.items[*].ipRanges.items[*].cidrIp: 0.0.0.0/0
  condition: sel
fields:
  - $.requestParameters.ipPermissions.items[*].ipRanges.items[*].cidrIp
  - $..groupId
  - eventName
level: high
"#;

#[test]
fn jsonpath_rule_matches_what_an_independent_walk_finds() {
    let dir = tempfile::tempdir().expect("tmp");
    let rule = common::write_file(dir.path(), "r.yml", RULE.as_bytes());
    let mut want: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    for s in common::samples() {
        let text = common::gunzip_file(&s);
        for line in common::lines(&text) {
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            if cidrs(&v).iter().any(|c| c == "0.0.0.0/0")
                && let Some(id) = v["eventID"].as_str()
            {
                want.push(id.to_string());
            }
        }
        samples.push(s);
    }
    assert!(!want.is_empty(), "the samples open ingress to 0.0.0.0/0");
    want.sort();
    let mut args: Vec<String> = vec![
        "--no-builtin".into(),
        "--no-dedup".into(),
        "--rules".into(),
        rule.display().to_string(),
    ];
    args.extend(samples.iter().map(|p| p.display().to_string()));
    let out = detect(&args, b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let found = out.findings();
    let mut got: Vec<String> = found
        .iter()
        .filter_map(|f| f["event"]["eventID"].as_str().map(str::to_string))
        .collect();
    got.sort();
    assert_eq!(got, want);
    for f in &found {
        let rec = &f["record"];
        let all = cidrs(rec);
        let field =
            &f["fields"]["$.requestParameters.ipPermissions.items[*].ipRanges.items[*].cidrIp"];
        match all.len() {
            1 => assert_eq!(field, &Value::String(all[0].clone())),
            _ => assert_eq!(field, &serde_json::json!(all)),
        }
        assert_eq!(f["fields"]["eventName"], rec["eventName"]);
        // `$..groupId` finds the group wherever it sits (request and response).
        assert!(!f["fields"]["$..groupId"].is_null(), "{f}");
    }
}

#[test]
fn a_malformed_selector_is_a_rule_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = RULE.replace(
        "$.requestParameters.ipPermissions.items[*].ipRanges.items[*].cidrIp: 0.0.0.0/0",
        "$.requestParameters[?@.x ==]: 1",
    );
    let rule = common::write_file(dir.path(), "bad.yml", bad.as_bytes());
    let out = common::run(&["rules", "validate", &rule.display().to_string()], b"");
    assert_eq!(out.code, 1);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), out.stderr);
    assert!(text.contains("bad.yml:7:"), "{text}");
    assert!(text.contains("JSONPath"), "{text}");
}
