//! The fuzz target bodies (`trailhound::fuzz`) on the inputs the fuzzers found and on
//! the repository's real data. Every input under `fuzz/regressions/<target>/` (a crash
//! a fuzzer found, kept once fixed) is replayed; the real samples, S3-layout objects,
//! rules and configuration files are replayed too, so each target's own assertions
//! (accounting balances, finding lines are JSON, the rule index agrees with testing
//! every rule, a whole correlation run keeps its counts) are checked on real data by
//! every `cargo test`, not only while fuzzing.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use trailhound::fuzz::{self, Samples};

fn samples() -> &'static Samples {
    static S: OnceLock<Samples> = OnceLock::new();
    S.get_or_init(|| {
        let ndjson = common::gunzip_file(&common::sample("stratus-red-team"));
        Samples::new(&ndjson, 64)
    })
}

/// Replays `fuzz/regressions/<target>/*`; returns how many.
fn regressions(target: &str, f: impl Fn(&[u8])) -> usize {
    let files = common::files_ending(&common::root().join("fuzz/regressions").join(target), "");
    for p in &files {
        let data = std::fs::read(p).expect("read regression input");
        eprintln!("replaying {}", p.display());
        f(&data);
    }
    files.len()
}

fn rule_files() -> Vec<PathBuf> {
    let root = common::root();
    let mut out = Vec::new();
    for d in [
        "rules",
        "tests/sigmahq/rules",
        "tests/sigma_features",
        "tests/fixtures/rules",
    ] {
        out.extend(
            common::files_ending(&root.join(d), ".yml")
                .into_iter()
                .filter(|p| !p.to_string_lossy().ends_with(".tests.yml")),
        );
    }
    out
}

#[test]
fn decode_on_real_objects_and_every_framing() {
    let s = samples();
    regressions("decode", |d| fuzz::decode(d, s));
    let objects = common::files_ending(&common::s3_layout(), "");
    assert!(objects.len() >= 10, "the S3-layout fixture is missing");
    for p in &objects {
        fuzz::decode(&std::fs::read(p).expect("object"), s);
    }
    // The same records as NDJSON, as a delivery object, gzip'd, and cut at every
    // 97th byte (a truncated object or stream).
    let mut ndjson = Vec::new();
    for r in &s.records {
        ndjson.extend_from_slice(r);
        ndjson.push(b'\n');
    }
    let object = common::records_object(&s.records);
    for body in [
        ndjson.clone(),
        object.clone(),
        common::gzip(&ndjson),
        common::gzip(&object),
    ] {
        fuzz::decode(&body, s);
        for cut in (0..body.len()).step_by(97) {
            fuzz::decode(&body[..cut], s);
        }
    }
}

#[test]
fn record_paths_on_real_records() {
    let s = samples();
    regressions("record", |d| fuzz::record(d, s));
    let paths = [
        "eventName",
        "userIdentity.sessionContext.sessionIssuer.userName",
        "requestParameters",
        "$.resources[*].ARN",
        "$..accountId",
        "$.requestParameters[?(@.bucketName)]",
        "responseElements.credentials",
    ];
    for (i, r) in s.records.iter().enumerate() {
        let mut input = paths[i % paths.len()].as_bytes().to_vec();
        input.push(b'\n');
        input.extend_from_slice(r);
        fuzz::record(&input, s);
    }
}

#[test]
fn every_rule_file_compiles_the_same_indexed_and_unindexed() {
    let s = samples();
    regressions("sigma_rule", |d| fuzz::sigma_rule(d, s));
    let files = rule_files();
    assert!(files.len() > 100, "rule files missing: {}", files.len());
    for p in &files {
        fuzz::sigma_rule(&std::fs::read(p).expect("rule"), s);
    }
}

#[test]
fn correlation_rule_files_run_end_to_end() {
    let s = samples();
    regressions("correlation", |d| fuzz::correlation(d, s));
    let mut n = 0;
    for p in rule_files() {
        let body = std::fs::read(&p).expect("rule");
        if body.windows(12).any(|w| w == b"correlation:") {
            fuzz::correlation(&body, s);
            n += 1;
        }
    }
    assert!(n >= 3, "correlation rules missing");
}

#[test]
fn metric_filter_and_sql_filter_regressions() {
    let s = samples();
    regressions("metric_filter", |d| fuzz::metric_filter(d, s));
    regressions("sql_filter", |d| fuzz::sql_filter(d, s));
    for p in [
        r#"{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }"#,
        r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS }"#,
        r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }"#,
        "{ (((((((((($.a = 1)))))))))) }",
        "{ $.",
        "",
    ] {
        fuzz::metric_filter(p.as_bytes(), s);
    }
    for e in [
        "event_source = 'kms.amazonaws.com' and event_name = 'Decrypt'",
        "user_agent not like 'AWS Internal%'",
        "request_parameters ->> '$.list[2].k' = 'v'",
        "((((((((((((((((((((event_name = 'x'))))))))))))))))))))",
        "event_name like '%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%a'",
        "'",
    ] {
        fuzz::sql_filter(e.as_bytes(), s);
    }
}

#[test]
fn configuration_files() {
    regressions("config", fuzz::config);
    let root = common::root();
    let mut n = 0;
    for d in ["docs/examples", "deploy"] {
        for p in common::files_ending(&root.join(d), ".yaml") {
            fuzz::config(&std::fs::read(&p).expect("config"));
            n += 1;
        }
    }
    assert!(n >= 2, "example configurations missing");
    // Bad files are errors that name the file (and the line and column where the YAML
    // itself is broken), never a crash.
    for (text, says) in [
        ("version: 2\n", "unknown version 2"),
        (
            "archive:\n  root: /tmp/a\n  max_bytes: lots\n",
            "archive.max_bytes",
        ),
        ("rules: [\n", "fuzz.yml:"),
        ("dedup:\n  window: soon\n", "dedup.window"),
    ] {
        fuzz::config(text.as_bytes());
        match trailhound::config::ConfigFile::parse(text, "fuzz.yml", &|_| None) {
            Ok(_) => panic!("{text:?} was accepted"),
            Err(e) => {
                let m = e.to_string();
                assert!(
                    m.starts_with("fuzz.yml") && m.contains(says),
                    "{text:?}: {m}"
                );
            }
        }
    }
}
