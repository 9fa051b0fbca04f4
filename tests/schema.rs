//! Every finding the built-in pack produces on the real samples (with `record`), and
//! every stats object, against `schemas/finding.schema.json` and
//! `schemas/stats.schema.json`.

mod common;

use std::ffi::OsStr;
use std::path::PathBuf;

use common::{detect, stat};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A named change that must make a valid finding invalid.
type Mutation = (&'static str, fn(&mut Value));

/// The documented finding id: the first 32 hex digits of
/// SHA-256(rule id, NUL, eventID).
fn expected_id(rule_id: &str, event_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(rule_id.as_bytes());
    h.update([0u8]);
    h.update(event_id.as_bytes());
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_run(
    what: &str,
    args: &[&OsStr],
    findings_v: &jsonschema::Validator,
    stats_v: &jsonschema::Validator,
) -> usize {
    let out = detect(args, b"");
    let st = out.stats();
    common::assert_valid(stats_v, &st, &format!("{what}: stats"));
    let found = out.findings();
    assert_eq!(
        found.len() as u64,
        st["findings"]["total"].as_u64().unwrap_or(u64::MAX)
    );
    for (i, f) in found.iter().enumerate() {
        common::assert_valid(findings_v, f, &format!("{what}: finding {i}"));
        if f.get("correlation").is_some() {
            // A built-in alarm or correlation: no record; its event is the newest
            // record that counted.
            let kind = f["rule"]["kind"].as_str().unwrap_or_default();
            assert!(
                kind == "metric_filter" || kind == "correlation",
                "{what}: finding {i} kind {kind}"
            );
            assert!(f.get("record").is_none(), "{what}: finding {i}");
            let ids = f["correlation"]["event_ids"].as_array().map_or(0, Vec::len);
            assert!(ids >= 1, "{what}: finding {i} names no events");
            continue;
        }
        assert!(f["record"].is_object(), "{what}: finding {i} has no record");
        // The event summary repeats the record's own values.
        let rec = &f["record"];
        for k in ["eventID", "eventName", "eventSource", "awsRegion"] {
            let want = rec.get(k).cloned().unwrap_or(Value::Null);
            assert_eq!(f["event"][k], want, "{what}: finding {i} event.{k}");
        }
        let time = rec
            .get("eventTime")
            .or_else(|| rec.get("@timestamp"))
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(
            f["event"]["eventTime"], time,
            "{what}: finding {i} eventTime"
        );
        if let (Some(rule), Some(ev)) = (f["rule"]["id"].as_str(), rec["eventID"].as_str()) {
            assert_eq!(f["id"], expected_id(rule, ev), "{what}: finding {i} id");
        }
        assert_eq!(f["rule"]["origin"], "builtin");
        assert_eq!(f["rule"]["kind"], "sigma");
        assert_eq!(f["suppressed"], 0);
    }
    found.len()
}

#[test]
fn findings_and_stats_of_every_real_sample_match_their_schemas() {
    let fv = common::validator("finding.schema.json");
    let sv = common::validator("stats.schema.json");
    let mut total = 0;
    let mut records = 0;
    for s in common::samples() {
        total += check_run(&s.display().to_string(), &[s.as_os_str()], &fv, &sv);
        records += common::lines(&common::gunzip_file(&s)).len();
    }
    assert!(total > 0, "no findings on the real samples");
    // All five at once: the same findings, and records_in is every line.
    let all: Vec<PathBuf> = common::samples();
    let args: Vec<&OsStr> = all.iter().map(|p| p.as_os_str()).collect();
    assert_eq!(check_run("all samples", &args, &fv, &sv), total);
    let st = detect(&args, b"").stats();
    assert_eq!(stat(&st, "records_in"), records as u64);
    assert_eq!(stat(&st, "inputs"), 5);
    let layout = common::s3_layout();
    assert!(check_run("s3-layout", &[layout.as_os_str()], &fv, &sv) > 0);
}

#[test]
fn findings_with_fields_and_odd_records_match_the_schema() {
    let fv = common::validator("finding.schema.json");
    let sv = common::validator("stats.schema.json");
    let rules = common::root().join("tests/fixtures/rules");
    let odd = common::root().join("tests/fixtures/oddities.ndjson");
    let out = detect(
        &[OsStr::new("--rules"), rules.as_os_str(), odd.as_os_str()],
        b"",
    );
    common::assert_valid(&sv, &out.stats(), "oddities stats");
    let found = out.findings();
    assert!(
        found
            .iter()
            .any(|f| !f["fields"].as_object().is_some_and(|m| m.is_empty()))
    );
    for f in &found {
        common::assert_valid(&fv, f, "oddity finding");
    }
    // --no-record findings are valid too.
    let out = detect(
        &[
            OsStr::new("--rules"),
            rules.as_os_str(),
            odd.as_os_str(),
            OsStr::new("--no-record"),
        ],
        b"",
    );
    for f in out.findings() {
        common::assert_valid(&fv, &f, "--no-record finding");
    }
}

#[test]
fn the_schemas_reject_what_they_should() {
    // Guards the guard: the validators are strict enough to catch a broken finding.
    let fv = common::validator("finding.schema.json");
    let sv = common::validator("stats.schema.json");
    let s = common::sample("stratus-red-team");
    let out = detect(&[s.as_os_str()], b"");
    let good = out.findings().into_iter().next().expect("a finding");
    assert!(fv.is_valid(&good));
    let mutations: [Mutation; 6] = [
        ("no rule", |f| {
            f.as_object_mut().map(|o| o.remove("rule"));
        }),
        ("extra key", |f| f["unexpected"] = Value::Bool(true)),
        ("bad id", |f| f["id"] = "XYZ".into()),
        ("bad level", |f| f["rule"]["level"] = "severe".into()),
        ("bad detected_at", |f| f["detected_at"] = "yesterday".into()),
        ("negative line", |f| f["input"]["line"] = (-1).into()),
    ];
    for (what, m) in mutations {
        let mut bad = good.clone();
        m(&mut bad);
        assert!(
            !fv.is_valid(&bad),
            "finding schema accepts a finding with {what}"
        );
    }
    let st = out.stats();
    assert!(sv.is_valid(&st));
    let mut bad = st.clone();
    bad.as_object_mut().map(|o| o.remove("records_in"));
    assert!(
        !sv.is_valid(&bad),
        "stats schema accepts stats without records_in"
    );
}
